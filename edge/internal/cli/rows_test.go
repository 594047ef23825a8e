package cli

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

func TestParseSubmissionTakesRows(t *testing.T) {
	t.Parallel()
	req, err := parseSubmission([]byte(`{"table":"ops.unit","op":"ROW_OP_INSERT","values":{"id":"0190f5e8-7a3b-7c1d-8e2f-123456789abc","size":"9007199254740993"}}`))
	require.NoError(t, err)
	require.Len(t, req.Transactions, 1)
	require.Len(t, req.Transactions[0].Id, 36)
	r := req.Transactions[0].GetMutations()[0].GetRow()
	require.Equal(t, "ops.unit", r.GetTable())
	require.Equal(t, opsv1.RowOp_ROW_OP_INSERT, r.GetOp())
	require.Equal(t, "9007199254740993", r.GetValues().GetFields()["size"].GetStringValue())

	req, err = parseSubmission([]byte(`[{"table":"ops.unit","op":"ROW_OP_INSERT","values":{"id":"a"}},
		{"table":"ops.package","op":"ROW_OP_UPSERT","values":{"id":"b"}}]`))
	require.NoError(t, err)
	require.Len(t, req.Transactions, 1, "a list of rows is one transaction")
	require.Len(t, req.Transactions[0].GetMutations(), 2)
	require.Equal(t, "ops.package", req.Transactions[0].GetMutations()[1].GetRow().GetTable())

	for _, bad := range []string{`[]`, `[{"table":"ops.unit"},{"nonsense":1}]`, `{"tabel":"ops.unit"}`, `[1,`} {
		_, err = parseSubmission([]byte(bad))
		require.Error(t, err, bad)
	}
}

func TestRetryEditsSetAndUnsetColumns(t *testing.T) {
	t.Parallel()
	vals, err := structpb.NewStruct(map[string]any{"id": "a", "size": "12kB", "colour": "red"})
	require.NoError(t, err)
	tx := &opsv1.Transaction{Id: "tx", EdgeId: "e", Epoch: "ep", Seq: 7, AcceptedAt: timestamppb.Now(), Mutations: []*opsv1.Mutation{
		{Kind: &opsv1.Mutation_Row{Row: &opsv1.Row{Table: "ops.unit", Op: opsv1.RowOp_ROW_OP_INSERT, Values: vals}}},
	}}
	fs := flag.NewFlagSet("retry", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	_, es := retryFlags(fs)
	require.NoError(t, fs.Parse([]string{"--set", "size=12", "--unset", "colour", "--set", "0:name=u1", "--set", `tags=["a","b"]`}))
	ed, err := applyEdits(tx, es.list)
	require.NoError(t, err)
	require.Empty(t, ed.GetEdgeId(), "the edge stamps the retry anew")
	require.Zero(t, ed.GetSeq())
	require.Nil(t, ed.GetAcceptedAt())
	got := ed.GetMutations()[0].GetRow().GetValues().AsMap()
	require.Equal(t, map[string]any{"id": "a", "size": 12.0, "name": "u1", "tags": []any{"a", "b"}}, got)
	require.Equal(t, "12kB", tx.GetMutations()[0].GetRow().GetValues().GetFields()["size"].GetStringValue(), "the dead letter itself is untouched")

	for _, args := range [][]string{{"--set", "size"}, {"--set", "x:size=1"}, {"--unset", ""}} {
		fs := flag.NewFlagSet("retry", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		retryFlags(fs)
		require.Error(t, fs.Parse(args), "%q", args)
	}
	_, es = retryFlags(flag.NewFlagSet("retry", flag.ContinueOnError))
	require.NoError(t, es.Set("3:size=1"))
	_, err = applyEdits(tx, es.list)
	require.ErrorContains(t, err, "mutations[3] is not a row")
}

// Before the edge learned a schema, `chasqui schema` says so and what that
// means for rows, rather than printing an empty list.
func TestSchemaBeforeLearning(t *testing.T) {
	t.Parallel()
	a := startEdge(t)
	code, out, stderr := run(t, "", "--addr", a.GRPCAddr(), "schema")
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, out, "has not learned a schema from central yet")
	code, out, stderr = run(t, "", "--addr", a.GRPCAddr(), "--json", "schema")
	require.Equal(t, ExitOK, code, stderr)
	require.Equal(t, "{}", strings.TrimSpace(out))
	code, _, _ = run(t, "", "--addr", a.GRPCAddr(), "schema", "ops.a", "ops.b")
	require.Equal(t, ExitUsage, code)
}
