package main

import (
	"github.com/chasqui/chasqui/internal/proccpu"

	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chasqui/chasqui/edge/internal/centralproc"
	"github.com/chasqui/chasqui/edge/internal/forward"
	"github.com/chasqui/chasqui/edge/internal/queue"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/grpcclient"
	"github.com/chasqui/chasqui/internal/pgtest"
)

// drainProfile profiles the drain alone (the edge's side: central runs as
// its own process), without the backlog's fill that -cpuprofile also records.
var drainProfile = flag.String("drain-cpuprofile", "", "write a CPU profile of the drain phase alone to this file")

// Diagnosis flags: the drain with forwarder settings other than its
// defaults (the figure itself always runs with the defaults), e.g.
// -drain-compression none for what gzip costs on the 2-core box.
var (
	drainCompression = flag.String("drain-compression", "", "forwarder compression for the drain (default: the forwarder's)")
	drainMaxCount    = flag.Int("drain-max-count", 0, "forwarder batch count for the drain (default: the forwarder's)")
	drainMaxBytes    = flag.Int("drain-max-bytes", 0, "forwarder batch bytes for the drain (default: the forwarder's)")
	drainWindow      = flag.Int("drain-window", 0, "forwarder window for the drain (default: the forwarder's)")
)

// drainResult is what the drain figure reports.
type drainResult struct {
	n        int
	fill     time.Duration // writing the backlog (not part of the figure)
	drain    time.Duration // forwarder start until central's cursor reached n
	cpuPerTx time.Duration
	pgPerTx  time.Duration // PostgreSQL's processes
}

// drainEnv is a real central on a throwaway PostgreSQL, shared by the
// drain figures of one run (each drains an edge of its own).
type drainEnv struct {
	cluster *pgtest.Cluster
	central *centralproc.Central
	pg      *pgx.Conn
	logger  *slog.Logger
	close   func()
}

func startDrainEnv(ctx context.Context, name string, logger *slog.Logger) (_ *drainEnv, err error) {
	cluster, err := pgtest.NewCluster(pgtest.Options{Name: name})
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	var closers []func()
	env := &drainEnv{cluster: cluster, logger: logger, close: func() {}}
	closers = append(closers, func() { _ = cluster.Close() })
	env.close = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			env.close()
		}
	}()
	if err := cluster.CreateDatabase(ctx, "chasqui"); err != nil {
		return nil, err
	}
	dbURL := cluster.URL("chasqui")
	// The real chasqui-central binary, which migrates the schema at start.
	if env.central, err = centralproc.Start(ctx, centralproc.Options{DatabaseURL: dbURL}); err != nil {
		return nil, fmt.Errorf("central: %w", err)
	}
	closers = append(closers, func() {
		if err := env.central.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "bench: central:", err)
		}
	})
	if env.pg, err = pgx.Connect(ctx, dbURL); err != nil {
		return nil, err
	}
	closers = append(closers, func() { _ = env.pg.Close(context.Background()) })
	return env, nil
}

// fill opens a real edge queue (Badger, fsync on) for edgeID in dir and
// leaves a backlog of n single-observation transactions in it, written in
// Submits of 1000. The caller closes the queue.
func (env *drainEnv) fill(ctx context.Context, dir, edgeID string, n int) (*queue.Queue, time.Duration, error) {
	q, err := queue.Open(queue.Options{Dir: dir, EdgeID: edgeID, Logger: env.logger, MaxQueueBytes: 8 << 30})
	if err != nil {
		return nil, 0, err
	}
	go func() { _ = q.Run(ctx) }()
	start := time.Now()
	const per = 1000
	for done := 0; done < n; done += per {
		txs := make([]*opsv1.Transaction, min(per, n-done))
		for i := range txs {
			txs[i] = observationTx()
		}
		if _, err := q.Submit(ctx, txs); err != nil {
			_ = q.Close()
			return nil, 0, err
		}
	}
	return q, time.Since(start), nil
}

// forwarder starts q's forwarder (the edge's defaults unless the
// diagnosis flags say otherwise, dialled with internal/grpcclient as
// chasqui-edge does) towards addr: central, or a proxy in front of it.
func (env *drainEnv) forwarder(ctx context.Context, q *queue.Queue, addr string) (*forward.Forwarder, func(), error) {
	conn, err := grpcclient.Dial(addr, grpcclient.Options{Logger: env.logger})
	if err != nil {
		return nil, nil, err
	}
	fwd, err := forward.New(forward.Config{CentralAddr: addr,
		Compression: *drainCompression, MaxCount: *drainMaxCount, MaxBytes: *drainMaxBytes, Window: *drainWindow}, q, conn, env.logger)
	if err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	fwdCtx, stopFwd := context.WithCancel(ctx)
	fwdDone := make(chan struct{})
	go func() {
		defer close(fwdDone)
		_ = fwd.Run(fwdCtx)
	}()
	return fwd, func() { stopFwd(); <-fwdDone; _ = conn.Close() }, nil
}

// cursor is central's committed seq for the edge.
func (env *drainEnv) cursor(ctx context.Context, edgeID string) (int64, error) {
	var last int64
	err := env.pg.QueryRow(ctx, `SELECT last_seq FROM chasqui.edge_cursors WHERE edge_id = $1`, edgeID).Scan(&last)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return last, err
}

// drain starts q's forwarder towards addr and times it until central's
// cursor for the edge reaches n, then checks that n observation rows
// landed.
func (env *drainEnv) drain(ctx context.Context, q *queue.Queue, addr string, n int, limit time.Duration) (drainResult, error) {
	var stopProfile func()
	if *drainProfile != "" && addr == env.central.GRPCAddr() {
		f, err := os.Create(*drainProfile)
		if err != nil {
			return drainResult{}, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return drainResult{}, err
		}
		stopProfile = func() { pprof.StopCPUProfile(); _ = f.Close() }
		defer stopProfile()
	}
	start, cpu0, pgCPU0 := time.Now(), proccpu.Self()+proccpu.Tree(env.central.PID(), ""), proccpu.Tree(env.cluster.PID(), "")
	fwd, stop, err := env.forwarder(ctx, q, addr)
	if err != nil {
		return drainResult{}, err
	}
	defer stop()
	deadline := start.Add(limit)
	for {
		last, err := env.cursor(ctx, q.EdgeID())
		if err != nil {
			return drainResult{}, err
		}
		if last >= int64(n) {
			break
		}
		if time.Now().After(deadline) {
			return drainResult{}, fmt.Errorf("drain: cursor at %d of %d after %s (forwarder %s: %s)",
				last, n, time.Since(start).Round(time.Second), fwd.State(), fwd.LastError())
		}
		time.Sleep(2 * time.Millisecond) // polling PostgreSQL, not waiting for state in a test
	}
	drain, cpu := time.Since(start), proccpu.Self()+proccpu.Tree(env.central.PID(), "")-cpu0
	pgCPU := proccpu.Tree(env.cluster.PID(), "") - pgCPU0
	var rows int64
	if err := env.pg.QueryRow(ctx, `SELECT count(*) FROM chasqui.observations WHERE edge_id = $1`, q.EdgeID()).Scan(&rows); err != nil {
		return drainResult{}, err
	}
	if rows != int64(n) {
		return drainResult{}, fmt.Errorf("drain: %d observations in PostgreSQL, want %d", rows, n)
	}
	// PostgreSQL's CPU shares the same cores: with the process's own it
	// bounds the rate on this machine.
	return drainResult{n: n, drain: drain, cpuPerTx: cpu / time.Duration(n), pgPerTx: pgCPU / time.Duration(n)}, nil
}

// drainBench leaves a backlog of n single-observation transactions in a
// real edge queue (Badger, fsync on), then starts the forwarder (the edge's
// default batch count/bytes/linger/window, gzip on the link, dialled with
// internal/grpcclient as chasqui-edge does) against a real central on a
// throwaway PostgreSQL over loopback, and times it from the forwarder's
// start until central's cursor for the edge reaches n.
func drainBench(dir string, n int, logger *slog.Logger) (drainResult, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env, err := startDrainEnv(ctx, "bench-drain", logger)
	if err != nil {
		return drainResult{}, err
	}
	defer env.close()
	q, fill, err := env.fill(ctx, dir, "bench-drain", n)
	if err != nil {
		return drainResult{}, err
	}
	defer q.Close()
	r, err := env.drain(ctx, q, env.central.GRPCAddr(), n, 5*time.Minute)
	r.fill = fill
	return r, err
}
