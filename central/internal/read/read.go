// Package read serves chasqui.central.v1.ReadService: committed
// observations, with their files and configurations, and rows of the
// allowed tables, read from central's database for edges that have no
// site replica (or whose replica is down).
// Domain errors become gRPC codes in one function (toStatus).
package read

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"

	"github.com/chasqui/chasqui/central/internal/catalog"
	"github.com/chasqui/chasqui/central/internal/store"
	"github.com/chasqui/chasqui/internal/records"
	"github.com/chasqui/chasqui/internal/rpcerr"
	"github.com/chasqui/chasqui/internal/rpcmeta"
	"github.com/chasqui/chasqui/internal/validate"
)

// Service implements centralv1.ReadServiceServer.
type Service struct {
	centralv1.UnimplementedReadServiceServer
	db      records.Querier
	catalog *catalog.Catalog
	logger  *slog.Logger
}

// New returns the service reading from db (a *pgxpool.Pool); rows only of
// the tables cat allows (none when nil).
func New(db records.Querier, cat *catalog.Catalog, logger *slog.Logger) *Service {
	return &Service{db: db, catalog: cat, logger: logger.With("component", "read")}
}

// GetObservation reads one observation with its files and configurations.
func (s *Service) GetObservation(ctx context.Context, req *centralv1.GetObservationRequest) (*centralv1.GetObservationResponse, error) {
	id, err := records.ParseID("id", req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	r, err := records.Get(ctx, s.db, id)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &centralv1.GetObservationResponse{Observation: Record(r)}, nil
}

// ListObservations reads one page of observations in (start_time, id) order.
func (s *Service) ListObservations(ctx context.Context, req *centralv1.ListObservationsRequest) (*centralv1.ListObservationsResponse, error) {
	f, err := records.FilterOf(req)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if len(req.GetIds()) > f.Limit {
		return nil, s.toStatus(ctx, &validate.Error{Violations: []validate.Violation{{Field: "ids", Description: "more ids than page_size"}}})
	}
	for i, id := range req.GetIds() {
		u, err := records.ParseID(fmt.Sprintf("ids[%d]", i), id)
		if err != nil {
			return nil, s.toStatus(ctx, err)
		}
		f.IDs = append(f.IDs, u)
	}
	// One more than asked tells whether a next page exists.
	limit := f.Limit
	f.Limit++
	rs, err := records.List(ctx, s.db, f)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &centralv1.ListObservationsResponse{}
	if len(rs) > limit {
		rs = rs[:limit]
		out.NextPageToken = records.KeyOf(rs[limit-1].Observation).Token()
	}
	for _, r := range rs {
		out.Observations = append(out.Observations, Record(r))
	}
	return out, nil
}

// Record converts a record to its wire form.
func Record(r *records.Record) *centralv1.ObservationRecord {
	return &centralv1.ObservationRecord{Observation: r.Observation, Files: r.Files, Configs: r.Configs}
}

// toStatus is the one place errors become gRPC statuses, on the shared
// base (internal/rpcerr: validation, cancellation, deadlines); driver
// errors go to the log, never to the client. Anything else, a query
// PostgreSQL refused (a schema mismatch) or an error of our own, is a bug
// and INTERNAL, as in IngestService: rpcerr.Internal.
func (s *Service) toStatus(ctx context.Context, err error) error {
	if st := rpcerr.Shared(err); st != nil {
		return st
	}
	var te *errTable
	switch {
	case errors.As(err, &te):
		switch te.code {
		case "denied":
			return status.Error(codes.PermissionDenied, te.msg)
		case "unknown":
			return status.Error(codes.NotFound, te.msg)
		}
		return status.Error(codes.FailedPrecondition, te.msg)
	case errors.Is(err, store.ErrUnavailable):
		s.logger.WarnContext(ctx, "database unavailable", "error", err, "request_id", rpcmeta.RequestID(ctx, true))
		return status.Error(codes.Unavailable, "database unavailable; retry")
	case errors.Is(err, records.ErrNotFound):
		return status.Error(codes.NotFound, "observation not found")
	case store.Unreachable(err):
		s.logger.WarnContext(ctx, "database unavailable", "error", err, "request_id", rpcmeta.RequestID(ctx, true))
		return status.Error(codes.Unavailable, "database unavailable; retry")
	}
	return rpcerr.Internal(ctx, s.logger, err)
}
