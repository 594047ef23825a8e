package pgtest_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/chasqui/chasqui/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// itemsMigrations counts runs of itemsTemplate's migration, which must happen
// once per test binary however many clones are made.
var itemsMigrations atomic.Int32

var itemsTemplate = pgtest.Template{
	Name: "pgtest_items",
	Migrate: func(ctx context.Context, url string) error {
		itemsMigrations.Add(1)
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, `
			CREATE TABLE items (id bigint PRIMARY KEY, note text NOT NULL);
			INSERT INTO items VALUES (1, 'seed');`)
		return err
	},
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func ids(t *testing.T, conn *pgx.Conn, table string) []int64 {
	t.Helper()
	rows, err := conn.Query(t.Context(), "SELECT id FROM "+table+" ORDER BY id")
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	return got
}

func TestNewDatabaseClonesAreIsolatedAndMigrated(t *testing.T) {
	t.Parallel()
	urlA := pgtest.NewDatabase(t, itemsTemplate)
	urlB := pgtest.NewDatabase(t, itemsTemplate)
	require.NotEqual(t, urlA, urlB)

	a, b := connect(t, urlA), connect(t, urlB)
	require.Equal(t, []int64{1}, ids(t, a, "items"), "clone has the template's table and seed row")
	require.Equal(t, []int64{1}, ids(t, b, "items"))

	_, err := a.Exec(t.Context(), "INSERT INTO items VALUES (2, 'only in a')")
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2}, ids(t, a, "items"))
	require.Equal(t, []int64{1}, ids(t, b, "items"), "a write to one clone must not show in another")
	require.EqualValues(t, 1, itemsMigrations.Load(), "template migrated once per binary")
}

func TestNewDatabaseSurvivesMigrateLeakingAConnection(t *testing.T) {
	t.Parallel()
	leaky := pgtest.Template{
		Name: "pgtest_leaky",
		Migrate: func(ctx context.Context, url string) error {
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				return err
			}
			// Deliberately left open: cloning needs the template idle.
			_, err = conn.Exec(ctx, "CREATE TABLE leaked (id int)")
			return err
		},
	}
	conn := connect(t, pgtest.NewDatabase(t, leaky))
	require.Empty(t, ids(t, conn, "leaked"))
}

func TestKillThenStartKeepsCommittedData(t *testing.T) {
	t.Parallel()
	c := pgtest.StartCluster(t, pgtest.Options{Name: "kill"})
	ctx := t.Context()

	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	require.NoError(t, err)
	_, err = conn.Exec(ctx, "CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
	require.NoError(t, err)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "INSERT INTO t VALUES (2)")
	require.NoError(t, err)

	pid, port := c.PID(), c.Port()
	require.NotZero(t, pid)
	require.NoError(t, c.Kill())
	require.Zero(t, c.PID())
	require.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "postmaster must be gone")
	_ = conn.Close(ctx)

	require.NoError(t, c.Start())
	require.Equal(t, port, c.Port())
	require.NotEqual(t, pid, c.PID())
	// Row 1 was committed; row 2's transaction died with the server.
	require.Equal(t, []int64{1}, ids(t, connect(t, c.URL("postgres")), "t"))
}

func TestStopImmediateAndStopThenStart(t *testing.T) {
	t.Parallel()
	c := pgtest.StartCluster(t, pgtest.Options{Name: "stop", ExtraConf: []string{"application_name = 'from_extra_conf'"}})
	ctx := t.Context()
	require.NoError(t, c.CreateDatabase(ctx, "app"))
	require.NoError(t, c.Exec(ctx, "CREATE TABLE t (id int)"))
	require.NoError(t, c.Exec(ctx, "INSERT INTO t VALUES ($1)", 7))

	require.NoError(t, c.StopImmediate())
	require.Zero(t, c.PID())
	require.ErrorIs(t, c.StopImmediate(), pgtest.ErrNotRunning)
	require.NoError(t, c.Start())
	require.Equal(t, []int64{7}, ids(t, connect(t, c.URL("postgres")), "t"))

	require.NoError(t, c.Stop())
	require.Contains(t, c.LogTail(20), "database system is shut down")
	require.NoError(t, c.Start())
	conn := connect(t, c.URL("app"))
	var app string
	require.NoError(t, conn.QueryRow(ctx, "SHOW application_name").Scan(&app))
	require.Equal(t, "from_extra_conf", app, "ExtraConf reaches postgresql.conf")
}

func TestReplicaReceivesPrimaryWrites(t *testing.T) {
	t.Parallel()
	primary := pgtest.StartCluster(t, pgtest.Options{Name: "primary"})
	replica := primary.StartReplica(t, pgtest.ReplicaOptions{Slot: "pgtest_replica"})
	require.NotEqual(t, primary.Port(), replica.Port())
	ctx := t.Context()

	p := connect(t, primary.URL("postgres"))
	r := connect(t, replica.URL("postgres"))
	var inRecovery bool
	require.NoError(t, r.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery))
	require.True(t, inRecovery)

	_, err := p.Exec(ctx, "CREATE TABLE t (id int); INSERT INTO t VALUES (42)")
	require.NoError(t, err)
	var lsn string
	require.NoError(t, p.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn))

	deadline := time.Now().Add(30 * time.Second)
	for {
		var replayed bool
		err := r.QueryRow(ctx, "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)", lsn).Scan(&replayed)
		require.NoError(t, err)
		if replayed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica did not replay %s within 30s; replica log:\n%s", lsn, replica.LogTail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.Equal(t, []int64{42}, ids(t, r, "t"))

	var active bool
	require.NoError(t, p.QueryRow(ctx, "SELECT active FROM pg_replication_slots WHERE slot_name = 'pgtest_replica'").Scan(&active))
	require.True(t, active, "replica streams through its slot")

	_, err = r.Exec(ctx, "INSERT INTO t VALUES (1)")
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr, "a hot standby is read-only")
	require.Equal(t, "25006", pgErr.Code, "read_only_sql_transaction")
}

// Kill takes down every server process at once, the backends too (each
// leads a process group of its own: PostgreSQL's children call setsid), so
// no backend keeps running, and committing, after Kill returns. A backend
// busy computing does not look for its dead postmaster until it is done.
func TestKillLeavesNoBackendRunning(t *testing.T) {
	t.Parallel()
	c := pgtest.StartCluster(t, pgtest.Options{Name: "killall"})
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	var backend int
	require.NoError(t, conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend))
	busy := make(chan error, 1)
	go func() {
		// Minutes of work with no latch wait in it.
		_, err := conn.Exec(context.Background(), "SELECT count(*) FROM generate_series(1, 10000000000)")
		busy <- err
	}()
	require.Eventually(t, func() bool { return processRunning(backend) && cpuTicks(backend) > 10 }, 30*time.Second, 10*time.Millisecond,
		"the backend should be computing")

	require.NoError(t, c.Kill())
	require.False(t, processRunning(backend), "backend %d still running after Kill", backend)
	require.Error(t, <-busy)
}

// processRunning: pid exists and is not a zombie.
func processRunning(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && len(b) > i+2 && b[i+2] != 'Z' && b[i+2] != 'X'
}

// cpuTicks is the user CPU time of pid in clock ticks (0 when unknown).
func cpuTicks(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 12 {
		return 0
	}
	n, _ := strconv.Atoi(f[11])
	return n
}
