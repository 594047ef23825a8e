package deploytest

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestRunScriptStopsPostgresWithStdoutGone runs scripts/run.sh (what `make
// run` runs, with the real binaries, both PostgreSQL clusters and the
// services) with its stdout into a pipe, as `make run | tee run.log` does.
// Once it is up, the pipe's reader goes away and the whole process group
// gets SIGINT, as Ctrl-C does to make, tee and the script. The cleanup
// must still stop both clusters: no postgres of this run may be left.
func TestRunScriptStopsPostgresWithStdoutGone(t *testing.T) {
	t.Parallel()
	// A copy of the repository's layout the script expects: scripts/ and
	// bin/ side by side. PostgreSQL runs as `postgres` when we are root: the
	// directories must be open to it.
	root, err := os.MkdirTemp("", "chasqui-runsh-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	for _, d := range []string{root, filepath.Join(root, "scripts"), filepath.Join(root, "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []string{"run.sh", "site-replica.sh", "check-postgres.sh"} {
		copyFile(t, repoPath("scripts/"+s), filepath.Join(root, "scripts", s), 0o755)
	}
	if err := os.MkdirAll(filepath.Join(root, "examples"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, repoPath("examples/ops-schema.sql"), filepath.Join(root, "examples", "ops-schema.sql"), 0o644)
	for _, b := range []string{"chasqui-central", "chasqui-edge", "chasqui"} {
		bin, err := buildBinary(b)
		if err != nil {
			t.Fatal(err)
		}
		copyFile(t, bin, filepath.Join(root, "bin", b), 0o755)
	}
	run := filepath.Join(root, "run")
	stopClusters := func() { // whatever the script left, so a failure leaves nothing running
		for _, d := range []string{"pg", "replica"} {
			_ = asPostgres("pg_ctl", "-D", filepath.Join(run, d), "-m", "immediate", "-w", "stop").Run()
		}
	}
	t.Cleanup(stopClusters)

	port := func() string { a := refusedAddr(t); return a[strings.LastIndex(a, ":")+1:] }
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "run.sh"))
	cmd.Env = append(cleanEnv(),
		"CHASQUI_RUN_DIR="+run,
		"CHASQUI_RUN_PG_PORT="+port(), "CHASQUI_RUN_REPLICA_PORT="+port(),
		"CHASQUI_RUN_CENTRAL_ADDR="+refusedAddr(t), "CHASQUI_RUN_CENTRAL_HTTP="+refusedAddr(t),
		"CHASQUI_RUN_EDGE_ADDR="+refusedAddr(t), "CHASQUI_RUN_EDGE_HTTP="+refusedAddr(t),
		"CHASQUI_RUN_EDGE_ADMIN="+refusedAddr(t),
	)
	// Its own process group: the SIGINT below goes to it all, as Ctrl-C's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = w, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = w.Close() // the script holds the only write end
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })

	// Read its stdout until it says it is running, then stop reading.
	up := make(chan bool, 1)
	var stdout lockedBuffer
	out := stdout.String
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			_, _ = stdout.Write([]byte(sc.Text() + "\n"))
			if strings.HasPrefix(sc.Text(), "Chasqui is running") {
				up <- true
				return
			}
		}
		up <- false
	}()
	select {
	case ok := <-up:
		if !ok {
			t.Fatalf("run.sh ended before it was up: %v\nstdout:\n%s\nstderr:\n%s", <-exited, out(), stderr.String())
		}
	case <-time.After(4 * time.Minute):
		t.Fatalf("run.sh not up after 4 minutes\nstdout:\n%s", out())
	}
	for _, d := range []string{"pg", "replica"} {
		if postgresPID(filepath.Join(run, d)) == 0 {
			t.Fatalf("run.sh is up but no postgres serves %s (the test would prove nothing)", d)
		}
	}
	// The site's own ops schema (examples/ops-schema.sql) is in the database
	// central writes: applied before central starts, so central's allow-list
	// finds its tables.
	pgPort := ""
	for _, kv := range cmd.Env {
		if v, ok := strings.CutPrefix(kv, "CHASQUI_RUN_PG_PORT="); ok {
			pgPort = v
		}
	}
	got, err := asPostgres("psql", "-h", "127.0.0.1", "-p", pgPort, "-U", "postgres", "-d", "chasqui", "-qtAXc",
		`SELECT count(*) FROM pg_class WHERE oid IN ('ops.observation_unit'::regclass, 'ops.raw_data_package'::regclass)`).CombinedOutput()
	if err != nil || strings.TrimSpace(string(got)) != "2" {
		t.Errorf("ops schema not applied by run.sh: %v: %s", err, got)
	}
	if err := r.Close(); err != nil { // the reader (tee) is gone
		t.Fatal(err)
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		t.Logf("run.sh after SIGINT: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatalf("run.sh still running 2 minutes after SIGINT\nstderr:\n%s", stderr.String())
	}
	// The script has returned: its cleanup is over, whatever it managed.
	for _, d := range []string{"pg", "replica"} {
		if pid := postgresPID(filepath.Join(run, d)); pid != 0 {
			log, _ := os.ReadFile(filepath.Join(run, "logs", "run.log"))
			t.Errorf("postgres of %s still running (pid %d) after Ctrl-C with stdout closed\nstderr:\n%s\nrun.log:\n%s",
				d, pid, stderr.String(), log)
		}
	}
}

// postgresPID is the pid of the running postmaster of data directory dir,
// or 0. postmaster.pid's first line names it; the process must exist.
func postgresPID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || pid <= 0 {
		return 0
	}
	if syscall.Kill(pid, 0) != nil {
		return 0
	}
	return pid
}

// asPostgres runs a PostgreSQL program of the newest installed version,
// as the postgres user when we are root (as the script does).
func asPostgres(prog string, args ...string) *exec.Cmd {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + prog)
	path := prog
	if len(bins) > 0 {
		path = bins[len(bins)-1]
	}
	if os.Getuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

// lockedBuffer is a bytes.Buffer safe to read while a process writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}
