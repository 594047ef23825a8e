package app_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/chasqui/chasqui/edge/app"
	"github.com/chasqui/chasqui/edge/internal/centralproc"
	"github.com/chasqui/chasqui/internal/logging/logtest"
	"github.com/chasqui/chasqui/internal/pgtest"
)

// runCentralTLS runs central with mutual TLS on addr (a port just released
// by a stopped central may take a moment to bind again) over dbURL, until
// the returned stop or the test's end.
func runCentralTLS(t *testing.T, s *site, addr, dbURL string) (string, func()) {
	t.Helper()
	opts := centralproc.Options{DatabaseURL: dbURL, GRPCAddr: addr,
		TLSCert: s.path("central.pem"), TLSKey: s.path("central-key.pem"), TLSCA: s.path("ca.pem")}
	var central *centralproc.Central
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		central, err = centralproc.Start(context.Background(), opts)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // poll interval while the port is released
	}
	require.NoError(t, err)
	stop := func() { require.NoError(t, central.Stop()) }
	t.Cleanup(stop)
	return central.GRPCAddr(), stop
}

// waitMetric scrapes the edge until name has the value want (absent
// counts as no value).
func waitMetric(t *testing.T, httpAddr, name string, want float64, what string) map[string]float64 {
	t.Helper()
	var m map[string]float64
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		m = scrape(ct, httpAddr)
		v, ok := m[name]
		assert.True(ct, ok && v == want, "%s: %s is %v (present %t), want %v", what, name, v, ok, want)
	}, 20*time.Second, 10*time.Millisecond)
	return m
}

// waitLink polls /status until central_link is want and returns that
// status. The metric and the status are read apart, and with a probe every
// 100 ms a later probe may have changed the view in between (a handshake
// timing out on a loaded machine): only the eventual agreement is the
// contract.
func waitLink(t *testing.T, httpAddr, want string) map[string]any {
	t.Helper()
	return waitStatus(t, httpAddr, 20*time.Second, func(st map[string]any) bool {
		return st["central_link"] == want
	}, "`chasqui status` shows the link "+want)
}

// waitStatus polls /status until ok holds and returns that status; on a
// timeout the failure shows the last status read.
func waitStatus(t *testing.T, httpAddr string, within time.Duration, ok func(map[string]any) bool, msg string) map[string]any {
	t.Helper()
	var st map[string]any
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		st = jsonStatus(ct, httpAddr)
		assert.True(ct, ok(st), "%s: %v", msg, st)
	}, within, 10*time.Millisecond)
	return st
}

// jsonStatus reads the edge's /status; t may be an *assert.CollectT, so it
// can be polled.
func jsonStatus(t testingT, httpAddr string) map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/status")
	require.NoError(t, err)
	defer resp.Body.Close()
	var st map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	return st
}

// An edge with nothing to send, over mutual TLS: chasqui_central_reachable
// is 1 while central serves it, drops to 0 once central stops (while
// chasqui_forwarder_up, idle, stays 1: the gap the probe closes), and is 1
// again when central comes back on the same address. No transaction is
// submitted: only the link probe can see any of it.
func TestCentralReachableWhileIdle(t *testing.T) {
	t.Parallel()
	s := newSite(t, "site-a")
	dbURL := pgtest.NewDatabase(t, centralTemplate)
	addr, stopCentral := runCentralTLS(t, s, "127.0.0.1:0", dbURL)

	var logs logtest.Buffer
	cfg := app.Config{EdgeID: "site-a", DataDir: t.TempDir(), CentralAddr: addr, AdminToken: "admin-secret",
		CentralProbeInterval: 100 * time.Millisecond, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}
	s.edgeTLS(&cfg, "site-a")
	a, err := app.New(cfg, slog.New(slog.NewJSONHandler(&logs, nil)))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done); require.NoError(t, a.Close()) })

	m := waitMetric(t, a.HTTPAddr(), "chasqui_central_reachable", 1, "central up")
	require.Positive(t, m["chasqui_central_last_reachable_timestamp_seconds"])
	st := waitLink(t, a.HTTPAddr(), "reachable")
	require.NotEmpty(t, st["central_last_answer_at"])

	stopCentral()
	m = waitMetric(t, a.HTTPAddr(), "chasqui_central_reachable", 0, "central stopped")
	require.Equal(t, 1.0, m["chasqui_forwarder_up"], "idle still counts as up")
	require.Zero(t, m["chasqui_queue_transactions"], "nothing waits: no commit could have noticed")
	st = waitLink(t, a.HTTPAddr(), "unreachable")
	require.Equal(t, "idle", st["forwarder_state"])
	require.Contains(t, st["forwarder_last_error"], "link probe (GetCursor) failed", "`chasqui status` names the failure")
	require.Contains(t, logs.String(), `"level":"WARN","msg":"central unreachable: link probe failed"`)

	runCentralTLS(t, s, addr, dbURL)
	waitMetric(t, a.HTTPAddr(), "chasqui_central_reachable", 1, "central back")
	require.Contains(t, logs.String(), "central reachable again")
	waitLink(t, a.HTTPAddr(), "reachable")
}

// Reachable means served: an edge whose certificate names another edge is
// refused by central, so its probe fails (0) although central's health
// check, open to anyone, says SERVING over the very same TLS.
func TestCentralReachableMeansServedAsThisEdge(t *testing.T) {
	t.Parallel()
	s := newSite(t, "site-a")
	central, _ := startCentralTLS(t, s)
	cfg := app.Config{EdgeID: "site-b", DataDir: t.TempDir(), CentralAddr: central.GRPCAddr(), AdminToken: "admin-secret",
		CentralProbeInterval: 100 * time.Millisecond}
	s.edgeTLS(&cfg, "site-a")
	a := startApp(t, cfg)
	// Central answered a probe with its refusal (on a loaded machine an
	// earlier one may have timed out during the handshake).
	waitStatus(t, a.HTTPAddr(), 20*time.Second, func(st map[string]any) bool {
		return strings.Contains(fmt.Sprint(st["forwarder_last_error"]), "PermissionDenied")
	}, "a probe refused by central")
	m := scrape(t, a.HTTPAddr())
	require.Contains(t, m, "chasqui_central_reachable")
	require.Zero(t, m["chasqui_central_reachable"], "refused: not reachable")

	// Health over the edge's own certificate: served.
	tlsCfg := s.clientTLS(t)
	cert, err := tls.LoadX509KeyPair(s.path("edge-site-a.pem"), s.path("edge-site-a-key.pem"))
	require.NoError(t, err)
	tlsCfg.Certificates = []tls.Certificate{cert}
	conn, err := grpc.NewClient(central.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	hc, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, hc.GetStatus())
}
