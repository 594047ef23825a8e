package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/chasqui/chasqui/edge/internal/queue"
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
