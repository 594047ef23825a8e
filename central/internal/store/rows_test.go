package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"

	"github.com/chasqui/chasqui/central/internal/catalog"
	"github.com/chasqui/chasqui/central/internal/store"
	"github.com/chasqui/chasqui/internal/fixture"
)

const (
	insert = opsv1.RowOp_ROW_OP_INSERT
	upsert = opsv1.RowOp_ROW_OP_UPSERT
	update = opsv1.RowOp_ROW_OP_UPDATE
	del    = opsv1.RowOp_ROW_OP_DELETE
)

type rowsBundle struct {
	*bundle
	catalog *catalog.Catalog
}

// setupRows is a store on a database holding fixture.OpsSchema, allowed
// "ops.*" (and never "other.*").
func setupRows(t *testing.T, opts store.Options) *rowsBundle {
	t.Helper()
	return setupRowsClock(t, opts, nil)
}

func setupRowsClock(t *testing.T, opts store.Options, now func() time.Time) *rowsBundle {
	t.Helper()
	b := setup(t, opts)
	_, err := b.pool.Exec(context.Background(), fixture.OpsSchema)
	require.NoError(t, err)
	allow, err := catalog.ParseAllowList([]string{"ops.*"})
	require.NoError(t, err)
	cat := catalog.New(b.pool, allow, catalog.Options{Now: now})
	opts.Catalog = cat
	b.store = store.New(b.pool, opts)
	return &rowsBundle{bundle: b, catalog: cat}
}

func (b *rowsBundle) query(t *testing.T, sql string, args ...any) []any {
	t.Helper()
	var out []any
	rs, err := b.pool.Query(context.Background(), sql, args...)
	require.NoError(t, err)
	defer rs.Close()
	for rs.Next() {
		v, err := rs.Values()
		require.NoError(t, err)
		out = append(out, v...)
	}
	require.NoError(t, rs.Err())
	return out
}

func unit(id, name string) *opsv1.Mutation {
	return fixture.Row("ops.unit", insert, map[string]any{"id": id, "name": name})
}

func TestRowsInsertUpdateDeleteKeepOrder(t *testing.T) {
	t.Parallel()
	b := setupRows(t, store.Options{})
	a, c := fixture.ID(), fixture.ID()
	// One batch: insert, update, delete of a, insert and two updates of c,
	// the second on the same key (a new statement).
	res := b.commit(t, fixture.Request("site-1", "e1", 1,
		fixture.Tx(unit(a, "a0"), fixture.Row("ops.unit", update, map[string]any{"id": a, "name": "a1"})),
		fixture.Tx(fixture.Row("ops.unit", del, map[string]any{"id": a})),
		fixture.Tx(unit(c, "c0")),
		fixture.Tx(fixture.Row("ops.unit", update, map[string]any{"id": c, "status": "running", "n": 7.0}),
			fixture.Row("ops.unit", update, map[string]any{"id": c, "status": "done"})),
		fixture.Tx(fixture.Row("ops.unit", upsert, map[string]any{"id": c, "name": "c0", "note": "upserted"})),
	))
	ap, rj, _ := outcomes(res)
	require.Equal(t, []int{5, 0}, []int{ap, rj}, "%+v", res.Txs)
	require.Equal(t, []any{"c0", "done", "upserted", int32(7)}, b.query(t, `SELECT name, status::text, note, n FROM ops.unit`))
}

func TestRowsMissingRowIsRejected(t *testing.T) {
	t.Parallel()
	b := setupRows(t, store.Options{})
	a, gone := fixture.ID(), fixture.ID()
	res := b.commit(t, fixture.Request("site-1", "e1", 1,
		fixture.Tx(unit(a, "a")),
		fixture.Tx(fixture.Row("ops.unit", update, map[string]any{"id": gone, "name": "x"})),
		fixture.Tx(fixture.Row("ops.unit", del, map[string]any{"id": gone})),
		fixture.Tx(fixture.Row("ops.unit", update, map[string]any{"id": a, "name": "a2"})),
	))
	require.Equal(t, store.OutcomeApplied, res.Txs[0].Outcome)
	for _, r := range res.Txs[1:3] {
		require.Equal(t, store.OutcomeRejected, r.Outcome)
		require.Equal(t, "P0002", r.SQLState)
		require.Contains(t, r.Reason, gone)
	}
	require.Equal(t, store.OutcomeApplied, res.Txs[3].Outcome)
	require.Equal(t, []any{"a2"}, b.query(t, `SELECT name FROM ops.unit`))
}

func TestRowsParentAndChildByForeignKey(t *testing.T) {
	t.Parallel()
	b := setupRows(t, store.Options{})
	u1, u2 := fixture.ID(), fixture.ID()
	pkg := func(unitID string) *opsv1.Mutation {
		return fixture.Row("ops.package", insert, map[string]any{"id": fixture.ID(), "unit_id": unitID, "path": "/p"})
	}
	res := b.commit(t, fixture.Request("site-1", "e1", 1,
		fixture.Tx(unit(u1, "one"), pkg(u1)), // one transaction
		fixture.Tx(unit(u2, "two")),          // across transactions
		fixture.Tx(pkg(u2), pkg(u2)),
		fixture.Tx(pkg(fixture.ID())), // no parent: PostgreSQL refuses
	))
	require.Equal(t, store.OutcomeApplied, res.Txs[0].Outcome)
	require.Equal(t, store.OutcomeApplied, res.Txs[1].Outcome)
	require.Equal(t, store.OutcomeApplied, res.Txs[2].Outcome)
	require.Equal(t, store.OutcomeRejected, res.Txs[3].Outcome)
	require.Equal(t, "23503", res.Txs[3].SQLState)
	require.Equal(t, []any{int64(3)}, b.query(t, `SELECT count(*) FROM ops.package`))
}

func TestRowsRefusedBeforePostgreSQL(t *testing.T) {
	t.Parallel()
	b := setupRows(t, store.Options{})
	id := fixture.ID()
	cases := []struct {
		mut  *opsv1.Mutation
		code string
		want string
	}{
		{fixture.Row("other.secret", insert, map[string]any{"id": id}), "42501", "not allowed"},
		{fixture.Row("chasqui.edge_cursors", insert, map[string]any{"edge_id": "x"}), "42501", "not allowed"},
		{fixture.Row("ops.nope", insert, map[string]any{"id": id}), "42P01", "ops.nope does not exist"},
		{fixture.Row("ops.unit", insert, map[string]any{"id": id, "name": "n", "nope": 1.0}), "42703", `column "nope"`},
		{fixture.Row("ops.no_key", insert, map[string]any{"x": 1.0}), "0A000", "no primary key"},
		{fixture.Row("ops.serial_key", insert, map[string]any{"id": 1.0, "x": 1.0}), "0A000", "generated"},
		{fixture.Row("ops.unit", insert, map[string]any{"name": "n"}), "23502", `"id" is missing`},
		{fixture.Row("ops.unit", insert, map[string]any{"id": id, "name": "n", "status": "bogus"}), "22P02", "bogus"},
		{fixture.Row("ops.every_type", insert, map[string]any{"id": id, "i": "twelve"}), "22P02", "twelve"},
	}
	var txs []*opsv1.Transaction
	for _, c := range cases {
		txs = append(txs, fixture.Tx(c.mut))
	}
	ok := fixture.ID()
	txs = append(txs, fixture.Tx(unit(ok, "fine")))
	res := b.commit(t, fixture.Request("site-1", "e1", 1, txs...))
	for i, c := range cases {
		require.Equal(t, store.OutcomeRejected, res.Txs[i].Outcome, "case %d", i)
		require.Equal(t, c.code, res.Txs[i].SQLState, "case %d: %s", i, res.Txs[i].Reason)
		require.Contains(t, res.Txs[i].Reason, c.want, "case %d", i)
	}
	require.Equal(t, store.OutcomeApplied, res.Txs[len(cases)].Outcome)
	require.Equal(t, []any{ok}, b.query(t, `SELECT id::text FROM ops.unit`))
	require.Equal(t, []any{int64(0)}, b.query(t, `SELECT count(*) FROM other.secret`))
}

func TestRowsMigrationAddsColumnDropsTable(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	clock := fixture.Start
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	b := setupRowsClock(t, store.Options{}, now)
	_, err := b.catalog.Load(context.Background())
	require.NoError(t, err)
	ctx := context.Background()
	_, err = b.pool.Exec(ctx, `ALTER TABLE ops.unit ADD COLUMN shift integer`)
	require.NoError(t, err)
	a := fixture.ID()
	row := fixture.Row("ops.unit", insert, map[string]any{"id": a, "name": "a", "shift": 3.0})
	// Within the refresh interval the catalog is not read again: a stream
	// of bad rows costs no catalog scans.
	res := b.commit(t, fixture.Request("site-1", "e1", 1, fixture.Tx(row)))
	require.Equal(t, store.OutcomeRejected, res.Txs[0].Outcome)
	require.Equal(t, "42703", res.Txs[0].SQLState, res.Txs[0].Reason)
	// Past it, the unknown column makes central re-read the catalog.
	mu.Lock()
	clock = clock.Add(catalog.DefaultRefreshInterval)
	mu.Unlock()
	res = b.commit(t, fixture.Request("site-1", "e1", 2, fixture.Tx(row)))
	require.Equal(t, store.OutcomeApplied, res.Txs[0].Outcome, res.Txs[0].Reason)
	require.Equal(t, []any{int32(3)}, b.query(t, `SELECT shift FROM ops.unit`))

	// A dropped table: its rows are rejected, the batch moves on.
	_, err = b.pool.Exec(ctx, `DROP TABLE ops.package`)
	require.NoError(t, err)
	res = b.commit(t, fixture.Request("site-1", "e1", 3,
		fixture.Tx(fixture.Row("ops.package", insert, map[string]any{"id": fixture.ID(), "unit_id": a, "path": "/p"})),
		fixture.Tx(unit(fixture.ID(), "b"))))
	require.Equal(t, store.OutcomeRejected, res.Txs[0].Outcome)
	require.Equal(t, "42P01", res.Txs[0].SQLState, res.Txs[0].Reason)
	require.Equal(t, store.OutcomeApplied, res.Txs[1].Outcome)
	require.Equal(t, uint64(4), res.CommittedThroughSeq)
}

func TestRowsPoisonIsIsolated(t *testing.T) {
	t.Parallel()
	b := setupRows(t, store.Options{})
	var txs []*opsv1.Transaction
	dup := fixture.ID()
	for i := range 40 {
		switch i {
		case 7, 23:
			txs = append(txs, fixture.Tx(unit(dup, "dup"))) // the second is a unique violation
		case 31:
			txs = append(txs, fixture.Tx(fixture.Row("ops.unit", insert, map[string]any{"id": fixture.ID(), "name": nil})))
		default:
			txs = append(txs, fixture.Tx(unit(fixture.ID(), "u")))
		}
	}
	res := b.commit(t, fixture.Request("site-1", "e1", 1, txs...))
	for i, r := range res.Txs {
		want := store.OutcomeApplied
		if i == 23 || i == 31 {
			want = store.OutcomeRejected
		}
		require.Equal(t, want, r.Outcome, "tx %d: %s", i, r.Reason)
	}
	require.Equal(t, []any{int64(38)}, b.query(t, `SELECT count(*) FROM ops.unit`))
}

var _ = centralv1.CommitRequest{}

func TestRowsPerEdgeRestriction(t *testing.T) {
	t.Parallel()
	b := setup(t, store.Options{})
	ctx := context.Background()
	_, err := b.pool.Exec(ctx, fixture.OpsSchema)
	require.NoError(t, err)
	allow, err := catalog.ParseAllowList([]string{"ops.*"})
	require.NoError(t, err)
	perEdge, err := catalog.ParseEdgeTables([]string{"site-2=ops.package"})
	require.NoError(t, err)
	b.store = store.New(b.pool, store.Options{Catalog: catalog.New(b.pool, allow, catalog.Options{PerEdge: perEdge})})

	id := fixture.ID()
	// site-1 is not restricted; site-2 may write ops.package only.
	res := b.commit(t, fixture.Request("site-1", "e1", 1, fixture.Tx(unit(id, "one"))))
	require.Equal(t, store.OutcomeApplied, res.Txs[0].Outcome, res.Txs[0].Reason)
	res = b.commit(t, fixture.Request("site-2", "e1", 1,
		fixture.Tx(unit(fixture.ID(), "two")),
		fixture.Tx(fixture.Row("ops.package", insert, map[string]any{"id": fixture.ID(), "unit_id": id, "path": "/p"}))))
	require.Equal(t, store.OutcomeRejected, res.Txs[0].Outcome)
	require.Equal(t, "42501", res.Txs[0].SQLState)
	require.Contains(t, res.Txs[0].Reason, "ops.unit is not allowed for this edge")
	require.Equal(t, store.OutcomeApplied, res.Txs[1].Outcome, res.Txs[1].Reason)
	rb := &rowsBundle{bundle: b}
	require.Equal(t, []any{int64(1)}, rb.query(t, `SELECT count(*) FROM ops.unit`))
}
