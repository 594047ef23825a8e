package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/chasqui/chasqui/edge/internal/queue"
	"github.com/chasqui/chasqui/edge/internal/reads"
	"github.com/chasqui/chasqui/internal/records"
	"github.com/chasqui/chasqui/internal/rpcerr"
	"github.com/chasqui/chasqui/internal/validate"
)

// A write refused because the queue's counters are stale (or were just
// read back) changed nothing and may be retried: UNAVAILABLE, which the
// clients' retry interceptors retry, without the store's error.
func TestStaleCountersAreUnavailable(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, err := range []error{
		fmt.Errorf("queue: write: %w: disk I/O error; writes refused until they can", queue.ErrCountersStale),
		fmt.Errorf("queue: apply commit: %w", queue.ErrRetry),
	} {
		st := status.Convert(statusOf(context.Background(), log, err))
		require.Equal(t, codes.Unavailable, st.Code(), "%v", err)
		require.NotContains(t, st.Message(), "disk I/O error", "the store's error reaches the client")
	}
}

// A write whose value-log fsync failed is not acknowledged: UNAVAILABLE,
// naming the restart the edge needs, without the store's error.
func TestSyncFailedIsUnavailable(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	err := fmt.Errorf("queue: write: %w (Error while curlf sync: input/output error)", queue.ErrSyncFailed)
	st := status.Convert(statusOf(context.Background(), log, err))
	require.Equal(t, codes.Unavailable, st.Code())
	require.Contains(t, st.Message(), "restart")
	require.NotContains(t, st.Message(), "input/output error", "the store's error reaches the client")
}

// Each class of error the edge's services answer maps to its documented
// code (docs/design.md, "Wire contract"), whatever wraps it; the cause's
// text reaches the client only where it names the bad field.
func TestStatusOfClasses(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bad := &validate.Error{Violations: []validate.Violation{{Field: "transactions[0].id", Description: "is required (a UUIDv7)"}}}
	for _, tc := range []struct {
		err  error
		code codes.Code
		msg  string // a part of the message, when the client needs it
	}{
		{fmt.Errorf("submit: %w", bad), codes.InvalidArgument, "transactions[0].id"},
		{fmt.Errorf("%w: transaction_id: not a UUID", queue.ErrInvalid), codes.InvalidArgument, "transaction_id"},
		{fmt.Errorf("list: %w", records.ErrBadToken), codes.InvalidArgument, "page_token"},
		{fmt.Errorf("submit: %w", queue.ErrQueueFull), codes.ResourceExhausted, "queue is full"},
		{fmt.Errorf("submit: %w", queue.ErrDiskFull), codes.ResourceExhausted, "disk space"},
		{fmt.Errorf("get: %w", queue.ErrNotFound), codes.NotFound, ""},
		{fmt.Errorf("get: %w", reads.ErrNotFound), codes.NotFound, ""},
		{fmt.Errorf("watch: %w", queue.ErrChangesPruned), codes.OutOfRange, "after_change"},
		{fmt.Errorf("submit: %w", queue.ErrClosed), codes.Unavailable, "shutting down"},
		{fmt.Errorf("submit: %w", context.Canceled), codes.Canceled, ""},
		{fmt.Errorf("submit: %w", context.DeadlineExceeded), codes.DeadlineExceeded, ""},
		{errors.New("badger: secret detail"), codes.Internal, rpcerr.InternalMessage},
	} {
		st := status.Convert(statusOf(context.Background(), log, tc.err))
		require.Equal(t, tc.code, st.Code(), "%v", tc.err)
		require.Contains(t, st.Message(), tc.msg, "%v", tc.err)
		require.NotContains(t, st.Message(), "secret", "%v", tc.err)
	}
}
