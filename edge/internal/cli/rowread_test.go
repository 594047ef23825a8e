package cli

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/chasqui/chasqui/edge/internal/schema"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// TestGetRowAndListRows: rows submitted to a real edge (central
// unreachable) read back with get-row, by a bare key value or a JSON
// object, and with list-rows filtered by --where; a key of two columns
// needs the object form; a missing row exits 4.
func TestGetRowAndListRows(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, err := schema.Open(dir)
	require.NoError(t, err)
	require.NoError(t, c.Set(&opsv1.Schema{Version: "v1", Tables: []*opsv1.TableSchema{
		{Name: "ops.unit", PrimaryKey: []string{"id"}, Columns: []*opsv1.ColumnSchema{
			{Name: "id", Type: "bigint", Kind: opsv1.ValueKind_VALUE_KIND_INTEGER},
			{Name: "name", Type: "text", Kind: opsv1.ValueKind_VALUE_KIND_STRING, Nullable: true},
			{Name: "status", Type: "text", Kind: opsv1.ValueKind_VALUE_KIND_STRING, Nullable: true},
		}},
		{Name: "ops.pair", PrimaryKey: []string{"a", "b"}, Columns: []*opsv1.ColumnSchema{
			{Name: "a", Type: "text", Kind: opsv1.ValueKind_VALUE_KIND_STRING},
			{Name: "b", Type: "text", Kind: opsv1.ValueKind_VALUE_KIND_STRING},
		}},
	}}, time.Now()))
	a := startEdgeIn(t, dir)
	edge := []string{"--addr", a.GRPCAddr()}

	code, _, stderr := run(t, `[
		{"table":"ops.unit","op":"ROW_OP_INSERT","values":{"id":7,"name":"seven","status":"new"}},
		{"table":"ops.unit","op":"ROW_OP_INSERT","values":{"id":8,"name":"eight","status":"done"}},
		{"table":"ops.unit","op":"ROW_OP_UPDATE","values":{"id":7,"status":"done"}},
		{"table":"ops.pair","op":"ROW_OP_INSERT","values":{"a":"x","b":"y"}}]`,
		append(edge, "submit", "-f", "-")...)
	require.Equal(t, ExitOK, code, stderr)

	code, stdout, stderr := run(t, "", append(edge, "get-row", "ops.unit", "7")...)
	require.Equal(t, ExitOK, code, stderr)
	t.Logf("chasqui get-row ops.unit 7:\n%s", stdout)
	require.Regexp(t, `ID\s+NAME\s+STATUS\s+SOURCE`, stdout)
	require.Regexp(t, `7\s+seven\s+done\s+BUFFERED`, stdout)
	require.Contains(t, stdout, "buffer only")

	code, stdout, stderr = run(t, "", append(edge, "--json", "get-row", "ops.pair", `{"a":"x","b":"y"}`)...)
	require.Equal(t, ExitOK, code, stderr)
	got := &edgev1.GetRowResponse{}
	require.NoError(t, protojson.Unmarshal([]byte(stdout), got))
	require.Equal(t, edgev1.RecordSource_RECORD_SOURCE_BUFFERED, got.GetRow().GetSource())
	require.Equal(t, map[string]any{"a": "x", "b": "y"}, got.GetRow().GetValues().AsMap())
	require.True(t, got.GetBufferOnly())

	code, _, stderr = run(t, "", append(edge, "get-row", "ops.pair", "x")...)
	require.Equal(t, ExitUsage, code)
	require.Contains(t, stderr, "ops.pair has a key of 2 columns (a, b): give KEY as a JSON object")

	code, _, stderr = run(t, "", append(edge, "get-row", "ops.unit", "9")...)
	require.Equal(t, ExitNotFound, code, stderr)

	code, stdout, stderr = run(t, "", append(edge, "list-rows", "ops.unit", "--where", "status=done")...)
	require.Equal(t, ExitOK, code, stderr)
	require.Regexp(t, `(?s)7\s+seven\s+done\s+BUFFERED.*8\s+eight\s+done\s+BUFFERED`, stdout)
	code, stdout, stderr = run(t, "", append(edge, "list-rows", "ops.unit", "--where", "status=new")...)
	require.Equal(t, ExitOK, code, stderr)
	require.NotContains(t, stdout, "seven", "7's buffered update changed its status")

	code, _, stderr = run(t, "", append(edge, "list-rows", "ops.unit", "--where", "colour=red")...)
	require.Equal(t, ExitFailed, code)
	require.Contains(t, stderr, "where.colour")
}
