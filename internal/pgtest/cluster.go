package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Timeouts are generous because CI machines are small (2 cores) and several
// test binaries may start clusters at once.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 60 * time.Second
	killTimeout  = 30 * time.Second
)

// ErrNotRunning is returned by operations that need a running server.
var ErrNotRunning = errors.New("pgtest: cluster is not running")

// Options configures a cluster of its own.
type Options struct {
	// Name labels the cluster's directory and error messages, to tell
	// clusters apart in leftovers and logs. Default "cluster".
	Name string
	// ExtraConf lines are appended to postgresql.conf after the harness's
	// own settings, so they win; e.g. "wal_sender_timeout = '1s'".
	// Default none.
	ExtraConf []string
}

// baseConf tunes a cluster for tests. Durability stays at production values
// because tests kill PostgreSQL and check what survived.
var baseConf = []string{
	"listen_addresses = '127.0.0.1'",
	"max_connections = 200",
	"shared_buffers = 128MB",
	"fsync = on",
	"synchronous_commit = on",
	"full_page_writes = on",
	"wal_level = replica",
	"max_wal_senders = 10",
	"max_replication_slots = 10",
	// Lets a replica without a slot catch up after falling a little behind.
	"wal_keep_size = '64MB'",
	// A replica made by pg_basebackup copies this file; a primary ignores it.
	"hot_standby = on",
	// postgres' stderr is redirected to postgres.log by the harness.
	"logging_collector = off",
	"log_line_prefix = '%m [%p] '",
}

// Cluster is a PostgreSQL server this package started from the machine's
// binaries, in a directory of its own, on a loopback address of its own. Its methods may be
// called from several goroutines; lifecycle operations are serialized.
type Cluster struct {
	name    string
	binDir  string
	dir     string // holds data/, sock/, postgres.log
	dataDir string
	sockDir string
	logPath string
	host    string // loopback address of its own, see loopbackHost
	port    int    // fixed once the first start succeeded
	user    osUser

	mu     sync.Mutex
	proc   *postmaster // nil while stopped
	closed bool
}

// postmaster is one run of the server process.
type postmaster struct {
	pid  int
	done chan struct{} // closed when the process has been reaped
	err  error         // exit status; read only after done is closed
}

func (p *postmaster) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// NewCluster initializes and starts a cluster of its own. The caller must
// Close it; tests use StartCluster instead.
func NewCluster(opts Options) (*Cluster, error) {
	dir, err := runDir()
	if err != nil {
		return nil, err
	}
	return newCluster(dir, opts)
}

// StartCluster is NewCluster for tests: it fails t on error and closes the
// cluster when t ends, whether or not t passed.
func StartCluster(t testing.TB, opts Options) *Cluster {
	t.Helper()
	c, err := NewCluster(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

func newCluster(parent string, opts Options) (*Cluster, error) {
	c, err := prepareCluster(parent, opts.Name)
	if err != nil {
		return nil, err
	}
	initdb := c.user.command(c.dir, filepath.Join(c.binDir, "initdb"),
		"-D", c.dataDir, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("pgtest: initdb for %s: %w\n%s", c.name, err, out)
	}
	if err := c.appendConf(append(baseConf, opts.ExtraConf...)); err != nil {
		_ = c.Close()
		return nil, err
	}
	if err := c.launch(true); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// prepareCluster creates the cluster directory, owned by the user the server
// will run as, and fills in everything but the data directory's content.
func prepareCluster(parent, name string) (*Cluster, error) {
	binDir, err := findBinDir()
	if err != nil {
		return nil, err
	}
	u, err := serverUser()
	if err != nil {
		return nil, err
	}
	if name = unsafeName.ReplaceAllString(name, "_"); name == "" {
		name = "cluster"
	}
	dir, err := os.MkdirTemp(parent, name+"-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	c := &Cluster{
		name:    name,
		binDir:  binDir,
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		sockDir: filepath.Join(dir, "sock"),
		logPath: filepath.Join(dir, "postgres.log"),
		user:    u,
	}
	err = errors.Join(
		u.chown(dir),
		os.Mkdir(c.sockDir, 0o700),
		u.chown(c.sockDir),
		os.WriteFile(c.logPath, nil, 0o644),
		u.chown(c.logPath),
	)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: preparing %s: %w", dir, err)
	}
	return c, nil
}

func (c *Cluster) appendConf(lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(c.dataDir, "postgresql.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	_, err = io.WriteString(f, "\n# added by pgtest\n"+strings.Join(lines, "\n")+"\n")
	return errors.Join(err, f.Close())
}

// URL returns a connection URL for database dbname as user postgres over
// TCP; trust authentication needs no password.
func (c *Cluster) URL(dbname string) string {
	return fmt.Sprintf("postgres://postgres@%s:%d/%s?sslmode=disable", c.host, c.port, url.PathEscape(dbname))
}

// Port returns the TCP port, which stays the same across restarts.
func (c *Cluster) Port() int { return c.port }

// DataDir returns the data directory (PGDATA).
func (c *Cluster) DataDir() string { return c.dataDir }

// BinDir returns the directory of the PostgreSQL binaries in use.
func (c *Cluster) BinDir() string { return c.binDir }

// PID returns the postmaster's pid, or 0 while the server is not running.
func (c *Cluster) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil || c.proc.exited() {
		return 0
	}
	return c.proc.pid
}

// Start starts the server again on the same data directory and port, after
// Stop, StopImmediate or Kill; crash recovery runs as it would in production.
func (c *Cluster) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("pgtest: %s is closed", c.name)
	}
	if c.proc != nil && !c.proc.exited() {
		return fmt.Errorf("pgtest: %s is already running", c.name)
	}
	c.proc = nil
	return c.launch(false)
}

// Stop shuts the server down fast (SIGINT: roll back open transactions,
// checkpoint, exit) and waits for every server process to be gone.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := c.takeProc()
	if err != nil {
		return err
	}
	if !p.exited() { // a reaped pid may belong to someone else by now
		_ = syscall.Kill(p.pid, syscall.SIGINT)
	}
	if err := c.awaitExit(p, stopTimeout); err != nil {
		return errors.Join(err, c.killGroup(p))
	}
	return nil
}

// StopImmediate runs `pg_ctl stop -m immediate` as the server's user: the
// postmaster makes every process quit without a checkpoint, so the next
// Start runs crash recovery.
func (c *Cluster) StopImmediate() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := c.takeProc()
	if err != nil {
		return err
	}
	cmd := c.user.command(c.dir, filepath.Join(c.binDir, "pg_ctl"),
		"stop", "-m", "immediate", "-w", "-t", strconv.Itoa(int(stopTimeout.Seconds())), "-D", c.dataDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return errors.Join(fmt.Errorf("pgtest: pg_ctl stop -m immediate on %s: %w\n%s", c.name, err, out), c.killGroup(p))
	}
	if err := c.awaitExit(p, stopTimeout); err != nil {
		return errors.Join(err, c.killGroup(p))
	}
	return nil
}

// Kill SIGKILLs the postmaster and every backend at once, the way a crash or
// the OOM killer would, and returns once all of them are gone. Killing only
// the postmaster would leave backends running until they next notice it
// died; while any is left, the old shared memory stays attached and a
// restart fails.
func (c *Cluster) Kill() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := c.takeProc()
	if err != nil {
		return err
	}
	return c.killGroup(p)
}

// Close stops the server, if running, and removes the cluster directory.
// It kills rather than shuts down, since nothing of the data is kept.
// Calling it again does nothing.
func (c *Cluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var err error
	if c.proc != nil {
		err = c.killGroup(c.proc)
		c.proc = nil
	}
	if rmErr := os.RemoveAll(c.dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("pgtest: %w", rmErr))
	}
	return err
}

// takeProc detaches the running postmaster for a stop; c.mu must be held.
func (c *Cluster) takeProc() (*postmaster, error) {
	if c.proc == nil || c.closed {
		return nil, ErrNotRunning
	}
	p := c.proc
	c.proc = nil
	return p, nil
}

// Exec runs sql with args on the cluster's postgres database, in a
// connection of its own.
func (c *Cluster) Exec(ctx context.Context, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgtest: connecting to %s: %w", c.name, err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}

// CreateDatabase creates an empty database named name.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	return c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
}

// LogTail returns the last n lines of the server's log, for diagnostics.
func (c *Cluster) LogTail(n int) string {
	f, err := os.Open(c.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	// The tail of a big log is all anyone reads; do not load the rest.
	const window = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > window {
		_, _ = f.Seek(fi.Size()-window, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (c *Cluster) logSize() int64 {
	fi, err := os.Stat(c.logPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func (c *Cluster) logSince(off int64) string {
	f, err := os.Open(c.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	_, _ = f.Seek(off, io.SeekStart)
	b, _ := io.ReadAll(io.LimitReader(f, 1<<20))
	return string(b)
}

// launch starts the server and waits until it accepts connections; c.mu
// must be held (or c not yet shared). With newPort it picks a free port
// first and picks again when another process took it before postgres bound
// it. Any start retries while the previous run's lock file, shared memory or
// socket still linger.
func (c *Cluster) launch(newPort bool) error {
	deadline := time.Now().Add(startTimeout)
	for {
		if newPort {
			if c.host == "" {
				c.host = loopbackHost()
			}
			port, err := freePort(c.host)
			if err != nil {
				return err
			}
			c.port = port
		}
		off := c.logSize()
		p, err := c.spawn()
		if err != nil {
			return err
		}
		err = c.waitReady(p, deadline)
		if err == nil {
			c.proc = p
			return nil
		}
		killErr := c.killGroup(p)
		if killErr == nil && transientStartFailure(c.logSince(off)) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		return errors.Join(
			fmt.Errorf("pgtest: starting %s (%s, port %d): %w\n--- tail of %s ---\n%s",
				c.name, c.dataDir, c.port, err, c.logPath, c.LogTail(40)),
			killErr)
	}
}

// transientStartFailure recognizes start failures that go away by
// themselves: a port taken between our probe and postgres' bind, and
// leftovers of a killed predecessor.
func transientStartFailure(log string) bool {
	for _, s := range []string{
		"could not bind",
		"Address already in use",
		"pre-existing shared memory block",
		"already exists",              // lock file of a predecessor
		"could not create any TCP/IP", // follows a bind failure
	} {
		if strings.Contains(log, s) {
			return true
		}
	}
	return false
}

// spawn starts the postmaster as a child process. Not via pg_ctl start,
// which daemonizes: as our child, postgres gets Pdeathsig and dies with a
// killed test binary. (Pdeathsig fires when the thread that forked exits;
// the Go runtime keeps its threads for the life of the process unless a
// goroutine exits while locked to one, which this package never does.)
// Setpgid puts the server in a process group of its own, so Kill can signal
// all its processes at once and a terminal's Ctrl-C reaches only the test.
// Port and socket directory are flags, not config, because a replica copies
// its primary's postgresql.conf.
func (c *Cluster) spawn() (*postmaster, error) {
	logf, err := os.OpenFile(c.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	// The child holds its own copy of the descriptor.
	defer logf.Close()
	// A Unix socket path is limited to 107 bytes; under a deep TMPDIR the
	// server goes without one rather than failing, as this package and its
	// URLs use TCP only.
	sockDir := c.sockDir
	if len(filepath.Join(sockDir, ".s.PGSQL.65535")) > 107 {
		sockDir = ""
	}
	cmd := c.user.command(c.dataDir, filepath.Join(c.binDir, "postgres"),
		"-D", c.dataDir, "-h", c.host, "-p", strconv.Itoa(c.port), "-k", sockDir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgtest: starting postgres for %s: %w", c.name, err)
	}
	p := &postmaster{pid: cmd.Process.Pid, done: make(chan struct{})}
	// Owned by p: Stop, StopImmediate, Kill and Close all wait for done.
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// waitReady polls with real connections until the server accepts one, the
// postmaster exits, or the deadline passes. A connection, unlike a port
// probe, proves startup (and a replica's recovery to consistency) finished.
func (c *Cluster) waitReady(p *postmaster, deadline time.Time) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
		err := c.ping(attempt)
		cancelAttempt()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("postgres exited during startup: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("postgres not accepting connections after %s: %w", startTimeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ping connects and checks that the server answering is this cluster's:
// when two clusters race for one port, the loser's probe would otherwise
// reach the winner.
func (c *Cluster) ping(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var dataDir string
	if err := conn.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dataDir); err != nil {
		return err
	}
	if dataDir != c.dataDir {
		return fmt.Errorf("port %d is served by %s", c.port, dataDir)
	}
	return nil
}

// awaitExit waits for the postmaster to be reaped and then for the rest of
// its process group: only then may the data directory be started again.
func (c *Cluster) awaitExit(p *postmaster, timeout time.Duration) error {
	deadline := time.After(timeout)
	select {
	case <-p.done:
	case <-deadline:
		return fmt.Errorf("pgtest: %s: postmaster %d still running after %s", c.name, p.pid, timeout)
	}
	for groupAlive(p.pid) {
		select {
		case <-deadline:
			return fmt.Errorf("pgtest: %s: server processes of group %d still running after %s", c.name, p.pid, timeout)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// killGroup SIGKILLs the server's whole process group and waits until it is
// gone. The signal is repeated because a process forked while the first
// signal was delivered could escape it. The check comes first: once the
// group is empty and the postmaster reaped, the kernel may hand its number
// to another process group, maybe another cluster's.
func (c *Cluster) killGroup(p *postmaster) error {
	// PostgreSQL's children call setsid(): every backend and auxiliary
	// process leads a process group of its own, so the postmaster's group
	// is the postmaster alone, and a backend left running keeps working
	// (and committing) until it next looks for its postmaster. Stop the
	// postmaster so it forks no more, then kill it and all its children.
	_ = syscall.Kill(p.pid, syscall.SIGSTOP)
	kids := childrenOf(p.pid)
	deadline := time.Now().Add(killTimeout)
	for {
		left := 0
		for _, k := range kids {
			if k.alive() {
				left++
				_ = syscall.Kill(k.pid, syscall.SIGKILL)
			}
		}
		if left == 0 && p.exited() && !groupAlive(p.pid) {
			return nil
		}
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: %s: server processes of postmaster %d survived SIGKILL for %s", c.name, p.pid, killTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// loopbackHosts counts the clusters of this process.
var loopbackHosts atomic.Uint32

// loopbackHost gives each cluster an address of its own in 127.0.0.0/8,
// derived from this process's pid and a counter. A killed cluster's port
// is free for anyone on 127.0.0.1, and another test binary's cluster taking
// it would receive the first cluster's reconnecting clients (seen here:
// commits landing in the wrong cluster). On an address of its own, nobody
// else binds that port while the cluster is down.
func loopbackHost() string {
	pid := os.Getpid()
	n := loopbackHosts.Add(1)
	return fmt.Sprintf("127.%d.%d.%d", 1+(pid>>8)%254, pid&255, 1+(n-1)%254)
}

// freePort asks the kernel for a free port on host. Another process can
// take it before postgres binds it; launch retries when that happens.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("pgtest: finding a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("pgtest: %w", err)
	}
	return port, nil
}
