package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"

	"github.com/chasqui/chasqui/central/internal/fixture"
	"github.com/chasqui/chasqui/central/internal/server"
	"github.com/chasqui/chasqui/central/internal/store"
	"github.com/chasqui/chasqui/central/migrations"
	"github.com/chasqui/chasqui/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var template = pgtest.Template{Name: "central_bench", Migrate: migrations.MigrateURL}

const (
	batchSize = 1000
	batches   = 20
)

// batchesOf builds the requests: batches of batchSize single-observation
// transactions, numbered from 1.
func batchesOf(edge string) []*centralv1.CommitRequest {
	reqs := make([]*centralv1.CommitRequest, batches)
	for k := range reqs {
		reqs[k] = fixture.Request(edge, "e1", uint64(k*batchSize+1), fixture.ObservationTxs(batchSize)...)
	}
	return reqs
}

func newPool(b *testing.B) *pgxpool.Pool {
	url := pgtest.NewDatabase(b, template)
	cfg, err := store.PoolConfig(url)
	if err != nil {
		b.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return pool
}

func report(name string, rows int, d time.Duration) float64 {
	v := float64(rows) / d.Seconds()
	fmt.Printf("BENCH %s %.0f rows/s\n", name, v)
	return v
}

// commitAll commits reqs in order through commit and returns the elapsed
// time of all but a first warm-up batch, and the rows applied.
func commitAll(b *testing.B, commit func(*centralv1.CommitRequest) (applied int, err error), reqs []*centralv1.CommitRequest) (time.Duration, int) {
	if _, err := commit(reqs[0]); err != nil { // warm-up: connections, statement cache
		b.Fatal(err)
	}
	rows := 0
	start := time.Now()
	for _, req := range reqs[1:] {
		n, err := commit(req)
		if err != nil {
			b.Fatal(err)
		}
		rows += n
	}
	return time.Since(start), rows
}

func storeCommit(b *testing.B, st *store.Store) func(*centralv1.CommitRequest) (int, error) {
	return func(req *centralv1.CommitRequest) (int, error) {
		res, err := st.Commit(context.Background(), req)
		if err != nil {
			return 0, err
		}
		n := 0
		for _, r := range res.Txs {
			if r.Outcome == store.OutcomeApplied && !r.Duplicate {
				n++
			}
		}
		return n, nil
	}
}

func BenchmarkCentralCommit(b *testing.B) {
	for range b.N {
		// Central through the store.
		st := store.New(newPool(b), store.Options{})
		d, rows := commitAll(b, storeCommit(b, st), batchesOf("site-1"))
		commitRate := report("central_commit_rows_per_s", rows, d)

		// The physical limit: CopyFrom of the same rows into the same table,
		// one transaction per batch.
		copyRate := copyFrom(b, newPool(b), batchesOf("site-1"))

		// One poison per batch.
		reqs := batchesOf("site-1")
		for k, req := range reqs {
			i := (k * 379) % batchSize
			req.Transactions[i].Mutations = []*opsv1.Mutation{fixture.File(fixture.ID(), 1)}
		}
		st = store.New(newPool(b), store.Options{})
		d, rows = commitAll(b, storeCommit(b, st), reqs)
		poisonRate := report("central_commit_poison_rows_per_s", rows, d)

		// Through gRPC over loopback.
		grpcRate := grpcCommit(b, batchesOf("site-1"))

		fmt.Printf("# commit/copy %.2f (target >= 0.5); poison batch costs %.2fx a clean one (target <= 3); grpc/store %.2f\n",
			commitRate/copyRate, commitRate/poisonRate, grpcRate/commitRate)
	}
}

func copyFrom(b *testing.B, pool *pgxpool.Pool, reqs []*centralv1.CommitRequest) float64 {
	ctx := context.Background()
	cols := []string{"id", "instrument", "source", "obs_unit", "status", "start_time", "end_time", "attributes", "tx_id", "edge_id"}
	copyBatch := func(req *centralv1.CommitRequest) error {
		rows := make([][]any, 0, len(req.GetTransactions()))
		for _, tx := range req.GetTransactions() {
			o := tx.GetMutations()[0].GetObservation()
			attrs := store.JSON(o.GetAttributes())
			rows = append(rows, []any{
				uuid.MustParse(o.GetId()), o.GetInstrument(), o.GetSource(), o.GetObsUnit(), "RUNNING",
				o.GetStartTime().AsTime(), nil, attrs, uuid.MustParse(tx.GetId()), req.GetEdgeId(),
			})
		}
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"chasqui", "observations"}, cols, pgx.CopyFromRows(rows))
			return err
		})
	}
	if err := copyBatch(reqs[0]); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for _, req := range reqs[1:] {
		if err := copyBatch(req); err != nil {
			b.Fatal(err)
		}
	}
	return report("pgx_copy_rows_per_s", (len(reqs)-1)*batchSize, time.Since(start))
}

func grpcCommit(b *testing.B, reqs []*centralv1.CommitRequest) float64 {
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, server.Config{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "-", Insecure: true, DatabaseURL: pgtest.NewDatabase(b, template),
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := centralv1.NewIngestServiceClient(conn)
	d, rows := commitAll(b, func(req *centralv1.CommitRequest) (int, error) {
		res, err := client.Commit(ctx, req)
		if err != nil {
			return 0, err
		}
		n := 0
		for _, r := range res.GetResults() {
			if r.GetOutcome() == centralv1.Outcome_OUTCOME_APPLIED && !r.GetDuplicate() {
				n++
			}
		}
		return n, nil
	}, reqs)
	return report("central_grpc_commit_rows_per_s", rows, d)
}
