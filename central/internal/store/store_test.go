package store_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"

	"github.com/chasqui/chasqui/central/internal/store"
	"github.com/chasqui/chasqui/central/migrations"
	"github.com/chasqui/chasqui/internal/fixture"
	"github.com/chasqui/chasqui/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// Template is the migrated schema every test clones.
var Template = pgtest.Template{Name: "central_store", Migrate: migrations.MigrateURL}

type bundle struct {
	pool  *pgxpool.Pool
	store *store.Store
}

func setup(t *testing.T, opts store.Options) *bundle {
	t.Helper()
	url := pgtest.NewDatabase(t, Template)
	cfg, err := store.PoolConfig(url)
	require.NoError(t, err)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return &bundle{pool: pool, store: store.New(pool, opts)}
}

func (b *bundle) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), "SELECT count(*) FROM chasqui."+table).Scan(&n))
	return n
}

func (b *bundle) commit(t *testing.T, req *centralv1.CommitRequest) *store.Result {
	t.Helper()
	res, err := b.store.Commit(context.Background(), req)
	require.NoError(t, err)
	require.Len(t, res.Txs, len(req.GetTransactions()))
	return res
}

func outcomes(res *store.Result) (applied, rejected, dups int) {
	for _, r := range res.Txs {
		switch {
		case r.Duplicate:
			dups++
		case r.Outcome == store.OutcomeApplied:
			applied++
		case r.Outcome == store.OutcomeRejected:
			rejected++
		}
	}
	return
}

func TestResendAppliesNothingTwice(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Options{})
	txs := fixture.ObservationTxs(15)

	res := b.commit(t, fixture.Request("site-1", "e1", 1, txs[:10]...))
	require.Equal(t, uint64(10), res.CommittedThroughSeq)
	a, r, d := outcomes(res)
	require.Equal(t, []int{10, 0, 0}, []int{a, r, d})
	require.NotZero(t, res.LSN)

	// The same batch again: all duplicates, nothing written.
	res2 := b.commit(t, fixture.Request("site-1", "e1", 1, txs[:10]...))
	a, r, d = outcomes(res2)
	require.Equal(t, []int{0, 0, 10}, []int{a, r, d})
	for _, x := range res2.Txs {
		require.Equal(t, store.OutcomeApplied, x.Outcome)
	}
	require.GreaterOrEqual(t, res2.LSN, res.LSN)
	require.Equal(t, 10, b.count(t, "observations"))

	// Overlapping: 6..15; 6..10 are duplicates, 11..15 new.
	res3 := b.commit(t, fixture.Request("site-1", "e1", 6, txs[5:]...))
	require.Equal(t, uint64(15), res3.CommittedThroughSeq)
	for i, x := range res3.Txs {
		require.Equal(t, uint64(6+i), x.Seq)
		require.Equal(t, i < 5, x.Duplicate, "seq %d", x.Seq)
		require.Equal(t, store.OutcomeApplied, x.Outcome)
		require.Equal(t, txs[5+i].GetId(), x.TxID)
	}
	require.Equal(t, 15, b.count(t, "observations"))
	require.Equal(t, 15, b.count(t, "applied_transactions"))
}

func TestGapIsRefusedWithExpectedSeq(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Options{GapWait: 50 * time.Millisecond})
	b.commit(t, fixture.Request("site-1", "e1", 1, fixture.ObservationTxs(3)...))

	_, err := b.store.Commit(context.Background(), fixture.Request("site-1", "e1", 6, fixture.ObservationTxs(2)...))
	var gap *store.GapError
	require.ErrorAs(t, err, &gap)
	require.Equal(t, uint64(4), gap.Expected)
	require.Equal(t, 3, b.count(t, "observations"))

	// A new edge must start at 1.
	_, err = b.store.Commit(context.Background(), fixture.Request("site-2", "e1", 2, fixture.ObservationTxs(1)...))
	require.ErrorAs(t, err, &gap)
	require.Equal(t, uint64(1), gap.Expected)
}

// The later batch waits without polling (GapPoll far beyond the test) and
// completes once woken by the earlier one's commit on the same Store.
func TestPipelinedOutOfOrderBatchesWait(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Options{GapWait: 20 * time.Second, GapPoll: time.Hour})
	txs := fixture.ObservationTxs(20)
	errc := make(chan error, 1)
	go func() {
		_, err := b.store.Commit(context.Background(), fixture.Request("site-1", "e1", 11, txs[10:]...))
		errc <- err
	}()
	// Let the second batch arrive first (its transaction rolled back, so
	// the edge has no cursor yet).
	require.Eventually(t, func() bool { return b.store.Stats().Waiting == 1 }, 10*time.Second, 2*time.Millisecond)
	res := b.commit(t, fixture.Request("site-1", "e1", 1, txs[:10]...))
	require.Equal(t, uint64(10), res.CommittedThroughSeq)
	require.NoError(t, <-errc)
	st := b.store.Stats()
	require.Equal(t, uint64(1), st.Woken, "%+v", st)
	require.Zero(t, st.Polled)
	require.Zero(t, st.Refused)
	require.Equal(t, 20, b.count(t, "observations"))
	assertApplyOrderFollowsSeq(t, b, "site-1", 20)
}

// Two centrals on one database: the one holding the later batch is woken
// by the NOTIFY of the other's commit, not by polling or its deadline.
func TestWaitingBatchWokenByOtherCentral(t *testing.T) {
	t.Parallel()
	opts := store.Options{GapWait: 20 * time.Second, GapPoll: time.Hour}
	a := setup(t, opts)
	cfg := a.pool.Config()
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	b := &bundle{pool: pool, store: store.New(pool, opts)}
	ctx, cancel := context.WithCancel(context.Background())
	listened := make(chan error, 1)
	go func() { listened <- b.store.Listen(ctx) }()
	defer func() { cancel(); require.NoError(t, <-listened) }()
	require.Eventually(t, func() bool { return b.store.Stats().Listening }, 10*time.Second, 2*time.Millisecond)

	txs := fixture.ObservationTxs(20)
	errc := make(chan error, 1)
	go func() {
		_, err := b.store.Commit(context.Background(), fixture.Request("site-1", "e1", 11, txs[10:]...))
		errc <- err
	}()
	require.Eventually(t, func() bool { return b.store.Stats().Waiting == 1 }, 10*time.Second, 2*time.Millisecond)
	a.commit(t, fixture.Request("site-1", "e1", 1, txs[:10]...))
	require.NoError(t, <-errc)
	st := b.store.Stats()
	require.Equal(t, uint64(1), st.Woken, "%+v", st)
	require.NotZero(t, st.Notified)
	require.Zero(t, st.Polled)
	require.Equal(t, 20, b.count(t, "observations"))
	assertApplyOrderFollowsSeq(t, b, "site-1", 20)
}

// A gap wait outlasts GapWait while the batch that fills the gap is in
// flight on the same Store (here held up by a lock on the cursor).
func TestGapWaitLastsWhilePredecessorInFlight(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Options{GapWait: 200 * time.Millisecond, GapPoll: time.Hour})
	txs := fixture.ObservationTxs(20)
	b.commit(t, fixture.Request("site-1", "e1", 1, txs[:5]...))
	ctx := context.Background()
	errc := make(chan error, 2)
	go func() {
		_, err := b.store.Commit(ctx, fixture.Request("site-1", "e1", 11, txs[10:]...))
		errc <- err
	}()
	require.Eventually(t, func() bool { return b.store.Stats().Waiting == 1 }, 10*time.Second, 2*time.Millisecond)
	lock, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = lock.Rollback(ctx) }()
	_, err = lock.Exec(ctx, `SELECT 1 FROM chasqui.edge_cursors WHERE edge_id = 'site-1' FOR UPDATE`)
	require.NoError(t, err)
	go func() {
		_, err := b.store.Commit(ctx, fixture.Request("site-1", "e1", 6, txs[5:10]...))
		errc <- err
	}()
	require.Eventually(t, func() bool { return b.store.Stats().Extended > 0 }, 10*time.Second, 2*time.Millisecond)
	require.NoError(t, lock.Rollback(ctx))
	require.NoError(t, <-errc)
	require.NoError(t, <-errc)
	st := b.store.Stats()
	require.Zero(t, st.Refused, "%+v", st)
	require.NotZero(t, st.Woken)
	require.Equal(t, 20, b.count(t, "observations"))
	assertApplyOrderFollowsSeq(t, b, "site-1", 20)
}

// A gap nothing in flight can fill is refused after GapWait with the seq
// the edge must send, though nothing polls and a later batch waits too.
func TestUnfilledGapIsRefusedWhileOthersWait(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Options{GapWait: 300 * time.Millisecond, GapPoll: time.Hour})
	txs := fixture.ObservationTxs(30)
	b.commit(t, fixture.Request("site-1", "e1", 1, txs[:5]...))
	errs := make(chan error, 2)
	for _, first := range []uint64{11, 21} {
		go func() {
			_, err := b.store.Commit(context.Background(), fixture.Request("site-1", "e1", first, txs[first-1:first+9]...))
			errs <- err
		}()
	}
	for range 2 {
		var gap *store.GapError
		require.ErrorAs(t, <-errs, &gap)
		require.Equal(t, uint64(6), gap.Expected)
	}
	st := b.store.Stats()
	require.Equal(t, uint64(2), st.Refused, "%+v", st)
	require.Zero(t, st.Extended)
	require.Equal(t, 5, b.count(t, "observations"))
}

func assertApplyOrderFollowsSeq(t *testing.T, b *bundle, edge string, n int) {
	t.Helper()
	rows, err := b.pool.Query(context.Background(),
		`SELECT seq FROM chasqui.applied_transactions WHERE edge_id = $1 ORDER BY apply_order`, edge)
	require.NoError(t, err)
	var seqs []int64
	for rows.Next() {
		var s int64
		require.NoError(t, rows.Scan(&s))
		seqs = append(seqs, s)
	}
	require.NoError(t, rows.Err())
	require.Len(t, seqs, n)
	for i, s := range seqs {
		require.Equal(t, int64(i+1), s, "apply order %v", seqs)
	}
}

func TestOrderIsKept(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Options{})
	obs := fixture.ID()
	end := fixture.Start.Add(time.Hour)
	// Insert, then two updates of the same record in one batch (the update
	// run must be cut), then a file: all in order.
	res := b.commit(t, fixture.Request("site-1", "e1", 1,
		fixture.Tx(fixture.Observation(obs)),
		fixture.Tx(fixture.Finish(obs, end, map[string]any{"a": 1.0})),
		fixture.Tx(fixture.Finish(obs, end.Add(time.Hour), map[string]any{"b": 2.0, "band": "high"})),
		fixture.Tx(fixture.File(obs, 10), fixture.Config(obs)),
	))
	a, r, d := outcomes(res)
	require.Equal(t, []int{4, 0, 0}, []int{a, r, d}, "%+v", res.Txs)
	var status string
	var gotEnd time.Time
	var attrs map[string]any
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT status, end_time, attributes FROM chasqui.observations WHERE id = $1`, obs).Scan(&status, &gotEnd, &attrs))
	require.Equal(t, "COMPLETED", status)
	require.True(t, gotEnd.Equal(end.Add(time.Hour)), "end %v", gotEnd)
	require.Equal(t, map[string]any{"a": 1.0, "b": 2.0, "band": "high", "pwv_mm": 0.42}, attrs)

	// Across batches: an update lands after its insert of an earlier batch.
	b.commit(t, fixture.Request("site-1", "e1", 5, fixture.Tx(fixture.Finish(obs, end, map[string]any{"c": 3.0}))))
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT end_time FROM chasqui.observations WHERE id = $1`, obs).Scan(&gotEnd))
	require.True(t, gotEnd.Equal(end))
	assertApplyOrderFollowsSeq(t, b, "site-1", 5)
}

func TestTransactionIsAtomic(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Options{})
	good := fixture.ID()
	// Two observations and a file of a missing observation: none of the
	// three rows may stay.
	bad := fixture.Tx(fixture.Observation(fixture.ID()), fixture.Observation(fixture.ID()), fixture.File(fixture.ID(), 1))
	res := b.commit(t, fixture.Request("site-1", "e1", 1, fixture.Tx(fixture.Observation(good)), bad))
	require.Equal(t, store.OutcomeApplied, res.Txs[0].Outcome)
	require.Equal(t, store.OutcomeRejected, res.Txs[1].Outcome)
	require.Equal(t, "23503", res.Txs[1].SQLState)
	require.Contains(t, res.Txs[1].Reason, "foreign key")
	require.Equal(t, 1, b.count(t, "observations"))
	require.Equal(t, 0, b.count(t, "raw_data_files"))
	require.Equal(t, uint64(2), res.CommittedThroughSeq)
}

func TestPoisonIsRejectedAlone(t *testing.T) {
	t.Parallel()
	// Five poisons outlast the id hints (maxHints) and exercise bisection.
	for _, poisons := range [][]int{{50}, {0, 99}, {10, 11, 70}, {1, 2, 3, 50, 98}} {
		t.Run(fmt.Sprint(poisons), func(t *testing.T) {
			t.Parallel()
			b := setup(t, store.Options{})
			txs := fixture.ObservationTxs(100)
			isPoison := map[int]bool{}
			for _, p := range poisons {
				isPoison[p] = true
				// end_time before start_time passes no CHECK: a file of a
				// missing observation (FK) stands in for bad data.
				txs[p] = fixture.Tx(fixture.File(fixture.ID(), 5))
			}
			res := b.commit(t, fixture.Request("site-1", "e1", 1, txs...))
			for i, r := range res.Txs {
				if isPoison[i] {
					require.Equal(t, store.OutcomeRejected, r.Outcome, "seq %d", r.Seq)
					require.Equal(t, "23503", r.SQLState)
					require.NotEmpty(t, r.Reason)
				} else {
					require.Equal(t, store.OutcomeApplied, r.Outcome, "seq %d: %+v", r.Seq, r)
				}
				require.False(t, r.Duplicate)
			}
			require.Equal(t, 100-len(poisons), b.count(t, "observations"))
			require.Equal(t, 100, b.count(t, "applied_transactions"))
			assertApplyOrderFollowsSeq(t, b, "site-1", 100)

			// The stored rejection is answered again on resend.
			res2 := b.commit(t, fixture.Request("site-1", "e1", 1, txs...))
			for i, r := range res2.Txs {
				require.True(t, r.Duplicate)
				require.Equal(t, isPoison[i], r.Outcome == store.OutcomeRejected)
				if isPoison[i] {
					require.Equal(t, res.Txs[i].Reason, r.Reason)
					require.Equal(t, "23503", r.SQLState)
				}
			}
		})
	}
}

func TestDependentOfRejectedIsRejected(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Options{})
	obs := fixture.ID()
	badObs := fixture.Observation(obs)
	badObs.GetObservation().Instrument = string(make([]byte, 0)) // NOT NULL holds, but...
	badObs.GetObservation().Status = 0                           // UNSPECIFIED: fails the status CHECK
	res := b.commit(t, fixture.Request("site-1", "e1", 1,
		fixture.Tx(badObs),
		fixture.Tx(fixture.File(obs, 1)),
		fixture.Tx(fixture.Observation(fixture.ID())),
	))
	require.Equal(t, store.OutcomeRejected, res.Txs[0].Outcome)
	require.Equal(t, "23514", res.Txs[0].SQLState)
	require.Equal(t, store.OutcomeRejected, res.Txs[1].Outcome)
	require.Equal(t, "23503", res.Txs[1].SQLState)
	require.Equal(t, store.OutcomeApplied, res.Txs[2].Outcome)
}

func TestUpdateOfMissingObservationIsRejected(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Options{})
	missing := fixture.ID()
	obs := fixture.ID()
	res := b.commit(t, fixture.Request("site-1", "e1", 1,
		fixture.Tx(fixture.Observation(obs)),
		fixture.Tx(fixture.Finish(obs, fixture.Start.Add(time.Hour), nil), fixture.Finish(missing, fixture.Start, nil)),
		fixture.Tx(fixture.Finish(obs, fixture.Start.Add(2*time.Hour), nil)),
	))
	require.Equal(t, store.OutcomeApplied, res.Txs[0].Outcome)
	require.Equal(t, store.OutcomeRejected, res.Txs[1].Outcome)
	require.Equal(t, "P0002", res.Txs[1].SQLState)
	require.Contains(t, res.Txs[1].Reason, missing)
	require.Equal(t, store.OutcomeApplied, res.Txs[2].Outcome)
	var end time.Time
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT end_time FROM chasqui.observations WHERE id = $1`, obs).Scan(&end))
	require.True(t, end.Equal(fixture.Start.Add(2*time.Hour)))
}

func TestWipedEdgeStoreIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Options{})
	b.commit(t, fixture.Request("site-1", "e1", 1, fixture.ObservationTxs(5)...))

	// A wiped store reuses seqs 1..3 with new transaction ids and a new epoch.
	_, err := b.store.Commit(context.Background(), fixture.Request("site-1", "e2", 1, fixture.ObservationTxs(3)...))
	var conflict *store.ConflictError
	require.ErrorAs(t, err, &conflict)
	require.Equal(t, uint64(1), conflict.Seq)
	require.Equal(t, "e1", conflict.Epoch)
	require.Equal(t, uint64(5), conflict.CursorSeq)
	require.NotEmpty(t, conflict.AppliedTxID)
	// Same epoch, different id at an applied seq: refused too.
	_, err = b.store.Commit(context.Background(), fixture.Request("site-1", "e1", 4, fixture.ObservationTxs(3)...))
	require.ErrorAs(t, err, &conflict)
	require.Equal(t, 5, b.count(t, "observations"))

	// The new epoch continuing at cursor+1 is accepted and becomes the cursor's.
	res := b.commit(t, fixture.Request("site-1", "e2", 6, fixture.ObservationTxs(2)...))
	require.Equal(t, uint64(7), res.CommittedThroughSeq)
	c, err := b.store.GetCursor(context.Background(), "site-1")
	require.NoError(t, err)
	require.Equal(t, store.Cursor{Epoch: "e2", LastSeq: 7}, c)
	c, err = b.store.GetCursor(context.Background(), "nobody")
	require.NoError(t, err)
	require.Equal(t, store.Cursor{}, c)
}

func TestTransactionIDIsAppliedOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Options{})
	tx := fixture.Tx(fixture.Observation(fixture.ID()))
	b.commit(t, fixture.Request("site-1", "e1", 1, tx))
	// The same transaction under a new seq, and from another edge: answered
	// as applied duplicates, not applied again.
	res := b.commit(t, fixture.Request("site-1", "e1", 2, tx, fixture.Tx(fixture.Observation(fixture.ID()))))
	require.True(t, res.Txs[0].Duplicate)
	require.Equal(t, store.OutcomeApplied, res.Txs[0].Outcome)
	require.False(t, res.Txs[1].Duplicate)
	res = b.commit(t, fixture.Request("site-2", "x", 1, tx))
	require.True(t, res.Txs[0].Duplicate)
	require.Equal(t, 2, b.count(t, "observations"))
	// Resending seq 2 answers the same.
	res = b.commit(t, fixture.Request("site-1", "e1", 2, tx))
	require.True(t, res.Txs[0].Duplicate)
	require.Equal(t, store.OutcomeApplied, res.Txs[0].Outcome)

	// A rejected id may be applied when retried, fixed, under a new seq.
	obs := fixture.ID()
	rej := fixture.Tx(fixture.File(obs, 1))
	res = b.commit(t, fixture.Request("site-1", "e1", 4, rej))
	require.Equal(t, store.OutcomeRejected, res.Txs[0].Outcome)
	retry := &opsv1.Transaction{Id: rej.GetId(), Mutations: []*opsv1.Mutation{fixture.Observation(obs), fixture.File(obs, 1)}}
	res = b.commit(t, fixture.Request("site-1", "e1", 5, retry))
	require.Equal(t, store.OutcomeApplied, res.Txs[0].Outcome)
	require.False(t, res.Txs[0].Duplicate)
	require.Equal(t, 1, b.count(t, "raw_data_files"))
}

func TestConcurrentEdgesExactlyOnceInOrder(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Options{GapWait: 10 * time.Second})
	const edges, batches, size = 3, 10, 20
	var wg sync.WaitGroup
	errs := make(chan error, edges*batches*2)
	for e := range edges {
		edge := fmt.Sprintf("site-%d", e)
		txs := fixture.ObservationTxs(batches * size)
		for k := range batches {
			// Every batch twice (a lost ack's resend), all in flight at once.
			for range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					first := uint64(k*size + 1)
					_, err := b.store.Commit(context.Background(), fixture.Request(edge, "e", first, txs[k*size:(k+1)*size]...))
					errs <- err
				}()
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, edges*batches*size, b.count(t, "observations"))
	for e := range edges {
		assertApplyOrderFollowsSeq(t, b, fmt.Sprintf("site-%d", e), batches*size)
	}
}

func TestAnsweredLSNCoversTheCommitRecord(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Options{})
	ctx := context.Background()
	_, err := b.pool.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_walinspect")
	require.NoError(t, err)
	var beforeText string
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&beforeText))
	before, err := store.ParseLSN(beforeText)
	require.NoError(t, err)

	res := b.commit(t, fixture.Request("site-1", "e1", 1, fixture.ObservationTxs(50)...))
	require.Greater(t, res.LSN, before)

	var after string
	require.NoError(t, b.pool.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&after))
	afterLSN, err := store.ParseLSN(after)
	require.NoError(t, err)
	require.LessOrEqual(t, res.LSN, afterLSN)

	// The call's commit record: the COMMIT of the transaction that wrote the
	// bookkeeping rows, found by its xid (xmin of those rows).
	var xid string
	require.NoError(t, b.pool.QueryRow(ctx,
		`SELECT xmin::text FROM chasqui.applied_transactions WHERE edge_id = 'site-1' AND seq = 1`).Scan(&xid))
	var commitEnd string
	require.NoError(t, b.pool.QueryRow(ctx, `
		SELECT end_lsn::text FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)
		WHERE resource_manager = 'Transaction' AND record_type = 'COMMIT' AND xid::text = $3`,
		before.String(), after, xid).Scan(&commitEnd))
	end, err := store.ParseLSN(commitEnd)
	require.NoError(t, err)
	require.GreaterOrEqual(t, res.LSN, end, "answered %s, commit record ends at %s", res.LSN, commitEnd)
}

func TestPruneDropsOldOutcomesOnly(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Options{})
	ctx := context.Background()
	txs := fixture.ObservationTxs(4)
	b.commit(t, fixture.Request("site-1", "e1", 1, txs...))
	_, err := b.pool.Exec(ctx, `UPDATE chasqui.applied_transactions SET applied_at = now() - interval '40 days' WHERE seq <= 2`)
	require.NoError(t, err)
	n, err := b.store.Prune(ctx, 30*24*time.Hour)
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
	require.Equal(t, 2, b.count(t, "applied_transactions"))

	// A resend of pruned seqs is refused, from the same epoch too: central
	// cannot compare the ids, and an edge restored from an old backup
	// reuses seqs for new transactions. It applies nothing.
	for _, epoch := range []string{"e1", "e2"} {
		_, err = b.store.Commit(ctx, fixture.Request("site-1", epoch, 1, txs...))
		var conflict *store.ConflictError
		require.ErrorAs(t, err, &conflict, "epoch %s", epoch)
		require.Equal(t, uint64(1), conflict.Seq)
		require.Empty(t, conflict.AppliedTxID, "pruned: no id to name")
	}
	// A new transaction at a pruned seq (the restored edge) is never taken as applied.
	_, err = b.store.Commit(ctx, fixture.Request("site-1", "e1", 2, fixture.ObservationTxs(1)...))
	var conflict *store.ConflictError
	require.ErrorAs(t, err, &conflict)
	require.Equal(t, 4, b.count(t, "observations"))
	require.Equal(t, 2, b.count(t, "applied_transactions"))
	// Seqs whose outcome is kept are still answered from it.
	res := b.commit(t, fixture.Request("site-1", "e1", 3, txs[2:]...))
	require.Equal(t, store.OutcomeApplied, res.Txs[0].Outcome)
	require.True(t, res.Txs[0].Duplicate)

	// The loop stops with its context.
	ctx2, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.store.RunPruner(ctx2, time.Millisecond, time.Hour) }()
	cancel()
	require.NoError(t, <-done)
}

func TestDatabaseDownIsUnavailableAndNothingHalfApplied(t *testing.T) {
	t.Parallel()
	c := pgtest.StartCluster(t, pgtest.Options{Name: "central_down"})
	ctx := context.Background()
	require.NoError(t, c.CreateDatabase(ctx, "central_store_down"))
	require.NoError(t, migrations.MigrateURL(ctx, c.URL("central_store_down")))
	cfg, err := store.PoolConfig(c.URL("central_store_down"))
	require.NoError(t, err)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	st := store.New(pool, store.Options{GapWait: 5 * time.Second})

	txs := fixture.ObservationTxs(2000)
	// Calls run while PostgreSQL is killed.
	var wg sync.WaitGroup
	results := make([]error, 20)
	for k := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[k] = st.Commit(ctx, fixture.Request("site-1", "e1", uint64(k*100+1), txs[k*100:(k+1)*100]...))
		}()
	}
	require.Eventually(t, func() bool {
		cur, err := st.GetCursor(ctx, "site-1")
		return err == nil && cur.LastSeq > 0
	}, 30*time.Second, time.Millisecond)
	require.NoError(t, c.Kill())
	wg.Wait()
	unavailable := 0
	for _, err := range results {
		if err != nil {
			require.ErrorIs(t, err, store.ErrUnavailable, "%v", err)
			unavailable++
		}
	}
	require.NotZero(t, unavailable)
	_, err = st.Commit(ctx, fixture.Request("site-1", "e1", 1, txs[:100]...))
	require.ErrorIs(t, err, store.ErrUnavailable)

	require.NoError(t, c.Start())
	// Whatever committed is whole: rows match the cursor exactly.
	var cursor int64
	require.Eventually(t, func() bool {
		return pool.QueryRow(ctx, `SELECT last_seq FROM chasqui.edge_cursors`).Scan(&cursor) == nil
	}, 30*time.Second, 10*time.Millisecond)
	var obs, book int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM chasqui.observations), (SELECT count(*) FROM chasqui.applied_transactions)`).Scan(&obs, &book))
	require.Equal(t, cursor, obs)
	require.Equal(t, cursor, book)
	// And it works again: resend everything in order.
	for k := range 20 {
		res, err := st.Commit(ctx, fixture.Request("site-1", "e1", uint64(k*100+1), txs[k*100:(k+1)*100]...))
		require.NoError(t, err)
		require.GreaterOrEqual(t, res.CommittedThroughSeq, uint64((k+1)*100))
	}
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM chasqui.observations`).Scan(&obs))
	require.Equal(t, int64(2000), obs)
}

// Central's own sessions run with synchronous_commit on whatever the server,
// database or role says: an acknowledged commit must be on disk before the
// answer. The database here defaults to off (as an operator tuning for bulk
// loads might set it), so the test cannot pass on the harness's server-wide
// setting alone.
func TestSessionsSynchronousCommitOn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t, Template)
	plain, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	var db string
	require.NoError(t, plain.QueryRow(ctx, "SELECT current_database()").Scan(&db))
	_, err = plain.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" SET synchronous_commit = off")
	require.NoError(t, err)
	require.NoError(t, plain.Close(ctx))

	// A session without central's settings sees the database's default.
	other, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	var setting string
	require.NoError(t, other.QueryRow(ctx, "SHOW synchronous_commit").Scan(&setting))
	require.NoError(t, other.Close(ctx))
	require.Equal(t, "off", setting, "the database default did not take: the check below would prove nothing")

	// Central's pool, configured as the server configures it.
	cfg, err := store.PoolConfig(url)
	require.NoError(t, err)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	// Several sessions of the pool, each a connection of its own.
	conns := make([]*pgxpool.Conn, 3)
	for i := range conns {
		conns[i], err = pool.Acquire(ctx)
		require.NoError(t, err)
		defer conns[i].Release() // before pool.Close, which waits for them
	}
	for _, c := range conns {
		require.NoError(t, c.QueryRow(ctx, "SHOW synchronous_commit").Scan(&setting))
		require.Equal(t, "on", setting, "a session of central's pool commits without waiting for the disk")
	}
}

// A listener whose connection dies is reconnected, and the notifications
// after that wake the batches waiting on it again.
func TestListenerReconnectsAndWakes(t *testing.T) {
	t.Parallel()
	opts := store.Options{GapWait: 20 * time.Second, GapPoll: time.Hour}
	a := setup(t, opts)
	pool, err := pgxpool.NewWithConfig(context.Background(), a.pool.Config())
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	b := store.New(pool, opts)
	ctx, cancel := context.WithCancel(context.Background())
	listened := make(chan error, 1)
	go func() { listened <- b.Listen(ctx) }()
	defer func() { cancel(); require.NoError(t, <-listened) }()
	require.Eventually(t, func() bool { return b.Stats().Listening }, 10*time.Second, 2*time.Millisecond)

	var killed bool
	require.NoError(t, a.pool.QueryRow(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN `+store.CursorChannel+`'`).Scan(&killed))
	require.True(t, killed)
	require.Eventually(t, func() bool { return !b.Stats().Listening }, 10*time.Second, 2*time.Millisecond)
	require.Eventually(t, func() bool { return b.Stats().Listening }, 10*time.Second, 2*time.Millisecond)

	txs := fixture.ObservationTxs(20)
	errc := make(chan error, 1)
	go func() {
		_, err := b.Commit(context.Background(), fixture.Request("site-1", "e1", 11, txs[10:]...))
		errc <- err
	}()
	require.Eventually(t, func() bool { return b.Stats().Waiting == 1 }, 10*time.Second, 2*time.Millisecond)
	a.commit(t, fixture.Request("site-1", "e1", 1, txs[:10]...))
	require.NoError(t, <-errc)
	st := b.Stats()
	require.NotZero(t, st.Woken, "%+v", st)
	require.NotZero(t, st.Notified)
	require.Zero(t, st.Polled)
}
