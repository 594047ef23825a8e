// Package api serves chasqui.central.v1.IngestService: it validates each
// request before anything is written, asks the store, and turns the
// store's domain errors into the gRPC status codes of the contract in one
// function (toStatus).
package api

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"

	"github.com/chasqui/chasqui/central/internal/catalog"
	"github.com/chasqui/chasqui/central/internal/store"
	"github.com/chasqui/chasqui/internal/rpcerr"
	"github.com/chasqui/chasqui/internal/rpcmeta"
	"github.com/chasqui/chasqui/internal/validate"
)

// Store is what the service needs of persistence.
type Store interface {
	Commit(ctx context.Context, req *centralv1.CommitRequest) (*store.Result, error)
	GetCursor(ctx context.Context, edgeID string) (store.Cursor, error)
}

// ErrPermissionDenied is returned (wrapped) by an Authorizer refusing a call.
var ErrPermissionDenied = errors.New("permission denied")

// Authorizer decides whether the caller of ctx (its mTLS identity or token)
// may act as edgeID; it returns an error wrapping ErrPermissionDenied when
// not. This is the hook for per-edge authentication (docs/design.md, "Guarantees" 11).
type Authorizer func(ctx context.Context, edgeID string) error

// Service implements centralv1.IngestServiceServer.
type Service struct {
	centralv1.UnimplementedIngestServiceServer
	store     Store
	catalog   *catalog.Catalog
	authorize Authorizer
	logger    *slog.Logger
}

// New returns the service. A nil authorize lets every caller act as any
// edge (until per-edge identity lands). A nil cat allows no tables.
func New(st Store, cat *catalog.Catalog, authorize Authorizer, logger *slog.Logger) *Service {
	if authorize == nil {
		authorize = func(context.Context, string) error { return nil }
	}
	return &Service{store: st, catalog: cat, authorize: authorize, logger: logger}
}

// GetSchema tells the edge which tables it may write rows to. It re-reads
// the catalog when it was read longer than the refresh interval ago, so an
// edge reconnecting after a migration learns it.
func (s *Service) GetSchema(ctx context.Context, req *centralv1.GetSchemaRequest) (*centralv1.GetSchemaResponse, error) {
	if req.GetEdgeId() == "" {
		return nil, s.toStatus(ctx, &validate.Error{Violations: []validate.Violation{{Field: "edge_id", Description: "is required"}}})
	}
	if err := s.authorize(ctx, req.GetEdgeId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	schema := &opsv1.Schema{}
	if s.catalog != nil {
		snap, err := s.catalog.Refresh(ctx)
		if err != nil {
			return nil, s.toStatus(ctx, &store.UnavailableError{Op: "read catalog", Err: err})
		}
		schema = s.catalog.SchemaFor(snap, req.GetEdgeId())
	}
	if schema.GetVersion() != "" && req.GetKnownVersion() == schema.GetVersion() {
		return &centralv1.GetSchemaResponse{Schema: &opsv1.Schema{Version: schema.GetVersion(), ReadAt: schema.GetReadAt()}, Unchanged: true}, nil
	}
	return &centralv1.GetSchemaResponse{Schema: schema}, nil
}

// Commit validates the batch, then applies it.
func (s *Service) Commit(ctx context.Context, req *centralv1.CommitRequest) (*centralv1.CommitResponse, error) {
	if err := validate.ValidateCommit(req); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if err := s.authorize(ctx, req.GetEdgeId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	res, err := s.store.Commit(ctx, req)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &centralv1.CommitResponse{
		CommittedThroughSeq: res.CommittedThroughSeq,
		CommitLsn:           res.LSN.String(),
		CommitLsnValue:      uint64(res.LSN),
		Results:             make([]*centralv1.TransactionResult, len(res.Txs)),
	}
	for i, r := range res.Txs {
		out.Results[i] = &centralv1.TransactionResult{
			TransactionId: r.TxID,
			Seq:           r.Seq,
			Outcome:       outcome(r.Outcome),
			Reason:        r.Reason,
			Sqlstate:      r.SQLState,
			Duplicate:     r.Duplicate,
		}
	}
	return out, nil
}

// GetCursor tells the edge where central stands.
func (s *Service) GetCursor(ctx context.Context, req *centralv1.GetCursorRequest) (*centralv1.GetCursorResponse, error) {
	if req.GetEdgeId() == "" {
		return nil, s.toStatus(ctx, &validate.Error{Violations: []validate.Violation{{Field: "edge_id", Description: "is required"}}})
	}
	if err := s.authorize(ctx, req.GetEdgeId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	c, err := s.store.GetCursor(ctx, req.GetEdgeId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &centralv1.GetCursorResponse{EdgeId: req.GetEdgeId(), Epoch: c.Epoch, LastSeq: c.LastSeq}, nil
}

func outcome(o store.Outcome) centralv1.Outcome {
	switch o {
	case store.OutcomeApplied:
		return centralv1.Outcome_OUTCOME_APPLIED
	case store.OutcomeRejected:
		return centralv1.Outcome_OUTCOME_REJECTED
	}
	return centralv1.Outcome_OUTCOME_UNSPECIFIED
}

// toStatus is the one place domain errors become gRPC statuses, on the
// shared base (internal/rpcerr: validation, cancellation, deadlines,
// INTERNAL for anything unexpected). Causes (driver errors) go to the log,
// never to the client.
func (s *Service) toStatus(ctx context.Context, err error) error {
	if st := rpcerr.Shared(err); st != nil {
		return st
	}
	var (
		gap      *store.GapError
		conflict *store.ConflictError
	)
	switch {
	case errors.As(err, &gap):
		return withDetail(codes.Aborted, gap.Error(), &centralv1.SequenceGap{ExpectedSeq: gap.Expected})
	case errors.As(err, &conflict):
		return withDetail(codes.FailedPrecondition, conflict.Error(), &centralv1.CursorConflict{
			Seq:                  conflict.Seq,
			AppliedTransactionId: conflict.AppliedTxID,
			RequestTransactionId: conflict.RequestTxID,
			Epoch:                conflict.Epoch,
			CursorSeq:            conflict.CursorSeq,
		})
	case errors.Is(err, ErrPermissionDenied):
		return status.Error(codes.PermissionDenied, "permission denied for this edge")
	case errors.Is(err, store.ErrUnavailable):
		s.logger.WarnContext(ctx, "database unavailable", "error", err, "request_id", rpcmeta.RequestID(ctx, true))
		return status.Error(codes.Unavailable, "database unavailable; retry")
	}
	return rpcerr.Internal(ctx, s.logger, err)
}

func withDetail(code codes.Code, msg string, detail protoadapt.MessageV1) error {
	st := status.New(code, msg)
	if d, err := st.WithDetails(detail); err == nil {
		st = d
	}
	return st.Err()
}
