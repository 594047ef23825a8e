package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/chasqui/chasqui/edge/internal/api"
	"github.com/chasqui/chasqui/edge/internal/queue"
	"github.com/chasqui/chasqui/edge/internal/schema"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/rows"
)

// keyWith keys rows for the queue as the edge's app does: under the schema
// c holds at accept time, when it knows the table.
func keyWith(c *schema.Cache) func(*queue.Options) {
	return func(o *queue.Options) {
		o.RowKey = func(r *opsv1.Row) (string, bool) {
			t, ok := c.Table(r.GetTable())
			if !ok {
				return "", false
			}
			k, err := rows.Key(t.GetPrimaryKey(), r.GetValues())
			return k, err == nil
		}
	}
}

func rowOpTx(t *testing.T, op opsv1.RowOp, values map[string]any) *opsv1.Transaction {
	t.Helper()
	tx := rowTx(t, "ops.observation_unit", values)
	tx.GetMutations()[0].GetRow().Op = op
	return tx
}

func unitKey(t *testing.T, id string) *structpb.Struct {
	t.Helper()
	k, err := structpb.NewStruct(map[string]any{"id": id})
	require.NoError(t, err)
	return k
}

// TestRowReadsThroughTheQueue: rows submitted to the edge read back merged
// from the queue's overlays (no replica, no central: buffer only), move
// from BUFFERED to COMMITTED with central's answer, and WatchTransactions
// reports their transactions as it does any: accepted, committed, visible.
func TestRowReadsThroughTheQueue(t *testing.T) {
	t.Parallel()
	c := schema.New(unitSchema())
	b := setupWith(t, keyWith(c), api.Options{Schema: c})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch, err := b.edge.WatchTransactions(ctx, &edgev1.WatchTransactionsRequest{})
	require.NoError(t, err)

	u, gone := newID(), newID()
	txs := []*opsv1.Transaction{
		rowOpTx(t, opsv1.RowOp_ROW_OP_INSERT, map[string]any{"id": u, "name": "first"}),
		rowOpTx(t, opsv1.RowOp_ROW_OP_UPDATE, map[string]any{"id": u, "priority": 3.0}),
		rowOpTx(t, opsv1.RowOp_ROW_OP_INSERT, map[string]any{"id": gone, "name": "short-lived"}),
		rowOpTx(t, opsv1.RowOp_ROW_OP_DELETE, map[string]any{"id": gone}),
	}
	for _, tx := range txs {
		_, err := b.edge.Submit(ctx, &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{tx}})
		require.NoError(t, err)
	}
	for _, tx := range txs {
		_, got := recv(t, watch)
		require.Equal(t, step{tx.GetId(), edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED}, got)
	}

	res, err := b.edge.GetRow(ctx, &edgev1.GetRowRequest{Table: "ops.observation_unit", Key: unitKey(t, u)})
	require.NoError(t, err)
	require.True(t, res.GetBufferOnly())
	require.Equal(t, edgev1.RecordSource_RECORD_SOURCE_BUFFERED, res.GetRow().GetSource())
	require.Equal(t, map[string]any{"id": u, "name": "first", "priority": 3.0}, res.GetRow().GetValues().AsMap())
	_, err = b.edge.GetRow(ctx, &edgev1.GetRowRequest{Table: "ops.observation_unit", Key: unitKey(t, gone)})
	requireCode(t, err, codes.NotFound)
	l, err := b.edge.ListRows(ctx, &edgev1.ListRowsRequest{Table: "ops.observation_unit"})
	require.NoError(t, err)
	require.Len(t, l.GetRows(), 1)
	require.Equal(t, u, l.GetRows()[0].GetValues().AsMap()["id"])

	for i, tx := range txs {
		commit(t, b.q, tx.GetId(), uint64(i+1), uint64(100*(i+1)))
		_, got := recv(t, watch)
		require.Equal(t, step{tx.GetId(), edgev1.TransactionState_TRANSACTION_STATE_COMMITTED}, got)
	}
	res, err = b.edge.GetRow(ctx, &edgev1.GetRowRequest{Table: "ops.observation_unit", Key: unitKey(t, u)})
	require.NoError(t, err)
	require.Equal(t, edgev1.RecordSource_RECORD_SOURCE_COMMITTED, res.GetRow().GetSource())

	_, err = b.q.Replayed(400)
	require.NoError(t, err)
	for _, tx := range txs {
		_, got := recv(t, watch)
		require.Equal(t, step{tx.GetId(), edgev1.TransactionState_TRANSACTION_STATE_VISIBLE}, got)
	}
	// Visible: the overlays left for the replica, which this edge lacks.
	_, err = b.edge.GetRow(ctx, &edgev1.GetRowRequest{Table: "ops.observation_unit", Key: unitKey(t, u)})
	requireCode(t, err, codes.NotFound)
}

// TestRowAcceptedBeforeTheSchemaReadsAfter: a row the edge took while it
// knew no schema (kept unkeyed) reads back by its key once the schema is
// learned; before that, the table is refused by name.
func TestRowAcceptedBeforeTheSchemaReadsAfter(t *testing.T) {
	t.Parallel()
	c := schema.New(nil)
	b := setupWith(t, keyWith(c), api.Options{Schema: c})
	ctx := context.Background()
	u := newID()
	_, err := b.edge.Submit(ctx, &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{
		rowOpTx(t, opsv1.RowOp_ROW_OP_INSERT, map[string]any{"id": u, "name": "early"}),
	}})
	require.NoError(t, err)
	_, err = b.edge.GetRow(ctx, &edgev1.GetRowRequest{Table: "ops.observation_unit", Key: unitKey(t, u)})
	requireField(t, err, "table")

	require.NoError(t, c.Set(unitSchema(), time.Now()))
	res, err := b.edge.GetRow(ctx, &edgev1.GetRowRequest{Table: "ops.observation_unit", Key: unitKey(t, u)})
	require.NoError(t, err)
	require.Equal(t, "early", res.GetRow().GetValues().AsMap()["name"])
	_, err = b.edge.GetRow(ctx, &edgev1.GetRowRequest{Table: "ops.observation_unit", Key: unitKey(t, newID())})
	requireCode(t, err, codes.NotFound)
}
