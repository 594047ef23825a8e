package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/chasqui/chasqui/edge/internal/api"
	"github.com/chasqui/chasqui/edge/internal/schema"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// The rows figure: Submit of one row per transaction, the row shaped like
// the observation of submit_cpu_us_per_tx (same columns, same values), on
// an edge that knows the schema (every row checked against it) and on one
// that never learned it (validate's shape check only). Their difference
// is the schema check's cost.

// benchSchema is the observation as a table of the site's own.
func benchSchema() *opsv1.Schema {
	str := func(name string) *opsv1.ColumnSchema {
		return &opsv1.ColumnSchema{Name: name, Type: "text", Kind: opsv1.ValueKind_VALUE_KIND_STRING, Nullable: true}
	}
	return &opsv1.Schema{Version: "bench", Tables: []*opsv1.TableSchema{{
		Name: "ops.observation",
		Columns: []*opsv1.ColumnSchema{
			{Name: "id", Type: "uuid", Kind: opsv1.ValueKind_VALUE_KIND_STRING},
			{Name: "instrument", Type: "text", Kind: opsv1.ValueKind_VALUE_KIND_STRING},
			str("source"), str("obs_unit"),
			{Name: "status", Type: "ops.observation_status", Kind: opsv1.ValueKind_VALUE_KIND_ENUM,
				EnumLabels: []string{"RUNNING", "COMPLETED", "FAILED", "ABORTED"}},
			{Name: "start_time", Type: "timestamp with time zone", Kind: opsv1.ValueKind_VALUE_KIND_STRING},
			{Name: "end_time", Type: "timestamp with time zone", Kind: opsv1.ValueKind_VALUE_KIND_STRING, Nullable: true},
			{Name: "attributes", Type: "jsonb", Kind: opsv1.ValueKind_VALUE_KIND_JSON, Nullable: true, HasDefault: true},
		},
		PrimaryKey: []string{"id"},
	}}}
}

func rowTx() *opsv1.Transaction {
	id := uuid.Must(uuid.NewV7()).String()
	return &opsv1.Transaction{
		Id: uuid.Must(uuid.NewV7()).String(),
		Mutations: []*opsv1.Mutation{{Kind: &opsv1.Mutation_Row{Row: &opsv1.Row{
			Table: "ops.observation", Op: opsv1.RowOp_ROW_OP_INSERT,
			Values: &structpb.Struct{Fields: map[string]*structpb.Value{
				"id":         structpb.NewStringValue(id),
				"instrument": structpb.NewStringValue("CHAI"),
				"source":     structpb.NewStringValue("Orion-KL"),
				"obs_unit":   structpb.NewStringValue("2026.A.042"),
				"status":     structpb.NewStringValue("RUNNING"),
				"start_time": structpb.NewStringValue(time.Now().UTC().Format(time.RFC3339Nano)),
			}},
		}}}},
	}
}

type rowsResult struct{ obs, rows, noSchema result }

// rowsFigure measures, in alternating rounds on three durable stores:
// observations (the submit figure's transaction), rows with the schema
// known, rows with none learned.
func rowsFigure(dir string, clients int, so []grpc.ServerOption, logger *slog.Logger, d time.Duration, rounds int) (rowsResult, error) {
	var res rowsResult
	eObs, err := startEdge(dir+"/rows-obs", clients, so, storeDurable, logger)
	if err != nil {
		return res, err
	}
	defer eObs.close()
	start := func(name string, c *schema.Cache) (*edgeUnderTest, error) {
		q, err := openQueueMode(dir+"/"+name, storeDurable, logger)
		if err != nil {
			return nil, err
		}
		return startEdgeOn(q, clients, so, storeDurable, logger, api.Options{Schema: c})
	}
	eRows, err := start("rows-schema", schema.New(benchSchema()))
	if err != nil {
		return res, err
	}
	defer eRows.close()
	eNone, err := start("rows-noschema", schema.New(nil))
	if err != nil {
		return res, err
	}
	defer eNone.close()

	submit := func(mk func() *opsv1.Transaction) func(c *grpc.ClientConn) func(context.Context) (int, error) {
		return func(c *grpc.ClientConn) func(context.Context) (int, error) {
			e := edgev1.NewEdgeServiceClient(c)
			return func(ctx context.Context) (int, error) {
				_, err := e.Submit(ctx, &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{mk()}})
				return 1, err
			}
		}
	}
	// A refused row would make the figure a figure of refusals.
	if _, err := edgev1.NewEdgeServiceClient(eRows.conns[0]).Submit(context.Background(),
		&edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{rowTx()}}); err != nil {
		return res, fmt.Errorf("rows: the bench row is refused: %w", err)
	}
	for _, e := range []*edgeUnderTest{eObs, eRows, eNone} {
		if _, err := measure(e.conns, time.Second, submit(rowTx)); err != nil { // warm up
			return res, err
		}
	}
	// Lowest CPU per transaction of each, over the rounds: on a shared
	// machine the quietest round is the truest.
	low := func(cur *result, r result) {
		if cur.units == 0 || r.cpuPerUnit < cur.cpuPerUnit {
			*cur = r
		}
	}
	for range rounds {
		r, err := grouped(eObs.q, func() (result, error) { return measure(eObs.conns, d, submit(observationTx)) })
		if err != nil {
			return res, err
		}
		low(&res.obs, r)
		if r, err = grouped(eRows.q, func() (result, error) { return measure(eRows.conns, d, submit(rowTx)) }); err != nil {
			return res, err
		}
		low(&res.rows, r)
		if r, err = grouped(eNone.q, func() (result, error) { return measure(eNone.conns, d, submit(rowTx)) }); err != nil {
			return res, err
		}
		low(&res.noSchema, r)
	}
	return res, nil
}

func printRows(r rowsResult) {
	fmt.Printf("BENCH submit_rows_tx_per_s %.0f tx/s (one 6-column row per transaction, checked against the cached schema)\n", r.rows.rate)
	fmt.Printf("BENCH submit_rows_cpu_us_per_tx %.1f us\n", us(r.rows.cpuPerUnit))
	fmt.Printf("BENCH submit_rows_noschema_cpu_us_per_tx %.1f us (diagnosis: the same rows, no schema learned: shape check only)\n", us(r.noSchema.cpuPerUnit))
	fmt.Printf("BENCH submit_rows_obs_cpu_us_per_tx %.1f us (submit_cpu_us_per_tx's observation, measured in the same rounds)\n", us(r.obs.cpuPerUnit))
	fmt.Printf("BENCH submit_rows_schema_check_pct %.1f %% (submit_rows over submit_rows_noschema CPU; goal <= 10)\n",
		100*(float64(r.rows.cpuPerUnit)/float64(r.noSchema.cpuPerUnit)-1))
}
