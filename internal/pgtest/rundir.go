package pgtest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// processRun is this test process's run directory, created on first use,
// after stale run directories of dead processes have been cleaned up.
var processRun struct {
	mu   sync.Mutex
	path string
}

func runDir() (string, error) {
	processRun.mu.Lock()
	defer processRun.mu.Unlock()
	if processRun.path != "" {
		return processRun.path, nil
	}
	dir, err := newRunDir(baseDir())
	if err != nil {
		return "", err
	}
	processRun.path = dir
	return dir, nil
}

// removeRunDir removes this process's run directory if it is empty, which it
// is once every cluster has been closed.
func removeRunDir() {
	processRun.mu.Lock()
	defer processRun.mu.Unlock()
	if processRun.path != "" && os.Remove(processRun.path) == nil {
		processRun.path = ""
	}
}

// baseDir is per uid so that runs by different users neither clash over
// permissions nor try to clean up each other's clusters.
func baseDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("chasqui-pgtest-%d", os.Geteuid()))
}

// newRunDir removes stale run directories under base and creates one for
// this process.
func newRunDir(base string) (string, error) {
	if err := ensureDir(base); err != nil {
		return "", err
	}
	cleanStale(base)
	pid := os.Getpid()
	st, err := readProcStat(pid)
	if err != nil {
		return "", fmt.Errorf("pgtest: reading own start time: %w", err)
	}
	dir := filepath.Join(base, runDirName(pid, st.start))
	if err := ensureDir(dir); err != nil {
		return "", err
	}
	return dir, nil
}

// ensureDir creates dir if missing and refuses one we do not own: the base
// sits in a world-writable temp directory where anyone could have planted a
// symlink or a directory of their own.
func ensureDir(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("pgtest: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("pgtest: %s is not a directory owned by uid %d; remove it", dir, os.Geteuid())
	}
	// The umask may have cut the mode, and the server, running as another
	// user, must be able to pass through to its cluster directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}

// A run directory's name records its owner, so no lock file or owner file
// is needed, and a run directory can never be seen half-made without one.
func runDirName(pid int, start uint64) string {
	return fmt.Sprintf("run-%d-%d", pid, start)
}

func parseRunDirName(name string) (pid int, start uint64, ok bool) {
	rest, found := strings.CutPrefix(name, "run-")
	if !found {
		return 0, 0, false
	}
	p, s, found := strings.Cut(rest, "-")
	if !found {
		return 0, 0, false
	}
	pid, err1 := strconv.Atoi(p)
	start, err2 := strconv.ParseUint(s, 10, 64)
	return pid, start, err1 == nil && err2 == nil
}

// cleanStale kills the postmasters of run directories whose owning test
// process is gone and removes those directories. Normally Pdeathsig has
// already killed the servers; this catches what it misses and reclaims the
// disk. It is best effort: a leftover costs disk space, not correctness.
func cleanStale(base string) {
	entries, err := os.ReadDir(base)
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, start, ok := parseRunDirName(e.Name())
		if !ok {
			continue
		}
		if st, err := readProcStat(pid); err == nil && st.start == start {
			continue // owner still running
		}
		dir := filepath.Join(base, e.Name())
		clusters, _ := os.ReadDir(dir)
		for _, c := range clusters {
			killPostmaster(filepath.Join(dir, c.Name(), "data"))
		}
		_ = os.RemoveAll(dir)
	}
}

// killPostmaster SIGKILLs the postmaster serving dataDir, if any. The pid in
// postmaster.pid is trusted only while it belongs to a postgres process whose
// working directory is dataDir: a dead cluster's pid may have gone to an
// unrelated process since.
func killPostmaster(dataDir string) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
		return
	}
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if err != nil {
		return
	}
	want, err := filepath.EvalSymlinks(dataDir)
	if err != nil || cwd != want {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}
