package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chasqui/chasqui/central/migrations"
	"github.com/chasqui/chasqui/central/server"
	"github.com/chasqui/chasqui/edge/internal/forward"
	"github.com/chasqui/chasqui/edge/internal/queue"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/grpcclient"
	"github.com/chasqui/chasqui/internal/pgtest"
)

// drainProfile profiles the drain alone (edge and central share the
// process), without the backlog's fill that -cpuprofile also records.
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

// drainBench leaves a backlog of n single-observation transactions in a
// real edge queue (Badger, fsync on), then starts the forwarder (the edge's
// default batch count/bytes/linger/window, gzip on the link, dialled with
// internal/grpcclient as chasqui-edge does) against a real central on a
// throwaway PostgreSQL over loopback, and times it from the forwarder's
// start until central's cursor for the edge reaches n.
func drainBench(dir string, n int, logger *slog.Logger) (drainResult, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	cluster, err := pgtest.NewCluster(pgtest.Options{Name: "bench-drain"})
	if err != nil {
		return drainResult{}, fmt.Errorf("postgres: %w", err)
	}
	defer func() { _ = cluster.Close() }()
	if err := cluster.CreateDatabase(ctx, "chasqui"); err != nil {
		return drainResult{}, err
	}
	dbURL := cluster.URL("chasqui")
	if err := migrations.MigrateURL(ctx, dbURL); err != nil {
		return drainResult{}, fmt.Errorf("migrate: %w", err)
	}
	central, err := server.New(ctx, server.Config{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "-", DatabaseURL: dbURL, Insecure: true,
	}, logger)
	if err != nil {
		return drainResult{}, fmt.Errorf("central: %w", err)
	}
	var wg sync.WaitGroup
	centralCtx, stopCentral := context.WithCancel(ctx)
	wg.Go(func() {
		if err := central.Run(centralCtx); err != nil {
			fmt.Fprintln(os.Stderr, "bench: central:", err)
		}
	})
	defer wg.Wait()
	defer stopCentral()

	q, err := queue.Open(queue.Options{Dir: dir, EdgeID: "bench-drain", Logger: logger, MaxQueueBytes: 8 << 30})
	if err != nil {
		return drainResult{}, err
	}
	defer q.Close()
	wg.Go(func() { _ = q.Run(ctx) })
	start := time.Now()
	const per = 1000
	for done := 0; done < n; done += per {
		txs := make([]*opsv1.Transaction, min(per, n-done))
		for i := range txs {
			txs[i] = observationTx()
		}
		if _, err := q.Submit(ctx, txs); err != nil {
			return drainResult{}, err
		}
	}
	fill := time.Since(start)

	conn, err := grpcclient.Dial(central.GRPCAddr(), grpcclient.Options{Logger: logger})
	if err != nil {
		return drainResult{}, err
	}
	defer conn.Close()
	fwd, err := forward.New(forward.Config{CentralAddr: central.GRPCAddr(),
		Compression: *drainCompression, MaxCount: *drainMaxCount, MaxBytes: *drainMaxBytes, Window: *drainWindow}, q, conn, logger)
	if err != nil {
		return drainResult{}, err
	}
	pg, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return drainResult{}, err
	}
	defer func() { _ = pg.Close(context.Background()) }()

	fwdCtx, stopFwd := context.WithCancel(ctx)
	defer stopFwd()
	fwdDone := make(chan struct{})
	if *drainProfile != "" {
		f, err := os.Create(*drainProfile)
		if err != nil {
			return drainResult{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return drainResult{}, err
		}
		defer pprof.StopCPUProfile()
	}
	start, cpu0, pgCPU0 := time.Now(), cpuTime(), serverCPU(cluster.PID())
	go func() {
		defer close(fwdDone)
		_ = fwd.Run(fwdCtx)
	}()
	defer func() { stopFwd(); <-fwdDone }()
	deadline := start.Add(5 * time.Minute)
	for {
		var last int64
		err := pg.QueryRow(ctx, `SELECT last_seq FROM chasqui.edge_cursors WHERE edge_id = $1`, q.EdgeID()).Scan(&last)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
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
	drain, cpu := time.Since(start), cpuTime()-cpu0
	pgCPU := serverCPU(cluster.PID()) - pgCPU0
	var rows int64
	if err := pg.QueryRow(ctx, `SELECT count(*) FROM chasqui.observations WHERE edge_id = $1`, q.EdgeID()).Scan(&rows); err != nil {
		return drainResult{}, err
	}
	if rows != int64(n) {
		return drainResult{}, fmt.Errorf("drain: %d observations in PostgreSQL, want %d", rows, n)
	}
	// PostgreSQL's CPU shares the same cores: with the process's own it
	// bounds the rate on this machine.
	return drainResult{n: n, fill: fill, drain: drain, cpuPerTx: cpu / time.Duration(n), pgPerTx: pgCPU / time.Duration(n)}, nil
}

// serverCPU is the CPU time (user + system) of the PostgreSQL server
// whose postmaster is pid and of its live children (backends, walwriter,
// checkpointer: each runs in a session of its own).
func serverCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var ticks uint64
	for _, e := range entries {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name, which may hold spaces.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 || (e.Name() != strconv.Itoa(pid) && f[1] != strconv.Itoa(pid)) {
			continue
		}
		u, _ := strconv.ParseUint(f[11], 10, 64)
		s, _ := strconv.ParseUint(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ
}
