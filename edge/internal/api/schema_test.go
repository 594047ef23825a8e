package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/chasqui/chasqui/edge/internal/api"
	"github.com/chasqui/chasqui/edge/internal/schema"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

func unitSchema() *opsv1.Schema {
	return &opsv1.Schema{Version: "v1", Tables: []*opsv1.TableSchema{{
		Name: "ops.observation_unit",
		Columns: []*opsv1.ColumnSchema{
			{Name: "id", Type: "uuid", Kind: opsv1.ValueKind_VALUE_KIND_STRING},
			{Name: "name", Type: "text", Kind: opsv1.ValueKind_VALUE_KIND_STRING},
			{Name: "priority", Type: "integer", Kind: opsv1.ValueKind_VALUE_KIND_INTEGER, Nullable: true},
		},
		PrimaryKey: []string{"id"},
	}}}
}

func rowTx(t *testing.T, table string, values map[string]any) *opsv1.Transaction {
	t.Helper()
	v, err := structpb.NewStruct(values)
	require.NoError(t, err)
	return &opsv1.Transaction{Id: newID(), Mutations: []*opsv1.Mutation{{Kind: &opsv1.Mutation_Row{Row: &opsv1.Row{
		Table: table, Op: opsv1.RowOp_ROW_OP_INSERT, Values: v,
	}}}}}
}

func TestSubmitChecksRowsAgainstTheSchema(t *testing.T) {
	t.Parallel()
	b := setupWith(t, nil, api.Options{Schema: schema.New(unitSchema())})
	ctx := context.Background()
	unit := newID()
	for field, tx := range map[string]*opsv1.Transaction{
		"transactions[1].mutations[0].row.table":           rowTx(t, "ops.nope", map[string]any{"id": unit}),
		"transactions[1].mutations[0].row.values.colour":   rowTx(t, "ops.observation_unit", map[string]any{"id": unit, "name": "u", "colour": "red"}),
		"transactions[1].mutations[0].row.values.priority": rowTx(t, "ops.observation_unit", map[string]any{"id": unit, "name": "u", "priority": "high"}),
		"transactions[1].mutations[0].row.values.id":       rowTx(t, "ops.observation_unit", map[string]any{"name": "u"}),
	} {
		// A good transaction beside the bad one is not stored either.
		_, err := b.edge.Submit(ctx, &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{obsTx(newID()), tx}})
		requireField(t, err, field)
	}
	require.Zero(t, b.q.LastSeq(), "a refused Submit stores nothing")

	// The edited transaction of a dead letter's retry is checked too.
	_, err := b.admin.RetryDeadLetter(ctx, &edgev1.RetryDeadLetterRequest{
		TransactionId: newID(), Edited: rowTx(t, "ops.observation_unit", map[string]any{"id": unit, "name": "u", "colour": "red"}),
	})
	requireField(t, err, "edited.mutations[0].row.values.colour")
}

func TestGetSchemaAnswersWithTheCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	never := setupWith(t, nil, api.Options{Schema: schema.New(nil)})
	resp, err := never.edge.GetSchema(ctx, &edgev1.GetSchemaRequest{})
	require.NoError(t, err)
	require.Nil(t, resp.GetSchema())
	require.Nil(t, resp.GetLearnedAt())

	c, err := schema.Open(t.TempDir())
	require.NoError(t, err)
	at := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	require.NoError(t, c.Set(unitSchema(), at))
	b := setupWith(t, nil, api.Options{Schema: c})
	resp, err = b.edge.GetSchema(ctx, &edgev1.GetSchemaRequest{})
	require.NoError(t, err)
	require.True(t, proto.Equal(unitSchema(), resp.GetSchema()))
	require.True(t, at.Equal(resp.GetLearnedAt().AsTime()))
}
