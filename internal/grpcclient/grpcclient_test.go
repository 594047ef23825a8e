package grpcclient_test

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/chasqui/chasqui/internal/grpcclient"
	"github.com/chasqui/chasqui/internal/logging/logtest"
)

// syncBuffer is a log sink shared by goroutines.
type syncBuffer struct{ logtest.Buffer }

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	out, err := s.JSONLines()
	require.NoError(t, err)
	return out
}

// failing answers every health check with the code it holds, counting calls.
type failing struct {
	healthpb.UnimplementedHealthServer
	calls atomic.Int64
	code  codes.Code
}

func (f *failing) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	f.calls.Add(1)
	if f.code != codes.OK {
		return nil, status.Error(f.code, "injected")
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func serve(t *testing.T, addr string, h healthpb.HealthServer) (string, func()) {
	t.Helper()
	var lis net.Listener
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		lis, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the port of a just-stopped server can linger briefly
	}
	require.NoError(t, err)
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, h)
	go func() { _ = s.Serve(lis) }()
	return lis.Addr().String(), s.Stop
}

func dial(t *testing.T, addr string, o grpcclient.Options) healthpb.HealthClient {
	t.Helper()
	conn, err := grpcclient.Dial(addr, o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return healthpb.NewHealthClient(conn)
}

// A server outage of one second must not surface as an error to a caller:
// wait-for-ready plus the fast reconnect backoff carry the call over it.
func TestRidesThroughOneSecondOutage(t *testing.T) {
	t.Parallel()
	h := &failing{}
	addr, stop := serve(t, "127.0.0.1:0", h)
	c := dial(t, addr, grpcclient.Options{Logger: slog.New(slog.DiscardHandler)})
	_, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)

	stop()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{})
			errs <- err
		}()
	}
	time.Sleep(time.Second) // the outage itself: this is the fault, not a wait for state
	_, stop2 := serve(t, addr, h)
	defer stop2()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "a 1 s outage must cause no client error")
	}
}

// Retries are bounded by the shared budget: 64 callers against a server that
// always fails make at most 64 first attempts plus the budget's burst and rate.
func TestRetryBudgetBoundsLoad(t *testing.T) {
	t.Parallel()
	h := &failing{code: codes.Unavailable}
	addr, stop := serve(t, "127.0.0.1:0", h)
	defer stop()
	c := dial(t, addr, grpcclient.Options{
		Logger:      slog.New(slog.DiscardHandler),
		MaxAttempts: 5, BackoffBase: time.Millisecond, BackoffMax: 2 * time.Millisecond,
		RetryBudget: 1, RetryBurst: 5,
	})
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{})
			if status.Code(err) == codes.Unavailable {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	require.Equal(t, int64(64), failed.Load(), "every call ends with the server's UNAVAILABLE")
	allowed := 64 + 5 + int64(elapsed*1) + 1
	require.LessOrEqual(t, h.calls.Load(), allowed, "retries beyond the budget (without it: 64*5=320)")
}

// Without budget pressure a call makes exactly MaxAttempts attempts, each
// logged with its number and the same request id.
func TestEachAttemptLoggedWithNumber(t *testing.T) {
	t.Parallel()
	h := &failing{code: codes.Unavailable}
	addr, stop := serve(t, "127.0.0.1:0", h)
	defer stop()
	var logs syncBuffer
	c := dial(t, addr, grpcclient.Options{
		Logger:      slog.New(slog.NewJSONHandler(&logs, nil)),
		MaxAttempts: 3, BackoffBase: time.Millisecond, BackoffMax: 2 * time.Millisecond,
	})
	_, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{})
	require.Equal(t, codes.Unavailable, status.Code(err))
	require.Equal(t, int64(3), h.calls.Load())

	var attempts []float64
	ids := map[any]bool{}
	for _, l := range logs.lines(t) {
		if l["grpc.method"] == "Check" {
			attempts = append(attempts, l["attempt"].(float64))
			ids[l["request_id"]] = true
		}
	}
	require.Equal(t, []float64{1, 2, 3}, attempts)
	require.Len(t, ids, 1, "all attempts of one call share one request id")
}

// Codes outside the retry set are never retried.
func TestInvalidArgumentNotRetried(t *testing.T) {
	t.Parallel()
	h := &failing{code: codes.InvalidArgument}
	addr, stop := serve(t, "127.0.0.1:0", h)
	defer stop()
	c := dial(t, addr, grpcclient.Options{Logger: slog.New(slog.DiscardHandler), MaxAttempts: 4})
	_, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.Equal(t, int64(1), h.calls.Load())
}

// stalled accepts every health check and never answers it, counting the
// attempts that reached it: a server that hangs, as a wedged process does.
type stalled struct {
	healthpb.UnimplementedHealthServer
	calls atomic.Int64
}

func (s *stalled) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	s.calls.Add(1)
	<-ctx.Done()
	return nil, ctx.Err()
}

// Attempts that end in their per-attempt timeout are retries like any other:
// the retry interceptor retries them without asking the retriable predicate,
// and they must still draw on the shared budget. 64 callers against a server
// that accepts and hangs reach it at most 64 times plus the budget's burst
// and rate (without the gate: 64*5=320).
func TestRetryBudgetBoundsTimedOutAttempts(t *testing.T) {
	t.Parallel()
	h := &stalled{}
	addr, stop := serve(t, "127.0.0.1:0", h)
	defer stop()
	conn, err := grpcclient.Dial(addr, grpcclient.Options{
		Logger:      slog.New(slog.DiscardHandler),
		MaxAttempts: 5, PerAttemptTimeout: 200 * time.Millisecond,
		BackoffBase: time.Millisecond, BackoffMax: 2 * time.Millisecond,
		RetryBudget: 1, RetryBurst: 5,
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	// Connected first, so that attempts time out at the server and not
	// while waiting for the link: the count below sees every attempt sent.
	conn.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for s := conn.GetState(); s != connectivity.Ready; s = conn.GetState() {
		require.True(t, conn.WaitForStateChange(ctx, s), "no connection to the test server")
	}
	c := healthpb.NewHealthClient(conn)

	start := time.Now()
	var wg sync.WaitGroup
	var timedOut atomic.Int64
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{})
			if status.Code(err) == codes.DeadlineExceeded {
				timedOut.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	require.Equal(t, int64(64), timedOut.Load(), "every call ends with its last attempt's DEADLINE_EXCEEDED")
	allowed := 64 + 5 + int64(elapsed*1) + 1
	require.LessOrEqual(t, h.calls.Load(), allowed, "timed-out attempts retried beyond the budget")
}
