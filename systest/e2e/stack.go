package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"

	"github.com/chasqui/chasqui/edge/faultproxy"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	"github.com/chasqui/chasqui/internal/grpcclient"
	"github.com/chasqui/chasqui/internal/pgtest"
)

// StackOptions configures a Stack.
type StackOptions struct {
	// OwnCluster gives the test a PostgreSQL cluster of its own (needed
	// when the test stops or kills PostgreSQL); otherwise the test gets a
	// database cloned in the shared cluster.
	OwnCluster bool
	// CentralDown leaves central stopped; the test starts it with
	// s.Central.Start().
	CentralDown bool
	// EdgeID defaults to "site-e2e".
	EdgeID string
	// Compression is the edge's --compression. Default "none": central
	// does not register the gzip decompressor yet (TestLinkGzip shows it).
	Compression string
	// CentralArgs and EdgeArgs are appended to the services' flags.
	CentralArgs, EdgeArgs []string
	// DataDir is the edge's data directory (default: in t.TempDir()).
	DataDir string
}

// Stack is PostgreSQL, central, the WAN proxy and an edge, wired as in
// production: edge -> proxy -> central -> PostgreSQL.
type Stack struct {
	T       testing.TB
	EdgeID  string
	DBURL   string
	DB      *pgxpool.Pool
	Cluster *pgtest.Cluster // nil unless OwnCluster
	Central *Process
	Proxy   *faultproxy.Proxy
	Edge    *Process
	DataDir string

	// Client is an instrument-side client of the edge with the project's
	// retry policy (grpcclient); Admin is the edge's admin service.
	Conn   *grpc.ClientConn
	Client edgev1.EdgeServiceClient
	Admin  edgev1.AdminServiceClient

	wal *WALWatch // keeps the WAL from before the first write, for Check
}

// settleTimeout bounds Check's wait for the edge to learn the outcome of
// every acknowledged transaction; generous, as the drain deadlines are.
const settleTimeout = 3 * time.Minute

// NewStack starts everything for t; all of it is torn down when t ends.
func NewStack(t testing.TB, opts StackOptions) *Stack {
	t.Helper()
	centralBin := binaryPath(t, CentralBin)
	edgeBin := binaryPath(t, EdgeBin)
	s := &Stack{T: t, EdgeID: opts.EdgeID}
	if s.EdgeID == "" {
		s.EdgeID = "site-e2e"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if opts.OwnCluster {
		s.Cluster = pgtest.StartCluster(t, pgtest.Options{Name: "e2e"})
		if err := s.Cluster.CreateDatabase(ctx, "chasqui"); err != nil {
			t.Fatal(err)
		}
		s.DBURL = s.Cluster.URL("chasqui")
		if err := ApplyOpsSchema(ctx, s.DBURL); err != nil {
			t.Fatal(err)
		}
	} else {
		s.DBURL = pgtest.NewDatabase(t, opsDB)
	}
	cfg, err := pgxpool.ParseConfig(s.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 4
	s.DB, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.DB.Close)
	if s.wal, err = StartWALWatch(ctx, s.DB); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// A cluster of the test's own is thrown away, slot and all; the
		// shared one would keep the WAL for the rest of the run.
		if err := s.wal.Close(ctx, s.DB); err != nil && s.Cluster == nil {
			t.Errorf("dropping the history check's WAL slot: %v", err)
		}
	})

	centralAddr := FreeAddr(t)
	centralArgs := append([]string{
		"--insecure", "--grpc-addr", centralAddr, "--http-addr", FreeAddr(t),
		"--database-url", s.DBURL, "--allow-tables", OpsAllow,
	}, opts.CentralArgs...)
	if opts.CentralDown {
		s.Central = NewProcess(t, "central", centralBin, centralAddr, centralArgs...)
	} else {
		s.Central = StartProcess(t, "central", centralBin, centralAddr, centralArgs...)
	}

	s.Proxy = faultproxy.New(t, centralAddr)
	s.DataDir = opts.DataDir
	if s.DataDir == "" {
		s.DataDir = filepath.Join(t.TempDir(), "edge-data")
	}
	if opts.Compression == "" {
		opts.Compression = "none"
	}
	edgeAddr := FreeAddr(t)
	s.Edge = StartProcess(t, "edge", edgeBin, edgeAddr, append([]string{
		"--insecure", "--edge-id", s.EdgeID, "--grpc-addr", edgeAddr, "--http-addr", FreeAddr(t),
		"--data-dir", s.DataDir, "--central-addr", s.Proxy.Addr(), "--compression", opts.Compression,
	}, opts.EdgeArgs...)...)

	s.Conn, err = grpcclient.Dial(edgeAddr, grpcclient.Options{Logger: clientLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Conn.Close() })
	s.Client = edgev1.NewEdgeServiceClient(s.Conn)
	s.Admin = edgev1.NewAdminServiceClient(s.Conn)
	return s
}

// NewProcess prepares a process without starting it; Start launches it.
func NewProcess(t testing.TB, name, path, grpcAddr string, args ...string) *Process {
	t.Helper()
	p := &Process{
		t: t, name: name, path: path, args: args, grpcAddr: grpcAddr,
		logPath: filepath.Join(t.TempDir(), name+".log"),
	}
	t.Cleanup(p.cleanup)
	return p
}

// clientLogger sends the instrument client's per-attempt logs to a file in
// the test's temp dir (CHASQUI_E2E_VERBOSE=1: to stderr).
func clientLogger(t testing.TB) *slog.Logger {
	var w io.Writer = io.Discard
	if os.Getenv("CHASQUI_E2E_VERBOSE") == "1" {
		w = os.Stderr
	} else if f, err := os.Create(filepath.Join(t.TempDir(), "client.log")); err == nil {
		t.Cleanup(func() { _ = f.Close() })
		w = f
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// WaitApplied waits until every acknowledged transaction of h is in
// PostgreSQL, failing t after timeout.
func (s *Stack) WaitApplied(h *History, timeout time.Duration) {
	s.T.Helper()
	ids := h.AckedIDs()
	missing, err := WaitApplied(context.Background(), s.DB, ids, timeout)
	if err != nil || missing > 0 {
		st := s.statusLine()
		s.T.Fatalf("after %s, %d of %d acknowledged transactions not in PostgreSQL (err %v); edge status: %s",
			timeout, missing, len(ids), err, st)
	}
}

// Check waits until the edge has settled (no acknowledged transaction
// still ACCEPTED, for at most settleTimeout), then runs the history checker
// on PostgreSQL and on the edge's own view, asserting every guarantee and
// logging the figures.
func (s *Stack) Check(h *History) Report {
	s.T.Helper()
	r := s.CheckReport(h)
	r.Assert(s.T)
	return r
}

// CheckReport is Check without the assertion.
func (s *Stack) CheckReport(h *History) Report {
	s.T.Helper()
	t0 := time.Now()
	defer func() {
		s.T.Logf("history check took %s (edge settle, dead letters, WAL scan)", time.Since(t0).Round(time.Millisecond))
	}()
	view, err := s.EdgeView(h)
	if err != nil {
		s.T.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := CheckHistory(ctx, s.DB, h)
	if err != nil {
		s.T.Fatal(err)
	}
	CheckEdgeView(h, view, &r)
	if r.Stuck > 0 {
		r.problem("after %s the edge still holds %d acknowledged transaction(s) ACCEPTED; edge status: %s",
			settleTimeout, r.Stuck, s.statusLine())
	}
	return r
}

// EdgeView reads the edge's view of h's acknowledged transactions once
// none is ACCEPTED any more, or settleTimeout has passed, then its dead
// letters and the commit records in the WAL.
func (s *Stack) EdgeView(h *History) (EdgeView, error) {
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout+3*time.Minute)
	defer cancel()
	v := EdgeView{States: map[string]*edgev1.TransactionStatus{}}
	pending := h.AckedIDs()
	deadline := time.Now().Add(settleTimeout)
	for len(pending) > 0 {
		got, err := readStates(ctx, s.Client, pending)
		if err != nil {
			return v, err
		}
		var still []string
		for _, id := range pending {
			st, ok := got[id]
			if ok {
				v.States[id] = st
			}
			if ok && st.GetState() == edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED {
				still = append(still, id)
			}
		}
		pending = still
		if len(pending) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond) // poll interval
	}
	var err error
	if v.DeadLetters, err = readDeadLetters(ctx, s.Admin); err != nil {
		return v, err
	}
	v.CommitEnd, v.WALEnd, err = s.wal.CommitEnds(ctx, s.DB)
	return v, err
}

// statusLine is the edge's admin status, for failure messages.
func (s *Stack) statusLine() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := s.Admin.GetStatus(ctx, &edgev1.GetStatusRequest{})
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("queue_count=%d committed_through=%d last_accepted=%d forwarder=%s last_error=%q dead_letters=%d",
		st.GetQueueCount(), st.GetCommittedThroughSeq(), st.GetLastAcceptedSeq(), st.GetForwarderState(),
		st.GetForwarderLastError(), st.GetDeadLetters())
}

// Eventually polls cond every interval until it returns true or timeout
// passes, then fails t with msg.
func Eventually(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, msg)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}
