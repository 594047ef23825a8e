package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/require"

	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/fixture"
)

// Tests of "Accept never waits for the WAN" (docs/design.md) on the pipelined append path: a caller is
// acknowledged only once its group's Badger commit (fsync'd: SyncWrites)
// has succeeded, never before and never after a failed one.

// commits controls the Badger commits of a queue's append groups through
// testHooks.commitGroup. Unless hold is set a commit is made at once;
// with hold set each is handed to the test on held, and made or failed
// when the test says.
type commits struct {
	hold atomic.Bool
	held chan *heldCommit
	stop chan struct{} // closed at cleanup: what is still held commits

	mu        sync.Mutex
	undecided map[*heldCommit]struct{}
}

// heldCommit is one append group's Badger commit, not made yet.
type heldCommit struct {
	c    *commits
	p    *flight
	txn  *badger.Txn
	done func(error)
	once sync.Once
}

// newCommits puts the commits of the queue opts opens under the test's
// control.
func newCommits(opts *Options) *commits {
	c := &commits{held: make(chan *heldCommit), stop: make(chan struct{}), undecided: map[*heldCommit]struct{}{}}
	opts.hooks.commitGroup = c.commitGroup
	return c
}

// cleanup lets every held commit go at the end of the test, so a test
// failing while it holds one does not hang in Close. Cleanups run
// last-registered first: call it once the queue's Close is registered.
func (c *commits) cleanup(t *testing.T) {
	t.Cleanup(func() {
		close(c.stop)
		c.mu.Lock()
		left := make([]*heldCommit, 0, len(c.undecided))
		for h := range c.undecided {
			left = append(left, h)
		}
		c.mu.Unlock()
		for _, h := range left {
			h.commit()
		}
	})
}

func (c *commits) commitGroup(p *flight, txn *badger.Txn, done func(error)) {
	h := &heldCommit{c: c, p: p, txn: txn, done: done}
	if !c.hold.Load() {
		h.commit()
		return
	}
	c.mu.Lock()
	c.undecided[h] = struct{}{}
	c.mu.Unlock()
	select {
	case c.held <- h:
	case <-c.stop:
		h.commit()
	}
}

// next waits for the next held commit.
func (c *commits) next(t *testing.T) *heldCommit {
	t.Helper()
	select {
	case h := <-c.held:
		return h
	case <-time.After(10 * time.Second):
		t.Fatal("no append group reached its commit")
		return nil
	}
}

// commit makes the Badger commit and reports its outcome to the appender.
// before runs between the two (once the group is durable).
func (h *heldCommit) commit(before ...func()) {
	h.once.Do(func() {
		h.forget()
		err := h.txn.Commit()
		for _, f := range before {
			f()
		}
		h.done(err)
	})
}

// fail drops the Badger transaction (nothing of it is written) and reports
// err as the commit's outcome, as a failing Badger commit would.
func (h *heldCommit) fail(err error) {
	h.once.Do(func() {
		h.forget()
		h.txn.Discard()
		h.done(err)
	})
}

func (h *heldCommit) forget() {
	h.c.mu.Lock()
	delete(h.c.undecided, h)
	h.c.mu.Unlock()
}

// txIDs are the ids of the transactions the group's callers submitted.
func (h *heldCommit) txIDs() []string {
	var ids []string
	for _, r := range h.p.group {
		for _, tx := range r.txs {
			ids = append(ids, tx.GetId())
		}
	}
	return ids
}

func openDurableTest(t *testing.T, mod func(*Options)) (*Queue, Options) {
	t.Helper()
	opts := Options{Dir: t.TempDir(), EdgeID: "edge-test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if mod != nil {
		mod(&opts)
	}
	q, err := Open(opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, q.Close()) })
	return q, opts
}

// submitEach submits n observations one Submit each into an empty queue
// and returns their ids (ids[i] acknowledged under seq i+1).
func submitEach(t *testing.T, q *Queue, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		tx := fixture.ObservationTx()
		acks, err := q.Submit(context.Background(), []*opsv1.Transaction{tx})
		require.NoError(t, err)
		ids = append(ids, tx.GetId())
		require.Equal(t, uint64(len(ids)), acks[0].GetSeq())
	}
	return ids
}

// handOver is Submit up to the hand-over to the appender: the request is in
// the appender's queue when it returns, and its answer is left in r.done for
// the test to look at.
func handOver(t *testing.T, q *Queue, txs ...*opsv1.Transaction) *submitReq {
	t.Helper()
	r := &submitReq{txs: txs, done: make(chan submitResp, 1)}
	r.estimate()
	select {
	case q.reqs <- r:
	case <-time.After(10 * time.Second):
		t.Fatal("the appender takes no request")
	}
	return r
}

// answerOf waits for r's answer.
func answerOf(t *testing.T, r *submitReq) submitResp {
	t.Helper()
	select {
	case resp := <-r.done:
		return resp
	case <-time.After(10 * time.Second):
		t.Fatal("no answer")
		return submitResp{}
	}
}

// While an append group's Badger commit is held, none of its callers has an
// answer; each caller's acks come only after its group is durable. Many
// concurrent callers in small groups, each commit held until the appender
// has taken callers outside its group, keep the appender preparing a group
// while the one before it commits (the pipelined path).
func TestNoAckBeforeTheGroupCommitIsDurable(t *testing.T) {
	t.Parallel()
	var c *commits
	// Groups of at most 8 transactions: 48 callers never fit in one, and
	// while one commits the appender has callers to prepare the next.
	q, _ := openDurableTest(t, func(o *Options) {
		c = newCommits(o)
		o.MaxGroup = 8
	})
	c.cleanup(t)
	c.hold.Store(true)

	const workers, each = 48, 15
	var mu sync.Mutex
	durable := map[string]bool{}  // the group holding the id is committed
	answered := map[string]bool{} // its caller has its ack
	calling := make([]string, workers)
	var seqs []uint64

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				tx := fixture.ObservationTx()
				id := tx.GetId()
				mu.Lock()
				calling[w] = id
				mu.Unlock()
				acks, err := q.Submit(context.Background(), []*opsv1.Transaction{tx})
				mu.Lock()
				calling[w] = ""
				if err == nil && !durable[id] {
					err = fmt.Errorf("tx %s acknowledged (seq %d) before its group's commit was made", id, acks[0].GetSeq())
				}
				answered[id] = true
				if err == nil {
					seqs = append(seqs, acks[0].GetSeq())
				}
				mu.Unlock()
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	submitted := make(chan struct{})
	go func() { wg.Wait(); close(submitted) }()

	groups, ahead, shared := 0, 0, 0
	for {
		var h *heldCommit
		select {
		case h = <-c.held:
		case <-submitted:
		case <-time.After(30 * time.Second):
			t.Fatal("callers still waiting with no group committing")
		}
		if h == nil {
			break
		}
		groups++
		if h.p.g.prev != nil { // prepared while the group before it committed
			ahead++
		}
		if len(h.p.group) > 1 {
			shared++
		}
		ids := h.txIDs()
		in := make(map[string]bool, len(ids))
		for _, id := range ids {
			in[id] = true
		}
		// Hold the commit until a caller outside the group is no longer in
		// the appender's queue: the appender took it and prepares it ahead
		// (or every caller is in this group or between calls).
		var early []string
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			early = early[:0]
			for _, id := range ids {
				if answered[id] {
					early = append(early, id)
				}
			}
			outside := 0
			for _, id := range calling {
				if id != "" && !in[id] && !durable[id] {
					outside++
				}
			}
			return len(early) > 0 || outside == 0 || len(q.reqs) < outside
		}, 10*time.Second, 100*time.Microsecond)
		require.Empty(t, early, "answered while their group's commit is held")
		h.commit(func() {
			mu.Lock()
			for _, id := range ids {
				durable[id] = true
			}
			mu.Unlock()
		})
	}
	require.Len(t, seqs, workers*each, "every caller acknowledged once its group committed")
	require.Len(t, answered, workers*each)
	seen := make([]bool, workers*each+1)
	for _, s := range seqs {
		require.True(t, s >= 1 && s <= workers*each && !seen[s], "seq %d out of range or given twice", s)
		seen[s] = true
	}
	require.Equal(t, uint64(workers*each), q.LastSeq())
	t.Logf("%d groups, %d prepared ahead, %d with several callers", groups, ahead, shared)
	require.Greater(t, ahead, groups/2, "groups were seldom prepared while another committed: the pipelined path went untested")
	require.Positive(t, shared, "no group had several callers")
}

// A group whose Badger commit fails answers every caller with the error,
// the group prepared on top of it is not acknowledged as prepared (its
// seqs would follow the failed ones, leaving a hole), the counters are read
// back, and the store after a restart holds every acknowledged transaction
// and none of the failed ones.
func TestFailedGroupCommitAcknowledgesNothing(t *testing.T) {
	t.Parallel()
	var c *commits
	q, opts := openDurableTest(t, func(o *Options) { c = newCommits(o) })
	c.cleanup(t)
	ctx := context.Background()

	acked := map[string]uint64{}
	ack := func(r *submitReq) {
		t.Helper()
		resp := answerOf(t, r)
		require.NoError(t, resp.err)
		require.Len(t, resp.acks, len(r.txs))
		for i, a := range resp.acks {
			require.Equal(t, r.txs[i].GetId(), a.GetTransactionId())
			require.False(t, a.GetDuplicate())
			acked[a.GetTransactionId()] = a.GetSeq()
		}
	}
	for range 3 {
		ack(handOver(t, q, fixture.ObservationTx()))
	}

	// g0 commits held; what is handed over meanwhile (fs) is prepared on
	// top of it and becomes the group after it.
	c.hold.Store(true)
	g0 := handOver(t, q, fixture.ObservationTx())
	h0 := c.next(t)
	require.Equal(t, []*submitReq{g0}, h0.p.group)
	var fs []*submitReq
	for range 6 {
		fs = append(fs, handOver(t, q, fixture.ObservationTx(), fixture.ObservationTx()))
	}
	h0.commit()
	ack(g0)

	hf := c.next(t)
	require.ElementsMatch(t, fs, hf.p.group, "the callers handed over during g0's commit make one group")
	// bs are handed over while the fs group's commit is held: the appender
	// takes the first of them and prepares a group on top of the fs group.
	var bs []*submitReq
	for range 4 {
		bs = append(bs, handOver(t, q, fixture.ObservationTx()))
	}
	require.Eventually(t, func() bool { return len(q.reqs) < len(bs) }, 10*time.Second, time.Millisecond,
		"the appender took none of the requests handed over during a commit")
	for _, r := range append(fs, bs...) {
		require.Empty(t, r.done, "answered while the fs group's commit is held")
	}
	boom := errors.New("injected: badger commit failed")
	hf.fail(boom)

	var failedIDs []string
	for _, r := range fs {
		resp := answerOf(t, r)
		require.ErrorIs(t, resp.err, boom)
		require.Empty(t, resp.acks, "a caller of a failed group got acks")
		for _, tx := range r.txs {
			failedIDs = append(failedIDs, tx.GetId())
		}
	}

	// The group prepared on top of the failed one is prepared again on the
	// counters read back; until that one is durable nobody in it is answered.
	hb := c.next(t)
	require.ElementsMatch(t, bs, hb.p.group)
	for _, r := range bs {
		require.Empty(t, r.done, "answered before its group's commit")
	}
	c.hold.Store(false)
	hb.commit()
	for _, r := range bs {
		ack(r)
	}

	// The counters: the next seq follows the last acknowledged one, with no
	// hole where the failed group was, and Stats agree.
	last := uint64(len(acked))
	seqs := make(map[uint64]string, len(acked))
	for id, s := range acked {
		require.NotContains(t, seqs, s, "seq given twice")
		require.True(t, s >= 1 && s <= last, "seq %d leaves a hole (%d transactions acknowledged)", s, last)
		seqs[s] = id
	}
	require.Equal(t, last, q.LastSeq())
	acks, err := q.Submit(ctx, []*opsv1.Transaction{fixture.ObservationTx()})
	require.NoError(t, err)
	last++
	require.Equal(t, last, acks[0].GetSeq())
	acked[acks[0].GetTransactionId()] = last

	check := func(q *Queue) {
		t.Helper()
		es, err := q.Read(1, 1000, 1<<20)
		require.NoError(t, err)
		require.Len(t, es, int(last))
		var bytes uint64
		for i, e := range es {
			require.Equal(t, uint64(i+1), e.Seq)
			require.Equal(t, acked[e.Tx.GetId()], e.Seq, "entry %d is not the acknowledged one", e.Seq)
			bytes += uint64(e.Size)
		}
		for id, s := range acked {
			st, err := q.GetTransaction(id)
			require.NoError(t, err, "acknowledged tx %s missing", id)
			require.Equal(t, s, st.GetSeq())
		}
		for _, id := range failedIDs {
			_, err := q.GetTransaction(id)
			require.ErrorIs(t, err, ErrNotFound, "tx %s of the failed group is stored", id)
		}
		st, err := q.Stats()
		require.NoError(t, err)
		require.Equal(t, last, st.LastSeq)
		require.Equal(t, last, st.Count)
		require.Equal(t, bytes, st.Bytes)
	}
	check(q)
	st, err := q.Stats()
	require.NoError(t, err)
	require.Equal(t, last, st.Accepted, "accepted counts what was acknowledged, not the failed group")

	// After a restart (without the hook: a plain queue on the same store).
	require.NoError(t, q.Close())
	opts.hooks.commitGroup = nil
	q2, err := Open(opts)
	require.NoError(t, err)
	defer func() { require.NoError(t, q2.Close()) }()
	require.Equal(t, last, q2.LastSeq())
	check(q2)
	acks, err = q2.Submit(ctx, []*opsv1.Transaction{fixture.ObservationTx()})
	require.NoError(t, err)
	require.Equal(t, last+1, acks[0].GetSeq())
}

// The edge acknowledges a write once Badger has fsync'd it: that is Badger's
// SyncWrites, which production options must keep on. UnsafeNoSync (benchmarks
// only) is the one way to turn it off.
func TestBadgerSyncsEveryCommit(t *testing.T) {
	t.Parallel()
	q, _ := openDurableTest(t, nil)
	require.True(t, q.db.Opts().SyncWrites, "default options must fsync every Badger commit")

	unsafe, _ := openDurableTest(t, func(o *Options) { o.UnsafeNoSync = true })
	require.False(t, unsafe.db.Opts().SyncWrites)
}
