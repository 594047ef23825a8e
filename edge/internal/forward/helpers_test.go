package forward_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/chasqui/chasqui/edge/internal/forward"
	"github.com/chasqui/chasqui/edge/internal/queue"
	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/grpcclient"
	"github.com/chasqui/chasqui/internal/logging/logtest"
)

// memStore is an in-memory double of the queue (the real one is Badger).
type memStore struct {
	edgeID, epoch string

	mu         sync.Mutex
	entries    []queue.Entry // entries[i].Seq == i+1
	committed  uint64
	prunedTo   uint64 // payloads of seqs <= prunedTo are gone
	commits    []queue.CommitResult
	appliedSeq []uint64 // seqs in the order ApplyCommit received them
	appended   chan struct{}
	failApply  int      // the next failApply ApplyCommit calls fail
	rewinds    []uint64 // the seqs Rewind was called with
	// applyHook, when set, runs at the start of each ApplyCommit, outside
	// the lock (a slow disk); readHook likewise before each Read.
	applyHook func(res queue.CommitResult)
	readHook  func()
}

func newMemStore(epoch string) *memStore {
	return &memStore{edgeID: "edge-1", epoch: epoch, appended: make(chan struct{}, 1)}
}

// txSize makes transactions of about padBytes marshalled bytes.
func (s *memStore) append(n, padBytes int) {
	s.mu.Lock()
	for range n {
		seq := uint64(len(s.entries) + 1)
		tx := &opsv1.Transaction{
			Id:     fmt.Sprintf("%s-tx-%06d", s.epoch, seq),
			EdgeId: s.edgeID,
			Epoch:  s.epoch,
			Seq:    seq,
		}
		if padBytes > 0 {
			tx.TraceContext = map[string]string{"pad": strings.Repeat("x", padBytes)}
		}
		s.entries = append(s.entries, queue.Entry{Seq: seq, Tx: tx, Size: proto.Size(tx)})
	}
	s.mu.Unlock()
	select {
	case s.appended <- struct{}{}:
	default:
	}
}

// appendTxs queues txs as the edge's appender would: it sets edge id,
// epoch, seq and accepted_at.
func (s *memStore) appendTxs(txs ...*opsv1.Transaction) {
	s.mu.Lock()
	for _, tx := range txs {
		seq := uint64(len(s.entries) + 1)
		tx.EdgeId, tx.Epoch, tx.Seq, tx.AcceptedAt = s.edgeID, s.epoch, seq, timestamppb.Now()
		s.entries = append(s.entries, queue.Entry{Seq: seq, Tx: tx, Size: proto.Size(tx)})
	}
	s.mu.Unlock()
	select {
	case s.appended <- struct{}{}:
	default:
	}
}

func (s *memStore) EdgeID() string { return s.edgeID }
func (s *memStore) Epoch() string  { return s.epoch }

func (s *memStore) CommittedThrough() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.committed
}

func (s *memStore) LastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return uint64(len(s.entries))
}

func (s *memStore) Read(from uint64, maxCount, maxBytes int) ([]queue.Entry, error) {
	if s.readHook != nil {
		s.readHook()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if from <= s.prunedTo {
		return nil, fmt.Errorf("read seq %d: %w", from, queue.ErrPruned)
	}
	var out []queue.Entry
	bytes := 0
	for seq := from; seq <= uint64(len(s.entries)) && len(out) < maxCount; seq++ {
		e := s.entries[seq-1]
		if len(out) > 0 && bytes+e.Size > maxBytes {
			break
		}
		out = append(out, e)
		bytes += e.Size
	}
	return out, nil
}

func (s *memStore) Appended() <-chan struct{} { return s.appended }

func (s *memStore) ApplyCommit(res queue.CommitResult) error {
	if s.applyHook != nil {
		s.applyHook(res)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failApply > 0 {
		s.failApply--
		return errors.New("injected: disk write failed")
	}
	s.commits = append(s.commits, res)
	// Like the real queue, the mark moves only over the seqs right after
	// it whose outcome is recorded, never to ThroughSeq alone.
	for _, r := range res.Results {
		s.appliedSeq = append(s.appliedSeq, r.GetSeq())
		recorded := r.GetOutcome() == centralv1.Outcome_OUTCOME_APPLIED || r.GetOutcome() == centralv1.Outcome_OUTCOME_REJECTED
		if recorded && r.GetSeq() == s.committed+1 {
			s.committed++
		}
	}
	return nil
}

func (s *memStore) Rewind(seq uint64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq == 0 || seq > s.committed {
		return 0, nil
	}
	if seq <= s.prunedTo {
		return 0, fmt.Errorf("rewind to seq %d: %w", seq, queue.ErrPruned)
	}
	n := int(s.committed - seq + 1)
	s.committed = seq - 1
	s.rewinds = append(s.rewinds, seq)
	return n, nil
}

func (s *memStore) applied() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.appliedSeq)
}

func (s *memStore) ids(from, to uint64) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for seq := from; seq <= to; seq++ {
		out = append(out, s.entries[seq-1].Tx.GetId())
	}
	return out
}

// fakeCentral is an in-process IngestService with central's sequencing
// rules (cursor, in-order apply with a brief wait for a late predecessor,
// gap and conflict answers), for protocol edge cases the real central does
// not produce on demand.
type fakeCentral struct {
	centralv1.UnimplementedIngestServiceServer

	// hook runs before each call is handled; a non-nil error is answered.
	hook func(ctx context.Context, req *centralv1.CommitRequest) error
	// predWait is how long an early batch waits for its predecessor.
	predWait time.Duration
	// cursorHook, when set, runs before each GetCursor (the link probe);
	// a non-nil error is answered.
	cursorHook  func(ctx context.Context) error
	cursorCalls atomic.Int64

	calls, active, maxActive atomic.Int64

	mu          sync.Mutex
	cursor      uint64
	appliedIDs  map[uint64]string
	order       []string // transaction ids in apply order
	batches     []batch  // every request seen
	changed     chan struct{}
	lsn         uint64
	compression []string
}

type batch struct {
	first uint64
	n     int
}

func newFakeCentral() *fakeCentral {
	return &fakeCentral{predWait: time.Second, appliedIDs: map[uint64]string{}, changed: make(chan struct{})}
}

// preload pretends central applied ids at seqs 1..len(ids).
func (c *fakeCentral) preload(ids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, id := range ids {
		c.appliedIDs[uint64(i+1)] = id
		c.order = append(c.order, id)
	}
	c.cursor = uint64(len(ids))
}

func (c *fakeCentral) Commit(ctx context.Context, req *centralv1.CommitRequest) (*centralv1.CommitResponse, error) {
	c.calls.Add(1)
	n := c.active.Add(1)
	defer c.active.Add(-1)
	for {
		m := c.maxActive.Load()
		if n <= m || c.maxActive.CompareAndSwap(m, n) {
			break
		}
	}
	c.mu.Lock()
	c.batches = append(c.batches, batch{first: req.GetFirstSeq(), n: len(req.GetTransactions())})
	c.mu.Unlock()
	if c.hook != nil {
		if err := c.hook(ctx, req); err != nil {
			return nil, err
		}
	}

	deadline := time.Now().Add(c.predWait)
	c.mu.Lock()
	defer c.mu.Unlock()
	for req.GetFirstSeq() > c.cursor+1 {
		if time.Now().After(deadline) {
			st, _ := status.New(codes.Aborted, "sequence gap").WithDetails(&centralv1.SequenceGap{ExpectedSeq: c.cursor + 1})
			return nil, st.Err()
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-time.After(time.Until(deadline)):
		case <-ctx.Done():
			c.mu.Lock()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		c.mu.Lock()
	}
	if ctx.Err() != nil {
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	resp := &centralv1.CommitResponse{}
	for i, tx := range req.GetTransactions() {
		seq := req.GetFirstSeq() + uint64(i)
		tr := &centralv1.TransactionResult{TransactionId: tx.GetId(), Seq: seq, Outcome: centralv1.Outcome_OUTCOME_APPLIED}
		if seq <= c.cursor {
			if c.appliedIDs[seq] != tx.GetId() {
				st, _ := status.New(codes.FailedPrecondition, "cursor conflict").WithDetails(&centralv1.CursorConflict{
					Seq: seq, AppliedTransactionId: c.appliedIDs[seq], RequestTransactionId: tx.GetId(),
					Epoch: "old-epoch", CursorSeq: c.cursor,
				})
				return nil, st.Err()
			}
			tr.Duplicate = true
		} else {
			c.appliedIDs[seq] = tx.GetId()
			c.order = append(c.order, tx.GetId())
			c.cursor = seq
		}
		resp.Results = append(resp.Results, tr)
	}
	close(c.changed)
	c.changed = make(chan struct{})
	c.lsn += 100
	resp.CommittedThroughSeq = c.cursor
	resp.CommitLsnValue = c.lsn
	resp.CommitLsn = fmt.Sprintf("0/%X", c.lsn)
	return resp, nil
}

// GetCursor answers the link probe with the cursor.
func (c *fakeCentral) GetCursor(ctx context.Context, req *centralv1.GetCursorRequest) (*centralv1.GetCursorResponse, error) {
	c.cursorCalls.Add(1)
	if c.cursorHook != nil {
		if err := c.cursorHook(ctx); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return &centralv1.GetCursorResponse{EdgeId: req.GetEdgeId(), LastSeq: c.cursor}, nil
}

func (c *fakeCentral) applied() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.order)
}

func (c *fakeCentral) seen() []batch {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.batches)
}

func (c *fakeCentral) compressions() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.compression)
}

// Stats handler: records the grpc-encoding of each incoming Commit (the
// link probe's GetCursor is too small to compress).
func (c *fakeCentral) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (c *fakeCentral) HandleRPC(_ context.Context, s stats.RPCStats) {
	if h, ok := s.(*stats.InHeader); ok && !h.IsClient() && h.FullMethod == centralv1.IngestService_Commit_FullMethodName {
		c.mu.Lock()
		c.compression = append(c.compression, h.Compression)
		c.mu.Unlock()
	}
}
func (c *fakeCentral) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (c *fakeCentral) HandleConn(context.Context, stats.ConnStats) {}

// serveCentral serves an IngestService on 127.0.0.1:0 until the test ends.
func serveCentral(t testing.TB, c *fakeCentral) string {
	t.Helper()
	addr, _ := serveCentralAt(t, "127.0.0.1:0", c)
	return addr
}

// serveCentralAt serves an IngestService on addr (a port of a server
// stopped just before may take a moment to bind again) until stop or the
// test's end.
func serveCentralAt(t testing.TB, addr string, c *fakeCentral) (string, func()) {
	t.Helper()
	var lis net.Listener
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		if lis, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // poll interval while the port is released
	}
	require.NoError(t, err)
	s := grpc.NewServer(grpc.StatsHandler(c))
	centralv1.RegisterIngestServiceServer(s, c)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(lis)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			s.Stop()
			<-done
		})
	}
	t.Cleanup(stop)
	return lis.Addr().String(), stop
}

// bundle is a running forwarder and what it talks to.
type bundle struct {
	fwd  *forward.Forwarder
	logs *logtest.Buffer
	stop func() time.Duration // cancels Run and waits; returns how long Run took to return
}

// fastClient is the grpcclient policy with short waits, so tests of
// failures stay fast.
func fastClient(logger *slog.Logger) grpcclient.Options {
	return grpcclient.Options{
		Logger:             logger,
		BackoffBase:        5 * time.Millisecond,
		BackoffMax:         20 * time.Millisecond,
		ReconnectBaseDelay: 20 * time.Millisecond,
		ReconnectMaxDelay:  100 * time.Millisecond,
		RetryBudget:        100,
		RetryBurst:         100,
	}
}

// start dials addr with internal/grpcclient and runs a forwarder over store.
// unary interceptors run inside the retry interceptor: once per attempt.
func start(t testing.TB, addr string, cfg forward.Config, store forward.Store, unary ...grpc.UnaryClientInterceptor) *bundle {
	t.Helper()
	logs := &logtest.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := fastClient(logger)
	opts.Unary = unary
	conn, err := grpcclient.Dial(addr, opts)
	require.NoError(t, err)
	cfg.CentralAddr = addr
	fwd, err := forward.New(cfg, store, conn, logger)
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fwd.Run(ctx) }()
	var once sync.Once
	var took time.Duration
	stop := func() time.Duration {
		once.Do(func() {
			t0 := time.Now()
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return within 10 s of cancellation")
			}
			took = time.Since(t0)
			require.NoError(t, conn.Close())
		})
		return took
	}
	t.Cleanup(func() { stop() })
	return &bundle{fwd: fwd, logs: logs, stop: stop}
}

// poll is how often a test re-checks the state it waits for: short, since
// most waits are for a few milliseconds of the forwarder's work.
const poll = 2 * time.Millisecond

// seqs returns from..to.
func seqs(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// fakeClock is a manual clock: timers fire when the test advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), c: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	return t.c, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		i := slices.Index(c.timers, t)
		if i < 0 {
			return false
		}
		c.timers = slices.Delete(c.timers, i, i+1)
		return true
	}
}

func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(c.now) {
			t.c <- c.now
		} else {
			keep = append(keep, t)
		}
	}
	c.timers = keep
}
