package main

import (
	"context"
	"encoding/binary"
	"expvar"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/grpc"

	"github.com/chasqui/chasqui/edge/internal/queue"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

var (
	pacedRate     = flag.Int("paced-rate", 1000, "offered load of the paced figures, tx/s (one tx per Submit)")
	pacedClients  = flag.Int("paced-clients", 16, "clients of the paced figures, each on its own connection")
	pacedDuration = flag.Duration("paced-duration", 5*time.Second, "measuring time of each paced figure")
	pacedBacklog  = flag.Int("paced-backlog", 1_000_000, "backlog the forwarder drains during submit_paced_during_drain_p99_ms")
	fsyncSamples  = flag.Int("fsync-samples", 3000, "samples of fsync_p99_ms")
)

// fsyncFile is a preallocated (written and synced) file on the bench's
// disk: a 4 KiB pwrite plus fdatasync on it is the flush every durable
// accept waits for, alone.
type fsyncFile struct {
	f   *os.File
	buf []byte
	n   int
}

const fsyncBlock, fsyncBlocks = 4096, 4096

func openFsyncFile(path string) (*fsyncFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	ff := &fsyncFile{f: f, buf: make([]byte, fsyncBlock)}
	for i := range fsyncBlocks {
		if _, err := f.WriteAt(ff.buf, int64(i)*fsyncBlock); err != nil {
			_ = f.Close()
			return nil, err
		}
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return nil, err
	}
	return ff, nil
}

// flush times one 4 KiB pwrite plus fdatasync.
func (ff *fsyncFile) flush() (time.Duration, error) {
	ff.buf[0] = byte(ff.n)
	t0 := time.Now()
	if _, err := ff.f.WriteAt(ff.buf, int64(ff.n%fsyncBlocks)*fsyncBlock); err != nil {
		return 0, err
	}
	if err := syscall.Fdatasync(int(ff.f.Fd())); err != nil {
		return 0, err
	}
	ff.n++
	return time.Since(t0), nil
}

// fsyncLatencies times samples flushes in a row.
func fsyncLatencies(dir string, samples int) ([]time.Duration, error) {
	ff, err := openFsyncFile(dir + "/fsync")
	if err != nil {
		return nil, err
	}
	defer ff.f.Close()
	lats := make([]time.Duration, 0, samples)
	for range samples {
		l, err := ff.flush()
		if err != nil {
			return nil, err
		}
		lats = append(lats, l)
	}
	return lats, nil
}

type fsyncProbeResult struct {
	lats []time.Duration
	err  error
}

// fsyncProbe times a flush every 5 ms for d, on a file opened (and
// preallocated) beforehand.
func fsyncProbe(ff *fsyncFile, d time.Duration) fsyncProbeResult {
	var out fsyncProbeResult
	defer ff.f.Close()
	start := time.Now()
	for at := start; time.Since(start) < d; at = at.Add(5 * time.Millisecond) {
		time.Sleep(time.Until(at)) // the schedule, not a wait for state
		l, err := ff.flush()
		if err != nil {
			out.err = err
			return out
		}
		out.lats = append(out.lats, l)
	}
	return out
}

func percentile(lats []time.Duration, p float64) time.Duration {
	if len(lats) == 0 {
		return 0
	}
	s := slices.Clone(lats)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// paced offers rate single-transaction Submits per second, open loop,
// spread over one caller per connection for d (onSchedule).
func paced(conns []*grpc.ClientConn, rate int, d time.Duration) (p50, p99 time.Duration, n int, err error) {
	lats, err := onSchedule(len(conns), rate, d, func(i int) error {
		_, err := edgev1.NewEdgeServiceClient(conns[i]).Submit(context.Background(),
			&edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{observationTx()}})
		return err
	})
	if err != nil {
		return 0, 0, 0, err
	}
	return percentile(lats, 0.50), percentile(lats, 0.99), len(lats), nil
}

// onSchedule runs call rate times per second for d, open loop, spread
// over callers goroutines: each calls on a fixed schedule and its latency
// counts from the scheduled time, so a call that waits for the one
// before it is charged for the wait. The first error stops its caller
// and is returned.
func onSchedule(callers, rate int, d time.Duration, call func(caller int) error) ([]time.Duration, error) {
	interval := time.Duration(callers) * time.Second / time.Duration(rate)
	start := time.Now().Add(10 * time.Millisecond)
	var mu sync.Mutex
	var lats []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			var local []time.Duration
			for at := start.Add(interval * time.Duration(i) / time.Duration(callers)); at.Sub(start) < d; at = at.Add(interval) {
				time.Sleep(time.Until(at)) // the schedule, not a wait for state
				if err := call(i); err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
					return
				}
				local = append(local, time.Since(at))
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	return lats, firstErr
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// pacedResult is what the paced figures report.
type pacedResult struct {
	fsyncP50, fsyncP99           time.Duration
	badgerP50, badgerP99         time.Duration // raw Badger, one fsync'd key per write, same schedule
	grpcP50, grpcP99             time.Duration // the same server answering without storing
	settle                       time.Duration // after the fill: indexer caught up, compaction quiet
	settled                      bool
	fsyncDrainP50, fsyncDrainP99 time.Duration // fsync_p99_ms's probe while the drain runs
	p50, p99, drainP50, drainP99 time.Duration
	n, drainN                    int
	backlog                      int
	cursorAfter                  int64 // central's cursor when the during-drain run ended
	pending                      int64 // the queue's last seq when the forwarder started
}

// pacedBench measures fsync alone, then the paced load on an edge whose
// queue holds a backlog, first with no forwarder (submit_paced_p99_ms),
// then while the forwarder drains that backlog into a real central
// (submit_paced_during_drain_p99_ms).
func pacedBench(dir string, logger *slog.Logger) (pacedResult, error) {
	var res pacedResult
	fl, err := fsyncLatencies(dir+"/fsync", *fsyncSamples)
	if err != nil {
		return res, fmt.Errorf("fsync: %w", err)
	}
	res.fsyncP50, res.fsyncP99 = percentile(fl, 0.50), percentile(fl, 0.99)
	if res.badgerP50, res.badgerP99, err = badgerPaced(dir+"/badger", *pacedClients, *pacedRate, *pacedDuration); err != nil {
		return res, fmt.Errorf("badger paced: %w", err)
	}
	en, err := startEdge(dir+"/nostore", *pacedClients, nil, storeNone, logger)
	if err != nil {
		return res, err
	}
	if _, _, _, err = paced(en.conns, *pacedRate, time.Second); err == nil { // warm-up
		res.grpcP50, res.grpcP99, _, err = paced(en.conns, *pacedRate, *pacedDuration)
	}
	en.close()
	if err != nil {
		return res, fmt.Errorf("grpc paced: %w", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env, err := startDrainEnv(ctx, "bench-paced", logger)
	if err != nil {
		return res, err
	}
	defer env.close()
	q, _, err := env.fill(ctx, dir+"/queue", "bench-paced", *pacedBacklog)
	if err != nil {
		return res, err
	}
	res.backlog = *pacedBacklog
	if res.settle, res.settled, err = settle(q); err != nil {
		return res, err
	}
	e, err := startEdgeOn(q, *pacedClients, nil, storeDurable, logger)
	if err != nil {
		_ = q.Close()
		return res, err
	}
	defer e.close()
	if _, _, _, err := paced(e.conns, *pacedRate, time.Second); err != nil { // warm-up
		return res, err
	}
	if res.p50, res.p99, res.n, err = paced(e.conns, *pacedRate, *pacedDuration); err != nil {
		return res, err
	}
	res.pending = int64(q.LastSeq()) // the backlog and the paced runs' transactions
	_, stop, err := env.forwarder(ctx, q, env.central.GRPCAddr())
	if err != nil {
		return res, err
	}
	defer stop()
	ff, err := openFsyncFile(dir + "/fsync-drain/fsync")
	if err != nil {
		return res, err
	}
	probe := make(chan fsyncProbeResult, 1)
	go func() { probe <- fsyncProbe(ff, *pacedDuration) }()
	res.drainP50, res.drainP99, res.drainN, err = paced(e.conns, *pacedRate, *pacedDuration)
	pr := <-probe
	if err != nil {
		return res, err
	}
	if pr.err != nil {
		return res, fmt.Errorf("fsync during drain: %w", pr.err)
	}
	res.fsyncDrainP50, res.fsyncDrainP99 = percentile(pr.lats, 0.50), percentile(pr.lats, 0.99)
	if res.cursorAfter, err = env.cursor(ctx, q.EdgeID()); err != nil {
		return res, err
	}
	return res, nil
}

func (r pacedResult) print() {
	fmt.Printf("BENCH fsync_p99_ms %.2f ms (4 KiB pwrite + fdatasync on a preallocated file, %d samples; p50 %.2f ms)\n",
		ms(r.fsyncP99), *fsyncSamples, ms(r.fsyncP50))
	fmt.Printf("BENCH badger_paced_p99_ms %.2f ms (raw Badger, queue options, one fsync'd key per write, the same schedule; p50 %.2f ms)\n",
		ms(r.badgerP99), ms(r.badgerP50))
	fmt.Printf("BENCH grpc_paced_p99_ms %.2f ms (the same load on the same server answering without storing; p50 %.2f ms)\n",
		ms(r.grpcP99), ms(r.grpcP50))
	state := "indexer caught up, compaction quiet"
	if !r.settled {
		state = "compaction still running when the wait gave up"
	}
	fmt.Printf("BENCH paced_settle_seconds %.1f s (diagnosis: after the backlog's fill, until %s)\n", r.settle.Seconds(), state)
	fmt.Printf("BENCH submit_paced_p99_ms %.2f ms (%d tx/s offered open loop by %d clients, %d calls, %d tx backlog, no forwarder; p50 %.2f ms)\n",
		ms(r.p99), *pacedRate, *pacedClients, r.n, r.backlog, ms(r.p50))
	fmt.Printf("BENCH submit_paced_vs_fsync_ratio %.2f x (goal <= 3)\n", ms(r.p99)/ms(r.fsyncP99))
	fmt.Printf("BENCH submit_paced_vs_floor_ratio %.2f x (submit_paced_p99_ms / (grpc_paced_p99_ms + badger_paced_p99_ms))\n",
		ms(r.p99)/(ms(r.grpcP99)+ms(r.badgerP99)))
	during := "drain in progress throughout"
	if r.cursorAfter >= r.pending {
		during = "the drain ENDED before the measurement did: raise -paced-backlog"
	}
	fmt.Printf("BENCH submit_paced_during_drain_p99_ms %.2f ms (the same load while the forwarder drains a %d tx backlog to central, %d pending at its start; cursor at %d when the load ended: %s; p50 %.2f ms)\n",
		ms(r.drainP99), r.backlog, r.pending, r.cursorAfter, during, ms(r.drainP50))
	fmt.Printf("BENCH submit_paced_during_drain_vs_paced_ratio %.2f x (goal <= 1.5)\n", ms(r.drainP99)/ms(r.p99))
	fmt.Printf("BENCH fsync_during_drain_p99_ms %.2f ms (fsync_p99_ms's 4 KiB pwrite + fdatasync, every 5 ms while that drain runs; p50 %.2f ms)\n",
		ms(r.fsyncDrainP99), ms(r.fsyncDrainP50))
	fmt.Printf("BENCH fsync_during_drain_vs_alone_ratio %.2f x (diagnosis: what the drain, central and PostgreSQL on the same disk do to one flush)\n",
		ms(r.fsyncDrainP99)/ms(r.fsyncP99))
}

// settle waits until the store a fill left is as a backlog built over an
// outage leaves it: every overlay indexed (a read makes the indexer catch
// up, as an instrument's first read would) and Badger's compaction of the
// fill done (no table being compacted and no compaction bytes written for
// a second, at most settleMax). Submits during that catch-up wait for it
// (docs/performance.md, "Paced Submit").
func settle(q *queue.Queue) (time.Duration, bool, error) {
	const settleMax = 2 * time.Minute
	start := time.Now()
	if _, err := q.Reads().Overlays("bench-settle"); err != nil {
		return 0, false, fmt.Errorf("settle: %w", err)
	}
	last, quiet := compactionWritten(), 0
	for time.Since(start) < settleMax {
		time.Sleep(250 * time.Millisecond) // sampling Badger's counters, not waiting for a state we set
		now := compactionWritten()
		if now == last && compactingTables() == 0 {
			quiet++
		} else {
			quiet = 0
		}
		if quiet >= 4 {
			return time.Since(start), true, nil
		}
		last = now
	}
	return time.Since(start), false, nil
}

// compactionWritten is the bytes Badger's compactions wrote, all levels.
func compactionWritten() int64 {
	var n int64
	if m, ok := expvar.Get("badger_write_bytes_compaction").(*expvar.Map); ok {
		m.Do(func(kv expvar.KeyValue) {
			if v, ok := kv.Value.(*expvar.Int); ok {
				n += v.Value()
			}
		})
	}
	return n
}

// compactingTables is the tables Badger is compacting now.
func compactingTables() int64 {
	if v, ok := expvar.Get("badger_compaction_current_num_lsm").(*expvar.Int); ok {
		return v.Value()
	}
	return 0
}

// badgerPaced offers rate one-key writes per second to a raw Badger with
// the queue's options and fsync on, on paced's schedule from clients
// writers: Badger batches the writes that meet into one fsync'd commit,
// as the appender groups Submits.
func badgerPaced(dir string, clients, rate int, d time.Duration) (p50, p99 time.Duration, err error) {
	db, err := openFloorDB(dir)
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	val := make([]byte, 200)
	var seq atomic.Uint64
	lats, err := onSchedule(clients, rate, d, func(int) error {
		key := binary.BigEndian.AppendUint64([]byte{'e'}, seq.Add(1))
		return db.Update(func(txn *badger.Txn) error { return txn.Set(key, val) })
	})
	if err != nil {
		return 0, 0, err
	}
	return percentile(lats, 0.50), percentile(lats, 0.99), nil
}
