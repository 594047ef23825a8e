package app_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/chasqui/chasqui/edge/app"
	"github.com/chasqui/chasqui/edge/client"
	"github.com/chasqui/chasqui/edge/internal/centralproc"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	"github.com/chasqui/chasqui/internal/auth"
	"github.com/chasqui/chasqui/internal/certs/certstest"
	"github.com/chasqui/chasqui/internal/logging/logtest"
	"github.com/chasqui/chasqui/internal/pgtest"
	"github.com/chasqui/chasqui/internal/tlsconfig"
)

// site is a CA with central's and edge certificates in a temporary directory.
type site struct{ *certstest.Site }

func newSite(t *testing.T, edges ...string) *site {
	t.Helper()
	s := &site{certstest.NewSite(t)}
	s.Central(t)
	for _, id := range edges {
		s.Edge(t, "edge-"+id, id)
	}
	return s
}

func (s *site) path(name string) string { return s.Path(name) }

func (s *site) edgeTLS(cfg *app.Config, certID string) {
	cfg.TLSCert, cfg.TLSKey, cfg.TLSCA = s.path("edge-"+certID+".pem"), s.path("edge-"+certID+"-key.pem"), s.path("ca.pem")
}

func (s *site) clientTLS(t *testing.T) *tls.Config {
	t.Helper()
	c, err := tlsconfig.Client(tlsconfig.Files{CA: s.path("ca.pem")})
	require.NoError(t, err)
	return c
}

func startCentralTLS(t *testing.T, s *site) (*centralproc.Central, string) {
	t.Helper()
	dbURL := pgtest.NewDatabase(t, centralTemplate)
	central := centralproc.StartT(t, centralproc.Options{DatabaseURL: dbURL,
		TLSCert: s.path("central.pem"), TLSKey: s.path("central-key.pem"), TLSCA: s.path("ca.pem")})
	return central, dbURL
}

// startApp runs an edge as configured (addresses on loopback :0).
func startApp(t *testing.T, cfg app.Config) *app.App {
	t.Helper()
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	a, err := app.New(cfg, logger)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, a.Close())
	})
	return a
}

// testingT is a *testing.T or an *assert.CollectT: helpers taking it can
// run inside require.EventuallyWithT.
type testingT interface {
	require.TestingT
	Helper()
}

// scrape reads the edge's /metrics; t may be an *assert.CollectT, so a
// scrape can be polled.
func scrape(t testingT, httpAddr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() { // labelled series: summed
			out[name] += m.GetGauge().GetValue() + m.GetCounter().GetValue() + m.GetUntyped().GetValue()
		}
	}
	return out
}

// An edge forwards over mutual TLS as itself; an edge whose certificate
// names another edge is refused by central and nothing is written. The
// edge's metrics show the queue, the forwarder and central's LSN.
func TestMutualTLSToCentralAndMetrics(t *testing.T) {
	t.Parallel()
	s := newSite(t, "site-a")
	central, dbURL := startCentralTLS(t, s)
	ctx := context.Background()

	good := app.Config{EdgeID: "site-a", DataDir: t.TempDir(), CentralAddr: central.GRPCAddr(), AdminToken: "admin-secret"}
	s.edgeTLS(&good, "site-a")
	a := startApp(t, good)
	c, err := client.Dial(ctx, a.GRPCAddr(), client.WithLogger(logger), client.WithTLS(s.clientTLS(t)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	var last string
	for range 5 {
		res, err := c.StartObservation(ctx, observation())
		require.NoError(t, err)
		last = res.GetTransactionId()
	}
	waitState(t, c, last, edgev1.TransactionState_TRANSACTION_STATE_COMMITTED)
	m := scrape(t, a.HTTPAddr())
	for _, name := range []string{
		"chasqui_queue_transactions", "chasqui_queue_bytes", "chasqui_queue_limit_bytes",
		"chasqui_queue_oldest_pending_age_seconds", "chasqui_forwarder_up",
		"chasqui_forwarder_last_success_timestamp_seconds", "chasqui_forwarded_transactions_total",
		"chasqui_dead_letters", "chasqui_dead_letters_total", "chasqui_central_commit_lsn", "chasqui_badger_disk_bytes",
	} {
		require.Contains(t, m, name)
	}
	require.Equal(t, 5.0, m["chasqui_forwarded_transactions_total"])
	require.Equal(t, 1.0, m["chasqui_forwarder_up"])
	require.Positive(t, m["chasqui_central_commit_lsn"])
	require.Positive(t, m["chasqui_badger_disk_bytes"])
	require.Contains(t, m, "grpc_client_started_total", "client RPC metrics")

	// The same certificate, but the edge claims to be site-b: refused.
	bad := app.Config{EdgeID: "site-b", DataDir: t.TempDir(), CentralAddr: central.GRPCAddr(), AdminToken: "admin-secret"}
	s.edgeTLS(&bad, "site-a")
	b := startApp(t, bad)
	cb, err := client.Dial(ctx, b.GRPCAddr(), client.WithLogger(logger), client.WithTLS(s.clientTLS(t)),
		client.WithDialOptions(grpc.WithPerRPCCredentials(auth.BearerToken("admin-secret", true))))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cb.Close() })
	_, err = cb.StartObservation(ctx, observation())
	require.NoError(t, err, "accepted locally")
	var st *edgev1.GetStatusResponse
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		if st, err = cb.Admin().GetStatus(ctx, &edgev1.GetStatusRequest{}); err == nil {
			assert.Equal(ct, "refused", st.GetForwarderState())
		}
	}, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, err)
	require.Contains(t, st.GetForwarderLastError(), "PermissionDenied")
	require.Equal(t, 0.0, scrape(t, b.HTTPAddr())["chasqui_forwarder_up"])
	(&bundleDB{url: dbURL}).requireNoEdge(t, "site-b")
}

// AdminService is not reachable with instrument credentials: on its own
// address, or behind a token; instruments can be held to a token too.
func TestAdminAndInstrumentAccess(t *testing.T) {
	t.Parallel()
	s := newSite(t, "site-a")
	ctx := context.Background()
	cfg := app.Config{EdgeID: "site-a", DataDir: t.TempDir(), AdminAddr: "127.0.0.1:0", InstrumentToken: "instr-secret"}
	s.edgeTLS(&cfg, "site-a")
	a := startApp(t, cfg)
	creds := grpc.WithTransportCredentials(credentials.NewTLS(s.clientTLS(t)))
	conn, err := grpc.NewClient(a.GRPCAddr(), creds)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })

	// Health is open; Submit needs the instrument token.
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	_, err = edgev1.NewEdgeServiceClient(conn).GetTransaction(ctx, &edgev1.GetTransactionRequest{TransactionId: client.NewID()})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	tok, err := grpc.NewClient(a.GRPCAddr(), creds, grpc.WithPerRPCCredentials(auth.BearerToken("instr-secret", true)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = tok.Close() })
	_, err = edgev1.NewEdgeServiceClient(tok).GetTransaction(ctx, &edgev1.GetTransactionRequest{TransactionId: client.NewID()})
	require.Equal(t, codes.NotFound, status.Code(err), "%v", err)

	// The admin service is not on the instrument address at all...
	_, err = edgev1.NewAdminServiceClient(tok).GetStatus(ctx, &edgev1.GetStatusRequest{})
	require.Equal(t, codes.Unimplemented, status.Code(err), "%v", err)
	// ...but on its own.
	adm, err := grpc.NewClient(a.AdminAddr(), creds)
	require.NoError(t, err)
	t.Cleanup(func() { _ = adm.Close() })
	st, err := edgev1.NewAdminServiceClient(adm).GetStatus(ctx, &edgev1.GetStatusRequest{})
	require.NoError(t, err)
	require.Equal(t, "site-a", st.GetEdgeId())
}

func TestInsecureOnlyOnLoopback(t *testing.T) {
	t.Parallel()
	base := app.Config{EdgeID: "e", DataDir: "/x", Insecure: true, GRPCAddr: "127.0.0.1:7444"}
	require.NoError(t, base.Validate())
	for _, mod := range []func(*app.Config){
		func(c *app.Config) { c.GRPCAddr = ":7444" },
		func(c *app.Config) { c.CentralAddr = "central.example.org:7443" },
		func(c *app.Config) { c.AdminAddr = "0.0.0.0:7445" },
	} {
		c := base
		mod(&c)
		require.ErrorContains(t, c.Validate(), "loopback")
		c.AllowInsecureRemote = true
		require.NoError(t, c.Validate())
	}
	// With TLS the admin service needs its own address or a token.
	tlsCfg := app.Config{EdgeID: "e", DataDir: "/x", TLSCert: "c", TLSKey: "k"}
	require.ErrorContains(t, tlsCfg.Validate(), "AdminToken")
	tlsCfg.AdminAddr = "127.0.0.1:7445"
	require.NoError(t, tlsCfg.Validate())
}

// While central is unreachable the metrics show the queue growing; tokens
// never reach the log.
func TestMetricsWhileCentralDownAndNoSecretsInLogs(t *testing.T) {
	t.Parallel()
	s := newSite(t, "site-a")
	var logs logtest.Buffer
	cfg := app.Config{EdgeID: "site-a", DataDir: t.TempDir(), CentralAddr: closedAddr(t),
		AdminToken: "admin-s3cret-token", InstrumentToken: "instr-s3cret-token",
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}
	s.edgeTLS(&cfg, "site-a")
	a, err := app.New(cfg, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done); require.NoError(t, a.Close()) })

	c, err := client.Dial(ctx, a.GRPCAddr(), client.WithLogger(logger), client.WithTLS(s.clientTLS(t)),
		client.WithDialOptions(grpc.WithPerRPCCredentials(auth.BearerToken("instr-s3cret-token", true))))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	prev := 0.0
	for i := 1; i <= 3; i++ {
		_, err := c.StartObservation(ctx, observation())
		require.NoError(t, err)
		m := scrape(t, a.HTTPAddr())
		require.Equal(t, float64(i), m["chasqui_queue_transactions"], "the queue grows")
		require.Equal(t, float64(i), m["chasqui_accepted_transactions_total"])
		require.Equal(t, float64(i), m["chasqui_queue_append_groups_total"], "one call at a time: a group each")
		require.Greater(t, m["chasqui_queue_bytes"], prev)
		prev = m["chasqui_queue_bytes"]
	}
	// (The forwarder keeps its batch in flight through its attempts, ~30 s,
	// before it reports backoff and chasqui_forwarder_up drops to 0; the
	// refused case in TestMutualTLSToCentralAndMetrics shows the 0.)
	require.Greater(t, scrape(t, a.HTTPAddr())["chasqui_queue_oldest_pending_age_seconds"], 0.0)
	// A refused admin call, then look at everything logged.
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(s.clientTLS(t))),
		grpc.WithPerRPCCredentials(auth.BearerToken("wrong-token", true)))
	require.NoError(t, err)
	defer conn.Close()
	_, err = edgev1.NewAdminServiceClient(conn).GetStatus(ctx, &edgev1.GetStatusRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err))
	require.NotContains(t, err.Error(), "s3cret")
	require.NotContains(t, logs.String(), "s3cret")
	require.NotContains(t, logs.String(), "PRIVATE KEY")
}
