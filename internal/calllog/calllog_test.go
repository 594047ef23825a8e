package calllog_test

import (
	"context"
	"log/slog"
	"net"
	"testing"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/retry"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/chasqui/chasqui/internal/calllog"
	"github.com/chasqui/chasqui/internal/logging/logtest"
	"github.com/chasqui/chasqui/internal/rpcmeta"
)

// counting is a slog handler that counts the records it is handed.
type counting struct {
	slog.Handler
	n int
}

func (c *counting) Handle(ctx context.Context, r slog.Record) error {
	c.n++
	return c.Handler.Handle(ctx, r)
}

// serverCtx is what a served call's context carries: incoming metadata with
// a request id (and the attempt, from the second on) and the peer.
func serverCtx(attempt string) context.Context {
	md := metadata.Pairs(rpcmeta.RequestIDKey, "req-1")
	if attempt != "" {
		md.Set(retry.AttemptMetadataKey, attempt)
	}
	ctx := metadata.NewIncomingContext(context.Background(), md)
	return peer.NewContext(ctx, &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555}})
}

var submitInfo = &grpc.UnaryServerInfo{FullMethod: "/chasqui.edge.v1.EdgeService/Submit"}

// A line the level leaves out is never built: a call costs the interceptor
// no allocation at all, on the server and on the client.
func TestNoFieldsBuiltWhenLevelIsOff(t *testing.T) {
	var logs logtest.Buffer
	h := &counting{Handler: slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})}
	ok := func(context.Context, any) (any, error) { return nil, nil }
	srv := calllog.UnaryServerInterceptor(slog.New(h), &calllog.Summary{})
	_, _ = srv(serverCtx(""), nil, submitInfo, func(context.Context, any) (any, error) { return nil, nil }) // the summary has seen Submit
	ctx := serverCtx("")
	allocs := testing.AllocsPerRun(1000, func() { _, _ = srv(ctx, nil, submitInfo, ok) })
	require.Zero(t, allocs, "a successful first attempt at INFO: nothing built")

	// Failures are off too when the level is ERROR and the code is a WARN one.
	unavailable := status.Error(codes.Unavailable, "down")
	failing := func(context.Context, any) (any, error) { return nil, unavailable }
	quiet := calllog.UnaryServerInterceptor(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelError})), nil)
	allocs = testing.AllocsPerRun(1000, func() { _, _ = quiet(ctx, nil, submitInfo, failing) })
	require.Zero(t, allocs, "a WARN outcome at ERROR: nothing built")

	cli := calllog.UnaryClientInterceptor(slog.New(h))
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	cctx := metadata.AppendToOutgoingContext(context.Background(), rpcmeta.RequestIDKey, "req-2")
	allocs = testing.AllocsPerRun(1000, func() { _ = cli(cctx, "/chasqui.central.v1.IngestService/Commit", nil, nil, nil, invoker) })
	require.Zero(t, allocs, "a successful client call at INFO: nothing built")
	require.Zero(t, h.n, "and nothing handed to the handler")
	require.Empty(t, logs.String())
}

// Successful calls are DEBUG, retries INFO whatever their outcome, failures
// WARN or ERROR; every line carries the method, code, request id and attempt.
func TestLevelsByOutcomeAndAttempt(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		attempt string
		err     error
		level   slog.Level
		at      float64
	}{
		{"first attempt ok", "", nil, slog.LevelDebug, 1},
		{"retry ok", "1", nil, slog.LevelInfo, 2},
		{"invalid argument", "", status.Error(codes.InvalidArgument, "bad"), slog.LevelInfo, 1},
		{"unavailable", "", status.Error(codes.Unavailable, "down"), slog.LevelWarn, 1},
		{"retry unavailable", "2", status.Error(codes.Unavailable, "down"), slog.LevelWarn, 3},
		{"internal", "", status.Error(codes.Internal, "boom"), slog.LevelError, 1},
	} {
		var logs logtest.Buffer
		srv := calllog.UnaryServerInterceptor(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), nil)
		_, _ = srv(serverCtx(c.attempt), nil, submitInfo, func(context.Context, any) (any, error) { return nil, c.err })
		lines, err := logs.JSONLines()
		require.NoError(t, err)
		require.Len(t, lines, 1, c.name)
		l := lines[0]
		require.Equal(t, c.level.String(), l["level"], c.name)
		require.Equal(t, calllog.Message, l["msg"], c.name)
		require.Equal(t, "Submit", l["grpc.method"], c.name)
		require.Equal(t, "chasqui.edge.v1.EdgeService", l["grpc.service"], c.name)
		require.Equal(t, status.Code(c.err).String(), l["grpc.code"], c.name)
		require.Equal(t, "req-1", l["request_id"], c.name)
		require.Equal(t, c.at, l["attempt"], c.name)
		require.Equal(t, "127.0.0.1:5555", l["peer.address"], c.name)
		if c.err != nil {
			require.Contains(t, l["grpc.error"], status.Convert(c.err).Message(), c.name)
		}
	}
}
