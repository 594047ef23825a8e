// Command bench measures the edge's accept path side by side with its
// physical limits, in one run on one machine:
//
//	BENCH submit_tx_per_s          64 gRPC clients, one single-observation transaction per unary Submit
//	BENCH submit_p99_ms            p99 latency of those Submits
//	BENCH submit_store_cpu_us_per_tx the store's CPU per Submit: submit_cpu_us_per_tx - submit_nostore_cpu_us_per_tx
//	BENCH grpc_echo_calls_per_s    the same clients calling grpc.health.v1 Check (a trivial unary call)
//	BENCH grpc_raw_echo_calls_per_s the same clients against a plain grpc.Server echoing the same SubmitRequest
//	BENCH queue_submit_tx_per_s    the same callers on the queue directly (no gRPC)
//	BENCH submit_batched_tx_per_s  the same clients, 100 transactions per Submit
//	BENCH queue_keys_per_tx        Badger keys written per transaction in that run (Badger's own counters)
//	BENCH queue_accept_keys_per_tx the same, less the keys the indexer wrote meanwhile: the accept path
//	BENCH badger_floor_tx_per_s    raw Badger, one key per transaction of the queue's entry size, in the same groups
//	BENCH badger_sync_writes_per_s raw Badger, one key per transaction, one fsync each, one writer
//	BENCH go_client_submit_tx_per_s  the Go client (edge/client), 16 goroutines on one client, one transaction per call
//	BENCH python_submit_tx_per_s     the Python client (clients/python), one process, 16 threads on one client, the same
//	BENCH drain_wan_tx_per_s       the drain through an in-process proxy at 125 ms each way (wan.go; also resets, 10 Mbit/s)
//	BENCH submit_paced_p99_ms      1000 tx/s offered open loop, alone and while a backlog drains, beside fsync, raw Badger and gRPC alone on the same schedule (paced.go)
//	BENCH submit_rows_cpu_us_per_tx  one row per Submit, checked against the cached schema, beside the same rows unchecked (rows.go)
//
// Two diagnosis lines per accept-path figure split its cost, measured in
// the same rounds: _nostore (the same server answering without storing:
// gRPC, interceptors and validation) and _nofsync (the same queue with
// Badger's fsync off, which production never does).
//
// The edge runs in-process with its production pieces (Badger queue with
// group commit, validation, the grpcserver interceptor chain) over loopback
// TCP; logs at warn level so per-call info logs are not part of the figure.
//
//	go run ./bench [-duration 5s] [-clients 64]
package main

import (
	"github.com/chasqui/chasqui/internal/proccpu"

	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/chasqui/chasqui/edge/internal/api"
	"github.com/chasqui/chasqui/edge/internal/centralproc"
	"github.com/chasqui/chasqui/edge/internal/queue"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/grpcserver"
)

func main() {
	err := run()
	centralproc.Cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	duration := flag.Duration("duration", 3*time.Second, "measuring time per figure and round")
	clients := flag.Int("clients", 64, "concurrent gRPC clients (one connection each)")
	dir := flag.String("dir", "", "data directory (default: a new temp dir, removed after)")
	workers := flag.Int("stream-workers", 0, "grpc.NumStreamWorkers of the server (0: a goroutine per stream)")
	rounds := flag.Int("rounds", 3, "alternating echo/submit rounds; the best of each is reported")
	settle := flag.Duration("settle", 20*time.Second, "with -backlog: idle time before measuring RSS")
	backlog := flag.Int("backlog", 0, "instead: fill the queue with this many transactions (no forwarder) and report RSS")
	only := flag.String("only", "", "run only this figure: echo, submit, queue, batched (with the Badger floor), badger, clients, drain, wan, paced, redis, rows or rss (profiling)")
	drainN := flag.Int("drain", 100_000, "backlog size of the drain figure (forwarded to a real central)")
	rssN := flag.Int("rss-backlog", 1_000_000, "backlog size of the edge_rss_mib figure (0: skip); measured in a child process")
	memLimit := flag.Int64("memory-limit", 192<<20, "with -backlog: Go soft memory limit, as chasqui-edge --memory-limit (0: GOMEMLIMIT or none)")
	memProfile := flag.String("memprofile", "", "write an allocation profile at the end to this file")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	var profFile *os.File
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		profFile = f
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "chasqui-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	logger := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))

	if *backlog > 0 {
		q, err := openQueue(*dir+"/queue", logger)
		if err != nil {
			return err
		}
		defer q.Close()
		if *memLimit > 0 {
			debug.SetMemoryLimit(*memLimit)
		}
		return fillBacklog(q, *backlog, *settle)
	}
	var so []grpc.ServerOption
	if *workers > 0 {
		so = append(so, grpc.NumStreamWorkers(uint32(*workers)))
	}
	// Each accept-path figure gets a store of its own, so none is measured
	// on what the figures before it left in Badger.
	e, err := startEdge(*dir+"/queue", *clients, so, storeDurable, logger)
	if err != nil {
		return err
	}
	defer e.close()
	q, conns := e.q, e.conns
	// The decomposition edges: the same server without storing, and the
	// same queue without fsync.
	var eNone, eNoSync *edgeUnderTest
	if *only == "" || *only == "submit" {
		if eNone, err = startEdge(*dir+"/queue-nostore", *clients, so, storeNone, logger); err != nil {
			return err
		}
		defer eNone.close()
		if eNoSync, err = startEdge(*dir+"/queue-nofsync", *clients, so, storeNoSync, logger); err != nil {
			return err
		}
		defer eNoSync.close()
	}

	rawConns, stopRaw, err := rawEchoServer(*clients)
	if err != nil {
		return err
	}
	defer stopRaw()

	echo := func(c *grpc.ClientConn) func(context.Context) (int, error) {
		h := healthpb.NewHealthClient(c)
		return func(ctx context.Context) (int, error) {
			_, err := h.Check(ctx, &healthpb.HealthCheckRequest{})
			return 1, err
		}
	}
	submit := func(n int) func(c *grpc.ClientConn) func(context.Context) (int, error) {
		return func(c *grpc.ClientConn) func(context.Context) (int, error) {
			e := edgev1.NewEdgeServiceClient(c)
			return func(ctx context.Context) (int, error) {
				txs := make([]*opsv1.Transaction, n)
				for i := range txs {
					txs[i] = observationTx()
				}
				_, err := e.Submit(ctx, &edgev1.SubmitRequest{Transactions: txs})
				return n, err
			}
		}
	}

	// Warm up connections, the queue and the runtime.
	for _, e := range []*edgeUnderTest{e, eNone, eNoSync} {
		if e == nil {
			continue
		}
		if _, err := measure(e.conns, time.Second, submit(1)); err != nil {
			return err
		}
	}
	if *cpuProfile != "" {
		if err := pprof.StartCPUProfile(profFile); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	// The machine may be shared: echo and submit alternate for -rounds
	// rounds and each figure keeps its best round, so both see the same
	// conditions.
	rawEcho := func(c *grpc.ClientConn) func(context.Context) (int, error) {
		return func(ctx context.Context) (int, error) {
			req := &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{observationTx()}}
			return 1, c.Invoke(ctx, rawEchoMethod, req, &edgev1.SubmitRequest{})
		}
	}
	var echoRes, rawRes, subRes, batchRes result
	var subNone, subNoSync, batchNone, batchNoSync result
	var syncRate float64
	best := func(cur *result, r result) {
		if r.rate > cur.rate {
			*cur = r
		}
	}
	for range *rounds {
		if *only == "" || *only == "echo" {
			r, err := measure(rawConns, *duration, rawEcho)
			if err != nil {
				return err
			}
			best(&rawRes, r)
		}
		if *only == "" || *only == "echo" {
			r, err := measure(conns, *duration, echo)
			if err != nil {
				return err
			}
			best(&echoRes, r)
		}
		if *only == "" || *only == "submit" {
			r, err := grouped(q, func() (result, error) { return measure(conns, *duration, submit(1)) })
			if err != nil {
				return err
			}
			best(&subRes, r)
			if r, err = measure(eNone.conns, *duration, submit(1)); err != nil {
				return err
			}
			best(&subNone, r)
			if r, err = grouped(eNoSync.q, func() (result, error) { return measure(eNoSync.conns, *duration, submit(1)) }); err != nil {
				return err
			}
			best(&subNoSync, r)
		}
	}
	var queueRes result
	if *only == "" || *only == "queue" {
		qq, err := openQueue(*dir+"/queue-only", logger)
		if err != nil {
			return err
		}
		queueRes, err = grouped(qq, func() (result, error) {
			return measureN(*clients, *duration, func(int) func(context.Context) (int, error) {
				return func(ctx context.Context) (int, error) {
					_, err := qq.Submit(ctx, []*opsv1.Transaction{observationTx()})
					return 1, err
				}
			})
		})
		if cerr := qq.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	var batchKeys badgerCounters
	var indexKeys int64 // of batchKeys.puts, the indexer's (Stats.IndexKeys)
	var entrySize int
	var floorRes result
	if *only == "" || *only == "batched" {
		for _, f := range []struct {
			name string
			mode storeMode
			res  *result
		}{{"", storeDurable, &batchRes}, {"-nostore", storeNone, &batchNone}, {"-nofsync", storeNoSync, &batchNoSync}} {
			eb, err := startEdge(*dir+"/queue-batched"+f.name, *clients, so, f.mode, logger)
			if err != nil {
				return err
			}
			if _, err = measure(eb.conns, time.Second, submit(100)); err == nil { // warm-up
				st0, serr0 := eb.q.Stats()
				c0 := readBadgerCounters()
				*f.res, err = grouped(eb.q, func() (result, error) { return measure(eb.conns, *duration, submit(100)) })
				if f.mode == storeDurable {
					batchKeys = readBadgerCounters().sub(c0)
					if st, serr := eb.q.Stats(); serr == nil && serr0 == nil && st.Count > 0 {
						entrySize = entryHeaderSize + int(st.Bytes/st.Count)
						indexKeys = int64(st.IndexKeys - st0.IndexKeys)
					} else if err == nil {
						err = fmt.Errorf("batched: queue stats: %v, %v (count %d)", serr0, serr, st.Count)
					}
				}
			}
			eb.close()
			if err != nil {
				return err
			}
		}
	}
	if *only == "" || *only == "batched" {
		// Raw Badger with the batched run's entry size and group size.
		if floorRes, err = badgerFloor(*dir+"/floor", *duration, entrySize, int(batchRes.txPerGroup+0.5)); err != nil {
			return err
		}
	}
	if *only == "" || *only == "badger" {
		if syncRate, err = badgerSyncWrites(*dir+"/raw", *duration); err != nil {
			return err
		}
	}

	var cl clientsResult
	if *only == "" || *only == "clients" {
		if cl, err = clientsBench(*dir+"/clients", *duration, logger); err != nil {
			return fmt.Errorf("clients: %w", err)
		}
	}

	var drain drainResult
	if *only == "" || *only == "drain" {
		if drain, err = drainBench(*dir+"/drain", *drainN, logger); err != nil {
			return fmt.Errorf("drain: %w", err)
		}
	}

	var wan wanResult
	if *only == "" || *only == "wan" {
		if wan, err = wanBench(*dir+"/wan", logger); err != nil {
			return fmt.Errorf("wan: %w", err)
		}
	}

	var pacedRes pacedResult
	if *only == "" || *only == "paced" {
		if pacedRes, err = pacedBench(*dir+"/paced", logger); err != nil {
			return fmt.Errorf("paced: %w", err)
		}
	}

	var redisRes result
	var redisErr error
	if *only == "" || *only == "redis" {
		redisRes, redisErr = redisAOFAlways(*dir+"/redis", *clients, *duration)
		if redisErr != nil && !errors.Is(redisErr, errNoRedis) {
			return fmt.Errorf("redis: %w", redisErr)
		}
	}

	var rssLines []string
	var rowsRes rowsResult
	if *only == "" || *only == "rows" {
		if rowsRes, err = rowsFigure(*dir, *clients, so, logger, *duration, *rounds); err != nil {
			return fmt.Errorf("rows: %w", err)
		}
	}
	if (*only == "" || *only == "rss") && *rssN > 0 {
		if rssLines, err = backlogChild(*dir+"/rss", *rssN, *memLimit); err != nil {
			return fmt.Errorf("rss: %w", err)
		}
	}

	run := func(fig string) bool { return *only == "" || *only == fig }
	if *memProfile != "" {
		if f, err := os.Create(*memProfile); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
			_ = f.Close()
		}
	}
	if run("submit") {
		fmt.Printf("BENCH submit_tx_per_s %.0f tx/s\n", subRes.rate)
		fmt.Printf("BENCH submit_p99_ms %.2f ms\n", ms(subRes.p99))
		fmt.Printf("BENCH submit_p50_ms %.2f ms\n", ms(subRes.p50))
		fmt.Printf("BENCH submit_cpu_us_per_tx %.1f us\n", us(subRes.cpuPerUnit))
		fmt.Printf("BENCH submit_tx_per_fsync %.1f tx (append groups: one fsync'd Badger write each)\n", subRes.txPerGroup)
		fmt.Printf("BENCH submit_nostore_tx_per_s %.0f tx/s (diagnosis: the same server answering without storing)\n", subNone.rate)
		fmt.Printf("BENCH submit_nostore_cpu_us_per_tx %.1f us\n", us(subNone.cpuPerUnit))
		fmt.Printf("BENCH submit_nofsync_tx_per_s %.0f tx/s (diagnosis: the same queue with Badger's fsync off; never in production)\n", subNoSync.rate)
		fmt.Printf("BENCH submit_nofsync_cpu_us_per_tx %.1f us\n", us(subNoSync.cpuPerUnit))
		// The store's share of a Submit's CPU: the same rounds with and
		// without storing differ only by the queue.
		fmt.Printf("BENCH submit_store_cpu_us_per_tx %.1f us (submit_cpu_us_per_tx - submit_nostore_cpu_us_per_tx; goal <= 60)\n",
			us(subRes.cpuPerUnit-subNone.cpuPerUnit))
	}
	if run("rows") {
		printRows(rowsRes)
	}
	if run("echo") {
		fmt.Printf("BENCH grpc_echo_calls_per_s %.0f calls/s\n", echoRes.rate)
		fmt.Printf("BENCH grpc_echo_cpu_us_per_call %.1f us\n", us(echoRes.cpuPerUnit))
		fmt.Printf("BENCH grpc_raw_echo_calls_per_s %.0f calls/s (a plain grpc.Server, no interceptors, answering the same one-observation SubmitRequest with itself)\n", rawRes.rate)
		fmt.Printf("BENCH grpc_raw_echo_cpu_us_per_call %.1f us\n", us(rawRes.cpuPerUnit))
	}
	if run("submit") && run("echo") {
		fmt.Printf("BENCH submit_vs_echo_ratio %.2f x\n", subRes.rate/echoRes.rate)
		fmt.Printf("BENCH submit_vs_raw_echo_ratio %.2f x\n", subRes.rate/rawRes.rate)
	}
	if run("queue") {
		fmt.Printf("BENCH queue_submit_tx_per_s %.0f tx/s (the queue alone, no gRPC, same callers)\n", queueRes.rate)
		fmt.Printf("BENCH queue_submit_p99_ms %.2f ms\n", ms(queueRes.p99))
		fmt.Printf("BENCH queue_submit_cpu_us_per_tx %.1f us\n", us(queueRes.cpuPerUnit))
		fmt.Printf("BENCH queue_submit_tx_per_fsync %.1f tx\n", queueRes.txPerGroup)
	}
	if run("batched") {
		fmt.Printf("BENCH submit_batched_tx_per_s %.0f tx/s\n", batchRes.rate)
		fmt.Printf("BENCH submit_batched_cpu_us_per_tx %.1f us\n", us(batchRes.cpuPerUnit))
		fmt.Printf("BENCH submit_batched_tx_per_fsync %.1f tx\n", batchRes.txPerGroup)
		fmt.Printf("BENCH submit_batched_nostore_tx_per_s %.0f tx/s (diagnosis: without storing)\n", batchNone.rate)
		fmt.Printf("BENCH submit_batched_nofsync_tx_per_s %.0f tx/s (diagnosis: Badger's fsync off)\n", batchNoSync.rate)
		fmt.Printf("BENCH submit_batched_nofsync_cpu_us_per_tx %.1f us\n", us(batchNoSync.cpuPerUnit))
		units := float64(max(batchRes.units, 1))
		fmt.Printf("BENCH queue_keys_per_tx %.2f keys (Badger's badger_put_num_user over the batched Submit run, the indexer's overlays that landed in it included)\n", float64(batchKeys.puts)/units)
		fmt.Printf("BENCH queue_accept_keys_per_tx %.2f keys (the same count less the indexer's %.2f per tx (Stats.IndexKeys): the accept path; goal <= 2)\n",
			float64(batchKeys.puts-indexKeys)/units, float64(indexKeys)/units)
		fmt.Printf("BENCH queue_gets_per_tx %.2f gets (diagnosis: Badger's badger_get_num_user, same run)\n", float64(batchKeys.gets)/units)
		fmt.Printf("BENCH queue_bytes_per_tx %.0f B (diagnosis: Badger's badger_write_bytes_user, same run)\n", float64(batchKeys.bytes)/units)
		fmt.Printf("BENCH badger_floor_tx_per_s %.0f tx/s (raw Badger, queue options, fsync on, one %d B key per tx, %.0f keys per commit)\n",
			floorRes.rate, entrySize, floorRes.txPerGroup)
		fmt.Printf("BENCH badger_floor_cpu_us_per_tx %.1f us\n", us(floorRes.cpuPerUnit))
		fmt.Printf("BENCH submit_batched_vs_badger_floor_ratio %.2f x (goal >= 0.5)\n", batchRes.rate/floorRes.rate)
	}
	if run("badger") {
		fmt.Printf("BENCH badger_sync_writes_per_s %.0f writes/s\n", syncRate)
	}
	if run("clients") {
		cl.print()
	}
	if run("redis") {
		if redisErr != nil {
			fmt.Fprintln(os.Stderr, "BENCH redis_aof_always_lpush_per_s skipped (install redis-server)")
		} else {
			fmt.Printf("BENCH redis_aof_always_lpush_per_s %.0f ops/s\n", redisRes.rate)
			fmt.Printf("BENCH redis_aof_always_p99_ms %.2f ms\n", ms(redisRes.p99))
			fmt.Printf("BENCH redis_aof_always_cpu_us_per_op %.1f us (bench client only; redis-server is another process)\n", us(redisRes.cpuPerUnit))
		}
	}
	for _, l := range rssLines {
		fmt.Println(l)
	}
	if run("drain") {
		fmt.Printf("BENCH drain_tx_per_s %.0f tx/s\n", float64(drain.n)/drain.drain.Seconds())
		fmt.Printf("BENCH drain_seconds %.2f s (%d tx; backlog written in %.1f s)\n", drain.drain.Seconds(), drain.n, drain.fill.Seconds())
		fmt.Printf("BENCH drain_cpu_us_per_tx %.1f us (edge and central processes, PostgreSQL not included)\n", us(drain.cpuPerTx))
		fmt.Printf("BENCH drain_postgres_cpu_us_per_tx %.1f us (PostgreSQL's processes during the drain)\n", us(drain.pgPerTx))
	}
	if run("wan") {
		wan.print()
	}
	if run("paced") {
		pacedRes.print()
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func observationTx() *opsv1.Transaction {
	return &opsv1.Transaction{
		Id: uuid.Must(uuid.NewV7()).String(),
		Mutations: []*opsv1.Mutation{{Kind: &opsv1.Mutation_Observation{Observation: &opsv1.Observation{
			Instrument: "CHAI", Source: "Orion-KL", ObsUnit: "2026.A.042",
			Status: opsv1.ObservationStatus_OBSERVATION_STATUS_RUNNING, StartTime: timestamppb.Now(),
		}}}},
	}
}

type result struct {
	rate     float64 // units (transactions or calls) per second
	p50, p99 time.Duration
	// cpuPerUnit is the process CPU time (user + system, clients included)
	// per unit: steadier than the rate when the machine is shared.
	cpuPerUnit time.Duration
	units      int64
	// txPerGroup is transactions per append group (per fsync), for the
	// figures that go through the queue.
	txPerGroup float64
}

// grouped runs m and sets the result's transactions per append group.
func grouped(q *queue.Queue, m func() (result, error)) (result, error) {
	s0, err := q.Stats()
	if err != nil {
		return result{}, err
	}
	r, err := m()
	if err != nil {
		return r, err
	}
	s1, err := q.Stats()
	if err != nil {
		return result{}, err
	}
	r.txPerGroup = float64(r.units) / float64(max(s1.AppendGroups-s0.AppendGroups, 1))
	return r, nil
}

// measure runs one caller per connection for d and reports the rate of
// units done and the call latency percentiles.
func measure(conns []*grpc.ClientConn, d time.Duration, mk func(*grpc.ClientConn) func(context.Context) (int, error)) (result, error) {
	return measureN(len(conns), d, func(i int) func(context.Context) (int, error) { return mk(conns[i]) })
}

// measureN runs n callers made by mk for d.
func measureN(n int, d time.Duration, mk func(i int) func(context.Context) (int, error)) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var units atomic.Int64
	var mu sync.Mutex
	var lats []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	start, cpu0 := time.Now(), proccpu.Self()
	for i := range n {
		call := mk(i)
		wg.Go(func() {
			local := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil {
				t0 := time.Now()
				n, err := call(context.Background())
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				local = append(local, time.Since(t0))
				units.Add(int64(n))
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), proccpu.Self()-cpu0
	if firstErr != nil {
		return result{}, firstErr
	}
	slices.Sort(lats)
	pct := func(p float64) time.Duration {
		if len(lats) == 0 {
			return 0
		}
		return lats[min(len(lats)-1, int(float64(len(lats))*p))]
	}
	done := max(units.Load(), 1)
	return result{rate: float64(done) / elapsed.Seconds(), p50: pct(0.50), p99: pct(0.99), cpuPerUnit: cpu / time.Duration(done), units: done}, nil
}

// badgerSyncWrites is the physical limit of one-fsync-per-write: one writer,
// one ~300-byte value per Badger transaction, SyncWrites on, the queue's
// memory options.
func badgerSyncWrites(dir string, d time.Duration) (float64, error) {
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true).
		WithMemTableSize(16 << 20).WithNumMemtables(2).WithValueLogFileSize(64 << 20).
		WithValueThreshold(256).WithCompression(options.None).WithDetectConflicts(false))
	if err != nil {
		return 0, err
	}
	defer db.Close()
	val := make([]byte, 300)
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		key := fmt.Appendf(nil, "k%016d", n)
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set(key, val) }); err != nil {
			return 0, err
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// fillBacklog writes n transactions straight into the queue (as a long WAN
// outage would leave them), reads them all back as the forwarder would, and
// reports the process's peak and current RSS.
func fillBacklog(q *queue.Queue, n int, settle time.Duration) error {
	// Sample anonymous RSS (heap, Badger's arenas and buffers; not the
	// mmapped files) through the fill and the read-back.
	var peakAnon atomic.Int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if a := int64(procStatus("RssAnon:")); a > peakAnon.Load() {
				peakAnon.Store(a)
			}
			select {
			case <-stopSampling:
				return
			case <-t.C:
			}
		}
	}()
	start := time.Now()
	const per = 1000
	for done := 0; done < n; done += per {
		txs := make([]*opsv1.Transaction, min(per, n-done))
		for i := range txs {
			txs[i] = observationTx()
		}
		if _, err := q.Submit(context.Background(), txs); err != nil {
			return err
		}
	}
	fillRate := float64(n) / time.Since(start).Seconds()
	read := 0
	for from := uint64(1); from <= q.LastSeq(); {
		es, err := q.Read(from, 1000, 1<<20)
		if err != nil {
			return err
		}
		read += len(es)
		from = es[len(es)-1].Seq + 1
	}
	close(stopSampling)
	<-sampled
	st, err := q.Stats()
	if err != nil {
		return err
	}
	time.Sleep(settle) // let Badger finish compactions and release idle table-builder buffers (one per 2 s)
	runtime.GC()       // measure what is live, not garbage not yet collected
	debug.FreeOSMemory()
	if f, err := os.Create(os.TempDir() + "/chasqui-bench-heap.out"); err == nil {
		_ = pprof.WriteHeapProfile(f)
		_ = f.Close()
	}
	rss, hwm := procStatus("VmRSS:"), procStatus("VmHWM:")
	anon, file := procStatus("RssAnon:"), procStatus("RssFile:")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("BENCH backlog_tx %d tx (%d read back, %.0f MiB payload)\n", n, read, float64(st.Bytes)/(1<<20))
	fmt.Printf("BENCH backlog_fill_tx_per_s %.0f tx/s\n", fillRate)
	fmt.Printf("BENCH backlog_rss_mib %.0f MiB\n", rss/1024)
	fmt.Printf("BENCH backlog_peak_rss_mib %.0f MiB\n", hwm/1024)
	// RssFile is mmapped Badger files (value log, tables, memtable WALs):
	// page cache the kernel reclaims under pressure. RssAnon is the heap
	// and Badger's arenas and caches.
	fmt.Printf("BENCH backlog_peak_rss_anon_mib %.0f MiB\n", float64(peakAnon.Load())/1024)
	fmt.Printf("BENCH backlog_rss_anon_mib %.0f MiB\n", anon/1024)
	fmt.Printf("BENCH backlog_rss_file_mib %.0f MiB\n", file/1024)
	fmt.Printf("BENCH backlog_go_heap_inuse_mib %.0f MiB\n", float64(ms.HeapInuse)/(1<<20))
	return nil
}

// procStatus reads a kB figure of /proc/self/status.
func procStatus(field string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			var kb float64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return kb
		}
	}
	return 0
}

// instantQueue answers Submit at once without storing: what the call costs
// without the queue.
type instantQueue struct{ *queue.Queue }

func (instantQueue) Submit(_ context.Context, txs []*opsv1.Transaction) ([]*edgev1.SubmitResult, error) {
	res := make([]*edgev1.SubmitResult, len(txs))
	now := timestamppb.Now()
	for i, tx := range txs {
		res[i] = &edgev1.SubmitResult{TransactionId: tx.GetId(), Seq: uint64(i + 1), AcceptedAt: now,
			RecordIds: []string{tx.GetMutations()[0].GetObservation().GetId()}}
	}
	return res, nil
}

// rawEchoMethod is the raw gRPC reference's one method.
const rawEchoMethod = "/chasqui.bench.Echo/Echo"

// rawEchoServer starts the raw gRPC reference: a plain grpc.Server with no
// interceptors whose one method decodes a SubmitRequest and answers it back,
// so the same message crosses the wire both ways with nothing else done.
func rawEchoServer(clients int) ([]*grpc.ClientConn, func(), error) {
	srv := grpc.NewServer()
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "chasqui.bench.Echo",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Echo",
			Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				req := &edgev1.SubmitRequest{}
				if err := dec(req); err != nil {
					return nil, err
				}
				return req, nil
			},
		}},
	}, struct{}{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	conns := make([]*grpc.ClientConn, clients)
	stop := func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
		srv.Stop()
		<-served
	}
	for i := range conns {
		if conns[i], err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			stop()
			return nil, nil, err
		}
	}
	return conns, stop, nil
}

func openQueue(dir string, logger *slog.Logger) (*queue.Queue, error) {
	return openQueueMode(dir, storeDurable, logger)
}

// storeMode is how an edge under test stores what it accepts.
type storeMode int

const (
	storeDurable storeMode = iota // production: Badger, fsync per group
	storeNoSync                   // diagnosis: Badger without fsync
	storeNone                     // diagnosis: answered without storing
)

func openQueueMode(dir string, mode storeMode, logger *slog.Logger) (*queue.Queue, error) {
	return queue.Open(queue.Options{Dir: dir, EdgeID: "bench", Logger: logger, MaxQueueBytes: 8 << 30,
		UnsafeNoSync: mode == storeNoSync})
}

// edgeUnderTest is an in-process edge accept path: a queue, the gRPC server
// with the production interceptor chain and EdgeService, and one client
// connection per caller.
type edgeUnderTest struct {
	addr  string
	q     *queue.Queue
	conns []*grpc.ClientConn
	close func()
}

func startEdge(dir string, clients int, so []grpc.ServerOption, mode storeMode, logger *slog.Logger) (*edgeUnderTest, error) {
	q, err := openQueueMode(dir, mode, logger)
	if err != nil {
		return nil, err
	}
	return startEdgeOn(q, clients, so, mode, logger)
}

// startEdgeOn serves q; the edge's close closes q.
func startEdgeOn(q *queue.Queue, clients int, so []grpc.ServerOption, mode storeMode, logger *slog.Logger, opts ...api.Options) (*edgeUnderTest, error) {
	srv := grpcserver.New(grpcserver.Options{Logger: logger, ServerOptions: so})
	var aq api.Queue = q
	if mode == storeNone {
		aq = instantQueue{q}
	}
	api.Register(srv.Server, aq, nil, logger, opts...)
	srv.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = q.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis, time.Second) }()
	e := &edgeUnderTest{addr: lis.Addr().String(), q: q, conns: make([]*grpc.ClientConn, clients)}
	e.close = func() {
		for _, c := range e.conns {
			if c != nil {
				_ = c.Close()
			}
		}
		cancel()
		<-served
		_ = q.Close()
	}
	for i := range e.conns {
		if e.conns[i], err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			e.close()
			return nil, err
		}
	}
	return e, nil
}
