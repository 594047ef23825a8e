// Package forward owns the edge's forwarder: it reads the queue in sequence
// order, cuts Commit batches by count, bytes and a short linger, keeps a few
// of them in flight to central (pipelining over a long round trip), hands
// central's answers back to the queue strictly in sequence order (from a
// goroutine of its own, so that a slow disk does not hold up sending), and rides
// out whatever the link and central do (docs/design.md, "Wire contract" and "Retries"): the
// per-call retries are the retry interceptor's, the per-link backoff, batch
// splitting on timeouts and sequence-gap resends are this package's. It
// never drops a transaction: the queue only moves on central's answers.
// While it has nothing to send it probes central (probe.go), so that a
// lost link shows before records wait.
package forward

import (
	"compress/flate"
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/retry"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding/gzip"

	"github.com/chasqui/chasqui/edge/internal/queue"
	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
)

// gRPC's gzip compresses at level 6 unless told otherwise. A Commit batch
// is mostly UUIDs and timestamps: level 1 makes it 3% larger (0.21 of the
// marshalled size instead of 0.20) at half the CPU, which on the 2-core
// edge box is what a backlog's drain is short of. The level is the
// process's (gRPC keeps one gzip compressor), so it is set once, here.
func init() {
	if err := gzip.SetLevel(flate.BestSpeed); err != nil {
		panic(err)
	}
}

// Store is the queue as the forwarder uses it (*queue.Queue implements it).
type Store interface {
	// EdgeID and Epoch identify the edge and its store to central.
	EdgeID() string
	Epoch() string
	// CommittedThrough is the highest seq through which the store holds
	// every outcome (persisted): where sending resumes after a restart. It
	// must not follow central's committed_through_seq past the outcomes
	// recorded, or a seq skipped there is never answered.
	CommittedThrough() uint64
	// LastSeq is the highest seq accepted.
	LastSeq() uint64
	// Read returns entries with seq >= from, in order, at most maxCount and
	// maxBytes (always at least one entry when there is one). Committed but
	// retained entries are returned too; a pruned payload gives an error
	// matching queue.ErrPruned.
	Read(from uint64, maxCount, maxBytes int) ([]queue.Entry, error)
	// Appended is signalled after each durable append group.
	Appended() <-chan struct{}
	// ApplyCommit records central's answer durably (COMMITTED, or REJECTED
	// into the dead letters); it is idempotent.
	ApplyCommit(res queue.CommitResult) error
	// Rewind takes CommittedThrough back to seq-1 and the transactions
	// committed from seq on back to waiting (no LSN, not visible): central
	// says it has not applied seq, so their commits were lost.
	Rewind(seq uint64) (int, error)
}

// States reported by State.
const (
	StateIdle       = "idle"       // nothing to send
	StateForwarding = "forwarding" // batches in flight
	StateBackoff    = "backoff"    // link or central failing; waiting to probe
	StateConflict   = "conflict"   // central holds another store's data for these seqs (operator action)
	StateRefused    = "refused"    // central refused the batch (invalid, permission)
	StateStuck      = "stuck"      // central wants seqs whose payloads are pruned (operator action)
)

// rateWindow is the span CommitRate averages over.
const rateWindow = 10 * time.Second

// Forwarder carries the queue to central. Create it with New and run it
// with Run; the status methods are safe for concurrent use.
type Forwarder struct {
	cfg     Config
	store   Store
	client  centralv1.IngestServiceClient
	log     *slog.Logger
	limiter *rate.Limiter // nil: unlimited
	running atomic.Bool

	mu           sync.Mutex
	state        string
	lastErr      string
	lastErrAt    time.Time
	lastCommitAt time.Time
	centralLSN   string
	firstCommit  time.Time
	samples      []rateSample
	reach        reachState // the link probe's view of central (probe.go)
}

type rateSample struct {
	at time.Time
	n  int
}

// New creates a forwarder over store, calling central on conn. conn should
// be dialled with internal/grpcclient: the forwarder passes per-call retry
// options (attempt count, per-attempt timeout by batch size) that only its
// retry interceptor understands, and relies on its retry predicate
// (UNAVAILABLE, within the client-wide retry budget; an attempt's
// DEADLINE_EXCEEDED is retried by the per-attempt timeout). It does not
// replace that predicate per call: that would bypass the retry budget.
func New(cfg Config, store Store, conn grpc.ClientConnInterface, logger *slog.Logger) (*Forwarder, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil || conn == nil || logger == nil {
		return nil, errors.New("forward: store, conn and logger are required")
	}
	f := &Forwarder{
		cfg:    cfg,
		store:  store,
		client: centralv1.NewIngestServiceClient(conn),
		log:    logger.With("component", "forward", "central", cfg.CentralAddr),
		state:  StateIdle,
	}
	if cfg.BandwidthBytesPerSec > 0 {
		burst := min(cfg.BandwidthBytesPerSec, int64(cfg.MaxBytes))
		f.limiter = rate.NewLimiter(rate.Limit(cfg.BandwidthBytesPerSec), int(max(burst, 1)))
	}
	return f, nil
}

// State is the forwarder's state: idle, forwarding, backoff, conflict,
// refused or stuck.
func (f *Forwarder) State() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state
}

// LastError is the last failure seen ("" if none yet). It is kept after
// the forwarder recovers: compare LastErrorAt with LastCommitAt to tell
// whether it is still current.
func (f *Forwarder) LastError() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErr
}

// LastErrorAt is when LastError was seen (zero if never).
func (f *Forwarder) LastErrorAt() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastErrAt
}

// LastCommitAt is when central last acknowledged a batch (zero if never).
func (f *Forwarder) LastCommitAt() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastCommitAt
}

// CentralLSN is the commit LSN of central's last answer ("" if none yet).
func (f *Forwarder) CentralLSN() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.centralLSN
}

// CommitRate is the transactions per second central acknowledged over the
// last ten seconds.
func (f *Forwarder) CommitRate() float64 {
	now := f.cfg.Clock.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pruneSamples(now)
	if len(f.samples) == 0 {
		return 0
	}
	total := 0
	for _, s := range f.samples {
		total += s.n
	}
	span := min(now.Sub(f.firstCommit), rateWindow)
	span = max(span, time.Second)
	return float64(total) / span.Seconds()
}

func (f *Forwarder) pruneSamples(now time.Time) {
	i := 0
	for i < len(f.samples) && now.Sub(f.samples[i].at) > rateWindow {
		i++
	}
	f.samples = f.samples[i:]
}

func (f *Forwarder) setState(s string) {
	f.mu.Lock()
	f.state = s
	f.mu.Unlock()
}

func (f *Forwarder) recordCommit(res queue.CommitResult, n int) {
	f.mu.Lock()
	f.lastCommitAt = res.CommittedAt
	if res.LSNText != "" {
		f.centralLSN = res.LSNText
	}
	if f.firstCommit.IsZero() {
		f.firstCommit = res.CommittedAt
	}
	f.samples = append(f.samples, rateSample{at: res.CommittedAt, n: n})
	f.pruneSamples(res.CommittedAt)
	back, down := f.answeredLocked(res.CommittedAt)
	f.mu.Unlock()
	if back {
		f.log.Info("central reachable again: a batch committed", "unreachable_for", down)
	}
}

// recordError notes err and, unless state is "", the state it leads to.
func (f *Forwarder) recordError(state string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if state != "" {
		f.state = state
	}
	f.lastErr, f.lastErrAt = err.Error(), f.cfg.Clock.Now()
}

// callOptions are the per-call options of a batch of the given bytes.
func (f *Forwarder) callOptions(bytes int) []grpc.CallOption {
	opts := []grpc.CallOption{
		retry.WithMax(f.cfg.MaxAttempts),
		retry.WithPerRetryTimeout(f.cfg.attemptTimeout(bytes)),
	}
	if f.cfg.Compression == CompressionGzip {
		opts = append(opts, grpc.UseCompressor(gzip.Name))
	}
	return opts
}

// callTimeout bounds a whole call, all attempts and the interceptor's
// backoffs between them, so that a connection without the retry
// interceptor cannot hang the forwarder either.
func (f *Forwarder) callTimeout(bytes int) time.Duration {
	n := time.Duration(f.cfg.MaxAttempts)
	return n*f.cfg.attemptTimeout(bytes) + n*2*time.Second
}

// Run forwards until ctx is cancelled, then cancels the calls in flight,
// waits for them and returns nil. Failures never end it: it backs off and
// retries, with the reason in State and LastError.
func (f *Forwarder) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return errors.New("forward: Run is already running")
	}
	defer f.running.Store(false)
	// The link probe runs beside the pipeline and ends with it.
	pctx, stopProbe := context.WithCancel(ctx)
	var probing sync.WaitGroup
	probing.Go(func() { f.probeLoop(pctx) })
	defer func() {
		stopProbe()
		probing.Wait()
	}()
	r := &runner{
		f:         f,
		next:      f.store.CommittedThrough() + 1,
		limCount:  f.cfg.MaxCount,
		limBytes:  f.cfg.MaxBytes,
		limWindow: f.cfg.Window,
	}
	f.log.Info("forwarder starting", "from_seq", r.next, "edge_id", f.store.EdgeID(), "epoch", f.store.Epoch())
	for {
		fail := r.pipeline(ctx)
		if ctx.Err() != nil {
			f.log.Info("forwarder stopped", "next_seq", r.next)
			return nil
		}
		if fail.wait <= 0 {
			continue
		}
		r.linkAttempt++
		f.log.Log(ctx, fail.level, "forward: link retry",
			"link_attempt", r.linkAttempt, "state", fail.state, "backoff", fail.wait,
			"resend_from_seq", r.next, "err", fail.err)
		if !f.sleep(ctx, fail.wait) {
			f.log.Info("forwarder stopped", "next_seq", r.next)
			return nil
		}
		// Like a circuit breaker half-open: one probe batch until a success.
		r.probing = true
	}
}

func (f *Forwarder) sleep(ctx context.Context, d time.Duration) bool {
	c, stop := f.cfg.Clock.NewTimer(d)
	defer stop()
	select {
	case <-ctx.Done():
		return false
	case <-c:
		return true
	}
}

// failure is why a pipeline ended: the next seq to send is already in
// runner.next; wait is the link backoff (0: resend at once).
type failure struct {
	state string
	err   error
	wait  time.Duration
	level slog.Level
}

func (f *Forwarder) fail(state string, level slog.Level, wait time.Duration, err error) failure {
	f.recordError(state, err)
	return failure{state: state, err: err, wait: wait, level: level}
}
