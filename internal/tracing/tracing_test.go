package tracing_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"

	"github.com/chasqui/chasqui/internal/tracing"
)

type ingest struct {
	centralv1.UnimplementedIngestServiceServer
	stored  chan map[string]string
	commits chan []*opsv1.Transaction
}

func (s *ingest) Commit(_ context.Context, req *centralv1.CommitRequest) (*centralv1.CommitResponse, error) {
	s.commits <- req.GetTransactions()
	return &centralv1.CommitResponse{}, nil
}

// GetCursor stands for Submit: it stores the caller's trace context the
// way the edge stores it in a queued transaction.
func (s *ingest) GetCursor(ctx context.Context, _ *centralv1.GetCursorRequest) (*centralv1.GetCursorResponse, error) {
	s.stored <- tracing.Inject(ctx)
	return &centralv1.GetCursorResponse{}, nil
}

// Not parallel: it installs the global tracer provider.
func TestOneTraceFromSubmitThroughTheQueue(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	_, err := tracing.Setup(context.Background(), "test", nil)
	require.NoError(t, err)

	svc := &ingest{stored: make(chan map[string]string, 1), commits: make(chan []*opsv1.Transaction, 1)}
	srv := grpc.NewServer(append(tracing.ServerOptions(), grpc.ChainUnaryInterceptor(
		tracing.UnaryServerStoreTraceContext(func(m string) bool { return m == "/chasqui.central.v1.IngestService/Commit" })))...)
	centralv1.RegisterIngestServiceServer(srv, svc)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), append(tracing.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })

	ctx, span := tp.Tracer("instrument").Start(context.Background(), "submit")
	_, err = centralv1.NewIngestServiceClient(conn).GetCursor(ctx, &centralv1.GetCursorRequest{EdgeId: "e"})
	require.NoError(t, err)
	span.End()
	stored := <-svc.stored
	require.Contains(t, stored, "traceparent")
	// Commit stands for Submit: the interceptor fills in the trace context
	// of transactions that carry none.
	_, err = centralv1.NewIngestServiceClient(conn).Commit(ctx, &centralv1.CommitRequest{
		Transactions: []*opsv1.Transaction{{Id: "a"}, {Id: "b", TraceContext: map[string]string{"traceparent": "own"}}}})
	require.NoError(t, err)
	got := <-svc.commits
	require.Equal(t, stored["traceparent"][:36], got[0].GetTraceContext()["traceparent"][:36], "same trace id")
	require.Equal(t, "own", got[1].GetTraceContext()["traceparent"], "a client's own context is kept")

	// Later, the forwarder: a batch span linked to the stored context, and
	// an attempt in the transaction's own trace.
	link, ok := tracing.Link(stored)
	require.True(t, ok)
	_, batch := tracing.Tracer().Start(context.Background(), "forward batch", trace.WithLinks(link))
	batch.End()
	_, fwd := tracing.Tracer().Start(tracing.Extract(context.Background(), stored), "forward")
	fwd.End()
	// The forwarder's dial: every Commit attempt is a span linked to the
	// transactions' traces.
	commit := &centralv1.CommitRequest{Transactions: []*opsv1.Transaction{{Id: "t1", TraceContext: stored}, {Id: "t2"}}}
	inv := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	require.NoError(t, tracing.UnaryClientBatchLinks()(context.Background(), "/chasqui.central.v1.IngestService/Commit", commit, nil, nil, inv))

	want := span.SpanContext().TraceID()
	// The server span ends after the client has its answer: wait for it.
	require.Eventually(t, func() bool {
		for _, s := range rec.Ended() {
			if s.SpanKind() == trace.SpanKindServer {
				return true
			}
		}
		return false
	}, 5*time.Second, time.Millisecond)
	var server, client, forward bool
	linked := 0
	for _, s := range rec.Ended() {
		switch {
		case s.SpanKind() == trace.SpanKindServer:
			server = s.SpanContext().TraceID() == want
		case s.SpanKind() == trace.SpanKindClient:
			client = s.SpanContext().TraceID() == want
		case s.Name() == "forward":
			forward = s.SpanContext().TraceID() == want
		case s.Name() == "forward batch", s.Name() == "chasqui.forward /chasqui.central.v1.IngestService/Commit":
			require.Len(t, s.Links(), 1, s.Name())
			require.Equal(t, want, s.Links()[0].SpanContext.TraceID())
			linked++
		}
	}
	require.True(t, server && client && forward, "server %v client %v forward %v", server, client, forward)
	require.Equal(t, 2, linked)
}

func TestExportOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	require.False(t, tracing.Enabled(env()))
	require.True(t, tracing.Enabled(env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")))
	require.True(t, tracing.Enabled(env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://collector:4317")))
	require.False(t, tracing.Enabled(env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317", "OTEL_TRACES_EXPORTER", "none")))
	require.False(t, tracing.Enabled(env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317", "OTEL_SDK_DISABLED", "true")))
}
