// Package centralproc runs the real chasqui-central binary, built from the
// sibling central module, for the edge's tests and benchmarks. It keeps the
// edge module independent of central's Go packages: the edge knows central
// only over the wire, as a deployment does.
package centralproc

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Generous deadlines: a loaded 2-core CI machine builds and runs central
// next to PostgreSQL and the race-enabled test binary.
const (
	DefaultReadyTimeout = 90 * time.Second
	DefaultStopTimeout  = 45 * time.Second
)

// Options configures one central process.
type Options struct {
	// DatabaseURL is central's PostgreSQL; central migrates it at start, so
	// an empty database will do.
	DatabaseURL string
	// GRPCAddr defaults to "127.0.0.1:0"; the address bound is read from
	// central's log.
	GRPCAddr string
	// TLSCert, TLSKey and TLSCA serve mutual TLS; all empty serves
	// --insecure.
	TLSCert, TLSKey, TLSCA string
	// Log, if set, receives central's log lines (JSON).
	Log io.Writer
	// Args are more flags for central, e.g. "--allow-tables", "ops.*".
	Args []string
}

var binary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Build builds chasqui-central once per process into a temporary directory
// (removed by Cleanup) and returns the binary's path.
func Build() (string, error) {
	binary.once.Do(func() {
		md, err := centralDir()
		if err != nil {
			binary.err = err
			return
		}
		if binary.dir, err = os.MkdirTemp("", "chasqui-centralproc-"); err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(binary.dir, "chasqui-central")
		cmd := exec.Command("go", "build", "-o", binary.path, "./cmd/chasqui-central")
		cmd.Dir = md
		if out, err := cmd.CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("centralproc: go build in %s: %w\n%s", md, err, out)
		}
	})
	return binary.path, binary.err
}

// Cleanup removes the binary Build made; TestMain calls it after the run.
func Cleanup() {
	if binary.dir != "" {
		_ = os.RemoveAll(binary.dir)
	}
}

// centralDir finds the central module above the working directory, which
// is the package's directory under `go test` and the edge module's under
// `go run ./bench`.
func centralDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "central", "go.mod")); err == nil {
			return filepath.Join(d, "central"), nil
		}
	}
	return "", fmt.Errorf("centralproc: module central not found above %s", wd)
}

// Central is one running chasqui-central process.
type Central struct {
	cmd      *exec.Cmd
	grpcAddr string
	done     chan struct{} // closed once the process is reaped
	waitErr  error         // set before done closes

	mu   sync.Mutex
	tail []string // the last log lines, for errors
}

const tailLines = 60

// Start builds central if needed, starts it and waits until it logs that it
// is ready (schema migrated, serving).
func Start(ctx context.Context, opts Options) (*Central, error) {
	path, err := Build()
	if err != nil {
		return nil, err
	}
	if opts.GRPCAddr == "" {
		opts.GRPCAddr = "127.0.0.1:0"
	}
	args := []string{"--grpc-addr", opts.GRPCAddr, "--http-addr", "-", "--database-url", opts.DatabaseURL}
	if opts.TLSCert == "" && opts.TLSKey == "" && opts.TLSCA == "" {
		args = append(args, "--insecure")
	} else {
		args = append(args, "--tls-cert", opts.TLSCert, "--tls-key", opts.TLSKey, "--tls-ca", opts.TLSCA)
	}
	args = append(args, opts.Args...)
	cmd := exec.Command(path, args...)
	cmd.Env = childEnv()
	// Pdeathsig: a killed test binary takes central with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("centralproc: start: %w", err)
	}
	c := &Central{cmd: cmd, done: make(chan struct{})}
	listening := make(chan string, 1)
	ready := make(chan struct{})
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		c.scan(stderr, opts.Log, listening, ready)
	}()
	go func() {
		<-scanned // Wait closes the pipe: read it to the end first
		c.waitErr = cmd.Wait()
		close(c.done)
	}()

	timer := time.NewTimer(DefaultReadyTimeout)
	defer timer.Stop()
	for c.grpcAddr == "" || ready != nil {
		select {
		case addr := <-listening:
			c.grpcAddr = addr
		case <-ready:
			ready = nil
		case <-c.done:
			return nil, fmt.Errorf("centralproc: central exited before it was ready (%v); log tail:\n%s", c.waitErr, c.Tail())
		case <-timer.C:
			c.kill()
			return nil, fmt.Errorf("centralproc: central not ready after %s; log tail:\n%s", DefaultReadyTimeout, c.Tail())
		case <-ctx.Done():
			c.kill()
			return nil, ctx.Err()
		}
	}
	return c, nil
}

// scan reads central's JSON log: "central listening" names the gRPC
// address bound, "central ready…" follows the migration.
func (c *Central) scan(r io.Reader, log io.Writer, listening chan<- string, ready chan<- struct{}) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	isReady := false
	for sc.Scan() {
		line := sc.Text()
		if log != nil {
			fmt.Fprintln(log, line)
		}
		c.mu.Lock()
		c.tail = append(c.tail, line)
		if len(c.tail) > tailLines {
			c.tail = c.tail[len(c.tail)-tailLines:]
		}
		c.mu.Unlock()
		var rec struct {
			Msg      string `json:"msg"`
			GRPCAddr string `json:"grpc_addr"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		switch {
		case rec.Msg == "central listening" && rec.GRPCAddr != "":
			listening <- rec.GRPCAddr
		case strings.HasPrefix(rec.Msg, "central ready") && !isReady:
			isReady = true
			close(ready)
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// childEnv is the environment without CHASQUI_* settings, which would
// otherwise silently override the flags given.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CHASQUI_") {
			env = append(env, kv)
		}
	}
	return env
}

// GRPCAddr is the address central serves gRPC on.
func (c *Central) GRPCAddr() string { return c.grpcAddr }

// Tail is central's last log lines.
func (c *Central) Tail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.tail, "\n")
}

// Stop shuts central down with SIGTERM and waits for it; an exit other than
// a clean one is an error. Stopping a stopped central is a no-op.
func (c *Central) Stop() error {
	select {
	case <-c.done:
		return c.exitErr()
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-c.done:
		return c.exitErr()
	case <-time.After(DefaultStopTimeout):
		c.kill()
		return fmt.Errorf("centralproc: central did not stop within %s; log tail:\n%s", DefaultStopTimeout, c.Tail())
	}
}

func (c *Central) exitErr() error {
	if c.waitErr != nil {
		return fmt.Errorf("centralproc: central: %w; log tail:\n%s", c.waitErr, c.Tail())
	}
	return nil
}

func (c *Central) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// StartT starts central for a test: t fails if it cannot start, and central
// is stopped, cleanly, when the test ends.
func StartT(t testing.TB, opts Options) *Central {
	t.Helper()
	c, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// EmptyDatabase is a pgtest migration that leaves the database empty:
// central migrates it itself at start.
func EmptyDatabase(context.Context, string) error { return nil }

// PID is central's process id (for its CPU time in benchmarks).
func (c *Central) PID() int { return c.cmd.Process.Pid }
