package grpcclient_test

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/chasqui/chasqui/internal/grpcclient"
	"github.com/chasqui/chasqui/internal/grpcserver"
	"github.com/chasqui/chasqui/internal/h2test"
)

// The client's windows are read off the wire by a listener that speaks
// just enough HTTP/2 to take its SETTINGS and WINDOW_UPDATE.
func TestClientWindowsOnTheWire(t *testing.T) {
	for _, tc := range []struct {
		name   string
		window int
		want   uint32
	}{
		{"default", 0, grpcserver.DefaultWindowBytes},
		{"configured", 5 << 20, 5 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer lis.Close()
			cc, err := grpcclient.Dial(lis.Addr().String(), grpcclient.Options{Logger: slog.New(slog.DiscardHandler), WindowBytes: tc.window})
			require.NoError(t, err)
			defer cc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// A call makes the lazy client connect; its answer does not matter.
			go func() { _, _ = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}) }()
			w, err := h2test.ClientWindows(ctx, lis)
			require.NoError(t, err)
			require.Equal(t, h2test.Windows{Stream: tc.want, Conn: tc.want}, w)
		})
	}
}

func TestWindowOutOfRangeRefused(t *testing.T) {
	_, err := grpcclient.DialOptions(grpcclient.Options{Logger: slog.New(slog.DiscardHandler), WindowBytes: 1000})
	require.ErrorContains(t, err, "WindowBytes must be between")
}
