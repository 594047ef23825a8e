package forward_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"

	"github.com/chasqui/chasqui/edge/internal/centralproc"
	"github.com/chasqui/chasqui/edge/internal/forward"
	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	"github.com/chasqui/chasqui/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	centralproc.Cleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func TestConfigValidateNamesField(t *testing.T) {
	t.Parallel()
	for field, cfg := range map[string]forward.Config{
		"CentralAddr":          {},
		"MaxCount":             {CentralAddr: "x", MaxCount: -1},
		"Window":               {CentralAddr: "x", Window: -1},
		"BandwidthBytesPerSec": {CentralAddr: "x", BandwidthBytesPerSec: -1},
		"Compression":          {CentralAddr: "x", Compression: "zstd"},
		"MaxAttempts":          {CentralAddr: "x", MaxAttempts: 50},
		"BackoffMax":           {CentralAddr: "x", BackoffBase: time.Minute, BackoffMax: time.Second},
		"ProbeTimeout":         {CentralAddr: "x", ProbeTimeout: -time.Second},
	} {
		err := cfg.Validate()
		require.Error(t, err, field)
		require.Contains(t, err.Error(), field)
	}
	require.NoError(t, forward.Config{CentralAddr: "x"}.Validate())
	err := forward.Config{CentralAddr: "x", MaxCount: 5001}.Validate()
	require.ErrorContains(t, err, "MaxCount", "above central's limit per Commit")
}

// By default a backlog of small transactions goes 4000 to a batch.
func TestDefaultBatchCount(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	store := newMemStore("e1")
	store.append(4001, 0)
	start(t, serveCentral(t, central), forward.Config{Window: 1}, store)
	require.Eventually(t, func() bool { return store.CommittedThrough() == 4001 }, 10*time.Second, poll, "all committed")
	require.Equal(t, []batch{{1, 4000}, {4001, 1}}, central.seen())
}

// Batches are cut by count: 25 queued with MaxCount 10 go as 10, 10, 5.
func TestBatchesCutByCount(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	store := newMemStore("e1")
	store.append(25, 0)
	b := start(t, serveCentral(t, central), forward.Config{MaxCount: 10, Window: 1}, store)
	require.Eventually(t, func() bool { return store.CommittedThrough() == 25 }, 10*time.Second, poll, "all committed")
	require.Equal(t, []batch{{1, 10}, {11, 10}, {21, 5}}, central.seen())
	require.Equal(t, forward.StateIdle, b.fwd.State())
}

// Batches are cut by bytes: MaxBytes fits three transactions.
func TestBatchesCutByBytes(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	store := newMemStore("e1")
	store.append(9, 200)
	size := store.entries[0].Size
	start(t, serveCentral(t, central), forward.Config{MaxBytes: 3*size + size/2, Window: 1}, store)
	require.Eventually(t, func() bool { return store.CommittedThrough() == 9 }, 10*time.Second, poll, "all committed")
	require.Equal(t, []batch{{1, 3}, {4, 3}, {7, 3}}, central.seen())
}

// A batch that is not full lingers for more; a full one goes at once.
func TestBatchesLinger(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	store := newMemStore("e1")
	clock := newFakeClock()
	// The link probe is off: its timer on the same clock would be counted.
	b := start(t, serveCentral(t, central), forward.Config{MaxCount: 5, Linger: 50 * time.Millisecond, Clock: clock, ProbeInterval: -1}, store)

	store.append(1, 0)
	require.Eventually(t, func() bool { return clock.pending() == 1 }, 10*time.Second, poll, "linger timer started")
	store.append(1, 0)
	store.append(1, 0)
	require.Empty(t, central.seen(), "nothing sent while lingering")
	clock.advance(50 * time.Millisecond)
	require.Eventually(t, func() bool { return store.CommittedThrough() == 3 }, 10*time.Second, poll, "lingered batch committed")
	require.Equal(t, []batch{{1, 3}}, central.seen())

	// A full batch does not wait for the linger (the clock is not advanced).
	store.append(5, 0)
	require.Eventually(t, func() bool { return store.CommittedThrough() == 8 }, 10*time.Second, poll, "full batch committed")
	require.Equal(t, []batch{{1, 3}, {4, 5}}, central.seen())
	require.False(t, b.fwd.LastCommitAt().IsZero())
	require.Equal(t, "0/C8", b.fwd.CentralLSN())
}

// With four batches in flight and random server latency, central applies
// and the queue records in strict seq order, each exactly once; calls are
// gzip-compressed.
func TestPipelinedOrder(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	var mu sync.Mutex
	rnd := rand.New(rand.NewPCG(1, 2))
	central.hook = func(ctx context.Context, _ *centralv1.CommitRequest) error {
		mu.Lock()
		d := time.Duration(rnd.IntN(15)) * time.Millisecond
		mu.Unlock()
		select {
		case <-time.After(d): // simulated server latency
		case <-ctx.Done():
		}
		return nil
	}
	store := newMemStore("e1")
	const n = 2000
	store.append(n, 50)
	b := start(t, serveCentral(t, central), forward.Config{MaxCount: 40, Window: 4}, store)
	require.Eventually(t, func() bool { return store.CommittedThrough() == n }, 30*time.Second, poll, "all committed")

	require.Equal(t, seqs(1, n), store.applied(), "ApplyCommit in strict seq order, once each")
	require.Equal(t, store.ids(1, n), central.applied(), "central applied in order, once each")
	require.GreaterOrEqual(t, central.maxActive.Load(), int64(2), "batches were pipelined")
	for _, c := range central.compressions() {
		require.Equal(t, "gzip", c)
	}
	require.Greater(t, b.fwd.CommitRate(), 0.0)
}

func TestCompressionNone(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	store := newMemStore("e1")
	store.append(3, 0)
	start(t, serveCentral(t, central), forward.Config{Compression: forward.CompressionNone}, store)
	require.Eventually(t, func() bool { return store.CommittedThrough() == 3 }, 10*time.Second, poll, "all committed")
	require.NotEmpty(t, central.compressions())
	for _, c := range central.compressions() {
		require.Empty(t, c)
	}
}

// Central answers UNAVAILABLE for a while: the interceptor gives up, the
// forwarder backs off on the link (logging each link attempt), then
// everything arrives exactly once and in order.
func TestUnavailableThenRecovers(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	var down atomic.Bool
	down.Store(true)
	central.hook = func(context.Context, *centralv1.CommitRequest) error {
		if down.Load() {
			return status.Error(codes.Unavailable, "database unreachable")
		}
		return nil
	}
	store := newMemStore("e1")
	const n = 300
	store.append(n, 0)
	b := start(t, serveCentral(t, central), forward.Config{
		MaxCount: 20, MaxAttempts: 2, BackoffBase: 10 * time.Millisecond, BackoffMax: 40 * time.Millisecond,
	}, store)

	require.Eventually(t, func() bool {
		return strings.Contains(b.logs.String(), `"link_attempt":3`)
	}, 10*time.Second, poll, "three link attempts logged")
	require.Equal(t, forward.StateBackoff, b.fwd.State())
	require.Contains(t, b.fwd.LastError(), "database unreachable")
	require.Contains(t, b.logs.String(), `"attempt":2`, "the interceptor's attempts are logged too")
	require.Zero(t, store.CommittedThrough())

	down.Store(false)
	require.Eventually(t, func() bool { return store.CommittedThrough() == n }, 10*time.Second, poll, "all committed after recovery")
	require.Equal(t, seqs(1, n), store.applied())
	require.Equal(t, store.ids(1, n), central.applied())
	require.Eventually(t, func() bool { return b.fwd.State() == forward.StateIdle }, 10*time.Second, poll, "idle again")
}

// Central lost its last commits (failover): its cursor is at 10 while the
// edge has 20 acknowledged. The forwarder resends 11.. from the retained
// payloads.
func TestGapResendBelowCommitted(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	central.predWait = 0
	store := newMemStore("e1")
	store.append(30, 0)
	store.committed = 20
	central.preload(store.ids(1, 10))

	start(t, serveCentral(t, central), forward.Config{MaxCount: 7}, store)
	require.Eventually(t, func() bool { return len(store.applied()) == 20 }, 10*time.Second, poll, "resent and recorded")
	require.Equal(t, store.ids(1, 30), central.applied(), "each applied once, in order")
	require.Equal(t, seqs(11, 30), store.applied())
	seen := central.seen()
	require.GreaterOrEqual(t, seen[0].first, uint64(21), "started after the edge's committed seq: %v", seen)
	require.True(t, slices.ContainsFunc(seen, func(b batch) bool { return b.first == 11 }),
		"resent from central's expected seq: %v", seen)
}

// The payloads central asks for again are pruned: the forwarder is stuck,
// says so, and skips nothing.
func TestGapPrunedIsStuck(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	central.predWait = 0
	store := newMemStore("e1")
	store.append(30, 0)
	store.committed, store.prunedTo = 20, 20
	central.preload(store.ids(1, 10))

	b := start(t, serveCentral(t, central), forward.Config{BackoffBase: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond}, store)
	require.Eventually(t, func() bool { return b.fwd.State() == forward.StateStuck }, 10*time.Second, poll, "stuck")
	require.Contains(t, b.fwd.LastError(), "pruned")
	require.Eventually(t, func() bool { return central.calls.Load() >= 3 }, 10*time.Second, poll, "keeps probing")
	require.Equal(t, store.ids(1, 10), central.applied(), "nothing skipped")
	require.Empty(t, store.applied())
}

// A replaced edge store meets central's cursor: conflict, data kept.
func TestCursorConflict(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	central.preload([]string{"other-1", "other-2", "other-3"})
	store := newMemStore("e2")
	store.append(5, 0)
	b := start(t, serveCentral(t, central), forward.Config{BackoffBase: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond}, store)
	require.Eventually(t, func() bool { return b.fwd.State() == forward.StateConflict }, 10*time.Second, poll, "conflict")
	require.Contains(t, b.fwd.LastError(), "other-1")
	// The state is recorded before the failure is logged.
	require.Eventually(t, func() bool { return strings.Contains(b.logs.String(), `"level":"ERROR"`) }, 10*time.Second, poll, "conflict logged at ERROR")
	require.Zero(t, store.CommittedThrough())
}

// INVALID_ARGUMENT is not retried by the interceptor. Refused for every
// batch, the withdrawal of a lone transaction included, it is the link's
// refusal: the forwarder reports "refused" and waits the maximum backoff,
// dropping nothing.
func TestRefused(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	central.hook = func(context.Context, *centralv1.CommitRequest) error {
		return status.Error(codes.InvalidArgument, "transactions[0].id: not a UUID")
	}
	store := newMemStore("e1")
	store.append(5, 0)
	b := start(t, serveCentral(t, central), forward.Config{BackoffMax: time.Hour}, store)
	require.Eventually(t, func() bool { return b.fwd.State() == forward.StateRefused }, 10*time.Second, poll, "refused")
	require.Contains(t, b.fwd.LastError(), "transactions[0].id")
	require.Contains(t, b.fwd.LastError(), "central refused withdrawing seq 1 too")
	require.Zero(t, store.CommittedThrough())
	require.Empty(t, store.applied())
}

// A batch too big for the per-attempt timeout is split until it fits.
func TestTimeoutSplitsBatch(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	central.hook = func(ctx context.Context, req *centralv1.CommitRequest) error {
		if len(req.GetTransactions()) > 4 {
			<-ctx.Done() // far too slow: never answers in time
			return status.FromContextError(ctx.Err()).Err()
		}
		return nil
	}
	store := newMemStore("e1")
	store.append(16, 0)
	b := start(t, serveCentral(t, central), forward.Config{
		MaxCount: 16, MaxAttempts: 2, AttemptTimeoutBase: 100 * time.Millisecond, AttemptFloorBandwidth: 1 << 40,
	}, store)
	require.Eventually(t, func() bool { return store.CommittedThrough() == 16 }, 20*time.Second, poll, "all committed")
	require.Equal(t, seqs(1, 16), store.applied())
	require.Equal(t, store.ids(1, 16), central.applied())
	sizes := map[int]bool{}
	for _, s := range central.seen() {
		sizes[s.n] = true
	}
	require.True(t, sizes[16] && sizes[8] && sizes[4], "split 16 -> 8 -> 4, saw %v", central.seen())
	require.Contains(t, b.logs.String(), "splitting")
}

// A link too narrow for the window's batches within the per-attempt
// timeout times out every concurrent attempt, whatever the batches' size:
// the window must shrink for anything to pass. Modelled: a call takes
// 20 ms alone, and one that shared the link with another at any moment
// never answers in time (nor does the other).
func TestSentTimeoutNarrowsTheWindow(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	live := map[*bool]bool{}
	central := newFakeCentral()
	central.hook = func(ctx context.Context, req *centralv1.CommitRequest) error {
		shared := new(bool)
		mu.Lock()
		for other := range live {
			*other, *shared = true, true
		}
		live[shared] = true
		mu.Unlock()
		defer func() {
			mu.Lock()
			delete(live, shared)
			mu.Unlock()
		}()
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
		mu.Lock()
		slow := *shared
		mu.Unlock()
		if slow {
			<-ctx.Done()
			return status.FromContextError(ctx.Err()).Err()
		}
		return nil
	}
	// Client side, per attempt: once an attempt that was sent timed out,
	// no attempt may start beside another until one succeeds.
	var crowded, timeouts int
	var inflight int
	afterTimeout := false
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		mu.Lock()
		if afterTimeout && inflight > 0 {
			crowded++
		}
		inflight++
		mu.Unlock()
		err := invoker(ctx, method, req, reply, cc, opts...)
		mu.Lock()
		defer mu.Unlock()
		inflight--
		switch status.Code(err) {
		case codes.DeadlineExceeded:
			afterTimeout = true
			timeouts++
		case codes.OK:
			afterTimeout = false
		}
		return err
	}
	store := newMemStore("e1")
	store.append(64, 0)
	start(t, serveCentral(t, central), forward.Config{
		MaxCount: 8, Window: 8, MaxAttempts: 1, AttemptTimeoutBase: 100 * time.Millisecond, AttemptFloorBandwidth: 1 << 40,
	}, store, count)
	require.Eventually(t, func() bool { return store.CommittedThrough() == 64 }, 60*time.Second, poll, "all committed over the narrow link")
	require.Equal(t, seqs(1, 64), store.applied())
	require.Equal(t, store.ids(1, 64), central.applied())
	mu.Lock()
	defer mu.Unlock()
	require.Positive(t, timeouts, "the link never timed out: the model is broken")
	require.Zero(t, crowded, "attempts started beside another after a timeout, before any success")
}

// Shutdown while a call hangs returns promptly and keeps the data.
func TestShutdownWhileCallHangs(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	central.hook = func(ctx context.Context, _ *centralv1.CommitRequest) error {
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	store := newMemStore("e1")
	store.append(10, 0)
	b := start(t, serveCentral(t, central), forward.Config{AttemptTimeoutBase: time.Hour}, store)
	require.Eventually(t, func() bool { return central.active.Load() == 1 }, 10*time.Second, poll, "call in flight")
	// Set before the call starts (TestForwardingBeforeCallStarts).
	require.Equal(t, forward.StateForwarding, b.fwd.State(), "forwarding while the call hangs")
	took := b.stop()
	require.Less(t, took, 2*time.Second, "Run returns promptly")
	require.Zero(t, store.CommittedThrough())
}

// The bandwidth cap bounds throughput (loosely: the bound is generous).
func TestBandwidthCap(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	store := newMemStore("e1")
	store.append(60, 1000)
	total := 0
	for _, e := range store.entries {
		total += e.Size
	}
	const capBps = 50_000
	t0 := time.Now()
	start(t, serveCentral(t, central), forward.Config{BandwidthBytesPerSec: capBps, MaxBytes: 5000}, store)
	require.Eventually(t, func() bool { return store.CommittedThrough() == 60 }, 20*time.Second, poll, "all committed")
	elapsed := time.Since(t0)
	// The bucket holds one batch (5000 B); the rest flows at the cap.
	minimum := time.Duration(float64(total-5000) / capBps * float64(time.Second))
	require.GreaterOrEqual(t, elapsed, minimum*8/10, "%d bytes in %s at a cap of %d B/s", total, elapsed, capBps)
}

func TestBackoffFormula(t *testing.T) {
	t.Parallel()
	base, maxD := 200*time.Millisecond, 30*time.Second
	// Half of the delay is jitter: rnd 0 gives the lower half, rnd ~1 the whole.
	require.Equal(t, 100*time.Millisecond, forward.Backoff(base, maxD, 1, 0))
	require.Equal(t, 150*time.Millisecond, forward.Backoff(base, maxD, 1, 0.5))
	require.Equal(t, 600*time.Millisecond, forward.Backoff(base, maxD, 3, 0.5), "doubles per attempt")
	require.Equal(t, 15*time.Second, forward.Backoff(base, maxD, 10, 0), "capped")
	require.Equal(t, 15*time.Second, forward.Backoff(base, maxD, 1000, 0), "no overflow")
	require.Less(t, forward.Backoff(base, maxD, 1000, 0.999999), maxD+1)
}

// After the interceptor gives up, the forwarder waits the link backoff on
// its clock, then sends exactly one probe batch (a half-open breaker), and
// the backoff grows.
func TestLinkBackoffProbes(t *testing.T) {
	t.Parallel()
	// Probes always start at seq 1 (nothing commits); the window's other
	// batches start later. They are counted apart, as the client starts
	// them: on the server side, a cancelled call of the first window can
	// arrive late on a loaded machine and look like a window.
	var probes, others atomic.Int64
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if r, ok := req.(*centralv1.CommitRequest); ok {
			if r.GetFirstSeq() == 1 {
				probes.Add(1)
			} else {
				others.Add(1)
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	central := newFakeCentral()
	central.hook = func(_ context.Context, req *centralv1.CommitRequest) error {
		return status.Error(codes.Unavailable, "down")
	}
	store := newMemStore("e1")
	store.append(30, 0)
	clock := newFakeClock()
	b := start(t, serveCentral(t, central), forward.Config{
		MaxCount: 5, Window: 4, MaxAttempts: 1, BackoffBase: time.Second, BackoffMax: 8 * time.Second,
		Clock: clock, Rand: func() float64 { return 0.5 },
		ProbeInterval: -1, // its timer on the same clock would be counted
	}, store, count)

	for attempt, wait := range []time.Duration{750 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Second} {
		require.Eventually(t, func() bool { return clock.pending() == 1 }, 10*time.Second, poll, "backoff %d started", attempt+1)
		require.Equal(t, forward.StateBackoff, b.fwd.State())
		sent, othersBefore := probes.Load(), others.Load()
		clock.advance(wait - time.Millisecond)
		require.Equal(t, 1, clock.pending(), "still backing off just before %s", wait)
		clock.advance(time.Millisecond)
		require.Eventually(t, func() bool { return probes.Load() == sent+1 }, 10*time.Second, poll, "probe sent")
		require.Eventually(t, func() bool { return clock.pending() == 1 }, 10*time.Second, poll, "next backoff started")
		require.Equal(t, sent+1, probes.Load(), "one probe batch only")
		require.Equal(t, othersBefore, others.Load(), "a probe is one batch, not a window")
	}
	require.Contains(t, b.logs.String(), `"link_attempt":4`)
	require.Zero(t, store.CommittedThrough())
}

// Central refuses a batch that arrives before its predecessor at once (no
// wait): under a window of 4 with random latency batches overtake each
// other often, and the forwarder resends them; order and exactly-once hold.
func TestPipelinedOvertakingResent(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	central.predWait = 0
	var mu sync.Mutex
	rnd := rand.New(rand.NewPCG(3, 4))
	central.hook = func(ctx context.Context, _ *centralv1.CommitRequest) error {
		mu.Lock()
		d := time.Duration(rnd.IntN(5)) * time.Millisecond
		mu.Unlock()
		select {
		case <-time.After(d): // simulated server latency
		case <-ctx.Done():
		}
		return nil
	}
	store := newMemStore("e1")
	const n = 500
	store.append(n, 0)
	b := start(t, serveCentral(t, central), forward.Config{MaxCount: 10, Window: 4}, store)
	require.Eventually(t, func() bool { return store.CommittedThrough() == n }, 30*time.Second, poll, "all committed")
	require.Equal(t, seqs(1, n), store.applied())
	require.Equal(t, store.ids(1, n), central.applied())
	require.Greater(t, len(central.seen()), n/10, "some batches were refused and resent")
	require.NotContains(t, b.logs.String(), "link retry", "overtaking is not a link failure")
}

// A failed local write of central's answer loses nothing: the batch is
// sent again and central answers the stored outcome.
func TestApplyCommitFailureResends(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	store := newMemStore("e1")
	store.append(20, 0)
	store.failApply = 2
	b := start(t, serveCentral(t, central), forward.Config{MaxCount: 5, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond}, store)
	require.Eventually(t, func() bool { return store.CommittedThrough() == 20 }, 10*time.Second, poll, "all committed")
	require.Equal(t, seqs(1, 20), store.applied())
	require.Equal(t, store.ids(1, 20), central.applied(), "central applied each once")
	require.Contains(t, b.fwd.LastError(), "disk write failed")
}

// CommitRate averages the last ten seconds on the forwarder's clock.
func TestCommitRate(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	store := newMemStore("e1")
	store.append(30, 0)
	clock := newFakeClock()
	b := start(t, serveCentral(t, central), forward.Config{MaxCount: 10, Clock: clock}, store)
	require.Eventually(t, func() bool { return store.CommittedThrough() == 30 }, 10*time.Second, poll, "all committed")
	require.InDelta(t, 30, b.fwd.CommitRate(), 0.001, "a burst counts over at least one second")
	require.Equal(t, clock.Now(), b.fwd.LastCommitAt())
	clock.advance(5 * time.Second)
	require.InDelta(t, 6, b.fwd.CommitRate(), 0.001)
	clock.advance(6 * time.Second)
	require.Zero(t, b.fwd.CommitRate(), "older than the window")
}

// TestGzipFastestLevel: the link's gzip runs at level 1 (gzip's header
// says so in its XFL byte: 4 is "fastest"), not gRPC's default 6.
func TestGzipFastestLevel(t *testing.T) {
	var buf bytes.Buffer
	w, err := encoding.GetCompressor("gzip").Compress(&buf)
	require.NoError(t, err)
	_, err = w.Write(bytes.Repeat([]byte("chasqui "), 100))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.Greater(t, buf.Len(), 9)
	require.Equal(t, byte(4), buf.Bytes()[8], "gzip XFL byte")
}
