// Package grpcserver builds the gRPC server both services run: one named,
// ordered interceptor chain (request id, logging, recovery innermost), gRPC
// health and server reflection, keepalive enforcement that matches the
// clients of internal/grpcclient, and a bounded graceful shutdown.
package grpcserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	// Registers the gzip codec: the edge compresses its batches on the WAN link.
	_ "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/chasqui/chasqui/internal/calllog"
	"github.com/chasqui/chasqui/internal/rpcerr"
	"github.com/chasqui/chasqui/internal/rpcmeta"
	"github.com/chasqui/chasqui/internal/validate"
)

// Keepalive enforcement. Clients (internal/grpcclient) ping every
// ClientKeepaliveTime, which must stay at or above MinPingInterval, or the
// server closes the link with too_many_pings.
const (
	MinPingInterval = 10 * time.Second
	// MaxConnectionIdle closes links nobody used for long (clients reconnect on demand).
	MaxConnectionIdle = 15 * time.Minute
)

// HTTP/2 flow-control windows. gRPC starts every stream and connection at
// 64 KiB and, unless a window is set, grows it by BDP estimation: a PING
// sent beside data frames, about once per round trip. Over the design's
// 250 ms RTT the window then starts over small after every reconnect, and
// on a busy server the pings cost CPU per call (~33 us per Submit, measured
// with single-transaction Submits). A fixed window sized for the link turns
// the estimation off.
const (
	// DefaultWindowBytes is the stream and connection window of the link
	// between edge and central: the bandwidth-delay product of 100 Mbit/s at
	// 250 ms RTT is about 3 MiB; 8 MiB keeps a link of up to ~270 Mbit/s at
	// that RTT (or a slower one with double the RTT) full, and covers a
	// whole 1 MiB batch per stream with room for every batch in flight.
	//
	// It is a credit, not an allocation: grpc-go's transport buffers only
	// the DATA frames that actually arrived and are not yet read (recvBuffer
	// in internal/transport), and the connection window is granted back as
	// soon as frames are read off the socket (trInFlow.onData). Memory per
	// connection is therefore what is in flight on it, at most the window
	// of each stream whose reader falls behind; an idle connection costs
	// nothing extra.
	DefaultWindowBytes = 8 << 20
	// MinWindowBytes is HTTP/2's initial window: gRPC ignores anything
	// smaller.
	MinWindowBytes = 64 << 10
)

// CheckWindow names a window setting gRPC would not honour.
func CheckWindow(field string, n int) error {
	if n != 0 && (n < MinWindowBytes || n > math.MaxInt32) {
		return fmt.Errorf("%s must be between %d (64 KiB) and %d bytes, got %d", field, MinWindowBytes, math.MaxInt32, n)
	}
	return nil
}

// Options configure New.
type Options struct {
	// Logger receives the interceptor logs and panics. Required.
	Logger *slog.Logger
	// TLS, when set, is the server's TLS configuration (mTLS when it requires
	// client certificates). Nil serves plaintext.
	TLS *tls.Config
	// Unary and Stream are extra interceptors (authentication, say), run after
	// logging and before recovery, in the order given.
	Unary  []grpc.UnaryServerInterceptor
	Stream []grpc.StreamServerInterceptor
	// MaxRecvMsgSize bounds one request. Default:
	// validate.DefaultMaxMessageBytes (16 MiB), which the edge's limit per
	// transaction (validate.MaxTransactionBytes) stays below.
	MaxRecvMsgSize int
	// SummaryInterval is how often Serve logs one INFO line counting the
	// calls served since the last (by method: calls, failed), since
	// successful calls have no line of their own at INFO. Default
	// calllog.DefaultSummaryInterval (1 min); negative: no summary.
	SummaryInterval time.Duration
	// WindowBytes is the HTTP/2 flow-control window of each stream and of
	// each connection, fixed (BDP estimation off). Default
	// DefaultWindowBytes; at least MinWindowBytes.
	WindowBytes int
	// ServerOptions are appended as they are (stats handlers, say).
	ServerOptions []grpc.ServerOption
}

// Server is a grpc.Server with its health service.
type Server struct {
	*grpc.Server
	// Health is the grpc.health.v1 service; services set their status on it.
	Health *health.Server
	logger *slog.Logger
	// summary counts the calls for the periodic line (every summaryEvery).
	summary      *calllog.Summary
	summaryEvery time.Duration
}

// New builds the server. The interceptor chain, outermost first:
// request id -> logging (health checks left out) -> opts.Unary... -> recovery.
// Logging writes one line per finished call (calllog): successful calls at
// DEBUG, retries at INFO, failures at WARN or ERROR; Serve adds a summary
// line of the calls every SummaryInterval.
func New(opts Options) *Server {
	if opts.MaxRecvMsgSize == 0 {
		opts.MaxRecvMsgSize = validate.DefaultMaxMessageBytes
	}
	if opts.SummaryInterval == 0 {
		opts.SummaryInterval = calllog.DefaultSummaryInterval
	}
	var summary *calllog.Summary
	if opts.SummaryInterval > 0 {
		summary = &calllog.Summary{}
	}
	if opts.WindowBytes == 0 {
		opts.WindowBytes = DefaultWindowBytes
	}
	// Out of range is a caller's bug (configs are checked with CheckWindow).
	window := int32(min(max(opts.WindowBytes, MinWindowBytes), math.MaxInt32))
	logger := opts.Logger
	notHealth := selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool {
		return c.Service != healthpb.Health_ServiceDesc.ServiceName
	})
	rec := recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		return rpcerr.Internal(ctx, logger, fmt.Errorf("panic in handler: %v", p))
	})

	unary := []grpc.UnaryServerInterceptor{
		rpcmeta.UnaryServerRequestID(),
		selector.UnaryServerInterceptor(calllog.UnaryServerInterceptor(logger, summary), notHealth),
	}
	unary = append(unary, opts.Unary...)
	unary = append(unary, recovery.UnaryServerInterceptor(rec))
	stream := []grpc.StreamServerInterceptor{
		rpcmeta.StreamServerRequestID(),
		selector.StreamServerInterceptor(calllog.StreamServerInterceptor(logger, summary), notHealth),
	}
	stream = append(stream, opts.Stream...)
	stream = append(stream, recovery.StreamServerInterceptor(rec))

	creds := insecure.NewCredentials()
	if opts.TLS != nil {
		creds = credentials.NewTLS(opts.TLS)
	}
	so := []grpc.ServerOption{
		grpc.Creds(creds),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(opts.MaxRecvMsgSize),
		grpc.StaticStreamWindowSize(window),
		grpc.StaticConnWindowSize(window),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime: MinPingInterval,
			// Clients ping idle links too, so a dead WAN is noticed before the next call.
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle: MaxConnectionIdle,
			Time:              time.Minute,
			Timeout:           20 * time.Second,
		}),
	}
	so = append(so, opts.ServerOptions...)
	s := &Server{Server: grpc.NewServer(so...), Health: health.NewServer(), logger: logger,
		summary: summary, summaryEvery: opts.SummaryInterval}
	healthpb.RegisterHealthServer(s.Server, s.Health)
	reflection.Register(s.Server)
	return s
}

// Serve serves on lis until ctx is done, then shuts down gracefully:
// in-flight calls get up to timeout to finish, then the rest are cut off.
// Health turns NOT_SERVING first so balancers stop sending.
func (s *Server) Serve(ctx context.Context, lis net.Listener, timeout time.Duration) error {
	if s.summary != nil {
		sctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); s.summary.Run(sctx, s.logger, s.summaryEvery) }()
		defer func() { stop(); <-done }()
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Server.Serve(lis) }()
	select {
	case err := <-errc:
		if errors.Is(err, grpc.ErrServerStopped) {
			return nil
		}
		return fmt.Errorf("grpc serve: %w", err)
	case <-ctx.Done():
	}
	s.Health.Shutdown()
	done := make(chan struct{})
	go func() { s.Server.GracefulStop(); close(done) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.logger.Warn("graceful stop timed out; cutting remaining calls", "timeout", timeout)
		s.Server.Stop()
		<-done
	}
	<-errc
	return nil
}
