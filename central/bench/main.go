// Command bench measures central's commit path against the physical limit
// (plain pgx CopyFrom of the same rows into the same table), in one run on
// a throwaway PostgreSQL, the way edge/bench does:
//
//	cd central && go run ./bench
//
// It prints `BENCH <name> <value> <unit>` lines.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"

	"github.com/chasqui/chasqui/central/internal/server"
	"github.com/chasqui/chasqui/central/internal/store"
	"github.com/chasqui/chasqui/central/migrations"
	"github.com/chasqui/chasqui/internal/fixture"
	"github.com/chasqui/chasqui/internal/pgtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// databases hands out migrated databases in one throwaway cluster.
type databases struct {
	cluster *pgtest.Cluster
	n       int
}

func (d *databases) next(ctx context.Context) (string, error) {
	d.n++
	name := fmt.Sprintf("bench_%d", d.n)
	if err := d.cluster.CreateDatabase(ctx, name); err != nil {
		return "", err
	}
	url := d.cluster.URL(name)
	if err := migrations.MigrateURL(ctx, url); err != nil {
		return "", fmt.Errorf("migrate: %w", err)
	}
	return url, nil
}

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

func (d *databases) pool(ctx context.Context) (*pgxpool.Pool, error) {
	url, err := d.next(ctx)
	if err != nil {
		return nil, err
	}
	cfg, err := store.PoolConfig(url)
	if err != nil {
		return nil, err
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}

func report(name string, rows int, d time.Duration) float64 {
	v := float64(rows) / d.Seconds()
	fmt.Printf("BENCH %s %.0f rows/s\n", name, v)
	return v
}

// commitAll commits reqs in order through commit and returns the elapsed
// time of all but a first warm-up batch, and the rows applied.
func commitAll(commit func(*centralv1.CommitRequest) (applied int, err error), reqs []*centralv1.CommitRequest) (time.Duration, int, error) {
	if _, err := commit(reqs[0]); err != nil { // warm-up: connections, statement cache
		return 0, 0, err
	}
	rows := 0
	start := time.Now()
	for _, req := range reqs[1:] {
		n, err := commit(req)
		if err != nil {
			return 0, 0, err
		}
		rows += n
	}
	return time.Since(start), rows, nil
}

func storeCommit(st *store.Store) func(*centralv1.CommitRequest) (int, error) {
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

func run() error {
	ctx := context.Background()
	cluster, err := pgtest.NewCluster(pgtest.Options{Name: "central-bench"})
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer func() { _ = cluster.Close() }()
	dbs := &databases{cluster: cluster}

	// Central through the store.
	pool, err := dbs.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	d, rows, err := commitAll(storeCommit(store.New(pool, store.Options{})), batchesOf("site-1"))
	if err != nil {
		return err
	}
	commitRate := report("central_commit_rows_per_s", rows, d)

	// The physical limit: CopyFrom of the same rows into the same table,
	// one transaction per batch.
	pool, err = dbs.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	copyRate, err := copyFrom(pool, batchesOf("site-1"))
	if err != nil {
		return err
	}

	// One poison per batch.
	reqs := batchesOf("site-1")
	for k, req := range reqs {
		i := (k * 379) % batchSize
		req.Transactions[i].Mutations = []*opsv1.Mutation{fixture.File(fixture.ID(), 1)}
	}
	pool, err = dbs.pool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	d, rows, err = commitAll(storeCommit(store.New(pool, store.Options{})), reqs)
	if err != nil {
		return err
	}
	poisonRate := report("central_commit_poison_rows_per_s", rows, d)

	// Through gRPC over loopback.
	url, err := dbs.next(ctx)
	if err != nil {
		return err
	}
	grpcRate, err := grpcCommit(url, batchesOf("site-1"))
	if err != nil {
		return err
	}

	fmt.Printf("# commit/copy %.2f (target >= 0.5); poison batch costs %.2fx a clean one (target <= 3); grpc/store %.2f\n",
		commitRate/copyRate, commitRate/poisonRate, grpcRate/commitRate)
	return nil
}

func copyFrom(pool *pgxpool.Pool, reqs []*centralv1.CommitRequest) (float64, error) {
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
		return 0, err
	}
	start := time.Now()
	for _, req := range reqs[1:] {
		if err := copyBatch(req); err != nil {
			return 0, err
		}
	}
	return report("pgx_copy_rows_per_s", (len(reqs)-1)*batchSize, time.Since(start)), nil
}

func grpcCommit(dbURL string, reqs []*centralv1.CommitRequest) (float64, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := server.New(ctx, server.Config{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "-", Insecure: true, DatabaseURL: dbURL,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return 0, err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	client := centralv1.NewIngestServiceClient(conn)
	d, rows, err := commitAll(func(req *centralv1.CommitRequest) (int, error) {
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
	if err != nil {
		return 0, err
	}
	return report("central_grpc_commit_rows_per_s", rows, d), nil
}
