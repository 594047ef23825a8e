package grpcserver_test

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chasqui/chasqui/internal/grpcserver"
	"github.com/chasqui/chasqui/internal/h2test"
)

// The windows are read off the wire: what the server's SETTINGS and
// connection WINDOW_UPDATE grant, not what its options say.
func TestWindowsOnTheWire(t *testing.T) {
	for _, tc := range []struct {
		name   string
		window int
		want   uint32
	}{
		{"default", 0, grpcserver.DefaultWindowBytes},
		{"configured", 3 << 20, 3 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := grpcserver.New(grpcserver.Options{Logger: slog.New(slog.DiscardHandler), WindowBytes: tc.window})
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Serve(ctx, lis, time.Second) }()
			defer func() { cancel(); require.NoError(t, <-done) }()

			rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
			defer rcancel()
			w, err := h2test.ServerWindows(rctx, lis.Addr().String())
			require.NoError(t, err)
			require.Equal(t, h2test.Windows{Stream: tc.want, Conn: tc.want}, w)
		})
	}
}

func TestCheckWindow(t *testing.T) {
	require.NoError(t, grpcserver.CheckWindow("W", 0))
	require.NoError(t, grpcserver.CheckWindow("W", grpcserver.MinWindowBytes))
	require.ErrorContains(t, grpcserver.CheckWindow("W (--w)", 1000), "W (--w) must be between 65536")
	require.Error(t, grpcserver.CheckWindow("W", 1<<31))
}
