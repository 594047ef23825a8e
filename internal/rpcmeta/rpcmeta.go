// Package rpcmeta owns what travels beside every gRPC call: the request id
// (x-request-id, set once per logical call so all its retry attempts share
// it) and the attempt number (x-retry-attempt, set by the retry interceptor
// from the second attempt on). internal/calllog puts both in every call's
// log line.
package rpcmeta

import (
	"context"
	"strconv"

	"github.com/google/uuid"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/retry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// RequestIDKey is the metadata key of the request id.
const RequestIDKey = "x-request-id"

// Attempt is the 1-based attempt number of a call: the retry interceptor's
// x-retry-attempt header counts retries (absent on the first attempt).
// It reads outgoing metadata on the client and incoming on the server.
func Attempt(ctx context.Context, incoming bool) int {
	if v := values(ctx, incoming, retry.AttemptMetadataKey); len(v) > 0 {
		if n, err := strconv.Atoi(v[0]); err == nil && n >= 0 {
			return n + 1
		}
	}
	return 1
}

// RequestID returns the call's request id, or "" when it has none.
func RequestID(ctx context.Context, incoming bool) string {
	if v := values(ctx, incoming, RequestIDKey); len(v) > 0 {
		return v[0]
	}
	return ""
}

// values reads one key without From*Context, which copy all metadata: this
// runs several times per call on the accept path and in the call logger.
func values(ctx context.Context, incoming bool, key string) []string {
	if incoming {
		return metadata.ValueFromIncomingContext(ctx, key)
	}
	return metadata.ValueFromOutgoingContext(ctx, key)
}

// UnaryClientRequestID gives every outgoing call a request id unless the
// caller set one. It must sit outside the retry interceptor so that all
// attempts of one call carry the same id.
func UnaryClientRequestID() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(withRequestID(ctx), method, req, reply, cc, opts...)
	}
}

// StreamClientRequestID is UnaryClientRequestID for streams.
func StreamClientRequestID() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(withRequestID(ctx), desc, cc, method, opts...)
	}
}

func withRequestID(ctx context.Context) context.Context {
	if RequestID(ctx, false) != "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, RequestIDKey, uuid.NewString())
}

// UnaryServerRequestID makes sure every incoming call has a request id (one
// is made up when the client sent none) and returns it in the response
// header, so an operator can match a client's error to the server's log.
func UnaryServerRequestID() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx = serverRequestID(ctx)
		return handler(ctx, req)
	}
}

// StreamServerRequestID is UnaryServerRequestID for streams.
func StreamServerRequestID() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &ctxStream{ServerStream: ss, ctx: serverRequestID(ss.Context())})
	}
}

func serverRequestID(ctx context.Context) context.Context {
	id := RequestID(ctx, true)
	if id == "" {
		id = uuid.NewString()
		md, _ := metadata.FromIncomingContext(ctx)
		md = md.Copy()
		md.Set(RequestIDKey, id)
		ctx = metadata.NewIncomingContext(ctx, md)
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs(RequestIDKey, id))
	return ctx
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }
