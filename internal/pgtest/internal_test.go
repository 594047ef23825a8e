package pgtest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCleanStaleKillsOrphanedClusters(t *testing.T) {
	t.Parallel()
	// Not t.TempDir: that is mode 0700, which a server running as the
	// postgres user could not enter. Inside our run dir, a later run
	// removes it should this test binary be killed.
	run, err := runDir()
	require.NoError(t, err)
	base, err := os.MkdirTemp(run, "st")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	require.NoError(t, ensureDir(base))

	self, err := readProcStat(os.Getpid())
	require.NoError(t, err)
	// Our pid with another start time: an earlier process that had our pid.
	dead := filepath.Join(base, runDirName(os.Getpid(), self.start+1))
	live := filepath.Join(base, runDirName(os.Getpid(), self.start))
	other := filepath.Join(base, "not-a-run-dir")
	for _, d := range []string{dead, live, other} {
		require.NoError(t, ensureDir(d))
	}

	orphan, err := newCluster(dead, Options{Name: "orphan"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = orphan.Close() })
	orphan.mu.Lock()
	p := orphan.proc
	orphan.mu.Unlock()

	cleanStale(base)

	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("postmaster of the stale run dir still running")
	}
	require.NoDirExists(t, dead)
	require.DirExists(t, live, "a run dir whose owner lives must stay")
	require.DirExists(t, other)
}

// Not parallel: it empties PATH to hide pg_config.
func TestMissingBinariesSayHowToInstall(t *testing.T) {
	t.Setenv("PATH", "")
	_, err := findBinDirIn(filepath.Join(t.TempDir(), "*", "bin"))
	require.ErrorContains(t, err, "apt-get update && apt-get install -y postgresql")

	dir, err := findBinDir()
	require.NoError(t, err, "the newest /usr/lib/postgresql/*/bin without pg_config")
	require.True(t, hasServer(dir))
}

func TestVersionLess(t *testing.T) {
	t.Parallel()
	require.True(t, versionLess("9.6", "10"))
	require.True(t, versionLess("10", "15"))
	require.False(t, versionLess("16", "15"))
	_, _, ok := parseRunDirName("run-12-34")
	require.True(t, ok)
	_, _, ok = parseRunDirName("run-12")
	require.False(t, ok)
}
