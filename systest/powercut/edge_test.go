package powercut_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	"github.com/chasqui/chasqui/internal/grpcclient"
	"github.com/chasqui/chasqui/internal/pgtest"
	"github.com/chasqui/chasqui/systest/e2e"
	"github.com/chasqui/chasqui/systest/powercut"
)

// Generous: a loaded 2-core machine runs PostgreSQL, both services, the
// FUSE server and the race-enabled test binary at once.
const (
	drainTimeout = 4 * time.Minute
	ackTimeout   = 2 * time.Minute
)

// long reports whether the long fault suite runs (make test-faults).
func long() bool { return os.Getenv("CHASQUI_FAULTS") == "long" }

// seeds are the runs' seeds: CHASQUI_POWERCUT_SEEDS (comma-separated), else
// 1, 2 and 3 in the long form and one from the clock in the short one.
func seeds(t *testing.T) []uint64 {
	if s := os.Getenv("CHASQUI_POWERCUT_SEEDS"); s != "" {
		var out []uint64
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
			require.NoError(t, err, "CHASQUI_POWERCUT_SEEDS")
			out = append(out, n)
		}
		return out
	}
	if long() {
		return []uint64{1, 2, 3}
	}
	return []uint64{uint64(time.Now().UnixNano())}
}

var emptyDB = pgtest.Template{Name: "powercut_empty", Migrate: func(context.Context, string) error { return nil }}

// The edge under power cuts: a real chasqui-edge with its data directory on
// the power-cut file system takes concurrent Submits; at random moments the
// power is cut and the edge killed at once, then started again on what
// survived, while a real central drains it into PostgreSQL. Every
// acknowledged transaction must be in PostgreSQL exactly once, in order,
// and the store must open every time.
func TestEdgePowerCuts(t *testing.T) {
	cuts := 1
	if long() {
		cuts = 5
	}
	for _, seed := range seeds(t) {
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
			r, n := edgePowerCutRun(t, seed, cuts, edgeBinary(t, false))
			t.Logf("POWERCUT edge seed=%d power_cuts=%d acknowledged=%d lost=%d duplicated=%d order_violations=%d",
				seed, n, r.Acknowledged, r.Lost, r.Duplicated, r.OrderViolations)
			r.Assert(t)
			require.Positive(t, r.Acknowledged)
		})
	}
}

// The negative control: the same run with a chasqui-edge built to commit
// without fsync must lose acknowledged transactions. If it does not, the
// file system is not dropping what it should and the test above proves
// nothing.
func TestEdgePowerCutsWithoutFsyncLoseAcks(t *testing.T) {
	cuts := 1
	if long() {
		cuts = 3
	}
	seed := seeds(t)[0]
	r, n := edgePowerCutRun(t, seed, cuts, edgeBinary(t, true))
	t.Logf("POWERCUT edge-nosync seed=%d power_cuts=%d acknowledged=%d lost=%d duplicated=%d order_violations=%d",
		seed, n, r.Acknowledged, r.Lost, r.Duplicated, r.OrderViolations)
	t.Logf("history: %s", r)
	require.Positive(t, r.Lost, "an edge that does not fsync lost no acknowledged transaction: the power cut drops nothing")
}

var nosyncEdge struct {
	once sync.Once
	path string
	err  error
}

// edgeBinary is chasqui-edge as e2e builds it, or (nosync) built with the
// test-only tag that turns the queue's fsync off.
func edgeBinary(t *testing.T, nosync bool) string {
	t.Helper()
	if !nosync {
		dir, err := e2e.BuildBinaries()
		require.NoError(t, err)
		return filepath.Join(dir, e2e.EdgeBin)
	}
	nosyncEdge.once.Do(func() {
		dir, err := e2e.BuildBinaries() // removed by e2e.CleanupBinaries
		if err != nil {
			nosyncEdge.err = err
			return
		}
		edgeDir, err := filepath.Abs("../../edge")
		if err != nil {
			nosyncEdge.err = err
			return
		}
		nosyncEdge.path = filepath.Join(dir, "chasqui-edge-nosync")
		cmd := exec.Command("go", "build", "-tags", "chasqui_unsafe_nosync", "-o", nosyncEdge.path, "./cmd/chasqui-edge")
		cmd.Dir = edgeDir
		if out, err := cmd.CombinedOutput(); err != nil {
			nosyncEdge.err = fmt.Errorf("building the nosync edge: %w\n%s", err, out)
		}
	})
	require.NoError(t, nosyncEdge.err)
	return nosyncEdge.path
}

// edgePowerCutRun runs the load with cuts power cuts and returns the
// history check's report and the number of cuts made.
func edgePowerCutRun(t *testing.T, seed uint64, cuts int, edgeBin string) (e2e.Report, int) {
	rng := rand.New(rand.NewPCG(seed, 0))
	dir, err := e2e.BuildBinaries()
	require.NoError(t, err)
	ctx := context.Background()

	dbURL := pgtest.NewDatabase(t, emptyDB)
	db, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	centralAddr := e2e.FreeAddr(t)
	e2e.StartProcess(t, "central", filepath.Join(dir, e2e.CentralBin), centralAddr,
		"--insecure", "--grpc-addr", centralAddr, "--http-addr", e2e.FreeAddr(t), "--database-url", dbURL)

	fsys := powercut.MountT(t)
	edgeID := fmt.Sprintf("site-powercut-%d", seed%100000)
	edgeAddr := e2e.FreeAddr(t)
	edge := e2e.StartProcess(t, "edge", edgeBin, edgeAddr,
		"--insecure", "--edge-id", edgeID, "--grpc-addr", edgeAddr, "--http-addr", e2e.FreeAddr(t),
		"--data-dir", filepath.Join(fsys.Mountpoint(), "edge-data"), "--central-addr", centralAddr,
		"--compression", "none")
	conn, err := grpcclient.Dial(edgeAddr, grpcclient.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	admin := edgev1.NewAdminServiceClient(conn)

	hist := e2e.NewHistory()
	load := e2e.StartLoad(ctx, edgev1.NewEdgeServiceClient(conn), hist, e2e.LoadConfig{
		Writers: 8, EdgeID: edgeID, SubmitTimeout: 10 * time.Second, Resubmits: 8,
	})
	t.Cleanup(func() { load.Stop() })
	for i := range cuts {
		before := load.Acked()
		e2e.Eventually(t, ackTimeout, "acknowledgements after the (re)start", func() bool { return load.Acked() > before+20 })
		// The fault's random moment, not a wait for state.
		time.Sleep(time.Duration(rng.Int64N(int64(2 * time.Second))))
		require.NoError(t, fsys.Cut())
		require.NoError(t, edge.Kill())
		require.NoError(t, fsys.PowerOn())
		t.Logf("power cut %d after %d acknowledgements", i+1, load.Acked())
		require.NoError(t, edge.Start(), "the store must open after power cut %d", i+1)
	}
	// Writes on what survived the last cut, too.
	after := load.Acked()
	e2e.Eventually(t, ackTimeout, "acknowledgements after the last restart", func() bool { return load.Acked() > after+100 })
	stats := load.Drain()
	t.Logf("load: %s", stats)

	// Drained: everything the edge holds is committed at central.
	deadline := time.Now().Add(drainTimeout)
	var last string
	for {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := admin.GetStatus(sctx, &edgev1.GetStatusRequest{})
		cancel()
		if err == nil {
			last = fmt.Sprintf("queue_count=%d committed_through=%d last_accepted=%d last_error=%q",
				st.GetQueueCount(), st.GetCommittedThroughSeq(), st.GetLastAcceptedSeq(), st.GetForwarderLastError())
			if st.GetQueueCount() == 0 && st.GetCommittedThroughSeq() >= st.GetLastAcceptedSeq() {
				break
			}
			if strings.Contains(st.GetForwarderLastError(), "operator action needed") {
				t.Logf("edge stopped forwarding: %s", last)
				break // an edge whose store lost what central has: it will not drain
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Logf("edge not drained after %s: %s", drainTimeout, last)
			break
		}
		time.Sleep(200 * time.Millisecond) // poll interval
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	r, err := e2e.CheckHistory(cctx, db, hist)
	require.NoError(t, err)
	return r, fsys.Cuts()
}
