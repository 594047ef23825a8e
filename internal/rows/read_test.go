package rows_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"

	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/pgtest"
	"github.com/chasqui/chasqui/internal/rows"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var unitTemplate = pgtest.Template{
	Name: "rows_read_unit",
	Migrate: func(ctx context.Context, url string) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, `
			CREATE SCHEMA ops;
			CREATE TYPE ops.st AS ENUM ('new', 'done');
			CREATE TABLE ops.unit (
				site text, n bigint, blob bytea, amount numeric, status ops.st,
				tags text[], doc jsonb, note text,
				PRIMARY KEY (site, n));
			INSERT INTO ops.unit VALUES
				('cl', 1, '\x0102ff', 1.10, 'new', '{a,b}', '{"x": 1}', 'one'),
				('cl', 2, NULL, 12345678901234567890.5, 'done', '{}', NULL, NULL),
				('cl', 9007199254740993, NULL, 2.5, 'new', NULL, NULL, 'big'),
				('de', 1, NULL, NULL, 'new', NULL, NULL, 'other site');`)
		return err
	},
}

var unitSchema = &opsv1.TableSchema{
	Name:       "ops.unit",
	PrimaryKey: []string{"site", "n"},
	Columns: []*opsv1.ColumnSchema{
		{Name: "site", Type: "text", Kind: opsv1.ValueKind_VALUE_KIND_STRING},
		{Name: "n", Type: "bigint", Kind: opsv1.ValueKind_VALUE_KIND_INTEGER},
		{Name: "blob", Type: "bytea", Kind: opsv1.ValueKind_VALUE_KIND_BYTES, Nullable: true},
		{Name: "amount", Type: "numeric", Kind: opsv1.ValueKind_VALUE_KIND_NUMBER, Nullable: true},
		{Name: "status", Type: "ops.st", Kind: opsv1.ValueKind_VALUE_KIND_ENUM, Nullable: true},
		{Name: "tags", Type: "text[]", Kind: opsv1.ValueKind_VALUE_KIND_STRING, Array: true, Nullable: true},
		{Name: "doc", Type: "jsonb", Kind: opsv1.ValueKind_VALUE_KIND_JSON, Nullable: true},
		{Name: "note", Type: "text", Kind: opsv1.ValueKind_VALUE_KIND_STRING, Nullable: true},
	},
}

func st(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	require.NoError(t, err)
	return s
}

func pool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(t.Context(), pgtest.NewDatabase(t, unitTemplate))
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

func notes(rs []*structpb.Struct) []any {
	var out []any
	for _, r := range rs {
		out = append(out, r.AsMap()["note"])
	}
	return out
}

// TestSelectShapesAndOrder: rows come back in key order (numeric order of
// n), in Row.values' shapes: bytea as base64, a bigint beyond 2^53 and
// numerics a float64 would change as strings, arrays as lists, jsonb as
// objects.
func TestSelectShapesAndOrder(t *testing.T) {
	t.Parallel()
	db := pool(t)
	got, more, err := rows.Select(t.Context(), db, unitSchema, rows.Query{Limit: 10})
	require.NoError(t, err)
	require.False(t, more)
	require.Equal(t, []any{"one", nil, "big", "other site"}, notes(got))
	require.Equal(t, map[string]any{
		"site": "cl", "n": 1.0, "blob": "AQL/", "amount": 1.1, "status": "new",
		"tags": []any{"a", "b"}, "doc": map[string]any{"x": 1.0}, "note": "one",
	}, got[0].AsMap())
	require.Equal(t, "12345678901234567890.5", got[1].AsMap()["amount"])
	require.Equal(t, "9007199254740993", got[2].AsMap()["n"])
	require.Equal(t, 2.5, got[2].AsMap()["amount"])
}

// TestSelectWhereKeysAndPages: equality filters (a null one is IS NULL),
// bytea and big-integer values as they were read, key lists, and page
// tokens that resume after the last row.
func TestSelectWhereKeysAndPages(t *testing.T) {
	t.Parallel()
	db := pool(t)
	sel := func(q rows.Query) []any {
		t.Helper()
		got, _, err := rows.Select(t.Context(), db, unitSchema, q)
		require.NoError(t, err)
		return notes(got)
	}
	require.Equal(t, []any{"one", "big", "other site"}, sel(rows.Query{Where: st(t, map[string]any{"status": "new"})}))
	require.Equal(t, []any{"one"}, sel(rows.Query{Where: st(t, map[string]any{"blob": "AQL/", "tags": []any{"a", "b"}})}))
	require.Equal(t, []any{"big"}, sel(rows.Query{Where: st(t, map[string]any{"n": "9007199254740993"})}))
	require.Equal(t, []any{nil}, sel(rows.Query{Where: st(t, map[string]any{"note": nil})}))
	require.Equal(t, []any{"big"}, sel(rows.Query{Keys: []*structpb.Struct{
		st(t, map[string]any{"site": "cl", "n": "9007199254740993"}), st(t, map[string]any{"site": "xx", "n": 1.0}),
	}}))

	var all []any
	var after *structpb.Struct
	for range 10 {
		got, more, err := rows.Select(t.Context(), db, unitSchema, rows.Query{After: after, Limit: 3})
		require.NoError(t, err)
		all = append(all, notes(got)...)
		if !more {
			break
		}
		after, err = rows.ParsePageToken(rows.PageToken(rows.KeyOf(unitSchema, got[len(got)-1])))
		require.NoError(t, err)
	}
	require.Equal(t, []any{"one", nil, "big", "other site"}, all)
}

// TestSelectRefusesBadQueries: unknown columns and uncomparable ones are
// named; a token that no page gave is ErrBadToken.
func TestSelectRefusesBadQueries(t *testing.T) {
	t.Parallel()
	db := pool(t)
	_, _, err := rows.Select(t.Context(), db, unitSchema, rows.Query{Where: st(t, map[string]any{`note" OR 1=1 --`: "x"})})
	require.ErrorContains(t, err, "where.note\" OR 1=1 --: table ops.unit has no such column")
	_, _, err = rows.Select(t.Context(), db, unitSchema, rows.Query{Where: st(t, map[string]any{"note": []any{"x"}})})
	require.ErrorContains(t, err, "where.note")
	_, _, err = rows.Select(t.Context(), db, unitSchema, rows.Query{Keys: []*structpb.Struct{st(t, map[string]any{"site": "cl"})}})
	require.ErrorContains(t, err, `keys[0]: key column "n" is missing`)
	_, err = rows.ParsePageToken("not a token!")
	require.ErrorIs(t, err, rows.ErrBadToken)
}
