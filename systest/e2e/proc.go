// Package e2e proves Chasqui's guarantees (docs/design.md, "Guarantees") end to end:
// the real chasqui-central and chasqui-edge binaries run as child processes
// against a real PostgreSQL, with a TCP fault proxy (toxiproxy, in process)
// on the WAN link between them. Faults are real: kill -9 of processes,
// PostgreSQL crashes, link outages, latency, narrow bandwidth and resets.
//
// The non-test files hold the harness: processes (this file), the stack of
// PostgreSQL + central + proxy + edge (stack.go; the fault proxy is
// edge/faultproxy, which the edge's own tests use too), a load generator
// (load.go) and a history checker (history.go) that compares what clients
// were told with what PostgreSQL holds.
package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Generous deadlines: a loaded 2-core CI machine runs PostgreSQL, both
// services, the proxy and the race-enabled test binary at once.
const (
	readyTimeout = 90 * time.Second
	stopTimeout  = 45 * time.Second
)

// Binary names as built from ./cmd/... of each module.
const (
	CentralBin = "chasqui-central"
	EdgeBin    = "chasqui-edge"
)

var binaries struct {
	once sync.Once
	dir  string
	err  error
}

// moduleDir finds a sibling module (central, edge) from this package's
// directory, which is where `go test` runs the test binary.
func moduleDir(name string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, name, "go.mod")); err == nil {
			return filepath.Join(d, name), nil
		}
	}
	return "", fmt.Errorf("e2e: module %s not found above %s", name, wd)
}

// BuildBinaries builds the services once per test binary into a temporary
// directory (removed by Cleanup) and returns it. CHASQUI_E2E_RACE=1 builds
// them with -race too (slower, catches races in the services under faults).
func BuildBinaries() (string, error) {
	binaries.once.Do(func() {
		dir, err := os.MkdirTemp("", "chasqui-e2e-bin-")
		if err != nil {
			binaries.err = err
			return
		}
		binaries.dir = dir
		for _, mod := range []string{"central", "edge"} {
			md, err := moduleDir(mod)
			if err != nil {
				binaries.err = err
				return
			}
			args := []string{"build", "-o", dir + "/"}
			if os.Getenv("CHASQUI_E2E_RACE") == "1" {
				args = append(args, "-race")
			}
			args = append(args, "./cmd/...")
			cmd := exec.Command("go", args...)
			cmd.Dir = md
			if out, err := cmd.CombinedOutput(); err != nil {
				binaries.err = fmt.Errorf("e2e: go build in %s: %w\n%s", md, err, out)
				return
			}
		}
	})
	return binaries.dir, binaries.err
}

// CleanupBinaries removes the binaries; TestMain calls it after the run.
func CleanupBinaries() {
	if binaries.dir != "" {
		_ = os.RemoveAll(binaries.dir)
	}
}

// binaryPath returns the path of a service binary BuildBinaries built. A
// binary missing after the build fails t: a skip would let the suite go
// green while proving nothing.
func binaryPath(t testing.TB, name string) string {
	t.Helper()
	dir, err := BuildBinaries()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("e2e: %s was not built from the cmd/ directories of central and edge: %v", name, err)
	}
	return p
}

// handedOut are the ports FreePort gave this test process: the kernel may
// offer a port it just took back again (it did: an edge got the same port
// for gRPC and HTTP), and processes keep their ports across restarts.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago and
// that it has not returned before in this test process.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		handedOut.Lock()
		fresh := !handedOut.ports[port]
		handedOut.ports[port] = true
		handedOut.Unlock()
		if fresh {
			return port
		}
	}
	t.Fatal("e2e: no free port that was not handed out before")
	return 0
}

// FreeAddr is FreePort as "127.0.0.1:PORT".
func FreeAddr(t testing.TB) string {
	return "127.0.0.1:" + strconv.Itoa(FreePort(t))
}

// Process is one service binary run as a child process. Its address and
// arguments stay the same across restarts, so clients and the proxy keep
// pointing at it. Methods are safe for concurrent use.
type Process struct {
	t        testing.TB
	name     string
	path     string
	args     []string
	grpcAddr string
	logPath  string

	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{} // closed when cmd has been reaped
	runs  int
	extra []string // appended to args from the next start on
}

// StartProcess starts path with args, waits until its gRPC health check at
// grpcAddr answers SERVING, and arranges for it to be killed when t ends.
// Its stdout and stderr go to a log file in t.TempDir(), whose tail is
// printed when t fails.
func StartProcess(t testing.TB, name, path, grpcAddr string, args ...string) *Process {
	t.Helper()
	p := NewProcess(t, name, path, grpcAddr, args...)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *Process) cleanup() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
	if p.t.Failed() {
		p.t.Logf("---- %s log tail, successful calls left out (%s) ----\n%s", p.name, p.logPath, p.LogTail(80))
	}
}

// Addr is the process's gRPC address.
func (p *Process) Addr() string { return p.grpcAddr }

// LogPath is the file holding the process's stdout and stderr (all runs).
func (p *Process) LogPath() string { return p.logPath }

// SetExtraArgs replaces the arguments appended from the next start on.
func (p *Process) SetExtraArgs(args ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.extra = args
}

// Running reports whether the process is alive.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// PID is the process id, 0 when not running.
func (p *Process) PID() int {
	if !p.Running() {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Start launches the process (it must not be running) and waits until it is
// ready.
func (p *Process) Start() error {
	if err := p.launch(); err != nil {
		return err
	}
	return p.WaitReady(readyTimeout)
}

// StartNoWait launches the process without waiting for readiness.
func (p *Process) StartNoWait() error { return p.launch() }

func (p *Process) launch() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("e2e: %s already running", p.name)
		}
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.runs++
	fmt.Fprintf(logf, "==== e2e: start #%d of %s at %s ====\n", p.runs, p.name, time.Now().Format(time.RFC3339Nano))
	args := append(append([]string(nil), p.args...), p.extra...)
	cmd := exec.Command(p.path, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = childEnv()
	// Pdeathsig: a killed test binary takes its services with it. Setpgid:
	// signals from a terminal's Ctrl-C reach the test, which cleans up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("e2e: starting %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

// childEnv is the test's environment without CHASQUI_* settings, which would
// otherwise silently override the flags the harness passes.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CHASQUI_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// WaitReady polls the gRPC health check until it answers SERVING, the
// process exits, or timeout passes.
func (p *Process) WaitReady(timeout time.Duration) error {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("e2e: %s exited before it was ready; log tail:\n%s", p.name, p.LogTail(60))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("health %s", resp.GetStatus())
		}
		last = err
		select {
		case <-done:
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("e2e: %s not ready after %s: %v; log tail:\n%s", p.name, timeout, last, p.LogTail(60))
}

// Kill sends SIGKILL (a real kill -9) and waits until the process is reaped.
func (p *Process) Kill() error {
	return p.signalAndWait(syscall.SIGKILL, stopTimeout)
}

// Stop sends SIGTERM and waits for a graceful exit; a process still alive
// after the stop timeout is killed and reported as an error.
func (p *Process) Stop() error {
	err := p.signalAndWait(syscall.SIGTERM, stopTimeout)
	if err != nil {
		return errors.Join(err, p.Kill())
	}
	return nil
}

// ExitCode is the exit status of the last run (-1 when killed by a signal or
// still running).
func (p *Process) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.ProcessState == nil {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *Process) signalAndWait(sig syscall.Signal, timeout time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("e2e: %s never started", p.name)
	}
	select {
	case <-done:
		return nil
	default:
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("e2e: signalling %s: %w", p.name, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("e2e: %s still running %s after %s", p.name, timeout, sig)
	}
}

// Restart stops the process gracefully and starts it again.
func (p *Process) Restart() error {
	if err := p.Stop(); err != nil {
		return err
	}
	return p.Start()
}

// LogTail returns the last n lines of the process log.
func (p *Process) LogTail(n int) string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), `"grpc.code":"OK"`) {
			continue // successful calls drown what matters
		}
		lines = append(lines, sc.Text())
		if len(lines) > 4*n {
			lines = append([]string(nil), lines[len(lines)-n:]...)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// CountLog counts log lines containing every one of substrs.
func (p *Process) CountLog(substrs ...string) int {
	f, err := os.Open(p.logPath)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		for _, s := range substrs {
			if !strings.Contains(line, s) {
				continue next
			}
		}
		n++
	}
	return n
}
