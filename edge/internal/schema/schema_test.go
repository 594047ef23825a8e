package schema

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/validate"
)

// testSchema is a small ops database: units with an enum status, packages
// referencing them, and a table central refuses.
func testSchema() *opsv1.Schema {
	str := func(name string, nullable, def bool) *opsv1.ColumnSchema {
		return &opsv1.ColumnSchema{Name: name, Type: "text", Kind: opsv1.ValueKind_VALUE_KIND_STRING, Nullable: nullable, HasDefault: def}
	}
	return &opsv1.Schema{
		Version: "v1",
		Tables: []*opsv1.TableSchema{
			{
				Name: "ops.observation_unit",
				Columns: []*opsv1.ColumnSchema{
					{Name: "id", Type: "uuid", Kind: opsv1.ValueKind_VALUE_KIND_STRING},
					str("name", false, false),
					{Name: "status", Type: "ops.unit_status", Kind: opsv1.ValueKind_VALUE_KIND_ENUM, EnumLabels: []string{"planned", "running", "done"}, HasDefault: true},
					{Name: "priority", Type: "bigint", Kind: opsv1.ValueKind_VALUE_KIND_INTEGER, Nullable: true},
					{Name: "ra_deg", Type: "numeric", Kind: opsv1.ValueKind_VALUE_KIND_NUMBER, Nullable: true},
					{Name: "calibrated", Type: "boolean", Kind: opsv1.ValueKind_VALUE_KIND_BOOL, Nullable: true},
					{Name: "meta", Type: "jsonb", Kind: opsv1.ValueKind_VALUE_KIND_JSON, Nullable: true},
					{Name: "digest", Type: "bytea", Kind: opsv1.ValueKind_VALUE_KIND_BYTES, Nullable: true},
					{Name: "tags", Type: "text[]", Kind: opsv1.ValueKind_VALUE_KIND_STRING, Array: true, Nullable: true},
					{Name: "name_lower", Type: "text", Kind: opsv1.ValueKind_VALUE_KIND_STRING, Nullable: true, Generated: true},
					str("created_at", false, true),
				},
				PrimaryKey: []string{"id"},
			},
			{
				Name: "ops.raw_data_package",
				Columns: []*opsv1.ColumnSchema{
					{Name: "site", Type: "text", Kind: opsv1.ValueKind_VALUE_KIND_STRING},
					{Name: "seq", Type: "bigint", Kind: opsv1.ValueKind_VALUE_KIND_INTEGER},
					{Name: "unit_id", Type: "uuid", Kind: opsv1.ValueKind_VALUE_KIND_STRING},
					{Name: "size_bytes", Type: "bigint", Kind: opsv1.ValueKind_VALUE_KIND_INTEGER, Nullable: true},
				},
				PrimaryKey: []string{"site", "seq"},
				ForeignKeys: []*opsv1.ForeignKey{{
					Name: "raw_data_package_unit_id_fkey", Columns: []string{"unit_id"},
					ReferencesTable: "ops.observation_unit", ReferencesColumns: []string{"id"},
				}},
			},
			{
				Name:          "ops.log",
				Columns:       []*opsv1.ColumnSchema{{Name: "id", Type: "bigint", Kind: opsv1.ValueKind_VALUE_KIND_INTEGER, HasDefault: true}},
				PrimaryKey:    []string{"id"},
				RefusedReason: "its key only a sequence can fill: a retried insert could not be deduplicated",
			},
		},
	}
}

func row(t *testing.T, table string, op opsv1.RowOp, values map[string]any) *opsv1.Row {
	t.Helper()
	s, err := structpb.NewStruct(values)
	require.NoError(t, err)
	return &opsv1.Row{Table: table, Op: op, Values: s}
}

const (
	insert = opsv1.RowOp_ROW_OP_INSERT
	upsert = opsv1.RowOp_ROW_OP_UPSERT
	update = opsv1.RowOp_ROW_OP_UPDATE
	del    = opsv1.RowOp_ROW_OP_DELETE
)

const unitID = "0190f5e8-7a3b-7c1d-8e2f-123456789abc"

func TestCheckAcceptsGoodRows(t *testing.T) {
	t.Parallel()
	c := New(testSchema())
	for name, r := range map[string]*opsv1.Row{
		"insert minimal": row(t, "ops.observation_unit", insert, map[string]any{"id": unitID, "name": "u1"}),
		"insert every kind": row(t, "ops.observation_unit", insert, map[string]any{
			"id": unitID, "name": "u1", "status": "running", "priority": 9007199254740993.0,
			"ra_deg": "83.8220833333333333333", "calibrated": true, "meta": map[string]any{"a": []any{1.0, "x"}},
			"digest": "3q2+7w==", "tags": []any{"a", nil, "b"},
		}),
		"big integer as digits":  row(t, "ops.raw_data_package", insert, map[string]any{"site": "cl", "seq": "9007199254740993", "unit_id": unitID}),
		"negative integer":       row(t, "ops.raw_data_package", upsert, map[string]any{"site": "cl", "seq": -4.0, "unit_id": unitID}),
		"numeric as number":      row(t, "ops.observation_unit", update, map[string]any{"id": unitID, "ra_deg": 1.5}),
		"numeric NaN":            row(t, "ops.observation_unit", update, map[string]any{"id": unitID, "ra_deg": "NaN"}),
		"numeric beyond float64": row(t, "ops.observation_unit", update, map[string]any{"id": unitID, "ra_deg": "1e400"}),
		"update to null":         row(t, "ops.observation_unit", update, map[string]any{"id": unitID, "priority": nil}),
		"multi-dim array":        row(t, "ops.observation_unit", update, map[string]any{"id": unitID, "tags": []any{[]any{"a", "b"}, []any{"c", nil}}}),
		"delete":                 row(t, "ops.raw_data_package", del, map[string]any{"site": "cl", "seq": 1.0}),
	} {
		require.NoError(t, c.Check(r), name)
	}
}

func TestCheckRefusesNamingTheField(t *testing.T) {
	t.Parallel()
	c := New(testSchema())
	for name, tc := range map[string]struct {
		r           *opsv1.Row
		field, want string
	}{
		"unknown table":    {row(t, "ops.nope", insert, map[string]any{"id": 1.0}), "table", "not a table central allows"},
		"hostile table":    {row(t, `ops.x"; drop table y`, insert, map[string]any{"id": 1.0}), "table", "not a table central allows"},
		"refused table":    {row(t, "ops.log", insert, map[string]any{"id": 1.0}), "table", "only a sequence"},
		"unknown column":   {row(t, "ops.observation_unit", insert, map[string]any{"id": unitID, "name": "u", "colour": "red"}), "values.colour", "no column"},
		"generated column": {row(t, "ops.observation_unit", update, map[string]any{"id": unitID, "name_lower": "u"}), "values.name_lower", "generated"},
		"missing key":      {row(t, "ops.raw_data_package", update, map[string]any{"site": "cl", "size_bytes": 3.0}), "values.seq", "primary key"},
		"null key":         {row(t, "ops.raw_data_package", del, map[string]any{"site": "cl", "seq": nil}), "values.seq", "must not be null"},
		"insert missing":   {row(t, "ops.observation_unit", insert, map[string]any{"id": unitID}), "values.name", "NOT NULL without a default"},
		"upsert missing":   {row(t, "ops.raw_data_package", upsert, map[string]any{"site": "cl", "seq": 1.0}), "values.unit_id", "NOT NULL"},
		"null, default":    {row(t, "ops.observation_unit", insert, map[string]any{"id": unitID, "name": "u", "created_at": nil}), "values.created_at", "NOT NULL"},
		"null not null":    {row(t, "ops.observation_unit", update, map[string]any{"id": unitID, "name": nil}), "values.name", "NOT NULL"},
		"update key only":  {row(t, "ops.observation_unit", update, map[string]any{"id": unitID}), "values", "besides the primary key"},
		"delete extra":     {row(t, "ops.raw_data_package", del, map[string]any{"site": "cl", "seq": 1.0, "size_bytes": 2.0}), "values.size_bytes", "primary key only"},
		"string as int":    {row(t, "ops.raw_data_package", update, map[string]any{"site": "cl", "seq": 1.0, "size_bytes": "12kB"}), "values.size_bytes", "want an integer"},
		"fraction as int":  {row(t, "ops.raw_data_package", update, map[string]any{"site": "cl", "seq": 1.5, "size_bytes": 1.0}), "values.seq", "want an integer"},
		"bool as int":      {row(t, "ops.raw_data_package", update, map[string]any{"site": "cl", "seq": 1.0, "size_bytes": true}), "values.size_bytes", "got a bool"},
		"number as string": {row(t, "ops.observation_unit", update, map[string]any{"id": unitID, "name": 3.0}), "values.name", "want a string"},
		"bad numeric":      {row(t, "ops.observation_unit", update, map[string]any{"id": unitID, "ra_deg": "0x1p3"}), "values.ra_deg", "want a number"},
		"string as bool":   {row(t, "ops.observation_unit", update, map[string]any{"id": unitID, "calibrated": "yes"}), "values.calibrated", "true or false"},
		"bad base64":       {row(t, "ops.observation_unit", update, map[string]any{"id": unitID, "digest": "not base64!"}), "values.digest", "base64"},
		"bad enum label":   {row(t, "ops.observation_unit", update, map[string]any{"id": unitID, "status": "lost"}), "values.status", "not a label of ops.unit_status"},
		"scalar for array": {row(t, "ops.observation_unit", update, map[string]any{"id": unitID, "tags": "a"}), "values.tags", "want a list"},
		"bad element":      {row(t, "ops.observation_unit", update, map[string]any{"id": unitID, "tags": []any{"a", 1.0}}), "values.tags", "element 1"},
	} {
		err := c.Check(tc.r)
		var ve *validate.Error
		require.True(t, errors.As(err, &ve), "%s: %v", name, err)
		require.Equal(t, tc.field, ve.Violations[0].Field, name)
		require.Contains(t, ve.Violations[0].Description, tc.want, name)
		require.Contains(t, validate.Status(err).Message(), tc.field, name)
	}
}

func TestCheckSubmitNamesTheMutation(t *testing.T) {
	t.Parallel()
	c := New(testSchema())
	txs := []*opsv1.Transaction{
		{Mutations: []*opsv1.Mutation{{Kind: &opsv1.Mutation_Row{Row: row(t, "ops.observation_unit", insert, map[string]any{"id": unitID, "name": "u"})}}}},
		{Mutations: []*opsv1.Mutation{
			{Kind: &opsv1.Mutation_Observation{Observation: &opsv1.Observation{}}},
			{Kind: &opsv1.Mutation_Row{Row: row(t, "ops.observation_unit", update, map[string]any{"id": unitID, "colour": "red"})}},
		}},
	}
	err := c.CheckSubmit(txs)
	var ve *validate.Error
	require.ErrorAs(t, err, &ve)
	require.Len(t, ve.Violations, 1)
	require.Equal(t, "transactions[1].mutations[1].row.values.colour", ve.Violations[0].Field)
}

func TestNeverLearnedChecksNothing(t *testing.T) {
	t.Parallel()
	c, err := Open(t.TempDir())
	require.NoError(t, err)
	require.False(t, c.Known())
	s, at := c.Schema()
	require.Nil(t, s)
	require.True(t, at.IsZero())
	r := row(t, "ops.anything", insert, map[string]any{"id": 1.0})
	require.NoError(t, c.Check(r))
	require.NoError(t, c.CheckSubmit([]*opsv1.Transaction{{Mutations: []*opsv1.Mutation{{Kind: &opsv1.Mutation_Row{Row: r}}}}}))
	_, ok := c.Table("ops.anything")
	require.False(t, ok)
}

func TestSchemaSurvivesReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, err := Open(dir)
	require.NoError(t, err)
	learned := time.Date(2026, 12, 5, 1, 2, 3, 0, time.UTC)
	require.NoError(t, c.Set(testSchema(), learned))

	c2, err := Open(dir)
	require.NoError(t, err)
	s, at := c2.Schema()
	require.True(t, proto.Equal(testSchema(), s))
	require.True(t, learned.Equal(at))
	require.Equal(t, "v1", c2.Version())
	tb, ok := c2.Table("ops.raw_data_package")
	require.True(t, ok)
	require.Equal(t, []string{"site", "seq"}, tb.GetPrimaryKey())
	require.True(t, tb.IsKey("seq"))
	require.NotNil(t, tb.Column("unit_id"))
	require.Error(t, c2.Check(row(t, "ops.nope", insert, map[string]any{"id": 1.0})))

	confirmed := learned.Add(time.Hour)
	require.NoError(t, c2.Confirm(confirmed))
	c3, err := Open(dir)
	require.NoError(t, err)
	_, at = c3.Schema()
	require.True(t, confirmed.Equal(at))

	// Only the schema file is left: no temporary files pile up.
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1)
	require.Equal(t, FileName, ents[0].Name())
}

func TestCorruptFileIsAnError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, FileName), []byte("\xff\xff\xff"), 0o600))
	_, err := Open(dir)
	require.ErrorContains(t, err, "corrupt")
}

func TestConcurrentSetAndCheck(t *testing.T) {
	t.Parallel()
	c, err := Open(t.TempDir())
	require.NoError(t, err)
	r := row(t, "ops.observation_unit", insert, map[string]any{"id": unitID, "name": "u"})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 200 {
				_ = c.Check(r)
				_, _ = c.Table("ops.observation_unit")
			}
		})
	}
	for i := range 20 {
		require.NoError(t, c.Set(testSchema(), time.Unix(int64(i), 0)))
	}
	wg.Wait()
	require.NoError(t, c.Check(r))
}

// BenchmarkCheckSubmit is the schema check's share of one Submit of one
// row (bench's submit_rows_cpu_us_per_tx measures the whole call).
func BenchmarkCheckSubmit(b *testing.B) {
	c := New(testSchema())
	v, err := structpb.NewStruct(map[string]any{
		"id": unitID, "name": "u1", "status": "running", "priority": 3.0, "ra_deg": "83.82",
		"calibrated": true, "meta": map[string]any{"a": 1.0},
	})
	require.NoError(b, err)
	txs := []*opsv1.Transaction{{Mutations: []*opsv1.Mutation{{Kind: &opsv1.Mutation_Row{Row: &opsv1.Row{
		Table: "ops.observation_unit", Op: insert, Values: v,
	}}}}}}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.CheckSubmit(txs); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCheckSubmitSkipping(t *testing.T) {
	t.Parallel()
	c := New(testSchema())
	bad := &opsv1.Transaction{Id: "old", Mutations: []*opsv1.Mutation{{Kind: &opsv1.Mutation_Row{
		Row: row(t, "ops.observation_unit", update, map[string]any{"id": unitID, "colour": "red"}),
	}}}}
	require.Error(t, c.CheckSubmit([]*opsv1.Transaction{bad}))
	require.NoError(t, c.CheckSubmitSkipping([]*opsv1.Transaction{bad}, func(tx *opsv1.Transaction) bool { return tx.GetId() == "old" }))
	require.Error(t, c.CheckSubmitSkipping([]*opsv1.Transaction{bad}, func(*opsv1.Transaction) bool { return false }))
}
