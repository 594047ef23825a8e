package app_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chasqui/chasqui/edge/app"
	"github.com/chasqui/chasqui/internal/h2test"
)

// Both windows are read off the wire: the one the instruments' server
// announces, and the one the forwarder's connection to central announces
// (to a listener standing in for central).
func TestHTTP2WindowsOnTheWire(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer lis.Close()
	r := start(t, app.Config{EdgeID: "edge-window", DataDir: t.TempDir(), CentralAddr: lis.Addr().String(),
		HTTP2Window: 2 << 20, CentralHTTP2Window: 5 << 20})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	w, err := h2test.ServerWindows(ctx, r.a.GRPCAddr())
	require.NoError(t, err)
	require.Equal(t, h2test.Windows{Stream: 2 << 20, Conn: 2 << 20}, w)

	// The forwarder connects on its own (it asks central for its cursor).
	w, err = h2test.ClientWindows(ctx, lis)
	require.NoError(t, err)
	require.Equal(t, h2test.Windows{Stream: 5 << 20, Conn: 5 << 20}, w)
}
