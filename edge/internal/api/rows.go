package api

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/chasqui/chasqui/edge/internal/queue"
	"github.com/chasqui/chasqui/edge/internal/reads"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
)

// RowReader answers GetRow and ListRows (edge/internal/reads implements it).
type RowReader interface {
	GetRow(ctx context.Context, req *edgev1.GetRowRequest) (*edgev1.GetRowResponse, error)
	ListRows(ctx context.Context, req *edgev1.ListRowsRequest) (*edgev1.ListRowsResponse, error)
}

// rowReader is the Reader's row side, when it has one.
func (s *EdgeService) rowReader() (RowReader, error) {
	rr, ok := s.reads.(RowReader)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "row reads are not configured")
	}
	return rr, nil
}

// GetRow reads one row by its primary key, merged from the buffer and the
// replica (or central).
func (s *EdgeService) GetRow(ctx context.Context, req *edgev1.GetRowRequest) (*edgev1.GetRowResponse, error) {
	rr, err := s.rowReader()
	if err != nil {
		return nil, err
	}
	r, err := rr.GetRow(ctx, req)
	if err != nil {
		return nil, statusOf(ctx, s.log, err)
	}
	return r, nil
}

// ListRows lists rows of a table in primary key order, merged from the
// buffer and the replica (or central).
func (s *EdgeService) ListRows(ctx context.Context, req *edgev1.ListRowsRequest) (*edgev1.ListRowsResponse, error) {
	rr, err := s.rowReader()
	if err != nil {
		return nil, err
	}
	r, err := rr.ListRows(ctx, req)
	if err != nil {
		return nil, statusOf(ctx, s.log, err)
	}
	return r, nil
}

// rowQueue is what RowBuffer needs of the queue.
type rowQueue interface {
	RowOverlays(table, key string) ([]queue.RowOverlay, error)
	TableOverlays(table string) ([]queue.RowOverlay, error)
}

// RowBuffer adapts the queue's row overlays to reads.RowBuffer.
type RowBuffer struct{ Q rowQueue }

// RowOverlays implements reads.RowBuffer.
func (b RowBuffer) RowOverlays(table, key string) ([]reads.PendingRow, error) {
	return pendingRows(b.Q.RowOverlays(table, key))
}

// TableOverlays implements reads.RowBuffer.
func (b RowBuffer) TableOverlays(table string) ([]reads.PendingRow, error) {
	return pendingRows(b.Q.TableOverlays(table))
}

func pendingRows(ov []queue.RowOverlay, err error) ([]reads.PendingRow, error) {
	if err != nil {
		return nil, err
	}
	out := make([]reads.PendingRow, len(ov))
	for i, o := range ov {
		out[i] = reads.PendingRow{Pending: reads.Pending{Seq: o.Seq, Committed: o.Committed, Mutation: o.Mutation}, Key: o.Key}
	}
	return out, nil
}
