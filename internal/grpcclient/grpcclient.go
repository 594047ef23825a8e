// Package grpcclient holds the client side of docs/design.md, "Retries": every
// unary client (instrument -> edge, edge -> central, CLI) dials through
// Options so that the retry policy is the same everywhere.
//
// The chain, outermost first: request id (one per logical call) -> retry
// (go-grpc-middleware v2) -> budget gate (every attempt after the first
// takes a token of the client-wide retry budget or is not sent) -> logging
// (inside retry, so each attempt is logged with its number) -> the wire.
// The gate sits inside the retry interceptor rather than in its retriable
// predicate because the interceptor retries an attempt that hit its
// per-attempt timeout without asking the predicate: a stalled server would
// otherwise get MaxAttempts attempts from every caller. Connection settings matter as much:
// wait-for-ready (calls wait for the link instead of failing fast, bounded by
// the per-attempt timeout, so a dead link sends nothing), a reconnect backoff
// of 100 ms base and 5 s max (gRPC's 1 s base makes a 1 s outage fail), and
// keepalive pings no more often than the server's enforcement allows.
// gRPC's own service-config retries stay disabled: two retry layers would
// multiply attempts.
package grpcclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/retry"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/chasqui/chasqui/internal/calllog"
	"github.com/chasqui/chasqui/internal/grpcserver"
	"github.com/chasqui/chasqui/internal/rpcmeta"
	"github.com/chasqui/chasqui/internal/validate"
)

// The retry budget's defaults. The burst covers the calls one connection has
// in flight when its server restarts: they all fail at once (the transport
// closes under them) and each needs one retry to ride through a 1 s outage;
// a burst of 10 failed that with 20 calls in flight. Beyond the burst,
// retries are held to DefaultRetryBudget per second however many calls fail.
const (
	DefaultRetryBudget = 5
	DefaultRetryBurst  = 64
)

// Options is the retry and connection policy of one client connection.
// The zero value of each field means its default.
type Options struct {
	// Logger logs every attempt (with its number and the request id). Required.
	Logger *slog.Logger
	// TLS is the client TLS configuration; nil dials plaintext.
	TLS *tls.Config
	// Creds, when set, are the transport credentials instead of TLS (for
	// credentials that re-read their files, tlsconfig.ClientCredentials).
	Creds credentials.TransportCredentials
	// MaxAttempts counts all attempts of one call, the first included. Default 4.
	MaxAttempts uint
	// PerAttemptTimeout bounds one attempt, the wait for a connection included.
	// Default 2 s (longer than a 1 s outage plus a reconnect).
	PerAttemptTimeout time.Duration
	// BackoffBase is the first retry's wait; it doubles per attempt with 20%
	// jitter up to BackoffMax. Defaults 100 ms and 1 s.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// RetryCodes are the codes retried. Default: UNAVAILABLE. (DEADLINE_EXCEEDED
	// of an attempt is always retried when PerAttemptTimeout is set: that is
	// how the interceptor works. Such retries draw on the budget too.)
	RetryCodes []codes.Code
	// RetryBudget is the client-wide retry budget in retries per second, shared
	// by all calls of this connection, with a burst of RetryBurst. When it is
	// spent, a failed call fails with its last error instead of retrying, so
	// callers failing at once do not multiply the load. Defaults
	// DefaultRetryBudget and DefaultRetryBurst.
	RetryBudget float64
	RetryBurst  int
	// ReconnectBaseDelay and ReconnectMaxDelay bound the reconnect backoff.
	// Defaults 100 ms and 5 s.
	ReconnectBaseDelay time.Duration
	ReconnectMaxDelay  time.Duration
	// KeepaliveTime is the ping interval on an idle link. Default 30 s; never
	// below grpcserver.MinPingInterval.
	KeepaliveTime time.Duration
	// MaxCallSendMsgSize and MaxCallRecvMsgSize bound messages. Defaults
	// validate.DefaultMaxMessageBytes (16 MiB), the servers' receive limit.
	MaxCallSendMsgSize int
	MaxCallRecvMsgSize int
	// WindowBytes is the HTTP/2 flow-control window of each stream and of
	// the connection, fixed (BDP estimation off): what the client may
	// receive before it grants more. Default grpcserver.DefaultWindowBytes
	// (see there how it is sized); at least grpcserver.MinWindowBytes.
	WindowBytes int
	// Unary are extra interceptors placed inside the logging interceptor.
	Unary []grpc.UnaryClientInterceptor
}

func (o *Options) setDefaults() {
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 4
	}
	if o.PerAttemptTimeout == 0 {
		o.PerAttemptTimeout = 2 * time.Second
	}
	if o.BackoffBase == 0 {
		o.BackoffBase = 100 * time.Millisecond
	}
	if o.BackoffMax == 0 {
		o.BackoffMax = time.Second
	}
	if len(o.RetryCodes) == 0 {
		o.RetryCodes = []codes.Code{codes.Unavailable}
	}
	if o.RetryBudget == 0 {
		o.RetryBudget = DefaultRetryBudget
	}
	if o.RetryBurst == 0 {
		o.RetryBurst = DefaultRetryBurst
	}
	if o.ReconnectBaseDelay == 0 {
		o.ReconnectBaseDelay = 100 * time.Millisecond
	}
	if o.ReconnectMaxDelay == 0 {
		o.ReconnectMaxDelay = 5 * time.Second
	}
	if o.KeepaliveTime == 0 {
		o.KeepaliveTime = 30 * time.Second
	}
	if o.KeepaliveTime < grpcserver.MinPingInterval {
		o.KeepaliveTime = grpcserver.MinPingInterval
	}
	if o.MaxCallSendMsgSize == 0 {
		o.MaxCallSendMsgSize = validate.DefaultMaxMessageBytes
	}
	if o.MaxCallRecvMsgSize == 0 {
		o.MaxCallRecvMsgSize = validate.DefaultMaxMessageBytes
	}
	if o.WindowBytes == 0 {
		o.WindowBytes = grpcserver.DefaultWindowBytes
	}
}

// Validate names the first unusable field.
func (o Options) Validate() error {
	switch {
	case o.Logger == nil:
		return errors.New("grpcclient: Logger is required")
	case o.MaxAttempts > 10:
		return errors.New("grpcclient: MaxAttempts above 10 multiplies load on a failing server")
	case o.RetryBudget < 0:
		return errors.New("grpcclient: RetryBudget must not be negative")
	}
	if err := grpcserver.CheckWindow("WindowBytes", o.WindowBytes); err != nil {
		return fmt.Errorf("grpcclient: %w", err)
	}
	return nil
}

// Budget is the client-wide retry budget: a token bucket that every retry
// (not first attempts) draws from, whatever its cause.
type Budget struct{ lim *rate.Limiter }

// NewBudget allows perSecond retries per second with the given burst.
func NewBudget(perSecond float64, burst int) *Budget {
	return &Budget{lim: rate.NewLimiter(rate.Limit(perSecond), burst)}
}

// Allow takes one retry token when there is one.
func (b *Budget) Allow() bool { return b.lim.Allow() }

// errBudgetSpent stops the retry interceptor: it is no status error, so the
// interceptor neither takes it for a per-attempt timeout nor (the retriable
// predicate refuses it) retries it. The caller never sees it.
var errBudgetSpent = errors.New("grpcclient: retry budget spent")

// budgeted wraps the retry interceptor so that every attempt after the first
// of a call draws a token from b, whatever ended the attempt before it; with
// none left the attempt is not sent and the call fails with the error of its
// last attempt. Attempts of one unary call run one after another, so the
// count and the last error need no lock.
func budgeted(retrying grpc.UnaryClientInterceptor, b *Budget) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		attempts := 0
		var last error
		gate := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			attempts++
			if attempts > 1 && !b.Allow() {
				return errBudgetSpent
			}
			last = invoker(ctx, method, req, reply, cc, opts...)
			return last
		}
		err := retrying(ctx, method, req, reply, cc, gate, opts...)
		if errors.Is(err, errBudgetSpent) {
			return last
		}
		return err
	}
}

// DialOptions returns the dial options of the policy (credentials included).
func DialOptions(o Options) ([]grpc.DialOption, error) {
	o.setDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	budget := NewBudget(o.RetryBudget, o.RetryBurst)
	retryable := func(err error) bool {
		return !errors.Is(err, errBudgetSpent) && slices.Contains(o.RetryCodes, status.Code(err))
	}
	retryOpts := []retry.CallOption{
		retry.WithMax(o.MaxAttempts),
		retry.WithPerRetryTimeout(o.PerAttemptTimeout),
		retry.WithBackoff(retry.BackoffExponentialWithJitterBounded(o.BackoffBase, 0.2, o.BackoffMax)),
		retry.WithRetriable(retryable),
	}
	unary := []grpc.UnaryClientInterceptor{
		rpcmeta.UnaryClientRequestID(),
		budgeted(retry.UnaryClientInterceptor(retryOpts...), budget),
		calllog.UnaryClientInterceptor(o.Logger),
	}
	unary = append(unary, o.Unary...)
	stream := []grpc.StreamClientInterceptor{
		rpcmeta.StreamClientRequestID(),
		calllog.StreamClientInterceptor(o.Logger),
	}

	creds := insecure.NewCredentials()
	switch {
	case o.Creds != nil:
		creds = o.Creds
	case o.TLS != nil:
		creds = credentials.NewTLS(o.TLS)
	}
	return []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithChainUnaryInterceptor(unary...),
		grpc.WithChainStreamInterceptor(stream...),
		grpc.WithDisableRetry(),
		grpc.WithStaticStreamWindowSize(int32(o.WindowBytes)),
		grpc.WithStaticConnWindowSize(int32(o.WindowBytes)),
		grpc.WithDefaultCallOptions(
			grpc.WaitForReady(true),
			grpc.MaxCallSendMsgSize(o.MaxCallSendMsgSize),
			grpc.MaxCallRecvMsgSize(o.MaxCallRecvMsgSize),
		),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  o.ReconnectBaseDelay,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   o.ReconnectMaxDelay,
			},
			MinConnectTimeout: 5 * time.Second,
		}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                o.KeepaliveTime,
			Timeout:             10 * time.Second,
			PermitWithoutStream: true,
		}),
	}, nil
}

// Dial creates a client connection to target with the policy. gRPC connects
// lazily: Dial does not wait for the server.
func Dial(target string, o Options, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	opts, err := DialOptions(o)
	if err != nil {
		return nil, err
	}
	return grpc.NewClient(target, append(opts, extra...)...)
}
