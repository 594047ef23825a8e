package replica_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/chasqui/chasqui/edge/internal/replica"
	"github.com/chasqui/chasqui/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// commits stands in for the queue: central's acknowledgements (LSN, time
// received) and the visibility the watcher reports.
type commits struct {
	mu      sync.Mutex
	acks    []ack
	visible uint64 // highest LSN passed to Replayed
	calls   int
}

type ack struct {
	lsn uint64
	at  time.Time
}

func (c *commits) add(lsn uint64, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.acks = append(c.acks, ack{lsn, at})
}

func (c *commits) Replayed(lsn uint64) (replica.Acked, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	c.visible = max(c.visible, lsn)
	var a replica.Acked
	for _, k := range c.acks {
		a.Newest = max(a.Newest, k.lsn)
		if k.lsn > lsn && a.OldestUnreplayed.IsZero() {
			a.OldestUnreplayed = k.at
		}
	}
	return a, nil
}

func (c *commits) visibleLSN() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.visible
}

type bundle struct {
	primary, replica *pgtest.Cluster
	commits          *commits
	w                *replica.Watcher
	pconn            *pgx.Conn
}

// setup starts a primary, a streaming replica through a slot, and a watcher
// on replicaURL (the replica's own URL when empty).
func setup(t *testing.T, primaryConf []string, url func(r *pgtest.Cluster) string) *bundle {
	t.Helper()
	b := &bundle{commits: &commits{}}
	b.primary = pgtest.StartCluster(t, pgtest.Options{Name: "primary", ExtraConf: primaryConf})
	b.replica = b.primary.StartReplica(t, pgtest.ReplicaOptions{Slot: "chasqui_site"})
	u := b.replica.URL("postgres")
	if url != nil {
		u = url(b.replica)
	}
	w, err := replica.New(replica.Config{
		URL: u, Commits: b.commits, Interval: 10 * time.Millisecond, MaxInterval: 50 * time.Millisecond,
		Timeout: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	b.w = w
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	b.pconn, err = pgx.Connect(context.Background(), b.primary.URL("postgres"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.pconn.Close(context.Background()) })
	_, err = b.pconn.Exec(context.Background(), "CREATE TABLE t (id int)")
	require.NoError(t, err)
	return b
}

// write commits a row on the primary and acknowledges it as central would:
// the LSN read after COMMIT on the same connection.
func (b *bundle) write(t *testing.T) uint64 {
	t.Helper()
	_, err := b.pconn.Exec(context.Background(), "INSERT INTO t VALUES (1)")
	require.NoError(t, err)
	var s string
	require.NoError(t, b.pconn.QueryRow(context.Background(), "SELECT pg_current_wal_insert_lsn()::text").Scan(&s))
	lsn, err := replica.ParseLSN(s)
	require.NoError(t, err)
	b.commits.add(lsn, time.Now())
	return lsn
}

// waitStatus polls the watcher's status (on its own poll signal) until ok.
func waitStatus(t *testing.T, w *replica.Watcher, what string, ok func(replica.Status) bool) replica.Status {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		ch := w.Changed()
		if st := w.Status(); ok(st) {
			return st
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; status %+v", what, w.Status())
		}
	}
}

// polls waits for n more polls.
func polls(t *testing.T, w *replica.Watcher, n int) {
	t.Helper()
	for range n {
		select {
		case <-w.Changed():
		case <-time.After(10 * time.Second):
			t.Fatal("watcher stopped polling")
		}
	}
}

func replicaQuery[T any](t *testing.T, r *pgtest.Cluster, sql string) T {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), r.URL("postgres"))
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var v T
	require.NoError(t, conn.QueryRow(context.Background(), sql).Scan(&v))
	return v
}

// TestVisibilityFollowsReplayLSNNotTime pauses replay on the replica: WAL
// past the acknowledged LSN reaches it, yet nothing becomes visible until
// replay resumes and passes the LSN.
func TestVisibilityFollowsReplayLSNNotTime(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, nil)
	ctx := context.Background()

	lsn1 := b.write(t)
	st := waitStatus(t, b.w, "replay past the first ack", func(s replica.Status) bool {
		return s.State == replica.StateConnected && s.ReplayLSN >= lsn1
	})
	require.GreaterOrEqual(t, b.commits.visibleLSN(), lsn1, "the store was told")
	require.Zero(t, st.LagBytes)
	require.Zero(t, st.LagSeconds)
	require.Equal(t, lsn1, st.NewestAcked)

	require.NoError(t, b.replica.Exec(ctx, "SELECT pg_wal_replay_pause()"))
	require.Eventually(t, func() bool {
		return replicaQuery[string](t, b.replica, "SELECT pg_get_wal_replay_pause_state()") == "paused"
	}, 30*time.Second, 10*time.Millisecond)

	lsn2 := b.write(t)
	// The WAL reaches the replica, but it is not replayed.
	require.Eventually(t, func() bool {
		return replicaQuery[bool](t, b.replica, "SELECT pg_last_wal_receive_lsn() >= '"+replica.FormatLSN(lsn2)+"'::pg_lsn")
	}, 30*time.Second, 10*time.Millisecond)
	polls(t, b.w, 3)
	st = b.w.Status()
	require.Less(t, st.ReplayLSN, lsn2)
	require.Less(t, b.commits.visibleLSN(), lsn2, "not visible while replay is paused, whatever the time")
	require.Equal(t, lsn2-st.ReplayLSN, st.LagBytes)
	require.Positive(t, st.LagSeconds)
	before := st.LagSeconds
	// Lag in seconds is the age of the oldest unreplayed ack: it grows.
	waitStatus(t, b.w, "lag seconds growing", func(s replica.Status) bool { return s.LagSeconds > before+0.05 })

	require.NoError(t, b.replica.Exec(ctx, "SELECT pg_wal_replay_resume()"))
	st = waitStatus(t, b.w, "replay past the second ack", func(s replica.Status) bool { return s.ReplayLSN >= lsn2 })
	require.GreaterOrEqual(t, b.commits.visibleLSN(), lsn2)
	require.Zero(t, st.LagBytes)
	require.Zero(t, st.LagSeconds)

	// An idle primary: the last replayed transaction ages, the lag stays 0.
	polls(t, b.w, 5)
	st = b.w.Status()
	require.Zero(t, st.LagSeconds)
	require.False(t, st.ReplayTimestamp.IsZero())
}

// TestUnreachableReplicaIsReportedAndRecovers stops the replica: the state
// says so, the lag keeps growing from what was acknowledged meanwhile, and
// the watcher reconnects when it is back.
func TestUnreachableReplicaIsReportedAndRecovers(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, nil)
	lsn1 := b.write(t)
	waitStatus(t, b.w, "caught up", func(s replica.Status) bool { return s.ReplayLSN >= lsn1 })

	require.NoError(t, b.replica.Stop())
	st := waitStatus(t, b.w, "unreachable", func(s replica.Status) bool { return s.State == replica.StateUnreachable })
	require.NotEmpty(t, st.Err)
	require.GreaterOrEqual(t, st.ReplayLSN, lsn1, "the last replay LSN seen is kept")

	lsn2 := b.write(t)
	st = waitStatus(t, b.w, "lag while unreachable", func(s replica.Status) bool { return s.NewestAcked == lsn2 && s.LagSeconds > 0 })
	require.Equal(t, lsn2-st.ReplayLSN, st.LagBytes)
	require.Less(t, b.commits.visibleLSN(), lsn2)

	require.NoError(t, b.replica.Start())
	st = waitStatus(t, b.w, "reconnected and caught up", func(s replica.Status) bool {
		return s.State == replica.StateConnected && s.ReplayLSN >= lsn2
	})
	require.Empty(t, st.Err)
	require.Zero(t, st.LagSeconds)
	require.GreaterOrEqual(t, b.commits.visibleLSN(), lsn2)
}

// TestReseedAfterSlotInvalidated is the documented recovery path (README,
// "Re-seeding the site replica"): the replica was down while more WAL than
// max_slot_wal_keep_size was written, the primary invalidated its slot, and
// the replica is rebuilt with pg_basebackup behind the same address; the
// watcher recovers on its own.
func TestReseedAfterSlotInvalidated(t *testing.T) {
	t.Parallel()
	var target atomic.Value // replica address behind the stable proxy address
	proxy := startProxy(t, &target)
	b := setup(t, []string{"max_slot_wal_keep_size = '16MB'", "wal_keep_size = 0"}, func(r *pgtest.Cluster) string {
		target.Store(hostPort(t, r.URL("postgres")))
		return "postgres://postgres@" + proxy + "/postgres?sslmode=disable"
	})
	ctx := context.Background()
	lsn1 := b.write(t)
	waitStatus(t, b.w, "caught up", func(s replica.Status) bool { return s.ReplayLSN >= lsn1 })

	// The replica is away while the primary writes past the slot's limit.
	require.NoError(t, b.replica.Stop())
	for range 4 {
		b.write(t)
		_, err := b.pconn.Exec(ctx, "SELECT pg_switch_wal()")
		require.NoError(t, err)
	}
	_, err := b.pconn.Exec(ctx, "CHECKPOINT")
	require.NoError(t, err)
	var walStatus string
	require.NoError(t, b.pconn.QueryRow(ctx, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'chasqui_site'").Scan(&walStatus))
	require.Equal(t, "lost", walStatus, "the slot is invalidated")
	lsn2 := b.write(t)
	waitStatus(t, b.w, "unreachable", func(s replica.Status) bool { return s.State == replica.StateUnreachable })

	// Re-seed: drop the dead replica and its slot, pg_basebackup a new one.
	require.NoError(t, b.replica.Close())
	_, err = b.pconn.Exec(ctx, "SELECT pg_drop_replication_slot('chasqui_site')")
	require.NoError(t, err)
	fresh := b.primary.StartReplica(t, pgtest.ReplicaOptions{Name: "reseeded", Slot: "chasqui_site"})
	target.Store(hostPort(t, fresh.URL("postgres")))

	st := waitStatus(t, b.w, "recovered on the re-seeded replica", func(s replica.Status) bool {
		return s.State == replica.StateConnected && s.ReplayLSN >= lsn2
	})
	require.Zero(t, st.LagBytes)
	require.GreaterOrEqual(t, b.commits.visibleLSN(), lsn2)
	require.NoError(t, b.pconn.QueryRow(ctx, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'chasqui_site'").Scan(&walStatus))
	require.NotEqual(t, "lost", walStatus)
}

func TestConfigValidateNamesTheField(t *testing.T) {
	t.Parallel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	_, err := replica.New(replica.Config{Logger: logger})
	require.ErrorContains(t, err, "URL (--replica-url)")
	_, err = replica.New(replica.Config{URL: "postgres://x@h/db", Interval: time.Second, MaxInterval: time.Millisecond, Logger: logger})
	require.ErrorContains(t, err, "MaxInterval")
	var nilWatcher *replica.Watcher
	require.Equal(t, replica.StateDisabled, nilWatcher.Status().State)
}

func TestLSNText(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"0/0", "0/16B3748", "16/B374D848", "FFFFFFFF/FFFFFFFF"} {
		v, err := replica.ParseLSN(s)
		require.NoError(t, err)
		require.Equal(t, s, replica.FormatLSN(v))
	}
	v, _ := replica.ParseLSN("1/0")
	require.Equal(t, uint64(1)<<32, v)
	for _, s := range []string{"", "0", "x/1", "1/2/3", "100000000/0"} {
		_, err := replica.ParseLSN(s)
		require.Error(t, err, s)
	}
}

func hostPort(t *testing.T, url string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	require.NoError(t, err)
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
}

// startProxy forwards TCP connections to the address in target: the
// replica's stable address while the server behind it is rebuilt.
func startProxy(t *testing.T, target *atomic.Value) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = lis.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				addr, _ := target.Load().(string)
				u, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					return
				}
				defer u.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return lis.Addr().String()
}
