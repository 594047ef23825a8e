package app_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/chasqui/chasqui/edge/app"
	"github.com/chasqui/chasqui/edge/client"
	"github.com/chasqui/chasqui/edge/internal/centralproc"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	centralproc.Cleanup()
	os.Exit(code)
}

// centralTemplate is an empty database: central migrates it at start.
var centralTemplate = pgtest.Template{Name: "edge_app", Migrate: centralproc.EmptyDatabase}

var logger = slog.New(slog.NewTextHandler(io.Discard, nil))

// running is an edge run in-process until stop or the test's end.
type running struct {
	a      *app.App
	c      *client.Client
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg app.Config) *running {
	t.Helper()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.Insecure = "127.0.0.1:0", "127.0.0.1:0", true
	a, err := app.New(cfg, logger)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{a: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	r.c, err = client.Dial(ctx, a.GRPCAddr(), client.WithLogger(logger))
	require.NoError(t, err)
	t.Cleanup(r.stop(t))
	return r
}

func (r *running) stop(t *testing.T) func() {
	return func() {
		if r.cancel == nil {
			return
		}
		require.NoError(t, r.c.Close())
		r.cancel()
		require.NoError(t, <-r.done)
		require.NoError(t, r.a.Close())
		r.cancel = nil
	}
}

func observation() *opsv1.Observation {
	return &opsv1.Observation{Instrument: "CHAI", Source: "Orion-KL", ObsUnit: "u1"}
}

func TestConfigValidateNamesField(t *testing.T) {
	t.Parallel()
	for field, cfg := range map[string]app.Config{
		"EdgeID":                       {DataDir: "/x", Insecure: true},
		"DataDir":                      {EdgeID: "e", Insecure: true},
		"TLSCert":                      {EdgeID: "e", DataDir: "/x"},
		"Compression":                  {EdgeID: "e", DataDir: "/x", Insecure: true, Compression: "zstd"},
		"TxRetention":                  {EdgeID: "e", DataDir: "/x", Insecure: true, TxRetention: time.Second},
		"Window":                       {EdgeID: "e", DataDir: "/x", Insecure: true, Window: -1},
		"HTTP2Window (--http2-window)": {EdgeID: "e", DataDir: "/x", Insecure: true, HTTP2Window: 1000},
		"CentralHTTP2Window (--central-http2-window)": {EdgeID: "e", DataDir: "/x", Insecure: true, CentralHTTP2Window: 1 << 31},
	} {
		require.ErrorContains(t, cfg.Validate(), field)
	}
	require.NoError(t, app.Config{EdgeID: "e", DataDir: "/x", Insecure: true, GRPCAddr: "127.0.0.1:7444"}.Validate())
}

func TestAcceptsWithoutCentralAndRestarts(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	r := start(t, app.Config{EdgeID: "edge-app", DataDir: dir})
	ctx := context.Background()
	res, err := r.c.StartObservation(ctx, observation())
	require.NoError(t, err)
	require.Equal(t, uint64(1), res.GetSeq())
	epoch := r.a.Epoch()

	base := "http://" + r.a.HTTPAddr()
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(base + p)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusOK, resp.StatusCode, p)
	}
	resp, err := http.Get(base + "/status")
	require.NoError(t, err)
	var st map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
	require.NoError(t, resp.Body.Close())
	require.Equal(t, "edge-app", st["edge_id"])
	require.Equal(t, "1", st["queue_count"]) // protojson: uint64 as string
	require.Equal(t, "disabled", st["forwarder_state"])

	r.stop(t)()
	r2 := start(t, app.Config{EdgeID: "edge-app", DataDir: dir})
	require.Equal(t, epoch, r2.a.Epoch())
	got, err := r2.c.GetTransaction(ctx, res.GetTransactionId())
	require.NoError(t, err)
	require.Equal(t, uint64(1), got.GetSeq())
	res2, err := r2.c.StartObservation(ctx, observation())
	require.NoError(t, err)
	require.Equal(t, uint64(2), res2.GetSeq())
}

func TestReadyzRefusesBelowDiskReserve(t *testing.T) {
	t.Parallel()
	r := start(t, app.Config{EdgeID: "edge-app", DataDir: t.TempDir(),
		StatFS: func(string) (uint64, error) { return 1 << 20, nil }})
	resp, err := http.Get("http://" + r.a.HTTPAddr() + "/readyz")
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	_, err = r.c.StartObservation(context.Background(), observation())
	require.Equal(t, codes.ResourceExhausted, status.Code(err))
}

// TestForwardsToCentral runs the real central binary (real PostgreSQL) and
// the edge in-process: accepted transactions become COMMITTED with an LSN; one that
// PostgreSQL rejects lands in the dead letters and the rest flow on.
func TestForwardsToCentral(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t, centralTemplate)
	central := centralproc.StartT(t, centralproc.Options{DatabaseURL: dbURL})
	ctx := context.Background()

	r := start(t, app.Config{EdgeID: "edge-fwd", DataDir: t.TempDir(), CentralAddr: central.GRPCAddr()})
	var ids []string
	var obsID string
	for i := range 20 {
		res, err := r.c.StartObservation(ctx, observation())
		require.NoError(t, err)
		ids = append(ids, res.GetTransactionId())
		if i == 0 {
			obsID = res.GetRecordIds()[0]
		}
	}
	// An update of an observation that does not exist: rejected for its data.
	bad, err := r.c.FinishObservation(ctx, &opsv1.ObservationUpdate{Id: client.NewID()})
	require.NoError(t, err)
	good, err := r.c.FinishObservation(ctx, &opsv1.ObservationUpdate{Id: obsID, EndTime: timestamppb.Now()})
	require.NoError(t, err)
	ids = append(ids, good.GetTransactionId())

	for _, id := range ids {
		st := waitState(t, r.c, id, edgev1.TransactionState_TRANSACTION_STATE_COMMITTED)
		require.NotEmpty(t, st.GetCommitLsn())
		require.Positive(t, st.GetCommitLsnValue())
	}
	st := waitState(t, r.c, bad.GetTransactionId(), edgev1.TransactionState_TRANSACTION_STATE_REJECTED)
	require.NotEmpty(t, st.GetRejectReason())
	dls, err := r.c.Admin().ListDeadLetters(ctx, &edgev1.ListDeadLettersRequest{})
	require.NoError(t, err)
	require.Len(t, dls.GetDeadLetters(), 1)
	require.Equal(t, bad.GetTransactionId(), dls.GetDeadLetters()[0].GetTransaction().GetId())

	s, err := r.c.Admin().GetStatus(ctx, &edgev1.GetStatusRequest{})
	require.NoError(t, err)
	require.Equal(t, uint64(22), s.GetCommittedThroughSeq())
	require.Zero(t, s.GetQueueCount())
	require.NotEmpty(t, s.GetCentralLsn())
	require.NotNil(t, s.GetLastCommitAt())
}

// waitState polls tx id until it is in state want; a failed call ends the
// wait and fails the test.
func waitState(t *testing.T, c *client.Client, id string, want edgev1.TransactionState) *edgev1.TransactionStatus {
	t.Helper()
	var (
		st  *edgev1.TransactionStatus
		err error
	)
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		if st, err = c.GetTransaction(context.Background(), id); err == nil {
			assert.Equal(ct, want, st.GetState(), "tx %s", id)
		}
	}, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, err)
	return st
}
