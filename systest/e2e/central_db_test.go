package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// copyDir copies a PostgreSQL data directory with owners and modes (we run
// as root; the server runs as its own user).
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	require.NoError(t, os.RemoveAll(to))
	out, err := exec.Command("cp", "-a", from, to).CombinedOutput()
	require.NoError(t, err, "cp -a %s %s: %s", from, to, out)
}

// Central's database loses its last commits, as after a failover to a
// lagging replica: the data directory is restored from a copy taken a
// little earlier while writes went on. Central's cursor is then behind the
// edge's, central answers ABORTED with an earlier expected seq, and the edge
// resends from the payloads it retained: every acknowledged transaction is
// in PostgreSQL exactly once, in order.
func TestFaultCentralDBLosesLastCommits(t *testing.T) {
	f := startFaultRun(t, StackOptions{OwnCluster: true})
	s := f.s
	snap := filepath.Join(t.TempDir(), "pgdata-backup")
	var atBackup uint64
	f.window("base backup (stop, copy, start)", func() {
		require.NoError(t, s.Cluster.Stop())
		atBackup = f.status().GetCommittedThroughSeq()
		copyDir(t, s.Cluster.DataDir(), snap)
		require.NoError(t, s.Cluster.Start())
	})
	// Writes go on and commit well past the backup.
	f.waitAcks(1000)
	var beforeLoss uint64
	Eventually(t, 2*time.Minute, "commits past the backup", func() bool {
		beforeLoss = f.status().GetCommittedThroughSeq()
		return beforeLoss > atBackup+500
	})
	gaps := s.Edge.CountLog("central reports a sequence gap")
	f.window("database restored from the earlier backup", func() {
		require.NoError(t, s.Cluster.Kill())
		copyDir(t, snap, s.Cluster.DataDir())
		require.NoError(t, s.Cluster.Start())
	})
	var cursor int64
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Right after the restore, central's cursor is behind what the edge had
	// committed (the resends may already have begun).
	require.NoError(t, s.DB.QueryRow(ctx,
		`SELECT coalesce(max(seq), 0) FROM chasqui.applied_transactions WHERE edge_id = $1`, s.EdgeID).Scan(&cursor))
	t.Logf("edge had committed through seq %d; backup at about %d; restored database holds through %d",
		beforeLoss, atBackup, cursor)
	require.Less(t, uint64(cursor), beforeLoss, "the restore lost commits (else the test proves nothing)")
	f.finish() // every resent transaction holds its new commit's LSN
	require.Greater(t, s.Edge.CountLog("central reports a sequence gap"), gaps,
		"central answered ABORTED with an earlier expected seq and the edge resent")
}

// Two central processes on one database: the edge is switched from one to
// the other mid-backlog, then talks to both (the proxy alternates its
// upstream while connections are cut and remade): the per-edge cursor lock
// keeps exactly-once.
func TestFaultTwoCentrals(t *testing.T) {
	f := startFaultRun(t, StackOptions{})
	s := f.s
	addrB := FreeAddr(t)
	b := StartProcess(t, "central-b", binaryPath(t, CentralBin), addrB,
		"--insecure", "--grpc-addr", addrB, "--http-addr", FreeAddr(t), "--database-url", s.DBURL, "--allow-tables", OpsAllow,
		"--log-level", "debug") // successful calls are logged at DEBUG: the count below reads them
	addrA := s.Central.Addr()

	// A backlog builds while the link is down, then drains through B.
	f.window("switch to central B mid-backlog", func() {
		s.Proxy.Down()
		f.waitAcks(1500)
		s.Proxy.SetUpstream(addrB) // comes up pointing at B
	})
	f.waitAcks(300)
	// Then both, alternating every 700 ms: batches of one backlog reach
	// either central, pipelined, with connections cut at each switch.
	rounds := 8
	if os.Getenv("CHASQUI_FAULTS") == "long" {
		rounds = 40
	}
	f.window("alternating A/B", func() {
		for i := range rounds {
			up := addrA
			if i%2 == 1 {
				up = addrB
			}
			s.Proxy.SetUpstream(up)
			time.Sleep(700 * time.Millisecond) // dwell on one central
		}
	})
	f.finish()
	require.Positive(t, b.CountLog(`"grpc.method":"Commit"`), "central B served commits")
}
