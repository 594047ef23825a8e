package queue_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/chasqui/chasqui/edge/internal/queue"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/rows"
)

func rowMut(t *testing.T, table string, op opsv1.RowOp, values map[string]any) *opsv1.Mutation {
	t.Helper()
	s, err := structpb.NewStruct(values)
	require.NoError(t, err)
	return &opsv1.Mutation{Kind: &opsv1.Mutation_Row{Row: &opsv1.Row{Table: table, Op: op, Values: s}}}
}

// keyByID keys the rows of ops.unit by their id column, and knows no
// other table (as an edge whose schema lacks it).
func keyByID(r *opsv1.Row) (string, bool) {
	if r.GetTable() != "ops.unit" {
		return "", false
	}
	k, err := rows.Key([]string{"id"}, r.GetValues())
	return k, err == nil
}

// TestRowOverlays: a row's buffered writes are found by table and
// canonical key, in seq and then mutation order, whatever shape the caller
// gave the key; rows of a table the edge cannot key are kept for the
// reader under the empty key; another table (even one whose name extends
// this one's) is never mixed in; they survive a reopen and leave with
// VISIBLE.
func TestRowOverlays(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *queue.Options) { o.RowKey = keyByID })
	ins, upd, del := opsv1.RowOp_ROW_OP_INSERT, opsv1.RowOp_ROW_OP_UPDATE, opsv1.RowOp_ROW_OP_DELETE

	tx1 := &opsv1.Transaction{Id: newID(), Mutations: []*opsv1.Mutation{
		rowMut(t, "ops.unit", ins, map[string]any{"id": 7.0, "name": "a"}),
		rowMut(t, "ops.unit", upd, map[string]any{"id": "7", "name": "b"}),
		rowMut(t, "ops.unit", ins, map[string]any{"id": 8.0, "name": "c"}),
	}}
	a1 := submit1(t, b.q, tx1)
	tx2 := &opsv1.Transaction{Id: newID(), Mutations: []*opsv1.Mutation{
		rowMut(t, "ops.unit_x", ins, map[string]any{"id": 7.0}),     // another table, not keyed
		rowMut(t, "ops.unit", del, map[string]any{"id": 7.0}),       // after tx1's
		rowMut(t, "ops.Bad;", ins, map[string]any{"id": 7.0}),       // no table a read can name
		rowMut(t, "ops.unit", ins, map[string]any{"name": "nokey"}), // unkeyed: key missing
	}}
	a2 := submit1(t, b.q, tx2)

	key7, err := rows.Key([]string{"id"}, &structpb.Struct{Fields: map[string]*structpb.Value{"id": structpb.NewNumberValue(7)}})
	require.NoError(t, err)

	check := func(committed bool) {
		t.Helper()
		ov, err := b.q.Reads().RowOverlays("ops.unit", key7)
		require.NoError(t, err)
		require.Len(t, ov, 4)
		want := []struct {
			seq uint64
			op  opsv1.RowOp
			key string
		}{{a1.GetSeq(), ins, key7}, {a1.GetSeq(), upd, key7}, {a2.GetSeq(), del, key7}, {a2.GetSeq(), ins, ""}}
		for i, w := range want {
			require.Equal(t, w.seq, ov[i].Seq, i)
			require.Equal(t, w.op, ov[i].Mutation.GetRow().GetOp(), i)
			require.Equal(t, w.key, ov[i].Key, i)
			require.Equal(t, committed, ov[i].Committed, i)
		}
		all, err := b.q.Reads().TableOverlays("ops.unit")
		require.NoError(t, err)
		require.Len(t, all, 5, "rows 7 (3 writes), 8 and the unkeyed one")
		for _, o := range all {
			require.Equal(t, "ops.unit", o.Mutation.GetRow().GetTable())
		}
		other, err := b.q.Reads().TableOverlays("ops.unit_x")
		require.NoError(t, err)
		require.Len(t, other, 1)
		require.Empty(t, other[0].Key, "a table RowKey does not know is kept unkeyed")
	}
	check(false)
	b.reopen(t)
	check(false)

	require.NoError(t, b.q.ApplyCommit(appliedAt(tx1.GetId(), a1.GetSeq(), 1000)))
	require.NoError(t, b.q.ApplyCommit(appliedAt(tx2.GetId(), a2.GetSeq(), 2000)))
	ov, err := b.q.Reads().RowOverlays("ops.unit", key7)
	require.NoError(t, err)
	require.Len(t, ov, 4)
	require.True(t, ov[0].Committed && ov[3].Committed)

	_, err = b.q.Replayed(1000)
	require.NoError(t, err)
	ov, err = b.q.Reads().RowOverlays("ops.unit", key7)
	require.NoError(t, err)
	require.Len(t, ov, 2, "tx1's writes left with VISIBLE")
	require.Equal(t, a2.GetSeq(), ov[0].Seq)
	_, err = b.q.Replayed(2000)
	require.NoError(t, err)
	for _, table := range []string{"ops.unit", "ops.unit_x"} {
		all, err := b.q.Reads().TableOverlays(table)
		require.NoError(t, err)
		require.Empty(t, all, table)
	}
}
