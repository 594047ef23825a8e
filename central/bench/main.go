// Command bench measures central's commit path against the physical limit
// (plain pgx CopyFrom of the same rows into the same table), in one run on
// a throwaway PostgreSQL, the way edge/bench does:
//
//	cd central && go run ./bench
//	cd central && go run ./bench -only typed,generic,copy
//
// It prints `BENCH <name> <value> <unit>` lines. -only runs some of the
// measurements: typed (central_commit_rows_per_s), generic
// (central_commit_generic_rows_per_s: the same rows as row mutations of
// a table of the site's own), copy (pgx_copy_rows_per_s), poison and grpc.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"

	"github.com/chasqui/chasqui/central/internal/catalog"
	"github.com/chasqui/chasqui/central/internal/server"
	"github.com/chasqui/chasqui/central/internal/store"
	"github.com/chasqui/chasqui/central/migrations"
	"github.com/chasqui/chasqui/internal/fixture"
	"github.com/chasqui/chasqui/internal/pgtest"
)

func main() {
	only := flag.String("only", "", "comma-separated measurements to run (typed, generic, copy, stmt, poison, grpc); empty: all")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of this process (the client side) to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: cpu profile:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	want := func(name string) bool { return *only == "" || slices.Contains(strings.Split(*only, ","), name) }
	if err := run(want); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		pprof.StopCPUProfile()
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

// pool opens a pool on a new database whose writes m counts.
func (d *databases) pool(ctx context.Context) (*pgxpool.Pool, meter, error) {
	url, err := d.next(ctx)
	if err != nil {
		return nil, meter{}, err
	}
	cfg, err := store.PoolConfig(url)
	if err != nil {
		return nil, meter{}, err
	}
	m := meter{postmaster: d.cluster.PID(), db: cfg.ConnConfig.Database, wire: &wire{}}
	m.wire.count(cfg)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	m.pool = pool
	return pool, m, err
}

// sitePool is pool on a database that also holds site.observations, a
// table of the site's own shaped like chasqui.observations.
func (d *databases) sitePool(ctx context.Context) (*pgxpool.Pool, meter, error) {
	pool, m, err := d.pool(ctx)
	if err != nil {
		return nil, m, err
	}
	if _, err := pool.Exec(ctx, `CREATE SCHEMA site; CREATE TABLE site.observations (LIKE chasqui.observations INCLUDING ALL)`); err != nil {
		pool.Close()
		return nil, m, err
	}
	return pool, m, nil
}

func report(name string, rows int, d time.Duration) float64 {
	v := float64(rows) / d.Seconds()
	fmt.Printf("BENCH %s %.0f rows/s\n", name, v)
	return v
}

// commitAll commits reqs in order through commit and returns the elapsed
// time of all but a first warm-up batch, and the rows applied. With a
// name, it prints the census of those batches under it (see meter).
func commitAll(m meter, name string, commit func(*centralv1.CommitRequest) (applied int, err error), reqs []*centralv1.CommitRequest) (time.Duration, int, error) {
	ctx := context.Background()
	if _, err := commit(reqs[0]); err != nil { // warm-up: connections, statement cache
		return 0, 0, err
	}
	var before sample
	if name != "" {
		var err error
		if before, err = m.take(ctx); err != nil {
			return 0, 0, err
		}
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
	d := time.Since(start)
	if name != "" {
		after, err := m.take(ctx)
		if err != nil {
			return 0, 0, err
		}
		before.report(name, after, rows, len(reqs)-1)
	}
	return d, rows, nil
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

func run(want func(string) bool) error {
	ctx := context.Background()
	cluster, err := pgtest.NewCluster(pgtest.Options{Name: "central-bench"})
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer func() { _ = cluster.Close() }()
	dbs := &databases{cluster: cluster}

	rates := map[string]float64{}
	// Central through the store.
	if want("typed") {
		pool, m, err := dbs.pool(ctx)
		if err != nil {
			return err
		}
		defer pool.Close()
		d, rows, err := commitAll(m, "central_commit", storeCommit(store.New(pool, store.Options{})), batchesOf("site-1"))
		if err != nil {
			return err
		}
		rates["typed"] = report("central_commit_rows_per_s", rows, d)
	}

	// The same rows as generic row mutations, into a table of the site's
	// own shaped like chasqui.observations.
	if want("generic") {
		pool, m, err := dbs.sitePool(ctx)
		if err != nil {
			return err
		}
		defer pool.Close()
		allow, err := catalog.ParseAllowList([]string{"site.observations"})
		if err != nil {
			return err
		}
		st := store.New(pool, store.Options{Catalog: catalog.New(pool, allow, catalog.Options{})})
		d, rows, err := commitAll(m, "central_commit_generic", storeCommit(st), rowBatchesOf("site-1"))
		if err != nil {
			return err
		}
		rates["generic"] = report("central_commit_generic_rows_per_s", rows, d)
	}

	// The physical limit: CopyFrom of the same rows into the same table,
	// one transaction per batch.
	if want("copy") {
		pool, m, err := dbs.pool(ctx)
		if err != nil {
			return err
		}
		defer pool.Close()
		if rates["copy"], err = copyFrom(pool, m, batchesOf("site-1")); err != nil {
			return err
		}
	}

	// Diagnosis: the generic commit's statements alone.
	if want("stmt") {
		if err := statements(ctx, dbs); err != nil {
			return err
		}
	}

	// One poison per batch.
	if want("poison") {
		reqs := batchesOf("site-1")
		for k, req := range reqs {
			i := (k * 379) % batchSize
			req.Transactions[i].Mutations = []*opsv1.Mutation{fixture.File(fixture.ID(), 1)}
		}
		pool, m, err := dbs.pool(ctx)
		if err != nil {
			return err
		}
		defer pool.Close()
		d, rows, err := commitAll(m, "", storeCommit(store.New(pool, store.Options{})), reqs)
		if err != nil {
			return err
		}
		rates["poison"] = report("central_commit_poison_rows_per_s", rows, d)
	}

	// Through gRPC over loopback.
	if want("grpc") {
		url, err := dbs.next(ctx)
		if err != nil {
			return err
		}
		if rates["grpc"], err = grpcCommit(url, batchesOf("site-1")); err != nil {
			return err
		}
	}

	ratio := func(a, b string) string {
		if rates[a] == 0 || rates[b] == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", rates[a]/rates[b])
	}
	fmt.Printf("# commit/copy %s (target >= 0.5); generic/copy %s (target >= 0.5); generic/typed %s (target >= 0.8); "+
		"poison batch costs %sx a clean one (target <= 3); grpc/store %s\n",
		ratio("typed", "copy"), ratio("generic", "copy"), ratio("generic", "typed"), ratio("typed", "poison"), ratio("grpc", "typed"))
	return nil
}

// rowBatchesOf is batchesOf as row mutations of site.observations: the
// same columns and values, spelt as Row.values.
func rowBatchesOf(edge string) []*centralv1.CommitRequest {
	reqs := batchesOf(edge)
	for _, req := range reqs {
		for _, tx := range req.GetTransactions() {
			o := tx.GetMutations()[0].GetObservation()
			tx.Mutations = []*opsv1.Mutation{fixture.Row("site.observations", opsv1.RowOp_ROW_OP_INSERT, map[string]any{
				"id": o.GetId(), "instrument": o.GetInstrument(), "source": o.GetSource(), "obs_unit": o.GetObsUnit(),
				"status": "RUNNING", "start_time": o.GetStartTime().AsTime().Format(time.RFC3339Nano),
				"attributes": o.GetAttributes().AsMap(), "tx_id": tx.GetId(), "edge_id": edge,
			})}
		}
	}
	return reqs
}

func copyFrom(pool *pgxpool.Pool, m meter, reqs []*centralv1.CommitRequest) (float64, error) {
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
	d, rows, err := commitAll(m, "pgx_copy", func(req *centralv1.CommitRequest) (int, error) {
		return len(req.GetTransactions()), copyBatch(req)
	}, reqs)
	if err != nil {
		return 0, err
	}
	return report("pgx_copy_rows_per_s", rows, d), nil
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
	d, rows, err := commitAll(meter{}, "", func(req *centralv1.CommitRequest) (int, error) {
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
