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
