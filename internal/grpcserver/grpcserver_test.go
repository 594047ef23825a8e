package grpcserver_test

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/retry"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/chasqui/chasqui/internal/grpcserver"
	"github.com/chasqui/chasqui/internal/logging/logtest"
	"github.com/chasqui/chasqui/internal/rpcmeta"
)

type panicky struct {
	healthpb.UnimplementedHealthServer
}

func (panicky) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	panic("secret internal state")
}

func start(t *testing.T, register func(*grpcserver.Server)) (*grpc.ClientConn, context.CancelFunc, chan error) {
	t.Helper()
	s := grpcserver.New(grpcserver.Options{Logger: slog.New(slog.DiscardHandler)})
	if register != nil {
		register(s)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis, 2*time.Second) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { cancel(); _ = conn.Close() })
	return conn, cancel, done
}

func TestPanicAnswersInternalWithoutDetails(t *testing.T) {
	t.Parallel()
	// A second service carries the panicking handler; health is registered by New.
	conn, _, _ := start(t, func(s *grpcserver.Server) {
		s.RegisterService(&grpc.ServiceDesc{
			ServiceName: "test.Panicky", HandlerType: (*any)(nil),
			Methods: []grpc.MethodDesc{{MethodName: "Check", Handler: func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
				req := &healthpb.HealthCheckRequest{}
				if err := dec(req); err != nil {
					return nil, err
				}
				h := func(ctx context.Context, r any) (any, error) {
					return panicky{}.Check(ctx, r.(*healthpb.HealthCheckRequest))
				}
				return in(ctx, req, &grpc.UnaryServerInfo{FullMethod: "/test.Panicky/Check"}, h)
			}}},
		}, struct{}{})
	})
	var hdr metadata.MD
	err := conn.Invoke(context.Background(), "/test.Panicky/Check", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{}, grpc.Header(&hdr))
	require.Equal(t, codes.Internal, status.Code(err))
	require.NotContains(t, status.Convert(err).Message(), "secret")
	require.NotEmpty(t, hdr.Get(rpcmeta.RequestIDKey), "the answer carries a request id for the operator")
}

func TestHealthReflectionAndGracefulStop(t *testing.T) {
	t.Parallel()
	conn, cancel, done := start(t, nil)
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.Status)

	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
	require.NoError(t, err)
	require.NoError(t, stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}))
	r, err := stream.Recv()
	require.NoError(t, err)
	var names []string
	for _, s := range r.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	require.Contains(t, strings.Join(names, ","), "grpc.health.v1.Health")
	require.NoError(t, stream.CloseSend())

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}

// echo is a unary service whose Check fails with UNAVAILABLE when asked
// for service "fail", and succeeds otherwise.
var echoDesc = grpc.ServiceDesc{
	ServiceName: "test.Echo", HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{MethodName: "Check", Handler: func(_ any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
		req := &healthpb.HealthCheckRequest{}
		if err := dec(req); err != nil {
			return nil, err
		}
		h := func(_ context.Context, r any) (any, error) {
			if r.(*healthpb.HealthCheckRequest).GetService() == "fail" {
				return nil, status.Error(codes.Unavailable, "store closed")
			}
			return &healthpb.HealthCheckResponse{}, nil
		}
		return in(ctx, req, &grpc.UnaryServerInfo{FullMethod: "/test.Echo/Check"}, h)
	}}},
}

// call is one Check: the service name it asks for and its attempt.
type call struct {
	service string
	attempt int
}

// callLines serves echo with a logger at level, makes the calls (service
// name of each, and its attempt header when > 1) and returns the call lines.
func callLines(t *testing.T, level slog.Level, calls ...call) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range serveEcho(t, level, -1, nil, calls...) {
		if l["grpc.method"] == "Check" {
			lines = append(lines, l)
		}
	}
	return lines
}

// serveEcho serves echo with a logger at level and a summary every
// interval, makes the calls, runs during (when not nil) while the server
// still serves, stops it and returns every log line.
func serveEcho(t *testing.T, level slog.Level, interval time.Duration, during func(*logtest.Buffer), calls ...call) []map[string]any {
	t.Helper()
	var logs logtest.Buffer
	s := grpcserver.New(grpcserver.Options{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: level})),
		SummaryInterval: interval})
	s.RegisterService(&echoDesc, struct{}{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis, 2*time.Second) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	for _, c := range calls {
		cctx := context.Background()
		if c.attempt > 1 {
			cctx = metadata.AppendToOutgoingContext(cctx, retry.AttemptMetadataKey, strconv.Itoa(c.attempt-1))
		}
		_ = conn.Invoke(cctx, "/test.Echo/Check", &healthpb.HealthCheckRequest{Service: c.service}, &healthpb.HealthCheckResponse{})
	}
	require.NoError(t, conn.Close())
	if during != nil {
		during(&logs)
	}
	cancel()
	require.NoError(t, <-done)
	all, err := logs.JSONLines()
	require.NoError(t, err)
	return all
}

// At the default level a successful call writes no line; a failure and a
// retry do, with their attempt number. At DEBUG every call has its line.
func TestCallLinesByLevel(t *testing.T) {
	t.Parallel()
	lines := callLines(t, slog.LevelInfo, call{"ok", 1}, call{"ok", 1}, call{"fail", 1}, call{"ok", 3})
	require.Len(t, lines, 2, "only the failure and the retry: %v", lines)
	require.Equal(t, "WARN", lines[0]["level"])
	require.Equal(t, "Unavailable", lines[0]["grpc.code"])
	require.Equal(t, 1.0, lines[0]["attempt"])
	require.Equal(t, "INFO", lines[1]["level"])
	require.Equal(t, "OK", lines[1]["grpc.code"])
	require.Equal(t, 3.0, lines[1]["attempt"], "the retry is logged with its attempt number")

	lines = callLines(t, slog.LevelDebug, call{"ok", 1}, call{"ok", 1})
	require.Len(t, lines, 2, "at DEBUG each call has its line")
	for _, l := range lines {
		require.Equal(t, "DEBUG", l["level"])
		require.Equal(t, "OK", l["grpc.code"])
		require.NotEmpty(t, l["request_id"])
	}
}

// Successful calls have no line at INFO, so the server logs a summary of
// its calls every interval, and the rest when it stops.
func TestCallsSummaryAtInfo(t *testing.T) {
	t.Parallel()
	lines := serveEcho(t, slog.LevelInfo, 50*time.Millisecond, func(logs *logtest.Buffer) {
		require.Eventually(t, func() bool { return strings.Contains(logs.String(), `"msg":"calls served"`) },
			30*time.Second, 10*time.Millisecond, "a summary line while serving")
	}, call{"ok", 1}, call{"ok", 1}, call{"fail", 1})
	var calls, failed, byMethod float64
	for _, l := range lines {
		if l["msg"] != "calls served" {
			continue
		}
		require.Equal(t, "INFO", l["level"])
		calls += l["calls"].(float64)
		failed += l["failed"].(float64)
		m := l["methods"].(map[string]any)["/test.Echo/Check"].(map[string]any)
		byMethod += m["calls"].(float64)
	}
	require.Equal(t, 3.0, calls, "every call counted once: %v", lines)
	require.Equal(t, 1.0, failed)
	require.Equal(t, 3.0, byMethod, "by method")
}
