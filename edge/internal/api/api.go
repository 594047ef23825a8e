// Package api owns the edge's gRPC services: EdgeService (instrument-facing:
// Submit, GetTransaction, WatchTransactions, GetObservation,
// ListObservations, GetRow, ListRows, GetSchema) and AdminService (status,
// dead letters). Requests are validated with internal/validate, and rows
// against the schema learned from central (edge/internal/schema), before
// anything reaches the queue; every error goes through one function
// (statusOf) that turns domain errors into gRPC codes and keeps internal
// details in the log.
package api

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/chasqui/chasqui/edge/internal/forward"
	"github.com/chasqui/chasqui/edge/internal/queue"
	"github.com/chasqui/chasqui/edge/internal/reads"
	"github.com/chasqui/chasqui/edge/internal/replica"
	"github.com/chasqui/chasqui/edge/internal/schema"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/records"
	"github.com/chasqui/chasqui/internal/rpcerr"
	"github.com/chasqui/chasqui/internal/rpcmeta"
	"github.com/chasqui/chasqui/internal/validate"
)

// Queue is what the services need of the store (*queue.Queue implements it).
type Queue interface {
	EdgeID() string
	Epoch() string
	Submit(ctx context.Context, txs []*opsv1.Transaction) ([]*edgev1.SubmitResult, error)
	GetTransaction(id string) (*edgev1.TransactionStatus, error)
	Stats() (queue.Stats, error)
	ListDeadLetters(after string, limit int) ([]*edgev1.DeadLetter, string, error)
	GetDeadLetter(id string) (*edgev1.DeadLetter, error)
	RetryDeadLetter(ctx context.Context, id string, edited *opsv1.Transaction) (*edgev1.SubmitResult, error)
	DiscardDeadLetter(id string) error
	// Reads is the read side: the change log (WatchTransactions) and
	// the pending overlays (reads of observations).
	Reads() *queue.Reads
}

// Forwarder is what the status needs of the forwarder.
type Forwarder interface {
	State() string
	LastError() string
	LastCommitAt() time.Time
	CentralLSN() string
}

// errorTimer is an optional Forwarder extension: when LastError was seen.
type errorTimer interface{ LastErrorAt() time.Time }

// commitRater is an optional Forwarder extension.
type commitRater interface{ CommitRate() float64 }

// linkProber is an optional Forwarder extension: the link probe's view of
// central.
type linkProber interface{ Reachability() forward.Reachability }

// Central link states in GetStatusResponse.central_link.
const (
	CentralReachable   = "reachable"
	CentralUnreachable = "unreachable"
	CentralUnknown     = "unknown" // no answer yet, or probing off
)

// Reader answers the read calls (edge/internal/reads implements it).
type Reader interface {
	GetObservation(ctx context.Context, id string) (*edgev1.GetObservationResponse, error)
	ListObservations(ctx context.Context, req *edgev1.ListObservationsRequest) (*edgev1.ListObservationsResponse, error)
}

// Replica is the site replica as the status shows it (*replica.Watcher
// implements it; a nil *replica.Watcher reports "disabled").
type Replica interface{ Status() replica.Status }

// Options are the optional parts of the services.
type Options struct {
	// Reads answers GetObservation and ListObservations; nil: they read
	// the buffer alone (buffer_only).
	Reads Reader
	// Replica feeds the replica_* status fields; nil: "disabled".
	Replica Replica
	// Stopping, once closed, ends WatchTransactions streams (UNAVAILABLE),
	// so a graceful stop does not wait for them.
	Stopping <-chan struct{}
	// Schema checks rows against the schema learned from central and
	// answers GetSchema; nil: rows get validate's shape check only.
	Schema *schema.Cache
}

// Register registers both services on s. fwd may be nil (no forwarder:
// its status fields then say "disabled"). At most one Options.
func Register(s *grpc.Server, q Queue, fwd Forwarder, logger *slog.Logger, opts ...Options) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	edgev1.RegisterEdgeServiceServer(s, NewEdgeService(q, logger, o))
	edgev1.RegisterAdminServiceServer(s, NewAdminService(q, fwd, logger, o))
}

// EdgeService implements edgev1.EdgeServiceServer.
type EdgeService struct {
	edgev1.UnimplementedEdgeServiceServer
	q      Queue
	reads  Reader
	schema *schema.Cache
	stop   <-chan struct{}
	log    *slog.Logger
}

// NewEdgeService builds the instrument-facing service. At most one Options.
func NewEdgeService(q Queue, logger *slog.Logger, opts ...Options) *EdgeService {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	s := &EdgeService{q: q, reads: o.Reads, schema: o.Schema, stop: o.Stopping, log: logger.With("component", "api")}
	if s.schema == nil {
		s.schema = schema.New(nil)
	}
	if s.reads == nil {
		if b := q.Reads(); b != nil {
			rc := reads.Config{Buffer: Buffer{b}, Rows: RowBuffer{b}, Tables: s.schema, Logger: logger}
			r, err := reads.New(rc)
			if err == nil {
				s.reads = r
			}
		}
	}
	return s
}

// Submit validates the whole request (one bad transaction fails the call and
// stores nothing), then answers once the transactions are fsync'd.
func (s *EdgeService) Submit(ctx context.Context, req *edgev1.SubmitRequest) (*edgev1.SubmitResponse, error) {
	if err := validate.ValidateSubmit(req); err != nil {
		return nil, statusOf(ctx, s.log, err)
	}
	if err := s.schema.CheckSubmit(req.GetTransactions()); err != nil {
		// A retry of a transaction the edge already accepted gets its first
		// answer from the queue, even when the schema changed since (a
		// column dropped): refusing it would tell the caller it was not
		// stored.
		if err := s.schema.CheckSubmitSkipping(req.GetTransactions(), s.accepted); err != nil {
			return nil, statusOf(ctx, s.log, err)
		}
	}
	acks, err := s.q.Submit(ctx, req.GetTransactions())
	if err != nil {
		return nil, statusOf(ctx, s.log, err)
	}
	return &edgev1.SubmitResponse{Results: acks}, nil
}

// accepted tells whether the edge holds tx already.
func (s *EdgeService) accepted(tx *opsv1.Transaction) bool {
	_, err := s.q.GetTransaction(tx.GetId())
	return err == nil
}

// GetTransaction tells how far a transaction has come.
func (s *EdgeService) GetTransaction(ctx context.Context, req *edgev1.GetTransactionRequest) (*edgev1.GetTransactionResponse, error) {
	if err := requireID("transaction_id", req.GetTransactionId()); err != nil {
		return nil, statusOf(ctx, s.log, err)
	}
	st, err := s.q.GetTransaction(req.GetTransactionId())
	if err != nil {
		return nil, statusOf(ctx, s.log, err)
	}
	return &edgev1.GetTransactionResponse{Transaction: st}, nil
}

func requireID(field, id string) error {
	switch {
	case id == "":
		return &validate.Error{Violations: []validate.Violation{{Field: field, Description: "is required"}}}
	case len(id) > validate.MaxNameLen:
		return &validate.Error{Violations: []validate.Violation{{Field: field, Description: "is too long"}}}
	}
	return nil
}

// GetSchema answers with the schema last learned from central; unset
// when none was ever learned.
func (s *EdgeService) GetSchema(context.Context, *edgev1.GetSchemaRequest) (*edgev1.GetSchemaResponse, error) {
	sc, learnedAt := s.schema.Schema()
	if sc == nil {
		return &edgev1.GetSchemaResponse{}, nil
	}
	return &edgev1.GetSchemaResponse{Schema: sc, LearnedAt: timestamppb.New(learnedAt)}, nil
}

// AdminService implements edgev1.AdminServiceServer.
type AdminService struct {
	edgev1.UnimplementedAdminServiceServer
	q      Queue
	fwd    Forwarder
	rep    Replica
	schema *schema.Cache
	log    *slog.Logger
}

// NewAdminService builds the operator service; fwd may be nil. At most one Options.
func NewAdminService(q Queue, fwd Forwarder, logger *slog.Logger, opts ...Options) *AdminService {
	s := &AdminService{q: q, fwd: fwd, log: logger.With("component", "api")}
	if len(opts) > 0 {
		s.rep = opts[0].Replica
		s.schema = opts[0].Schema
	}
	if s.schema == nil {
		s.schema = schema.New(nil)
	}
	return s
}

// GetStatus is the edge's state at a glance.
func (s *AdminService) GetStatus(ctx context.Context, _ *edgev1.GetStatusRequest) (*edgev1.GetStatusResponse, error) {
	st, err := Status(s.q, s.fwd, time.Now(), s.rep)
	if err != nil {
		return nil, statusOf(ctx, s.log, err)
	}
	return st, nil
}

// Status builds the status answer (the HTTP /status page serves it too).
// rep (at most one, may be nil) fills the replica fields.
func Status(q Queue, fwd Forwarder, now time.Time, rep ...Replica) (*edgev1.GetStatusResponse, error) {
	qs, err := q.Stats()
	if err != nil {
		return nil, err
	}
	r := &edgev1.GetStatusResponse{
		EdgeId:              q.EdgeID(),
		Epoch:               q.Epoch(),
		QueueCount:          qs.Count,
		QueueBytes:          qs.Bytes,
		QueueLimitBytes:     qs.LimitBytes,
		DeadLetters:         qs.DeadLetters,
		LastAcceptedSeq:     qs.LastSeq,
		CommittedThroughSeq: qs.Committed,
		DiskFreeBytes:       qs.DiskFree,
		ForwarderState:      "disabled",
	}
	if !qs.OldestPending.IsZero() {
		r.OldestPendingAcceptedAt = timestamppb.New(qs.OldestPending)
		r.OldestPendingAgeSeconds = max(0, now.Sub(qs.OldestPending).Seconds())
	}
	if fwd != nil {
		r.ForwarderState = fwd.State()
		r.ForwarderLastError = fwd.LastError()
		lastCommit := fwd.LastCommitAt()
		if !lastCommit.IsZero() {
			r.LastCommitAt = timestamppb.New(lastCommit)
		}
		if et, ok := fwd.(errorTimer); ok && r.ForwarderLastError != "" {
			if at := et.LastErrorAt(); !at.IsZero() {
				r.ForwarderLastErrorAt = timestamppb.New(at)
				r.ForwarderLastErrorAgeSeconds = max(0, now.Sub(at).Seconds())
				r.ForwarderLastErrorPast = lastCommit.After(at)
			}
		}
		r.CentralLsn = fwd.CentralLSN()
		if cr, ok := fwd.(commitRater); ok {
			r.CommitRateTxPerSecond = cr.CommitRate()
		}
		if lp, ok := fwd.(linkProber); ok {
			rs := lp.Reachability()
			switch {
			case !rs.Known:
				r.CentralLink = CentralUnknown
			case rs.Reachable:
				r.CentralLink = CentralReachable
			default:
				r.CentralLink = CentralUnreachable
			}
			if !rs.LastOK.IsZero() {
				r.CentralLastAnswerAt = timestamppb.New(rs.LastOK)
			}
		}
	}
	r.ReplicaState = replica.StateDisabled
	if len(rep) > 0 && rep[0] != nil {
		rs := rep[0].Status()
		r.ReplicaState = rs.State
		if rs.State != replica.StateDisabled {
			r.ReplicaReplayLsn = replica.FormatLSN(rs.ReplayLSN)
			r.ReplicaLagBytes = rs.LagBytes
			r.ReplicaLagSeconds = rs.LagSeconds
		}
	}
	return r, nil
}

// ListDeadLetters pages through the dead letters (page_size default 100,
// at most 1000; page_token is the previous page's next_page_token).
func (s *AdminService) ListDeadLetters(ctx context.Context, req *edgev1.ListDeadLettersRequest) (*edgev1.ListDeadLettersResponse, error) {
	if req.GetPageSize() < 0 {
		return nil, statusOf(ctx, s.log, &validate.Error{Violations: []validate.Violation{{Field: "page_size", Description: "must not be negative"}}})
	}
	dls, next, err := s.q.ListDeadLetters(req.GetPageToken(), int(req.GetPageSize()))
	if err != nil {
		return nil, statusOf(ctx, s.log, err)
	}
	return &edgev1.ListDeadLettersResponse{DeadLetters: dls, NextPageToken: next}, nil
}

// GetDeadLetter returns one dead letter.
func (s *AdminService) GetDeadLetter(ctx context.Context, req *edgev1.GetDeadLetterRequest) (*edgev1.GetDeadLetterResponse, error) {
	if err := requireID("transaction_id", req.GetTransactionId()); err != nil {
		return nil, statusOf(ctx, s.log, err)
	}
	dl, err := s.q.GetDeadLetter(req.GetTransactionId())
	if err != nil {
		return nil, statusOf(ctx, s.log, err)
	}
	return &edgev1.GetDeadLetterResponse{DeadLetter: dl}, nil
}

// RetryDeadLetter re-enqueues a dead letter, optionally edited (same id),
// under a new sequence number.
func (s *AdminService) RetryDeadLetter(ctx context.Context, req *edgev1.RetryDeadLetterRequest) (*edgev1.RetryDeadLetterResponse, error) {
	id := req.GetTransactionId()
	if err := requireID("transaction_id", id); err != nil {
		return nil, statusOf(ctx, s.log, err)
	}
	if ed := req.GetEdited(); ed != nil {
		// The edge stamps the retried transaction anew: the edited one is
		// checked like a submission, its fields named under "edited".
		err := validate.ValidateSubmit(&edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{ed}})
		if err == nil {
			err = s.schema.CheckSubmit([]*opsv1.Transaction{ed})
		}
		if ve := (*validate.Error)(nil); errors.As(err, &ve) {
			for i := range ve.Violations {
				ve.Violations[i].Field = strings.Replace(ve.Violations[i].Field, "transactions[0]", "edited", 1)
			}
		}
		if err == nil && ed.GetId() != id {
			err = &validate.Error{Violations: []validate.Violation{{Field: "edited.id", Description: "must equal transaction_id"}}}
		}
		if err != nil {
			return nil, statusOf(ctx, s.log, err)
		}
	}
	a, err := s.q.RetryDeadLetter(ctx, id, req.GetEdited())
	if err != nil {
		return nil, statusOf(ctx, s.log, err)
	}
	return &edgev1.RetryDeadLetterResponse{Result: a}, nil
}

// DiscardDeadLetter drops a dead letter.
func (s *AdminService) DiscardDeadLetter(ctx context.Context, req *edgev1.DiscardDeadLetterRequest) (*edgev1.DiscardDeadLetterResponse, error) {
	if err := requireID("transaction_id", req.GetTransactionId()); err != nil {
		return nil, statusOf(ctx, s.log, err)
	}
	if err := s.q.DiscardDeadLetter(req.GetTransactionId()); err != nil {
		return nil, statusOf(ctx, s.log, err)
	}
	return &edgev1.DiscardDeadLetterResponse{}, nil
}

// statusOf is the one place that turns the edge's errors into gRPC
// statuses, on the shared base (internal/rpcerr: validation, cancellation,
// deadlines, INTERNAL for anything unexpected). Clients get a stable
// message; causes go to the log with the request id.
func statusOf(ctx context.Context, log *slog.Logger, err error) error {
	if st := rpcerr.Shared(err); st != nil {
		return st
	}
	switch {
	case errors.Is(err, queue.ErrInvalid):
		// The queue's own checks name the field in their message.
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, queue.ErrQueueFull):
		log.WarnContext(ctx, "refused: queue full", "err", err, "request_id", rpcmeta.RequestID(ctx, true))
		return status.Error(codes.ResourceExhausted, "edge queue is full; retry later")
	case errors.Is(err, queue.ErrDiskFull):
		log.WarnContext(ctx, "refused: disk space low", "err", err, "request_id", rpcmeta.RequestID(ctx, true))
		return status.Error(codes.ResourceExhausted, "edge disk space is low; retry later")
	case errors.Is(err, reads.ErrRowsOff):
		return status.Error(codes.Unimplemented, "row reads are not configured")
	case errors.Is(err, queue.ErrNotFound), errors.Is(err, reads.ErrNotFound):
		return status.Error(codes.NotFound, "not found")
	case errors.Is(err, records.ErrBadToken):
		return status.Error(codes.InvalidArgument, "page_token: malformed")
	case errors.Is(err, queue.ErrChangesPruned):
		return status.Error(codes.OutOfRange, "after_change: the changes after it were pruned; resume with after_change 0")
	case errors.Is(err, queue.ErrClosed):
		return status.Error(codes.Unavailable, "edge is shutting down")
	case errors.Is(err, queue.ErrCountersStale), errors.Is(err, queue.ErrRetry):
		// Nothing was written; a retry is safe and is what lets the store
		// recover (each write reads the counters back first).
		log.WarnContext(ctx, "refused: store recovering from a failed write", "err", err, "request_id", rpcmeta.RequestID(ctx, true))
		return status.Error(codes.Unavailable, "edge store is recovering from a failed write; retry")
	case errors.Is(err, queue.ErrSyncFailed):
		// Not acknowledged: the write may not be on disk. The edge must be
		// restarted; a retry after that is safe (duplicates get their
		// first answers).
		log.ErrorContext(ctx, "refused: store fsync failed", "err", err, "request_id", rpcmeta.RequestID(ctx, true))
		return status.Error(codes.Unavailable, "edge store could not sync to disk; writes refused until the edge restarts")
	}
	return rpcerr.Internal(ctx, log, err)
}
