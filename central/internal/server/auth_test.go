package server_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"

	"github.com/chasqui/chasqui/central/internal/server"
	"github.com/chasqui/chasqui/internal/certs"
	"github.com/chasqui/chasqui/internal/certs/certstest"
	"github.com/chasqui/chasqui/internal/fixture"
	"github.com/chasqui/chasqui/internal/pgtest"
	"github.com/chasqui/chasqui/internal/tlsconfig"
)

// site is a CA with central's certificate, in a temporary directory.
type site struct{ *certstest.Site }

func newSite(t *testing.T) *site {
	t.Helper()
	s := &site{certstest.NewSite(t)}
	s.Central(t)
	return s
}

func (s *site) path(name string) string { return s.Path(name) }

// dial connects to central presenting edge id's certificate, valid from
// now for validity ("" id: no client certificate).
func (s *site) dial(t *testing.T, addr, id string, now time.Time, validity time.Duration) *grpc.ClientConn {
	t.Helper()
	files := tlsconfig.Files{CA: s.path("ca.pem")}
	if id != "" {
		p, _, err := s.CA.IssueEdge(id, nil, validity, now)
		require.NoError(t, err)
		_, _, err = certs.WritePair(s.Dir, "edge-"+id, p, true)
		require.NoError(t, err)
		files.Cert, files.Key = s.path("edge-"+id+".pem"), s.path("edge-"+id+"-key.pem")
	}
	cfg, err := tlsconfig.Client(files)
	require.NoError(t, err)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func startTLS(t *testing.T, s *site, dbURL string) *server.Server {
	t.Helper()
	cfg := server.Config{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DatabaseURL: dbURL,
		TLSCert: s.path("central.pem"), TLSKey: s.path("central-key.pem"), TLSCA: s.path("ca.pem"),
		GapWait: 100 * time.Millisecond, HealthInterval: 20 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, srv.Close())
	})
	return srv
}

func TestMutualTLSIdentity(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	dbURL := pgtest.NewDatabase(t, template)
	srv := startTLS(t, s, dbURL)
	b := &bundle{dbURL: dbURL}
	ctx := context.Background()
	now := time.Now()

	// Edge A writing as edge B: PERMISSION_DENIED, nothing written.
	a := centralv1.NewIngestServiceClient(s.dial(t, srv.GRPCAddr(), "site-a", now, time.Hour))
	_, err := a.Commit(ctx, fixture.Request("site-b", "e1", 1, fixture.ObservationTxs(3)...))
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	_, err = a.GetCursor(ctx, &centralv1.GetCursorRequest{EdgeId: "site-b"})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	require.Equal(t, 0, b.count(t, "observations"))
	require.Equal(t, 0, b.count(t, "edge_cursors"))

	// No client certificate: Commit is UNAUTHENTICATED, health stays open.
	anon := s.dial(t, srv.GRPCAddr(), "", now, 0)
	_, err = centralv1.NewIngestServiceClient(anon).Commit(ctx, fixture.Request("site-a", "e1", 1, fixture.ObservationTxs(3)...))
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	hc, err := healthpb.NewHealthClient(anon).Check(ctx, &healthpb.HealthCheckRequest{Service: centralv1.IngestService_ServiceDesc.ServiceName})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, hc.GetStatus())

	// An expired certificate fails the handshake.
	expired := centralv1.NewIngestServiceClient(s.dial(t, srv.GRPCAddr(), "site-a", now.Add(-2*time.Hour), time.Hour))
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = expired.Commit(cctx, fixture.Request("site-a", "e1", 1, fixture.ObservationTxs(3)...))
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)

	// A plaintext client against the TLS central gets nowhere.
	plain, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer plain.Close()
	_, err = centralv1.NewIngestServiceClient(plain).Commit(cctx, fixture.Request("site-a", "e1", 1, fixture.ObservationTxs(3)...))
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.Equal(t, 0, b.count(t, "observations"))

	// Edge A as itself: committed.
	res, err := a.Commit(ctx, fixture.Request("site-a", "e1", 1, fixture.ObservationTxs(3)...))
	require.NoError(t, err)
	require.Equal(t, uint64(3), res.GetCommittedThroughSeq())
	require.Equal(t, 3, b.count(t, "observations"))

	// Metrics: the named series, scraped over HTTP and parsed.
	fams := scrape(t, srv.HTTPAddr())
	require.Equal(t, 1.0, value(t, fams, "chasqui_central_postgres_up"))
	require.Equal(t, 3.0, value(t, fams, "chasqui_central_committed_transactions_total"))
	require.Equal(t, 0.0, value(t, fams, "chasqui_central_rejected_transactions_total"))
	var denied float64
	for _, m := range fams["grpc_server_handled_total"].GetMetric() {
		l := labels(m.GetLabel())
		if l["grpc_method"] == "Commit" && l["grpc_code"] == "PermissionDenied" {
			denied = m.GetCounter().GetValue()
		}
	}
	require.Equal(t, 1.0, denied, "RPC metrics count the refusal")
}

func TestCertificateRotationWithoutRestart(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	srv := startTLS(t, s, pgtest.NewDatabase(t, template))
	serial := func() string {
		cfg, err := tlsconfig.Client(tlsconfig.Files{CA: s.path("ca.pem")})
		require.NoError(t, err)
		cfg.ServerName = "127.0.0.1"
		c, err := tls.Dial("tcp", srv.GRPCAddr(), cfg)
		require.NoError(t, err)
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	cp, cert, err := s.CA.IssueCentral([]string{"127.0.0.1"}, time.Hour, time.Now())
	require.NoError(t, err)
	_, _, err = certs.WritePair(s.Dir, "central", cp, true)
	require.NoError(t, err)
	after := serial()
	require.NotEqual(t, before, after)
	require.Equal(t, cert.SerialNumber.String(), after, "new connections see the new certificate")
}

func scrape(t *testing.T, addr string) map[string]*dtoFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	return fams
}

func value(t *testing.T, fams map[string]*dtoFamily, name string) float64 {
	t.Helper()
	f, ok := fams[name]
	require.True(t, ok, "series %s missing", name)
	require.Len(t, f.GetMetric(), 1, name)
	m := f.GetMetric()[0]
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}
