package store

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"

	"github.com/chasqui/chasqui/central/internal/catalog"
	"github.com/chasqui/chasqui/internal/fixture"
	"github.com/chasqui/chasqui/internal/rows"
)

// The built-in records are rows of chasqui's tables on the one apply
// path: the same statements as any row, in sequence order, a run cut where
// the kind (table, op, columns) changes or a key repeats.
func TestBuiltinRecordsAreRows(t *testing.T) {
	t.Parallel()
	unit := &catalog.Table{Name: rows.Table{Schema: "ops", Name: "unit"}, Key: []string{"id"},
		Columns: map[string]*catalog.Column{"id": {Name: "id"}, "name": {Name: "name"}}}
	snap := &catalog.Snapshot{Tables: map[string]*catalog.Table{"ops.unit": unit}}
	a, b := fixture.ID(), fixture.ID()
	muts := []*opsv1.Mutation{
		fixture.Observation(a), fixture.Observation(b), // one statement
		fixture.Finish(a, fixture.Start.Add(time.Hour), nil), fixture.Finish(a, fixture.Start.Add(2*time.Hour), nil), // a repeated key: two
		fixture.Row("ops.unit", opsv1.RowOp_ROW_OP_INSERT, map[string]any{"id": fixture.ID(), "name": "u"}),
		fixture.Config(a), fixture.File(a, 1),
	}
	plan := []*planned{{id: uuid.New(), snap: snap, tx: &opsv1.Transaction{Mutations: muts}}}
	stmts := dataStatements("site-1", plan)
	want := []string{
		`INSERT INTO "chasqui"."observations"`,
		`UPDATE "chasqui"."observations"`,
		`UPDATE "chasqui"."observations"`,
		`INSERT INTO "ops"."unit"`,
		`INSERT INTO "chasqui"."instrument_configs"`,
		`INSERT INTO "chasqui"."raw_data_files"`,
	}
	require.Len(t, stmts, len(want))
	for i, s := range stmts {
		require.Contains(t, s.sql, want[i], "statement %d", i)
		require.Contains(t, s.sql, "jsonb_populate_record", "statement %d converts through the table's row type", i)
	}
	require.Equal(t, 2, strings.Count(stmts[0].args[0].(string), `"instrument":"CHAI"`))
}

// A row joins the run before it only with the same table, op and column
// set (whatever the order of its values) and a key not in the run yet.
func TestRowRunsCutWhereTheShapeChanges(t *testing.T) {
	t.Parallel()
	cols := map[string]*catalog.Column{"id": {Name: "id"}, "name": {Name: "name"}, "note": {Name: "note"}}
	unit := &catalog.Table{Name: rows.Table{Schema: "ops", Name: "unit"}, Key: []string{"id"}, Columns: cols}
	other := &catalog.Table{Name: rows.Table{Schema: "ops", Name: "other"}, Key: []string{"id"}, Columns: cols}
	snap := &catalog.Snapshot{Tables: map[string]*catalog.Table{"ops.unit": unit, "ops.other": other}}
	row := func(table string, op opsv1.RowOp, v map[string]any) *opsv1.Mutation { return fixture.Row(table, op, v) }
	ins, ups := opsv1.RowOp_ROW_OP_INSERT, opsv1.RowOp_ROW_OP_UPSERT
	a := fixture.ID()
	muts := []*opsv1.Mutation{
		row("ops.unit", ins, map[string]any{"id": a, "name": "1"}),
		row("ops.unit", ins, map[string]any{"name": "2", "id": fixture.ID()}),               // same run
		row("ops.unit", ins, map[string]any{"id": fixture.ID(), "note": "3"}),               // other columns, as many
		row("ops.unit", ins, map[string]any{"id": fixture.ID(), "name": "4", "note": "4"}),  // more columns
		row("ops.unit", ups, map[string]any{"id": fixture.ID(), "name": "5", "note": "5"}),  // other op
		row("ops.other", ups, map[string]any{"id": fixture.ID(), "name": "6", "note": "6"}), // other table
		row("ops.other", ups, map[string]any{"id": a, "name": "7", "note": "7"}),
		row("ops.other", ups, map[string]any{"id": a, "name": "8", "note": "8"}), // repeated key
	}
	plan := []*planned{{id: uuid.New(), snap: snap, tx: &opsv1.Transaction{Mutations: muts}}}
	stmts := dataStatements("site-1", plan)
	want := [][2]string{
		{`INSERT INTO "ops"."unit" ("id", "name")`, ""},
		{`INSERT INTO "ops"."unit" ("id", "note")`, ""},
		{`INSERT INTO "ops"."unit" ("id", "name", "note")`, ""},
		{`INSERT INTO "ops"."unit" ("id", "name", "note")`, "ON CONFLICT"},
		{`INSERT INTO "ops"."other" ("id", "name", "note")`, "ON CONFLICT"},
		{`INSERT INTO "ops"."other" ("id", "name", "note")`, "ON CONFLICT"},
	}
	require.Len(t, stmts, len(want))
	for i, w := range want {
		require.Contains(t, stmts[i].sql, w[0], "statement %d", i)
		if w[1] != "" {
			require.Contains(t, stmts[i].sql, w[1], "statement %d", i)
		} else {
			require.NotContains(t, stmts[i].sql, "ON CONFLICT", "statement %d", i)
		}
	}
	rowsIn := func(i int) int { return strings.Count(stmts[i].args[0].(string), `"id"`) }
	require.Equal(t, []int{2, 1, 1, 1, 2, 1}, []int{rowsIn(0), rowsIn(1), rowsIn(2), rowsIn(3), rowsIn(4), rowsIn(5)})
}
