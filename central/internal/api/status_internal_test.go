package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"

	"github.com/chasqui/chasqui/central/internal/store"
	"github.com/chasqui/chasqui/internal/rpcerr"
	"github.com/chasqui/chasqui/internal/validate"
)

// Each class of error IngestService answers maps to its documented code
// (docs/design.md, "Wire contract"), whatever wraps it; a driver's error
// never reaches the client.
func TestToStatusClasses(t *testing.T) {
	t.Parallel()
	s := &Service{logger: slog.New(slog.DiscardHandler)}
	bad := &validate.Error{Violations: []validate.Violation{{Field: "first_seq", Description: "must be at least 1"}}}
	for _, tc := range []struct {
		err  error
		code codes.Code
		msg  string // a part of the message, when the client needs it
	}{
		{fmt.Errorf("commit: %w", bad), codes.InvalidArgument, "first_seq"},
		{fmt.Errorf("%w: %w", ErrPermissionDenied, errors.New("certificate names edge-b")), codes.PermissionDenied, "permission denied"},
		{&store.UnavailableError{Op: "commit", Err: errors.New("dial tcp: secret detail")}, codes.Unavailable, "retry"},
		{fmt.Errorf("commit: %w", context.Canceled), codes.Canceled, ""},
		{fmt.Errorf("commit: %w", context.DeadlineExceeded), codes.DeadlineExceeded, ""},
		{errors.New("planning batch: secret detail"), codes.Internal, rpcerr.InternalMessage},
	} {
		st := status.Convert(s.toStatus(context.Background(), tc.err))
		require.Equal(t, tc.code, st.Code(), "%v", tc.err)
		require.Contains(t, st.Message(), tc.msg, "%v", tc.err)
		require.NotContains(t, st.Message(), "secret", "%v", tc.err)
	}
}

// The refusals the edge's forwarder acts on carry their details: the
// expected seq of a gap, both transaction ids of a cursor conflict.
func TestToStatusDetails(t *testing.T) {
	t.Parallel()
	s := &Service{logger: slog.New(slog.DiscardHandler)}

	st := status.Convert(s.toStatus(context.Background(), fmt.Errorf("commit: %w", &store.GapError{Expected: 42})))
	require.Equal(t, codes.Aborted, st.Code())
	require.Len(t, st.Details(), 1)
	gap, ok := st.Details()[0].(*centralv1.SequenceGap)
	require.True(t, ok, "detail is %T", st.Details()[0])
	require.Equal(t, uint64(42), gap.GetExpectedSeq())

	conflict := &store.ConflictError{Seq: 7, AppliedTxID: "tx-a", RequestTxID: "tx-b", Epoch: "e1", CursorSeq: 9}
	st = status.Convert(s.toStatus(context.Background(), fmt.Errorf("commit: %w", conflict)))
	require.Equal(t, codes.FailedPrecondition, st.Code())
	require.Len(t, st.Details(), 1)
	cc, ok := st.Details()[0].(*centralv1.CursorConflict)
	require.True(t, ok, "detail is %T", st.Details()[0])
	require.Equal(t, uint64(7), cc.GetSeq())
	require.Equal(t, "tx-a", cc.GetAppliedTransactionId())
	require.Equal(t, "tx-b", cc.GetRequestTransactionId())
	require.Equal(t, "e1", cc.GetEpoch())
	require.Equal(t, uint64(9), cc.GetCursorSeq())
}
