// Package tracing owns OpenTelemetry for both services: otelgrpc stats
// handlers for gRPC servers and clients, the W3C trace-context propagator,
// and the carrying of a trace context inside a queued transaction
// (ops.v1.Transaction.trace_context), so that one trace links an
// instrument's Submit, the forward attempt(s) hours later and the central
// commit.
//
// Export happens only when the standard environment asks for it:
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set,
// and OTEL_TRACES_EXPORTER not "none" (or OTEL_SDK_DISABLED=true). Then
// spans go by OTLP/gRPC, configured by the usual OTEL_* variables
// (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER,
// headers, TLS). Otherwise no span is recorded and nothing is sent, but
// trace contexts coming from callers are still passed on.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// Enabled reports whether the environment asks for span export.
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	if e := getenv("OTEL_TRACES_EXPORTER"); e != "" && e != "otlp" {
		return false // "none", or an exporter this build does not carry
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Setup installs the global propagator (W3C trace context and baggage)
// and, when Enabled, an OTLP exporter and tracer provider for service.
// The returned shutdown flushes spans; call it once at exit. logger may
// be nil.
func Setup(ctx context.Context, service string, logger *slog.Logger) (shutdown func(context.Context) error, err error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if !Enabled(os.Getenv) {
		return func(context.Context) error { return nil }, nil
	}
	exp, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(),
		resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(service)))
	if err != nil && !errors.Is(err, resource.ErrPartialResource) && !errors.Is(err, resource.ErrSchemaURLConflict) {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the default name.
	if envRes, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
		if merged, err := resource.Merge(res, envRes); err == nil {
			res = merged
		}
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	// The endpoint is configuration, not a secret; headers (which may hold
	// tokens) are never logged.
	if logger != nil {
		logger.Info("tracing: exporting spans by OTLP", "service", service)
	}
	return tp.Shutdown, nil
}

// notHealth keeps health probes out of traces.
func notHealth(info *stats.RPCTagInfo) bool {
	return !strings.HasPrefix(info.FullMethodName, "/grpc.health.v1.Health/")
}

// ServerOptions are the server's stats handler.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithFilter(notHealth)))}
}

// DialOptions are the client's stats handler: one span per attempt,
// carrying the trace context to the server.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithFilter(notHealth)))}
}

// Inject returns the trace context of ctx as a map to store inside a
// queued transaction (ops.v1.Transaction.trace_context), or nil when ctx
// carries none.
func Inject(ctx context.Context) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	c := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, c)
	if len(c) == 0 {
		return nil
	}
	return c
}

// Extract returns ctx with the trace context m stored by Inject.
func Extract(ctx context.Context, m map[string]string) context.Context {
	if len(m) == 0 {
		return ctx
	}
	return otel.GetTextMapPropagator().Extract(ctx, propagation.MapCarrier(m))
}

// Link is a span link to the trace context m (a transaction's), for a span
// that serves many transactions at once (one forwarded batch): each
// transaction's trace then leads to the batch's span.
func Link(m map[string]string) (trace.Link, bool) {
	sc := trace.SpanContextFromContext(Extract(context.Background(), m))
	if !sc.IsValid() {
		return trace.Link{}, false
	}
	return trace.Link{SpanContext: sc}, true
}

// Tracer is the tracer of chasqui's own spans (forward batches).
func Tracer() trace.Tracer { return otel.Tracer("github.com/chasqui/chasqui") }

// UnaryClientBatchLinks starts, around every attempt of a call whose
// request carries transactions (a Commit batch), a span linked to each
// transaction's stored trace context: the instrument's Submit trace leads
// to the forward attempt(s), whose children are the gRPC client span and
// central's server span. Calls without transactions pass through.
func UnaryClientBatchLinks() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		b, ok := req.(interface {
			GetTransactions() []*opsv1.Transaction
		})
		if !ok || len(b.GetTransactions()) == 0 {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		var links []trace.Link
		for _, tx := range b.GetTransactions() {
			if l, ok := Link(tx.GetTraceContext()); ok {
				links = append(links, l)
			}
		}
		ctx, span := Tracer().Start(ctx, "chasqui.forward "+method, trace.WithSpanKind(trace.SpanKindInternal),
			trace.WithLinks(links...), trace.WithAttributes(attribute.Int("chasqui.batch.transactions", len(b.GetTransactions()))))
		defer span.End()
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err != nil {
			span.SetStatus(otelcodes.Error, status.Code(err).String())
		}
		return err
	}
}

// UnaryServerStoreTraceContext stores the call's trace context (the
// instrument's, or the server span's when spans are recorded) in every
// transaction of a request that carries transactions and has none yet, for
// the methods match accepts (the edge's Submit). It must run after the
// stats handler (interceptors do), so the server span is in ctx.
func UnaryServerStoreTraceContext(match func(fullMethod string) bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if b, ok := req.(interface {
			GetTransactions() []*opsv1.Transaction
		}); ok && match(info.FullMethod) {
			if tc := Inject(ctx); tc != nil {
				for _, tx := range b.GetTransactions() {
					if tx != nil && len(tx.GetTraceContext()) == 0 {
						tx.TraceContext = tc
					}
				}
			}
		}
		return handler(ctx, req)
	}
}
