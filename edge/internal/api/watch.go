package api

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/chasqui/chasqui/edge/internal/queue"
	"github.com/chasqui/chasqui/edge/internal/reads"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	"github.com/chasqui/chasqui/internal/validate"
)

// MaxWatchIDs bounds the transaction ids of one WatchTransactions call.
const MaxWatchIDs = 10000

// watchPage is how many changes one read of the change log returns.
const watchPage = 256

// WatchTransactions streams state changes of the watched transactions (all
// when transaction_ids is empty), in change order. With after_change 0 it
// first sends the current state of each watched id (numbered with the
// newest change, so resuming from it misses nothing), then every change
// after; with after_change N it replays the changes after N first. The
// stream ends when the caller cancels it or the edge stops.
func (s *EdgeService) WatchTransactions(req *edgev1.WatchTransactionsRequest, stream edgev1.EdgeService_WatchTransactionsServer) error {
	ctx := stream.Context()
	if err := validateWatch(req); err != nil {
		return statusOf(ctx, s.log, err)
	}
	var want map[string]bool
	if len(req.GetTransactionIds()) > 0 {
		want = make(map[string]bool, len(req.GetTransactionIds()))
		for _, id := range req.GetTransactionIds() {
			want[id] = true
		}
	}
	after := req.GetAfterChange()
	if last := s.q.Reads().LastChange(); after > last {
		return status.Errorf(codes.OutOfRange, "after_change: %d is past the newest change %d (another store?); resume with after_change 0", after, last)
	}
	// sent is the initial state sent per id, so the same state is not sent
	// again when its change comes by.
	sent := map[string]*edgev1.TransactionStatus{}
	if after == 0 {
		snap, at, err := s.snapshot(want)
		if err != nil {
			return statusOf(ctx, s.log, err)
		}
		after = at
		for _, st := range snap {
			if err := stream.Send(&edgev1.WatchTransactionsResponse{Change: at, Transaction: st}); err != nil {
				return err
			}
			sent[st.GetTransactionId()] = st
		}
	}
	for {
		// Take the notification before reading: a change made after the
		// read closes it.
		notify := s.q.Reads().ChangeNotify()
		cs, err := s.q.Reads().Changes(after, watchPage)
		if err != nil {
			return statusOf(ctx, s.log, err)
		}
		for _, c := range cs {
			after = c.N
			id := c.Status.GetTransactionId()
			if want != nil && !want[id] {
				continue
			}
			if first, ok := sent[id]; ok {
				delete(sent, id)
				if first.GetSeq() == c.Status.GetSeq() && first.GetState() >= c.Status.GetState() {
					continue // already sent as the initial state
				}
			}
			if err := stream.Send(&edgev1.WatchTransactionsResponse{Change: c.N, Transaction: c.Status}); err != nil {
				return err
			}
		}
		if len(cs) == watchPage {
			if err := ctx.Err(); err != nil {
				return statusOf(ctx, s.log, err)
			}
			continue
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return statusOf(ctx, s.log, ctx.Err())
		case <-s.stop:
			return status.Error(codes.Unavailable, "edge is shutting down")
		}
	}
}

// snapshot reads the current state of the watched ids and the change number
// it is consistent with: it retries while changes land during the read, so
// the number sent with the initial states is that of their newest change
// (never 0 for a known transaction, and never behind a state it carries).
// Should the log never hold still, it answers the number read before the
// states: the changes after it are replayed and deduplicated against the
// snapshot, so nothing is missed.
func (s *EdgeService) snapshot(want map[string]bool) ([]*edgev1.TransactionStatus, uint64, error) {
	for attempt := 0; ; attempt++ {
		before := s.q.Reads().LastChange()
		var snap []*edgev1.TransactionStatus
		for id := range want {
			st, err := s.q.GetTransaction(id)
			if errors.Is(err, queue.ErrNotFound) {
				continue // not submitted yet: its changes follow
			}
			if err != nil {
				return nil, 0, err
			}
			snap = append(snap, st)
		}
		if s.q.Reads().LastChange() == before || attempt == 10 {
			return snap, before, nil
		}
	}
}

func validateWatch(req *edgev1.WatchTransactionsRequest) error {
	ids := req.GetTransactionIds()
	if len(ids) > MaxWatchIDs {
		return &validate.Error{Violations: []validate.Violation{{Field: "transaction_ids", Description: fmt.Sprintf("has more than %d ids", MaxWatchIDs)}}}
	}
	for i, id := range ids {
		if err := requireID(fmt.Sprintf("transaction_ids[%d]", i), id); err != nil {
			return err
		}
	}
	return nil
}

// GetObservation reads one observation merged from the replica (or central)
// and the buffer.
func (s *EdgeService) GetObservation(ctx context.Context, req *edgev1.GetObservationRequest) (*edgev1.GetObservationResponse, error) {
	if err := requireID("id", req.GetId()); err != nil {
		return nil, statusOf(ctx, s.log, err)
	}
	if s.reads == nil {
		return nil, status.Error(codes.Unimplemented, "reads are not configured")
	}
	r, err := s.reads.GetObservation(ctx, req.GetId())
	if err != nil {
		return nil, statusOf(ctx, s.log, err)
	}
	return r, nil
}

// ListObservations lists observations merged from the replica (or central)
// and the buffer.
func (s *EdgeService) ListObservations(ctx context.Context, req *edgev1.ListObservationsRequest) (*edgev1.ListObservationsResponse, error) {
	if s.reads == nil {
		return nil, status.Error(codes.Unimplemented, "reads are not configured")
	}
	r, err := s.reads.ListObservations(ctx, req)
	if err != nil {
		return nil, statusOf(ctx, s.log, err)
	}
	return r, nil
}

// overlayQueue is what Buffer needs of the queue.
type overlayQueue interface {
	Overlays(obsID string) ([]queue.Overlay, error)
	OverlaidObservations() (map[string]bool, error)
}

// Buffer adapts the queue's overlays to reads.Buffer.
type Buffer struct{ Q overlayQueue }

// Overlays implements reads.Buffer.
func (b Buffer) Overlays(obsID string) ([]reads.Pending, error) {
	ov, err := b.Q.Overlays(obsID)
	if err != nil {
		return nil, err
	}
	out := make([]reads.Pending, len(ov))
	for i, o := range ov {
		out[i] = reads.Pending{Seq: o.Seq, Committed: o.Committed, Mutation: o.Mutation}
	}
	return out, nil
}

// OverlaidObservations implements reads.Buffer.
func (b Buffer) OverlaidObservations() (map[string]bool, error) { return b.Q.OverlaidObservations() }
