package e2e

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/chasqui/chasqui/edge/faultproxy"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	"github.com/chasqui/chasqui/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	CleanupBinaries()
	os.Exit(code)
}

// The proxy forwards, counts gRPC calls and connections, and cuts the link
// on Down until Up.
func TestProxyCountsAndCuts(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	p := faultproxy.New(t, lis.Addr().String())
	conn, err := grpc.NewClient(p.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	hc := healthpb.NewHealthClient(conn)
	check := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	before := p.Stats()
	for range 25 {
		require.NoError(t, check(10*time.Second))
	}
	d, _, _ := p.Stats().Sub(before)
	require.Equal(t, int64(25), d.Requests, "one HEADERS frame per call")
	require.Equal(t, int64(1), d.Connections)

	p.Down()
	require.Error(t, check(300*time.Millisecond), "link is down")
	// Connection attempts while down are counted (the listener that
	// replaces the proxy accepts and closes them).
	Eventually(t, 20*time.Second, "refused attempts counted", func() bool {
		_ = check(300 * time.Millisecond)
		return p.Stats().Refused > before.Refused
	})
	p.Up()
	// The client may still be in its reconnect backoff (its last attempt was
	// refused while down): poll rather than expect the first call through.
	Eventually(t, 20*time.Second, "link is back", func() bool { return check(2*time.Second) == nil })

	remove := p.Latency(100, 10)
	t0 := time.Now()
	require.NoError(t, check(20*time.Second))
	require.GreaterOrEqual(t, time.Since(t0), 150*time.Millisecond, "a round trip crosses the latency twice")
	remove()

	removeBH := p.Blackhole(0)
	require.Error(t, check(500*time.Millisecond), "half-open link answers nothing")
	removeBH() // closes the connections it held
	Eventually(t, 20*time.Second, "link back after the blackhole", func() bool { return check(2*time.Second) == nil })
}

// migratedDB returns a database holding central's schema, read from
// central/migrations (SQL files applied in name order), and the ops schema
// with its row log (rows.go).
func migratedDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	url := pgtest.NewDatabase(t, pgtest.Template{Name: "e2e_schema", Migrate: func(ctx context.Context, url string) error {
		dir, err := moduleDir("central")
		if err != nil {
			return err
		}
		files, err := filepath.Glob(filepath.Join(dir, "migrations", "*.sql"))
		if err != nil {
			return err
		}
		sort.Strings(files)
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			if _, err := conn.Exec(ctx, string(b)); err != nil {
				return err
			}
		}
		return ApplyOpsSchema(ctx, url)
	}})
	db, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	return db
}

// The checker counts lost, duplicated, reordered and invented transactions.
func TestHistoryChecker(t *testing.T) {
	t.Parallel()
	db := migratedDB(t)
	ctx := context.Background()
	h := NewHistory()
	ids := make([]string, 11)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7()).String()
	}
	insert := func(tx string, seq int, outcome string, obs int) {
		_, err := db.Exec(ctx, `INSERT INTO chasqui.applied_transactions (edge_id, seq, tx_id, epoch, outcome)
			VALUES ('e1', $1, $2, 'ep', $3)`, seq, tx, outcome)
		require.NoError(t, err)
		for range obs {
			_, err := db.Exec(ctx, `INSERT INTO chasqui.observations (id, instrument, status, start_time, tx_id, edge_id)
				VALUES ($1, 'X', 'RUNNING', now(), $2, 'e1')`, uuid.Must(uuid.NewV7()), tx)
			require.NoError(t, err)
		}
	}
	// 0,1: fine. 2: acknowledged, lost. 3: applied twice (two rows).
	// 5 committed before 4 (order). 6: never written (invented).
	for i := range 6 {
		h.Acked(Ack{TxID: ids[i], EdgeID: "e1", Seq: uint64(i + 1), ObsRows: 1})
	}
	insert(ids[0], 1, "applied", 1)
	insert(ids[1], 2, "applied", 1)
	insert(ids[3], 4, "applied", 2)
	insert(ids[5], 6, "applied", 1)
	insert(ids[4], 5, "applied", 1)
	insert(ids[6], 7, "applied", 1)
	// Poison: 7 rejected as it must be; 8 applied; 9 without an outcome;
	// 10 never acknowledged, applied.
	for i := 7; i <= 9; i++ {
		h.Poison(ids[i])
		h.Acked(Ack{TxID: ids[i], EdgeID: "e1", Seq: uint64(i + 1)})
	}
	h.Poison(ids[10])
	insert(ids[7], 8, "rejected", 0)
	insert(ids[8], 9, "applied", 0)
	insert(ids[10], 11, "applied", 0)

	r, err := CheckHistory(ctx, db, h)
	require.NoError(t, err)
	t.Log(r)
	require.Zero(t, r.RowWrites, "a row log, and nothing in it")
	require.Equal(t, 9, r.Acknowledged)
	require.Equal(t, 3, r.Poison)
	require.Equal(t, 2, r.Lost, "valid tx 2 not applied, poison tx 9 without an outcome")
	require.Equal(t, 1, r.Duplicated)
	require.Equal(t, 1, r.OrderViolations, "seq 5 committed after seq 6")
	require.Equal(t, 2, r.Invented, "an applied row and an observation row of an unknown tx")
	require.Equal(t, 2, r.PoisonApplied, "acknowledged poison 8 and unacknowledged poison 10")
	require.Zero(t, r.Rejected, "a poison rejection is expected")
	require.False(t, r.OK())
}

// The checker counts lost, duplicated, reordered and invented rows of the
// ops tables, as PostgreSQL's trigger logged their writes.
func TestHistoryCheckerRows(t *testing.T) {
	t.Parallel()
	db := migratedDB(t)
	ctx := context.Background()
	h := NewHistory()
	ids := make([]string, 8)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7()).String()
	}
	// Central records txs 0-6 as applied in seq order; their rows are then
	// written (the trigger logs each in write order) as listed below.
	for i := range 7 {
		_, err := db.Exec(ctx, `INSERT INTO chasqui.applied_transactions (edge_id, seq, tx_id, epoch, outcome)
			VALUES ('e1', $1, $2, 'ep', 'applied')`, i+1, ids[i])
		require.NoError(t, err)
	}
	write := func(i int, sqls ...string) {
		for _, sql := range sqls {
			_, err := db.Exec(ctx, sql, ids[i])
			require.NoError(t, err)
		}
	}
	unit := func(id string) string {
		return `INSERT INTO ops.observation_unit (id, name, instrument, e2e_tx) VALUES ('` + id + `', 'u', 'X', $1)`
	}
	pkg := func(unitID string) string {
		return `INSERT INTO ops.raw_data_package (id, unit_id, path, size_bytes, e2e_tx)
			VALUES (gen_random_uuid(), '` + unitID + `', '/p', 1, $1)`
	}
	u1, u2, u3 := newID(), newID(), newID()
	finish := `UPDATE ops.observation_unit SET status = 'COMPLETED', e2e_tx = $1 WHERE id = '` + u1 + `'`
	for i, rows := range []int{2, 1, 2, 1, 1, 1} {
		h.Acked(Ack{TxID: ids[i], EdgeID: "e1", Seq: uint64(i + 1), Rows: rows})
	}
	h.Acked(Ack{TxID: ids[7], EdgeID: "e1", Seq: 8, Rows: 1})
	write(0, unit(u1), pkg(u1)) // fine
	write(1, finish)            // fine
	write(2, unit(u2))          // one row of two: lost
	write(3, finish, finish)    // the update applied twice: duplicated
	write(5, unit(u3))          // seq 6 ...
	write(4, pkg(u2))           // ... before seq 5: order
	write(6, pkg(u3))           // a tx nobody wrote: invented
	write(7, pkg(u3))           // no applied record: invented (and tx 7 lost)

	r, err := CheckHistory(ctx, db, h)
	require.NoError(t, err)
	t.Log(r)
	for _, p := range r.Problems {
		t.Log(p)
	}
	require.Equal(t, 10, r.RowWrites)
	require.Zero(t, r.SeqMismatches, "the transactions themselves were recorded in order")
	require.Equal(t, 3, r.Lost, "tx 2 wrote one row of two; tx 7 is not applied, nor is its row its own")
	require.Equal(t, 1, r.Duplicated, "tx 3's update applied twice")
	require.Equal(t, 1, r.OrderViolations, "seq 5's row written after seq 6's")
	require.Equal(t, 3, r.Invented, "tx 6 in applied_transactions and in the row log, tx 7's row without an applied record")
	require.False(t, r.OK())
}

// The edge-view checker counts stuck, missing, wrongly rejected or
// committed transactions, bad LSNs and stray dead letters.
func TestEdgeViewChecker(t *testing.T) {
	t.Parallel()
	const (
		committed = edgev1.TransactionState_TRANSACTION_STATE_COMMITTED
		visible   = edgev1.TransactionState_TRANSACTION_STATE_VISIBLE
		accepted  = edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED
		rejected  = edgev1.TransactionState_TRANSACTION_STATE_REJECTED
	)
	h := NewHistory()
	v := EdgeView{
		States: map[string]*edgev1.TransactionStatus{}, DeadLetters: map[string]*edgev1.DeadLetter{},
		WALEnd: 10_000, CommitEnd: map[string]uint64{},
	}
	var seq uint64
	// tx adds an acknowledged transaction the edge holds in state with lsn,
	// applied by a commit ending at commitEnd (0: none found).
	tx := func(poison bool, state edgev1.TransactionState, lsn, commitEnd uint64, dead bool) string {
		id := uuid.Must(uuid.NewV7()).String()
		seq++
		if poison {
			h.Poison(id)
		}
		h.Acked(Ack{TxID: id, EdgeID: "e1", Seq: seq})
		if state != edgev1.TransactionState_TRANSACTION_STATE_UNSPECIFIED {
			v.States[id] = &edgev1.TransactionStatus{TransactionId: id, Seq: seq, State: state, CommitLsnValue: lsn}
		}
		if commitEnd > 0 {
			v.CommitEnd[id] = commitEnd
		}
		if dead {
			v.DeadLetters[id] = &edgev1.DeadLetter{Reason: "no_data_found"}
		}
		return id
	}
	tx(false, committed, 500, 500, false)                                         // fine
	tx(false, visible, 900, 400, false)                                           // fine: an LSN past the commit
	tx(true, rejected, 0, 0, true)                                                // fine: poison dead-lettered
	tx(false, accepted, 0, 0, false)                                              // stuck
	tx(true, accepted, 0, 0, false)                                               // stuck poison
	tx(false, edgev1.TransactionState_TRANSACTION_STATE_UNSPECIFIED, 0, 0, false) // unknown to the edge
	tx(false, committed, 0, 500, false)                                           // no LSN
	tx(false, committed, 499, 500, false)                                         // before its commit
	tx(false, committed, 20_000, 500, false)                                      // past the WAL
	tx(false, committed, 600, 0, false)                                           // no commit record applied it
	tx(false, rejected, 0, 0, true)                                               // valid, dead-lettered
	tx(false, committed, 700, 700, true)                                          // committed and a dead letter
	tx(true, rejected, 0, 0, false)                                               // poison rejected without a dead letter
	tx(true, committed, 800, 800, false)                                          // poison applied
	validDead := uuid.Must(uuid.NewV7()).String()
	h.Written(validDead)
	v.DeadLetters[validDead] = &edgev1.DeadLetter{}
	v.DeadLetters[uuid.Must(uuid.NewV7()).String()] = &edgev1.DeadLetter{} // nobody wrote it
	wrongSeq := tx(false, committed, 500, 500, false)
	v.States[wrongSeq].Seq = 99

	var r Report
	CheckEdgeView(h, v, &r)
	t.Log(r)
	require.True(t, r.EdgeChecked)
	require.Equal(t, 3, r.Committed, "two valid and the one under a wrong seq")
	require.Equal(t, 1, r.DeadLettered)
	require.Equal(t, 2, r.Stuck)
	require.Equal(t, 1, r.EdgeMissing)
	require.Equal(t, 4, r.BadLSN)
	require.Equal(t, 1, r.StaleLSN, "the LSN before its commit")
	require.Equal(t, 5, r.WrongState)
	require.Equal(t, 1, r.Invented)
	require.Equal(t, 1, r.SeqMismatches)
	require.False(t, r.OK())
}

// FreePort never hands out the same port twice in one test process (the
// kernel does offer a just-released port again: an edge once got the same
// port for gRPC and HTTP and could not start).
func TestFreePortNeverRepeats(t *testing.T) {
	t.Parallel()
	seen := map[int]bool{}
	for range 300 {
		p := FreePort(t)
		require.False(t, seen[p], "port %d handed out twice", p)
		seen[p] = true
	}
}
