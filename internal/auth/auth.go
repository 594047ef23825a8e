// Package auth owns who may call what (docs/design.md, "Guarantees" 11): the identity
// interceptors for the unary and the stream chains of a gRPC server.
//
// Edge identity (central): the TLS layer verifies a client certificate
// when one is given (tls.VerifyClientCertIfGiven, see tlsconfig.Options)
// and the interceptor decides per method. Methods of the open services
// (gRPC health and server reflection by default) need no certificate, so
// probes and `grpcurl list` work; every other method needs a certificate
// verified against the site CA (UNAUTHENTICATED otherwise) that names an
// edge (certs.EdgeID: the URI SAN chasqui://edge/<id>, else the common
// name). A request carrying an edge_id field (Commit, GetCursor) must name
// the caller's own edge, or it is refused with PERMISSION_DENIED before
// the handler runs, so nothing is written. On streams every received
// message is checked.
//
// Tokens (edge): TokenInterceptors demand "authorization: Bearer <token>"
// on the methods they are given; the token is compared in constant time
// and never logged or echoed.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	"github.com/chasqui/chasqui/internal/certs"
)

// DefaultOpenServices are callable without a client certificate: gRPC
// health (probes, load balancers) and server reflection (grpcurl list).
// Neither reveals data nor writes.
var DefaultOpenServices = []string{
	healthpb.Health_ServiceDesc.ServiceName,
	reflectionv1.ServerReflection_ServiceDesc.ServiceName,
	reflectionv1alpha.ServerReflection_ServiceDesc.ServiceName,
}

// EdgeOptions configure EdgeInterceptors.
type EdgeOptions struct {
	// OpenServices are full service names callable without a certificate.
	// Nil means DefaultOpenServices; an empty, non-nil slice closes all.
	OpenServices []string
}

type edgeKey struct{}

// EdgeFromContext returns the authenticated edge id of the call, when the
// edge interceptor authenticated one.
func EdgeFromContext(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(edgeKey{}).(string)
	return id, ok
}

// ErrWrongEdge is returned (wrapped) by CheckEdge when the caller is not
// the edge it claims to be.
var ErrWrongEdge = errors.New("caller is not this edge")

// CheckEdge reports whether the authenticated caller of ctx may act as
// edgeID. A call without an authenticated edge is refused: use it only on
// servers that run EdgeInterceptors.
func CheckEdge(ctx context.Context, edgeID string) error {
	id, ok := EdgeFromContext(ctx)
	if !ok || id != edgeID {
		return ErrWrongEdge
	}
	return nil
}

// EdgeInterceptors return the edge-identity interceptors for the unary and
// the stream chains. Install both: a stream method left unchecked would be
// an open door.
func EdgeInterceptors(o EdgeOptions) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	open := o.OpenServices
	if open == nil {
		open = DefaultOpenServices
	}
	isOpen := func(fullMethod string) bool {
		svc := serviceOf(fullMethod)
		for _, s := range open {
			if s == svc {
				return true
			}
		}
		return false
	}
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if isOpen(info.FullMethod) {
			return handler(ctx, req)
		}
		id, err := peerEdge(ctx)
		if err != nil {
			return nil, err
		}
		if err := checkMessage(id, req); err != nil {
			return nil, err
		}
		return handler(context.WithValue(ctx, edgeKey{}, id), req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if isOpen(info.FullMethod) {
			return handler(srv, ss)
		}
		id, err := peerEdge(ss.Context())
		if err != nil {
			return err
		}
		return handler(srv, &edgeStream{ServerStream: ss, id: id, ctx: context.WithValue(ss.Context(), edgeKey{}, id)})
	}
	return unary, stream
}

func serviceOf(fullMethod string) string {
	s := strings.TrimPrefix(fullMethod, "/")
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[:i]
	}
	return s
}

// peerEdge is the edge named by the call's verified client certificate.
func peerEdge(ctx context.Context) (string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", status.Error(codes.Unauthenticated, "no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return "", status.Error(codes.Unauthenticated, "a client certificate signed by the site CA is required")
	}
	id, err := certs.EdgeID(ti.State.VerifiedChains[0][0])
	if err != nil {
		return "", status.Error(codes.PermissionDenied, "the client certificate names no edge")
	}
	return id, nil
}

type edgeIDer interface{ GetEdgeId() string }

// checkMessage refuses a message naming another edge. An empty edge_id is
// left to the handler's validation (INVALID_ARGUMENT).
func checkMessage(id string, m any) error {
	if e, ok := m.(edgeIDer); ok && e.GetEdgeId() != "" && e.GetEdgeId() != id {
		// Neither id is secret, but the message stays generic: the caller
		// knows what it sent and the server's log has the request id.
		return status.Error(codes.PermissionDenied, "this certificate may not act for that edge_id")
	}
	return nil
}

type edgeStream struct {
	grpc.ServerStream
	id  string
	ctx context.Context
}

func (s *edgeStream) Context() context.Context { return s.ctx }

func (s *edgeStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return checkMessage(s.id, m)
}

// TokenInterceptors demand "authorization: Bearer <token>" on the methods
// for which protect(fullMethod) is true; other methods pass. A wrong or
// missing token is UNAUTHENTICATED.
func TokenInterceptors(token string, protect func(fullMethod string) bool) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	// Comparing digests keeps the comparison constant-time whatever the lengths.
	want := sha256.Sum256([]byte(token))
	return guard(protect, func(ctx context.Context) error {
		md, _ := metadata.FromIncomingContext(ctx)
		for _, v := range md.Get("authorization") {
			got, ok := strings.CutPrefix(v, "Bearer ")
			if !ok {
				continue
			}
			sum := sha256.Sum256([]byte(got))
			if subtle.ConstantTimeCompare(sum[:], want[:]) == 1 {
				return nil
			}
		}
		return status.Error(codes.Unauthenticated, "a valid bearer token is required")
	})
}

// BearerToken returns per-RPC credentials sending token as a bearer token.
// requireTLS refuses to send it over plaintext (set it unless the link is
// loopback).
func BearerToken(token string, requireTLS bool) credentials.PerRPCCredentials {
	return bearer{token: token, tls: requireTLS}
}

type bearer struct {
	token string
	tls   bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.tls }

// String keeps the token out of logs that print the credentials.
func (b bearer) String() string { return "bearer(redacted)" }

// CertInterceptors demand a client certificate verified by the server's
// CA (tls.VerifyClientCertIfGiven at the TLS layer) on the methods for
// which protect(fullMethod) is true: UNAUTHENTICATED otherwise. Used by the
// edge to require instrument certificates while health stays open.
func CertInterceptors(protect func(fullMethod string) bool) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	return guard(protect, func(ctx context.Context) error {
		p, ok := peer.FromContext(ctx)
		if !ok {
			return status.Error(codes.Unauthenticated, "no peer")
		}
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
			return nil
		}
		return status.Error(codes.Unauthenticated, "a client certificate signed by the site CA is required")
	})
}

// guard runs check before the methods protect names, on the unary and the
// stream chain alike.
func guard(protect func(fullMethod string) bool, check func(context.Context) error) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if protect(info.FullMethod) {
			if err := check(ctx); err != nil {
				return nil, err
			}
		}
		return handler(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if protect(info.FullMethod) {
			if err := check(ss.Context()); err != nil {
				return err
			}
		}
		return handler(srv, ss)
	}
	return unary, stream
}

// Service returns a protect function matching the methods of the named
// services.
func Service(names ...string) func(fullMethod string) bool {
	return func(fullMethod string) bool {
		svc := serviceOf(fullMethod)
		for _, n := range names {
			if n == svc {
				return true
			}
		}
		return false
	}
}
