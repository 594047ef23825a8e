package grpcclient_test

import (
	"context"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/chasqui/chasqui/internal/grpcclient"
	"github.com/chasqui/chasqui/internal/grpcserver"
)

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// Client keepalive and server enforcement agree: a client pinging an idle
// link as often as the policy allows is not closed with too_many_pings
// (gRPC's default enforcement, 5 minutes, would send GOAWAY after a few of
// these pings and the client would have to reconnect).
func TestKeepaliveWithinServerEnforcement(t *testing.T) {
	if testing.Short() {
		t.Skip("idles for 3.5 ping intervals")
	}
	t.Parallel()
	s := grpcserver.New(grpcserver.Options{Logger: slog.New(slog.DiscardHandler)})
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	lis := &countingListener{Listener: inner}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis, time.Second) }()
	t.Cleanup(func() { cancel(); <-done })

	conn, err := grpcclient.Dial(lis.Addr().String(), grpcclient.Options{
		Logger:        slog.New(slog.DiscardHandler),
		KeepaliveTime: grpcserver.MinPingInterval, // the most frequent pinging the options allow
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	c := healthpb.NewHealthClient(conn)
	_, err = c.Check(context.Background(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)

	// The idle link itself is the test: 3.5 ping intervals, past the
	// server's two ping strikes.
	time.Sleep(grpcserver.MinPingInterval*3 + grpcserver.MinPingInterval/2)
	_, err = c.Check(context.Background(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, int64(1), lis.accepted.Load(), "the server closed the idle link (too_many_pings?) and the client reconnected")
}
