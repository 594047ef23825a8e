// Package calllog writes one structured log line per finished gRPC call, on
// the server and on the client, and builds that line only when the logger
// will write it.
//
// The level comes from the outcome: a successful first attempt is DEBUG
// (one INFO line per Submit filled a site host's disk: 33 MB for 74k
// calls), failures follow go-grpc-middleware's tables (WARN and ERROR for
// what an operator must see), and any retry (attempt > 1) is at least
// INFO. The level is known only once the call has ended, so the call is
// timed and then logger.Enabled decides: a line that will not be written
// costs no fields, no metadata copy and no allocation. go-grpc-middleware's
// logging interceptor builds its fields (peer, times, context fields)
// before the call whatever the level, which cost the accept path 5-10 µs
// per call at WARN; its field names are kept, so log queries still work.
package calllog

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/chasqui/chasqui/internal/rpcmeta"
)

// Message is the message of every call line.
const Message = "finished call"

// ServerLevel is the level of a served call's line: go-grpc-middleware's
// server table with success lowered to DEBUG, and retries (attempt > 1)
// raised to at least INFO.
func ServerLevel(code codes.Code, attempt int) slog.Level {
	l := slog.Level(logging.DefaultServerCodeToLevel(code))
	if code == codes.OK {
		l = slog.LevelDebug
	}
	return atLeastInfoOnRetry(l, attempt)
}

// ClientLevel is the level of a client call's line: go-grpc-middleware's
// client table (success and caller mistakes at DEBUG, lost links at WARN),
// with retries raised to at least INFO.
func ClientLevel(code codes.Code, attempt int) slog.Level {
	return atLeastInfoOnRetry(slog.Level(logging.DefaultClientCodeToLevel(code)), attempt)
}

func atLeastInfoOnRetry(l slog.Level, attempt int) slog.Level {
	if attempt > 1 && l < slog.LevelInfo {
		return slog.LevelInfo
	}
	return l
}

// UnaryServerInterceptor logs each finished unary call, and counts it in
// sum (nil: not counted).
func UnaryServerInterceptor(logger *slog.Logger, sum *Summary) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		logServer(ctx, logger, sum, info.FullMethod, nil, start, err)
		return resp, err
	}
}

// StreamServerInterceptor logs each finished stream, and counts it in sum
// (nil: not counted).
func StreamServerInterceptor(logger *slog.Logger, sum *Summary) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		logServer(ss.Context(), logger, sum, info.FullMethod, info, start, err)
		return err
	}
}

func logServer(ctx context.Context, logger *slog.Logger, sum *Summary, method string, stream *grpc.StreamServerInfo, start time.Time, err error) {
	code := status.Code(err)
	sum.add(method, code != codes.OK)
	if !enabled(ctx, logger, code, true, ServerLevel) {
		return
	}
	attempt := rpcmeta.Attempt(ctx, true)
	attrs := common(interceptors.NewServerCallMeta(method, stream, nil), logging.KindServerFieldValue)
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		attrs = append(attrs, slog.String("peer.address", p.Addr.String()))
	}
	attrs = finish(ctx, attrs, start, code, err, true, attempt)
	logger.LogAttrs(ctx, ServerLevel(code, attempt), Message, attrs...)
}

// UnaryClientInterceptor logs each finished attempt. Inside the retry
// interceptor it sees every attempt, with its number.
func UnaryClientInterceptor(logger *slog.Logger) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		start := time.Now()
		err := invoker(ctx, method, req, reply, cc, opts...)
		logClient(ctx, logger, method, nil, start, err)
		return err
	}
}

// StreamClientInterceptor logs each client stream when it ends: a failed
// open, or the first error or end of the server's messages.
func StreamClientInterceptor(logger *slog.Logger) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		start := time.Now()
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			logClient(ctx, logger, method, desc, start, err)
			return nil, err
		}
		return &clientStream{ClientStream: cs, ctx: ctx, logger: logger, method: method, desc: desc, start: start}, nil
	}
}

type clientStream struct {
	grpc.ClientStream
	ctx    context.Context
	logger *slog.Logger
	method string
	desc   *grpc.StreamDesc
	start  time.Time
	ended  bool
}

func (s *clientStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if s.ended || (err == nil && s.desc.ServerStreams) {
		return err
	}
	s.ended = true
	end := err
	if errors.Is(end, io.EOF) {
		end = nil
	}
	logClient(s.ctx, s.logger, s.method, s.desc, s.start, end)
	return err
}

func logClient(ctx context.Context, logger *slog.Logger, method string, desc *grpc.StreamDesc, start time.Time, err error) {
	code := status.Code(err)
	if !enabled(ctx, logger, code, false, ClientLevel) {
		return
	}
	attempt := rpcmeta.Attempt(ctx, false)
	attrs := common(interceptors.NewClientCallMeta(method, desc, nil), logging.KindClientFieldValue)
	attrs = finish(ctx, attrs, start, code, err, false, attempt)
	logger.LogAttrs(ctx, ClientLevel(code, attempt), Message, attrs...)
}

// enabled says whether the call's line would be written. The attempt
// (a metadata lookup) is read only when the outcome's own level is off:
// a retry may raise it.
func enabled(ctx context.Context, logger *slog.Logger, code codes.Code, incoming bool, level func(codes.Code, int) slog.Level) bool {
	if logger.Enabled(ctx, level(code, 1)) {
		return true
	}
	if !logger.Enabled(ctx, level(code, 2)) {
		return false // not even as a retry
	}
	return rpcmeta.Attempt(ctx, incoming) > 1
}

func common(c interceptors.CallMeta, kind string) []slog.Attr {
	return append(make([]slog.Attr, 0, 14),
		slog.String(logging.SystemTag[0], logging.SystemTag[1]),
		slog.String(logging.ComponentFieldKey, kind),
		slog.String(logging.ServiceFieldKey, c.Service),
		slog.String(logging.MethodFieldKey, c.Method),
		slog.String(logging.MethodTypeFieldKey, string(c.Typ)),
	)
}

func finish(ctx context.Context, attrs []slog.Attr, start time.Time, code codes.Code, err error, incoming bool, attempt int) []slog.Attr {
	attrs = append(attrs,
		slog.String("request_id", rpcmeta.RequestID(ctx, incoming)),
		slog.Int("attempt", attempt),
		slog.String("grpc.start_time", start.Format(time.RFC3339)),
	)
	if d, ok := ctx.Deadline(); ok {
		attrs = append(attrs, slog.String("grpc.request.deadline", d.Format(time.RFC3339)))
	}
	attrs = append(attrs, slog.String("grpc.code", code.String()))
	if err != nil {
		attrs = append(attrs, slog.String("grpc.error", err.Error()))
	}
	return append(attrs, slog.Float64("grpc.time_ms", float64(time.Since(start).Microseconds())/1000))
}
