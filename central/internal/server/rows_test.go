package server_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"

	"github.com/chasqui/chasqui/central/internal/server"
	"github.com/chasqui/chasqui/internal/fixture"
	"github.com/chasqui/chasqui/internal/pgtest"
)

func startRows(t *testing.T) *bundle {
	t.Helper()
	url := pgtest.NewDatabase(t, template)
	conn, err := pgx.Connect(context.Background(), url)
	require.NoError(t, err)
	_, err = conn.Exec(context.Background(), fixture.OpsSchema)
	require.NoError(t, err)
	require.NoError(t, conn.Close(context.Background()))
	return start(t, url, func(c *server.Config) {
		c.AllowTables = []string{"ops.unit", "ops.package", "ops.every_type", "ops.no_key", "ops.serial_key"}
		c.EdgeTables = []string{"site-2=ops.package"}
	})
}

func TestGetSchemaDescribesAllowedTables(t *testing.T) {
	t.Parallel()
	b := startRows(t)
	ctx := context.Background()
	res, err := b.client.GetSchema(ctx, &centralv1.GetSchemaRequest{EdgeId: "site-1"})
	require.NoError(t, err)
	s := res.GetSchema()
	require.False(t, res.GetUnchanged())
	require.NotEmpty(t, s.GetVersion())
	var names []string
	tables := map[string]*opsv1.TableSchema{}
	for _, tb := range s.GetTables() {
		names = append(names, tb.GetName())
		tables[tb.GetName()] = tb
	}
	// Sorted; other.secret is not listed.
	require.Equal(t, []string{"ops.every_type", "ops.no_key", "ops.package", "ops.serial_key", "ops.unit"}, names)

	unit := tables["ops.unit"]
	require.Equal(t, []string{"id"}, unit.GetPrimaryKey())
	require.Empty(t, unit.GetRefusedReason())
	cols := map[string]*opsv1.ColumnSchema{}
	for _, c := range unit.GetColumns() {
		cols[c.GetName()] = c
	}
	require.Equal(t, "ops.unit_status", cols["status"].GetType())
	require.Equal(t, opsv1.ValueKind_VALUE_KIND_ENUM, cols["status"].GetKind())
	require.Equal(t, []string{"queued", "running", "done"}, cols["status"].GetEnumLabels())
	require.True(t, cols["status"].GetHasDefault())
	require.False(t, cols["name"].GetNullable())
	require.True(t, cols["note"].GetNullable())

	every := map[string]*opsv1.ColumnSchema{}
	for _, c := range tables["ops.every_type"].GetColumns() {
		every[c.GetName()] = c
	}
	for col, kind := range map[string]opsv1.ValueKind{
		"t": opsv1.ValueKind_VALUE_KIND_STRING, "i": opsv1.ValueKind_VALUE_KIND_INTEGER, "big": opsv1.ValueKind_VALUE_KIND_INTEGER,
		"num": opsv1.ValueKind_VALUE_KIND_NUMBER, "flag": opsv1.ValueKind_VALUE_KIND_BOOL, "at": opsv1.ValueKind_VALUE_KIND_STRING,
		"doc": opsv1.ValueKind_VALUE_KIND_JSON, "tags": opsv1.ValueKind_VALUE_KIND_STRING, "blob": opsv1.ValueKind_VALUE_KIND_BYTES,
	} {
		require.Equal(t, kind, every[col].GetKind(), col)
	}
	require.True(t, every["tags"].GetArray())
	require.Equal(t, "text[]", every["tags"].GetType())
	require.Equal(t, "timestamp with time zone", every["at"].GetType())

	pkg := tables["ops.package"]
	require.Len(t, pkg.GetForeignKeys(), 1)
	fk := pkg.GetForeignKeys()[0]
	require.Equal(t, []string{"unit_id"}, fk.GetColumns())
	require.Equal(t, "ops.unit", fk.GetReferencesTable())
	require.Equal(t, []string{"id"}, fk.GetReferencesColumns())

	require.Contains(t, tables["ops.no_key"].GetRefusedReason(), "no primary key")
	require.Contains(t, tables["ops.serial_key"].GetRefusedReason(), "generated")
	cols = map[string]*opsv1.ColumnSchema{}
	for _, c := range tables["ops.serial_key"].GetColumns() {
		cols[c.GetName()] = c
	}
	require.True(t, cols["id"].GetGenerated())

	// The version held: unchanged, no tables.
	again, err := b.client.GetSchema(ctx, &centralv1.GetSchemaRequest{EdgeId: "site-1", KnownVersion: s.GetVersion()})
	require.NoError(t, err)
	require.True(t, again.GetUnchanged())
	require.Empty(t, again.GetSchema().GetTables())
	require.Equal(t, s.GetVersion(), again.GetSchema().GetVersion())

	// A restricted edge learns only its tables, under a version of its own.
	two, err := b.client.GetSchema(ctx, &centralv1.GetSchemaRequest{EdgeId: "site-2", KnownVersion: s.GetVersion()})
	require.NoError(t, err)
	require.False(t, two.GetUnchanged())
	require.Len(t, two.GetSchema().GetTables(), 1)
	require.Equal(t, "ops.package", two.GetSchema().GetTables()[0].GetName())
	require.NotEqual(t, s.GetVersion(), two.GetSchema().GetVersion())

	_, err = b.client.GetSchema(ctx, &centralv1.GetSchemaRequest{})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
}

func TestHostileIdentifierIsInvalidArgument(t *testing.T) {
	t.Parallel()
	b := startRows(t)
	ctx := context.Background()
	for _, m := range []*opsv1.Mutation{
		fixture.Row(`ops.unit; DROP TABLE ops.unit; --`, opsv1.RowOp_ROW_OP_INSERT, map[string]any{"id": fixture.ID(), "name": "x"}),
		fixture.Row(`ops."unit"`, opsv1.RowOp_ROW_OP_INSERT, map[string]any{"id": fixture.ID(), "name": "x"}),
		fixture.Row("ops.unit", opsv1.RowOp_ROW_OP_INSERT, map[string]any{"id": fixture.ID(), `name") VALUES ('x'); --`: "x"}),
	} {
		_, err := b.client.Commit(ctx, fixture.Request("site-1", "e1", 1, fixture.Tx(m)))
		st := status.Convert(err)
		require.Equal(t, codes.InvalidArgument, st.Code(), "%v", err)
		require.Contains(t, st.Message(), "transactions[0].mutations[0].row.")
	}
	require.Equal(t, 0, b.count(t, "applied_transactions"))
	require.Equal(t, 0, b.count(t, "edge_cursors"))
	conn, err := pgx.Connect(ctx, b.dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM ops.unit`).Scan(&n))
	require.Zero(t, n)
}

// A row committed over gRPC reads back through ReadService.ListRows; a
// table not allowed is PERMISSION_DENIED there too.
func TestRowCommittedReadsBackOverGRPC(t *testing.T) {
	t.Parallel()
	b := startRows(t)
	ctx := context.Background()
	id := fixture.ID()
	res, err := b.client.Commit(ctx, fixture.Request("site-1", "e1", 1,
		fixture.Tx(fixture.Row("ops.unit", opsv1.RowOp_ROW_OP_INSERT, map[string]any{"id": id, "name": "one", "status": "running"}))))
	require.NoError(t, err)
	require.Equal(t, centralv1.Outcome_OUTCOME_APPLIED, res.GetResults()[0].GetOutcome(), res.GetResults()[0].GetReason())
	rows, err := b.read.ListRows(ctx, &centralv1.ListRowsRequest{Table: "ops.unit"})
	require.NoError(t, err)
	require.Len(t, rows.GetRows(), 1)
	got := rows.GetRows()[0].AsMap()
	require.Equal(t, map[string]any{"id": id, "name": "one", "status": "running", "note": nil, "n": nil}, got)

	_, err = b.read.ListRows(ctx, &centralv1.ListRowsRequest{Table: "other.secret"})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
}
