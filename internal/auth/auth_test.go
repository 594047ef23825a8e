package auth_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"

	"github.com/chasqui/chasqui/internal/auth"
	"github.com/chasqui/chasqui/internal/certs"
	"github.com/chasqui/chasqui/internal/grpcserver"
	"github.com/chasqui/chasqui/internal/tlsconfig"
)

// ingest counts calls that reached the handler: a refused call never does.
type ingest struct {
	centralv1.UnimplementedIngestServiceServer
	calls atomic.Int64
}

func (s *ingest) GetCursor(ctx context.Context, req *centralv1.GetCursorRequest) (*centralv1.GetCursorResponse, error) {
	s.calls.Add(1)
	id, _ := auth.EdgeFromContext(ctx)
	return &centralv1.GetCursorResponse{EdgeId: id}, nil
}

type fixture struct {
	dir  string
	ca   *certs.CA
	addr string
	svc  *ingest
}

func setup(t *testing.T, opts auth.EdgeOptions) *fixture {
	t.Helper()
	ca, p, err := certs.NewCA("ca", time.Hour, time.Now())
	require.NoError(t, err)
	f := &fixture{dir: t.TempDir(), ca: ca, svc: &ingest{}}
	_, _, err = certs.WritePair(f.dir, "ca", p, false)
	require.NoError(t, err)
	sp, _, err := ca.IssueCentral([]string{"127.0.0.1"}, time.Hour, time.Now())
	require.NoError(t, err)
	_, _, err = certs.WritePair(f.dir, "central", sp, false)
	require.NoError(t, err)
	srvTLS, err := tlsconfig.Server(f.files("central"), tlsconfig.Options{OptionalClientCert: true})
	require.NoError(t, err)
	u, s := auth.EdgeInterceptors(opts)
	srv := grpcserver.New(grpcserver.Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), TLS: srvTLS,
		Unary: []grpc.UnaryServerInterceptor{u}, Stream: []grpc.StreamServerInterceptor{s},
	})
	centralv1.RegisterIngestServiceServer(srv.Server, f.svc)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f.addr = lis.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis, time.Second) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	return f
}

func (f *fixture) files(name string) tlsconfig.Files {
	return tlsconfig.Files{Cert: filepath.Join(f.dir, name+".pem"), Key: filepath.Join(f.dir, name+"-key.pem"), CA: filepath.Join(f.dir, "ca.pem")}
}

// dial connects with the certificate name (an edge cert issued for id), or
// without any certificate when name is "".
func (f *fixture) dial(t *testing.T, name, id string) *grpc.ClientConn {
	t.Helper()
	files := tlsconfig.Files{CA: filepath.Join(f.dir, "ca.pem")}
	if name != "" {
		p, _, err := f.ca.IssueEdge(id, nil, time.Hour, time.Now())
		require.NoError(t, err)
		_, _, err = certs.WritePair(f.dir, name, p, true)
		require.NoError(t, err)
		files = f.files(name)
	}
	cfg, err := tlsconfig.Client(files)
	require.NoError(t, err)
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func TestEdgeIdentity(t *testing.T) {
	t.Parallel()
	f := setup(t, auth.EdgeOptions{})
	ctx := context.Background()

	// Edge A acting as itself: allowed, and the handler sees the identity.
	a := centralv1.NewIngestServiceClient(f.dial(t, "edge-a", "site-a"))
	res, err := a.GetCursor(ctx, &centralv1.GetCursorRequest{EdgeId: "site-a"})
	require.NoError(t, err)
	require.Equal(t, "site-a", res.GetEdgeId())
	require.EqualValues(t, 1, f.svc.calls.Load())

	// Edge A acting as edge B: PERMISSION_DENIED before the handler.
	_, err = a.GetCursor(ctx, &centralv1.GetCursorRequest{EdgeId: "site-b"})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	_, err = a.Commit(ctx, &centralv1.CommitRequest{EdgeId: "site-b"})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	require.EqualValues(t, 1, f.svc.calls.Load())

	// No certificate: health and reflection are open, the rest is not.
	anon := f.dial(t, "", "")
	hc, err := healthpb.NewHealthClient(anon).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, hc.GetStatus())
	rs, err := reflectionv1.NewServerReflectionClient(anon).ServerReflectionInfo(ctx)
	require.NoError(t, err)
	require.NoError(t, rs.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}}))
	lr, err := rs.Recv()
	require.NoError(t, err)
	require.NotEmpty(t, lr.GetListServicesResponse().GetService())
	_, err = centralv1.NewIngestServiceClient(anon).Commit(ctx, &centralv1.CommitRequest{EdgeId: "site-a"})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	require.EqualValues(t, 1, f.svc.calls.Load())

	// A certificate from another CA fails the handshake.
	_, op, err := certs.NewCA("other", time.Hour, time.Now())
	require.NoError(t, err)
	other, err := certs.LoadCAFromPEM(op)
	require.NoError(t, err)
	p, _, err := other.IssueEdge("site-a", nil, time.Hour, time.Now())
	require.NoError(t, err)
	cert, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	require.NoError(t, err)
	// A client that offers it only when the server's CA list matches (Go's
	// Certificates) sends none: UNAUTHENTICATED.
	cfg, err := tlsconfig.Client(tlsconfig.Files{CA: filepath.Join(f.dir, "ca.pem")})
	require.NoError(t, err)
	cfg.Certificates = []tls.Certificate{cert}
	// A client that sends it anyway (GetClientCertificate, as tlsconfig
	// does) fails the handshake: UNAVAILABLE, the call never reaches gRPC.
	forced := cfg.Clone()
	forced.Certificates = nil
	forced.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	for want, c := range map[codes.Code]*tls.Config{codes.Unauthenticated: cfg, codes.Unavailable: forced} {
		conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(credentials.NewTLS(c)))
		require.NoError(t, err)
		_, err = centralv1.NewIngestServiceClient(conn).GetCursor(ctx, &centralv1.GetCursorRequest{EdgeId: "site-a"})
		_ = conn.Close()
		require.Equal(t, want, status.Code(err), "%v", err)
	}
	require.EqualValues(t, 1, f.svc.calls.Load())
}

func TestTokenInterceptors(t *testing.T) {
	t.Parallel()
	u, _ := auth.TokenInterceptors("s3cret", func(m string) bool { return m == "/x/Protected" })
	h := func(context.Context, any) (any, error) { return "ok", nil }
	call := func(method string, creds credentials.PerRPCCredentials) error {
		ctx := context.Background()
		if creds != nil {
			md, _ := creds.GetRequestMetadata(ctx)
			ctx = metadataIncoming(ctx, md)
		}
		_, err := u(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, h)
		return err
	}
	require.NoError(t, call("/x/Open", nil))
	require.Equal(t, codes.Unauthenticated, status.Code(call("/x/Protected", nil)))
	require.Equal(t, codes.Unauthenticated, status.Code(call("/x/Protected", auth.BearerToken("wrong", false))))
	err := call("/x/Protected", auth.BearerToken("wrong", false))
	require.NotContains(t, err.Error(), "s3cret")
	require.NoError(t, call("/x/Protected", auth.BearerToken("s3cret", false)))
}

func TestClosedReflectionOnTheStreamChain(t *testing.T) {
	t.Parallel()
	f := setup(t, auth.EdgeOptions{OpenServices: []string{healthpb.Health_ServiceDesc.ServiceName}})
	ctx := context.Background()
	list := func(conn *grpc.ClientConn) error {
		rs, err := reflectionv1.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
		if err != nil {
			return err
		}
		if err := rs.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}}); err != nil {
			return err
		}
		_, err = rs.Recv()
		return err
	}
	require.Equal(t, codes.Unauthenticated, status.Code(list(f.dial(t, "", ""))))
	require.NoError(t, list(f.dial(t, "edge-a", "site-a")))
	_, err := healthpb.NewHealthClient(f.dial(t, "", "")).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
}

func TestCertInterceptors(t *testing.T) {
	t.Parallel()
	u, _ := auth.CertInterceptors(auth.Service("chasqui.edge.v1.EdgeService"))
	h := func(context.Context, any) (any, error) { return "ok", nil }
	call := func(ctx context.Context, method string) error {
		_, err := u(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, h)
		return err
	}
	noCert := peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{}})
	withCert := peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{
		State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{}}}}}})
	require.NoError(t, call(noCert, "/grpc.health.v1.Health/Check"))
	require.Equal(t, codes.Unauthenticated, status.Code(call(noCert, "/chasqui.edge.v1.EdgeService/Submit")))
	require.Equal(t, codes.Unauthenticated, status.Code(call(context.Background(), "/chasqui.edge.v1.EdgeService/Submit")))
	require.NoError(t, call(withCert, "/chasqui.edge.v1.EdgeService/Submit"))
}
