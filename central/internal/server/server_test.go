package server_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"

	"github.com/chasqui/chasqui/central/internal/server"
	"github.com/chasqui/chasqui/central/migrations"
	"github.com/chasqui/chasqui/internal/fixture"
	"github.com/chasqui/chasqui/internal/h2test"
	"github.com/chasqui/chasqui/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var template = pgtest.Template{Name: "central_server", Migrate: migrations.MigrateURL}

type bundle struct {
	srv    *server.Server
	client centralv1.IngestServiceClient
	read   centralv1.ReadServiceClient
	health healthpb.HealthClient
	dbURL  string
}

// start runs central in-process on 127.0.0.1:0 until the test ends.
func start(t *testing.T, dbURL string, mod func(*server.Config)) *bundle {
	t.Helper()
	cfg := server.Config{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DatabaseURL: dbURL, Insecure: true,
		GapWait: 100 * time.Millisecond, HealthInterval: 20 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, logger)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, srv.Close())
	})
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return &bundle{
		srv: srv, client: centralv1.NewIngestServiceClient(conn), read: centralv1.NewReadServiceClient(conn),
		health: healthpb.NewHealthClient(conn), dbURL: dbURL,
	}
}

func (b *bundle) count(t *testing.T, table string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), b.dbURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var n int
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT count(*) FROM chasqui."+table).Scan(&n))
	return n
}

func TestCommitOverGRPC(t *testing.T) {
	t.Parallel()
	b := start(t, pgtest.NewDatabase(t, template), nil)
	ctx := context.Background()
	txs := fixture.ObservationTxs(10)

	res, err := b.client.Commit(ctx, fixture.Request("site-1", "e1", 1, txs[:5]...))
	require.NoError(t, err)
	require.Equal(t, uint64(5), res.GetCommittedThroughSeq())
	require.NotZero(t, res.GetCommitLsnValue())
	require.Contains(t, res.GetCommitLsn(), "/")
	require.Len(t, res.GetResults(), 5)
	for i, r := range res.GetResults() {
		require.Equal(t, centralv1.Outcome_OUTCOME_APPLIED, r.GetOutcome())
		require.Equal(t, txs[i].GetId(), r.GetTransactionId())
		require.Equal(t, uint64(i+1), r.GetSeq())
	}

	// Gap: ABORTED with the expected seq in the details.
	_, err = b.client.Commit(ctx, fixture.Request("site-1", "e1", 8, txs[7:]...))
	st := status.Convert(err)
	require.Equal(t, codes.Aborted, st.Code(), "%v", err)
	require.Len(t, st.Details(), 1)
	gap, ok := st.Details()[0].(*centralv1.SequenceGap)
	require.True(t, ok, "detail %T", st.Details()[0])
	require.Equal(t, uint64(6), gap.GetExpectedSeq())

	// Wiped edge store: FAILED_PRECONDITION with a CursorConflict, nothing written.
	_, err = b.client.Commit(ctx, fixture.Request("site-1", "e2", 1, fixture.ObservationTxs(2)...))
	st = status.Convert(err)
	require.Equal(t, codes.FailedPrecondition, st.Code(), "%v", err)
	conflict, ok := st.Details()[0].(*centralv1.CursorConflict)
	require.True(t, ok)
	require.Equal(t, uint64(1), conflict.GetSeq())
	require.Equal(t, txs[0].GetId(), conflict.GetAppliedTransactionId())
	require.Equal(t, "e1", conflict.GetEpoch())
	require.Equal(t, uint64(5), conflict.GetCursorSeq())
	require.Equal(t, 5, b.count(t, "observations"))

	// Bad input: INVALID_ARGUMENT naming the field, nothing written.
	bad := fixture.Request("site-1", "e1", 6, txs[5:]...)
	bad.GetTransactions()[2].GetMutations()[0].GetObservation().EndTime = bad.GetTransactions()[0].GetAcceptedAt()
	bad.GetTransactions()[2].GetMutations()[0].GetObservation().StartTime = nil
	_, err = b.client.Commit(ctx, bad)
	st = status.Convert(err)
	require.Equal(t, codes.InvalidArgument, st.Code())
	require.Equal(t, "transactions[2].mutations[0].observation.start_time: is required", st.Message())
	br, ok := st.Details()[0].(*errdetails.BadRequest)
	require.True(t, ok)
	require.Equal(t, "transactions[2].mutations[0].observation.start_time", br.GetFieldViolations()[0].GetField())
	require.Equal(t, 5, b.count(t, "observations"))

	cur, err := b.client.GetCursor(ctx, &centralv1.GetCursorRequest{EdgeId: "site-1"})
	require.NoError(t, err)
	require.Equal(t, "e1", cur.GetEpoch())
	require.Equal(t, uint64(5), cur.GetLastSeq())
	_, err = b.client.GetCursor(ctx, &centralv1.GetCursorRequest{})
	require.Equal(t, codes.InvalidArgument, status.Code(err))

	// HTTP health.
	for _, path := range []string{"/healthz", "/readyz", "/status"} {
		resp, err := http.Get("http://" + b.srv.HTTPAddr() + path)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
	hc, err := b.health.Check(ctx, &healthpb.HealthCheckRequest{Service: centralv1.IngestService_ServiceDesc.ServiceName})
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, hc.GetStatus())
}

func TestPipelinedOutOfOrderCallsBothSucceed(t *testing.T) {
	t.Parallel()
	b := start(t, pgtest.NewDatabase(t, template), func(c *server.Config) { c.GapWait = 10 * time.Second })
	ctx := context.Background()
	// Listening, a waiting call is never polled.
	require.Eventually(t, func() bool {
		return value(t, scrape(t, b.srv.HTTPAddr()), "chasqui_central_cursor_listener_up") == 1
	}, 10*time.Second, 5*time.Millisecond)
	txs := fixture.ObservationTxs(20)
	var wg sync.WaitGroup
	var errLate error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, errLate = b.client.Commit(ctx, fixture.Request("site-1", "e1", 11, txs[10:]...))
	}()
	// Seq 11-20 goes first: 1-10 is sent once 11-20 waits for it.
	require.Eventually(t, func() bool {
		return value(t, scrape(t, b.srv.HTTPAddr()), "chasqui_central_gap_waiting") == 1
	}, 10*time.Second, 5*time.Millisecond)
	_, err := b.client.Commit(ctx, fixture.Request("site-1", "e1", 1, txs[:10]...))
	require.NoError(t, err)
	wg.Wait()
	require.NoError(t, errLate)
	require.Equal(t, 20, b.count(t, "observations"))
	// Woken by the commit of 1-10, not polled.
	retries := map[string]float64{}
	for _, m := range scrape(t, b.srv.HTTPAddr())["chasqui_central_gap_retries_total"].GetMetric() {
		retries[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
	}
	require.GreaterOrEqual(t, retries["woken"], 1.0, "%v", retries)
	require.Zero(t, retries["polled"], "%v", retries)
}

// The window edges see is the one central announces on the wire.
func TestHTTP2WindowOnTheWire(t *testing.T) {
	t.Parallel()
	b := start(t, pgtest.NewDatabase(t, template), func(c *server.Config) { c.HTTP2Window = 3 << 20 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w, err := h2test.ServerWindows(ctx, b.srv.GRPCAddr())
	require.NoError(t, err)
	require.Equal(t, h2test.Windows{Stream: 3 << 20, Conn: 3 << 20}, w)
}

func TestDatabaseDownIsUnavailableAndHealthFollows(t *testing.T) {
	t.Parallel()
	// A database name of its own: after Kill, another test binary's cluster
	// may take the freed port, and must not look like ours.
	c := pgtest.StartCluster(t, pgtest.Options{Name: "central_server_down"})
	ctx := context.Background()
	require.NoError(t, c.CreateDatabase(ctx, "central_server_down"))
	b := start(t, c.URL("central_server_down"), nil)
	hreq := &healthpb.HealthCheckRequest{Service: centralv1.IngestService_ServiceDesc.ServiceName}
	servingIs := func(want healthpb.HealthCheckResponse_ServingStatus) func() bool {
		return func() bool {
			hc, err := b.health.Check(ctx, hreq)
			return err == nil && hc.GetStatus() == want
		}
	}
	require.Eventually(t, servingIs(healthpb.HealthCheckResponse_SERVING), 10*time.Second, 10*time.Millisecond)

	txs := fixture.ObservationTxs(10)
	_, err := b.client.Commit(ctx, fixture.Request("site-1", "e1", 1, txs[:5]...))
	require.NoError(t, err)

	require.NoError(t, c.Kill())
	// A backend of the killed postmaster may still finish a commit before
	// it notices; the batch is idempotent, so ask until the loss shows.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = b.client.Commit(ctx, fixture.Request("site-1", "e1", 6, txs[5:]...))
		if err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.NotContains(t, status.Convert(err).Message(), "SQLSTATE")
	require.Eventually(t, servingIs(healthpb.HealthCheckResponse_NOT_SERVING), 10*time.Second, 10*time.Millisecond)
	// Reads too: the pool's dead connections, then refused ones, are an
	// outage, never INTERNAL.
	for range 3 {
		_, err = b.read.ListObservations(ctx, &centralv1.ListObservationsRequest{})
		require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	}
	resp, err := http.Get("http://" + b.srv.HTTPAddr() + "/readyz")
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)

	require.NoError(t, c.Start())
	require.Eventually(t, servingIs(healthpb.HealthCheckResponse_SERVING), 30*time.Second, 10*time.Millisecond)
	res, err := b.client.Commit(ctx, fixture.Request("site-1", "e1", 6, txs[5:]...))
	require.NoError(t, err)
	require.Equal(t, uint64(10), res.GetCommittedThroughSeq())
	require.Equal(t, 10, b.count(t, "observations"))
}

// PostgreSQL down when central starts is an outage like any other: central
// starts, reports NOT_SERVING and answers UNAVAILABLE, and once PostgreSQL
// answers it migrates the schema and serves, without a restart.
func TestStartsWhilePostgresDown(t *testing.T) {
	t.Parallel()
	// A database name of its own: while ours is stopped, another test
	// binary's cluster may take the freed port, and must not look like ours.
	c := pgtest.StartCluster(t, pgtest.Options{Name: "central_server_late"})
	ctx := context.Background()
	require.NoError(t, c.CreateDatabase(ctx, "central_server_late"))
	require.NoError(t, c.Stop())

	b := start(t, c.URL("central_server_late"), func(cfg *server.Config) { cfg.DatabaseRetryMax = 200 * time.Millisecond })
	for _, svc := range []string{"", centralv1.IngestService_ServiceDesc.ServiceName} {
		hc, err := b.health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		require.NoError(t, err)
		require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, hc.GetStatus(), "service %q", svc)
	}
	resp, err := http.Get("http://" + b.srv.HTTPAddr() + "/readyz")
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	txs := fixture.ObservationTxs(5)
	// Refused before the store is asked (which would try PostgreSQL for
	// every call), with an answer that says why.
	_, err = b.client.Commit(ctx, fixture.Request("site-1", "e1", 1, txs...))
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.Contains(t, status.Convert(err).Message(), "not connected to PostgreSQL yet")
	_, err = b.client.GetCursor(ctx, &centralv1.GetCursorRequest{EdgeId: "e1"})
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	require.Contains(t, status.Convert(err).Message(), "not connected to PostgreSQL yet")

	require.NoError(t, c.Start())
	require.Eventually(t, func() bool {
		hc, err := b.health.Check(ctx, &healthpb.HealthCheckRequest{Service: centralv1.IngestService_ServiceDesc.ServiceName})
		return err == nil && hc.GetStatus() == healthpb.HealthCheckResponse_SERVING
	}, 60*time.Second, 20*time.Millisecond)
	res, err := b.client.Commit(ctx, fixture.Request("site-1", "e1", 1, txs...))
	require.NoError(t, err)
	require.Equal(t, uint64(5), res.GetCommittedThroughSeq())
	require.Equal(t, 5, b.count(t, "observations"))
	resp, err = http.Get("http://" + b.srv.HTTPAddr() + "/readyz")
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// Waiting for PostgreSQL does not hold up a shutdown.
func TestStopsWhileWaitingForPostgres(t *testing.T) {
	t.Parallel()
	c := pgtest.StartCluster(t, pgtest.Options{Name: "central_server_never"})
	url := c.URL("postgres")
	require.NoError(t, c.Stop())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := server.New(ctx, server.Config{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "-", DatabaseURL: url, Insecure: true,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second): // far beyond a prompt stop; only a wedged Run gets here
		t.Fatal("Run did not return after its context ended while waiting for PostgreSQL")
	}
}

func TestConfigValidateNamesTheField(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  server.Config
		want string
	}{
		{server.Config{Insecure: true}, "DatabaseURL"},
		{server.Config{DatabaseURL: "postgres://x"}, "TLSCert"},
		{server.Config{DatabaseURL: "postgres://x", TLSCert: "c", TLSKey: "k"}, "TLSCA"},
		{server.Config{DatabaseURL: "postgres://x", Insecure: true, GRPCAddr: "127.0.0.1:0", GapWait: -1}, "GapWait"},
		{server.Config{DatabaseURL: "postgres://x", Insecure: true, GRPCAddr: "127.0.0.1:0", Retention: time.Second}, "Retention"},
		{server.Config{DatabaseURL: "postgres://x", Insecure: true, GRPCAddr: "127.0.0.1:0", HTTP2Window: 1000}, "HTTP2Window (--http2-window)"},
		// Plaintext only on loopback: the default ":7443" listens everywhere.
		{server.Config{DatabaseURL: "postgres://x", Insecure: true}, "--grpc-addr"},
		{server.Config{DatabaseURL: "postgres://x", Insecure: true, GRPCAddr: "10.1.2.3:7443"}, "loopback"},
	} {
		require.ErrorContains(t, tc.cfg.Validate(), tc.want)
	}
	require.NoError(t, server.Config{DatabaseURL: "postgres://x", Insecure: true, GRPCAddr: "127.0.0.1:7443"}.Validate())
	require.NoError(t, server.Config{DatabaseURL: "postgres://x", Insecure: true, GRPCAddr: "localhost:7443"}.Validate())
	require.NoError(t, server.Config{DatabaseURL: "postgres://x", Insecure: true, AllowInsecureRemote: true}.Validate())
}
