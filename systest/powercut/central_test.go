package powercut_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/chasqui/chasqui/edge/faultproxy"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	"github.com/chasqui/chasqui/internal/grpcclient"
	"github.com/chasqui/chasqui/internal/pgtest"
	"github.com/chasqui/chasqui/systest/e2e"
	"github.com/chasqui/chasqui/systest/powercut"
)

// Central's side: PostgreSQL's data directory on the power-cut file
// system, the power cut mid-drain and PostgreSQL killed with -9 at once.
// Every commit central acknowledged before the cut (the edge's
// committed_through_seq, and central_lsn, the commit LSN of its last
// answer) must still be in PostgreSQL after crash recovery, before the
// edge can send anything again (the link is down meanwhile); then the
// edge resends the rest and the history check holds. This proves
// synchronous_commit and the answered LSN (the flush LSN after COMMIT)
// against a power cut.
func TestCentralPowerCuts(t *testing.T) {
	cuts := 1
	if long() {
		cuts = 3
	}
	for _, seed := range seeds(t) {
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
			centralPowerCutRun(t, seed, cuts)
		})
	}
}

func centralPowerCutRun(t *testing.T, seed uint64, cuts int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	dir, err := e2e.BuildBinaries()
	require.NoError(t, err)
	ctx := context.Background()

	// PostgreSQL initialized on plain disk, then moved under the file
	// system: its data directory's path stays what pgtest knows.
	cluster := pgtest.StartCluster(t, pgtest.Options{Name: "powercut"})
	require.NoError(t, cluster.CreateDatabase(ctx, "chasqui"))
	require.NoError(t, cluster.Stop())
	data := cluster.DataDir()
	backing := data + "-backing"
	require.NoError(t, os.Rename(data, backing))
	var st syscall.Stat_t
	require.NoError(t, syscall.Stat(backing, &st))
	require.NoError(t, os.Mkdir(data, 0o700))
	require.NoError(t, os.Chown(data, int(st.Uid), int(st.Gid)))
	fsys := powercut.MountOverT(t, backing, data)
	t.Cleanup(func() { _ = cluster.Kill() }) // before the unmount
	require.NoError(t, cluster.Start())
	dbURL := cluster.URL("chasqui")

	centralAddr := e2e.FreeAddr(t)
	e2e.StartProcess(t, "central", filepath.Join(dir, e2e.CentralBin), centralAddr,
		"--insecure", "--grpc-addr", centralAddr, "--http-addr", e2e.FreeAddr(t), "--database-url", dbURL)
	proxy := faultproxy.New(t, centralAddr)
	edgeID := fmt.Sprintf("site-pgcut-%d", seed%100000)
	edgeAddr := e2e.FreeAddr(t)
	e2e.StartProcess(t, "edge", filepath.Join(dir, e2e.EdgeBin), edgeAddr,
		"--insecure", "--edge-id", edgeID, "--grpc-addr", edgeAddr, "--http-addr", e2e.FreeAddr(t),
		"--data-dir", filepath.Join(t.TempDir(), "edge-data"), "--central-addr", proxy.Addr(),
		"--compression", "none")
	conn, err := grpcclient.Dial(edgeAddr, grpcclient.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	admin := edgev1.NewAdminServiceClient(conn)
	status := func() *edgev1.GetStatusResponse {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		st, err := admin.GetStatus(sctx, &edgev1.GetStatusRequest{})
		require.NoError(t, err)
		return st
	}

	hist := e2e.NewHistory()
	load := e2e.StartLoad(ctx, edgev1.NewEdgeServiceClient(conn), hist, e2e.LoadConfig{
		Writers: 8, EdgeID: edgeID, SubmitTimeout: 10 * time.Second, Resubmits: 8,
	})
	t.Cleanup(func() { load.Stop() })
	for i := range cuts {
		before := status().GetCommittedThroughSeq()
		e2e.Eventually(t, ackTimeout, "central commits after the (re)start", func() bool {
			return status().GetCommittedThroughSeq() > before+20
		})
		// The fault's random moment, not a wait for state.
		time.Sleep(time.Duration(rng.Int64N(int64(2 * time.Second))))
		require.NoError(t, fsys.Cut())
		require.NoError(t, cluster.Kill())
		// Nothing central answered can change now: PostgreSQL is gone.
		// The link goes down so the edge cannot resend what was lost
		// before it is looked for.
		proxy.Down()
		acked := status()
		through, lsn := acked.GetCommittedThroughSeq(), acked.GetCentralLsn()
		require.NoError(t, fsys.PowerOn())
		require.NoError(t, cluster.Start(), "PostgreSQL must recover after power cut %d", i+1)

		db, err := pgxpool.New(ctx, dbURL)
		require.NoError(t, err)
		var have int64
		var lsnKept bool
		require.NoError(t, db.QueryRow(ctx, `SELECT count(DISTINCT seq) FROM chasqui.applied_transactions
			WHERE edge_id = $1 AND seq <= $2`, edgeID, int64(through)).Scan(&have))
		if lsn != "" {
			require.NoError(t, db.QueryRow(ctx, `SELECT pg_current_wal_lsn() >= $1::pg_lsn`, lsn).Scan(&lsnKept))
		}
		db.Close()
		t.Logf("POWERCUT central cut %d: central had acknowledged through seq %d (commit LSN %s); after recovery PostgreSQL holds %d of them, WAL at or past the LSN: %v",
			i+1, through, lsn, have, lsnKept)
		require.Equal(t, int64(through), have, "commits central acknowledged were lost by the power cut")
		// Central answered with the flush LSN after COMMIT: it must
		// survive. (With the insert LSN it once did not: answered
		// 0/1A90DE0, every commit recovered, the WAL ended below it.)
		require.True(t, lsn == "" || lsnKept, "PostgreSQL's WAL is behind the commit LSN central acknowledged")
		proxy.Up()
	}
	after := load.Acked()
	e2e.Eventually(t, ackTimeout, "acknowledgements after the last cut", func() bool { return load.Acked() > after+100 })
	stats := load.Drain()
	t.Logf("load: %s", stats)

	db, err := pgxpool.New(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	missing, err := e2e.WaitApplied(ctx, db, hist.AckedIDs(), drainTimeout)
	require.NoError(t, err)
	require.Zero(t, missing, "acknowledged transactions the edge never resent")
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	r, err := e2e.CheckHistory(cctx, db, hist)
	require.NoError(t, err)
	t.Logf("POWERCUT central seed=%d power_cuts=%d acknowledged=%d lost=%d duplicated=%d order_violations=%d",
		seed, fsys.Cuts(), r.Acknowledged, r.Lost, r.Duplicated, r.OrderViolations)
	r.Assert(t)
}
