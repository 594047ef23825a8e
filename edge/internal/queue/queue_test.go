package queue_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/chasqui/chasqui/edge/internal/queue"
	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/fixture"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv("QUEUE_KILL_CHILD_DIR"); dir != "" {
		killChild(dir)
		return
	}
	goleak.VerifyTestMain(m)
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type bundle struct {
	q    *queue.Queue
	opts queue.Options
}

func setup(t *testing.T, mod func(*queue.Options)) *bundle {
	t.Helper()
	opts := queue.Options{Dir: t.TempDir(), EdgeID: "edge-test", Logger: discard()}
	if mod != nil {
		mod(&opts)
	}
	q, err := queue.Open(opts)
	require.NoError(t, err)
	b := &bundle{q: q, opts: opts}
	t.Cleanup(func() { require.NoError(t, b.q.Close()) })
	return b
}

func (b *bundle) reopen(t *testing.T) {
	t.Helper()
	require.NoError(t, b.q.Close())
	q, err := queue.Open(b.opts)
	require.NoError(t, err)
	b.q = q
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// obsTx is a transaction with one observation whose id the edge fills in.
func obsTx(id string) *opsv1.Transaction {
	tx := fixture.Tx(fixture.Observation(""))
	tx.Id = id
	return tx
}

func submit1(t *testing.T, q *queue.Queue, tx *opsv1.Transaction) *edgev1.SubmitResult {
	t.Helper()
	acks, err := q.Submit(context.Background(), []*opsv1.Transaction{tx})
	require.NoError(t, err)
	require.Len(t, acks, 1)
	return acks[0]
}

func TestGroupCommitGapFreeUnderConcurrency(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	const workers, each = 64, 40
	var mu sync.Mutex
	var seqs []uint64
	ids := map[string]uint64{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				id := newID()
				acks, err := b.q.Submit(context.Background(), []*opsv1.Transaction{obsTx(id)})
				if !assertNoErr(t, err) {
					return
				}
				mu.Lock()
				seqs = append(seqs, acks[0].GetSeq())
				ids[id] = acks[0].GetSeq()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	require.Len(t, seqs, workers*each)
	slices.Sort(seqs)
	for i, s := range seqs {
		require.Equal(t, uint64(i+1), s, "seqs must be gap-free and unique")
	}
	require.Equal(t, uint64(workers*each), b.q.LastSeq())

	// Key order is accept order: Read returns every entry in seq order,
	// stamped by the edge.
	var got []queue.Entry
	for from := uint64(1); from <= b.q.LastSeq(); {
		es, err := b.q.Read(from, 500, 1<<20)
		require.NoError(t, err)
		require.NotEmpty(t, es)
		got = append(got, es...)
		from = es[len(es)-1].Seq + 1
	}
	require.Len(t, got, workers*each)
	for i, e := range got {
		require.Equal(t, uint64(i+1), e.Seq)
		require.Equal(t, e.Seq, e.Tx.GetSeq())
		require.Equal(t, e.Seq, ids[e.Tx.GetId()])
		require.Equal(t, "edge-test", e.Tx.GetEdgeId())
		require.Equal(t, b.q.Epoch(), e.Tx.GetEpoch())
		require.NotNil(t, e.Tx.GetAcceptedAt())
		require.NotEmpty(t, e.Tx.GetMutations()[0].GetObservation().GetId(), "record id filled in")
		require.Equal(t, proto.Size(e.Tx), e.Size)
	}
}

func assertNoErr(t *testing.T, err error) bool {
	t.Helper()
	if err != nil {
		t.Errorf("unexpected error: %v", err)
		return false
	}
	return true
}

func TestDuplicateTransactionID(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	id := newID()

	// Twice in one call: one entry, the second gets the first answer.
	acks, err := b.q.Submit(context.Background(), []*opsv1.Transaction{obsTx(id), obsTx(id)})
	require.NoError(t, err)
	first := acks[0]
	require.False(t, first.GetDuplicate())
	require.True(t, acks[1].GetDuplicate())
	requireSameAnswer(t, first, acks[1])
	require.Equal(t, uint64(1), b.q.LastSeq())

	// Again in a separate call.
	again := submit1(t, b.q, obsTx(id))
	require.True(t, again.GetDuplicate())
	requireSameAnswer(t, first, again)

	// Two separate calls in the same group (concurrent).
	id2 := newID()
	var wg sync.WaitGroup
	res := make([]*edgev1.SubmitResult, 8)
	for i := range res {
		wg.Go(func() {
			a, err := b.q.Submit(context.Background(), []*opsv1.Transaction{obsTx(id2)})
			if assertNoErr(t, err) {
				res[i] = a[0]
			}
		})
	}
	wg.Wait()
	dups := 0
	for _, r := range res {
		require.NotNil(t, r)
		require.Equal(t, uint64(2), r.GetSeq())
		if r.GetDuplicate() {
			dups++
		}
	}
	require.Equal(t, len(res)-1, dups)
	require.Equal(t, uint64(2), b.q.LastSeq())

	// After a restart.
	b.reopen(t)
	after := submit1(t, b.q, obsTx(id))
	require.True(t, after.GetDuplicate())
	requireSameAnswer(t, first, after)
	require.Equal(t, uint64(2), b.q.LastSeq())
	es, err := b.q.Read(1, 10, 1<<20)
	require.NoError(t, err)
	require.Len(t, es, 2)
}

func requireSameAnswer(t *testing.T, want, got *edgev1.SubmitResult) {
	t.Helper()
	require.Equal(t, want.GetTransactionId(), got.GetTransactionId())
	require.Equal(t, want.GetSeq(), got.GetSeq())
	require.Equal(t, want.GetAcceptedAt().AsTime(), got.GetAcceptedAt().AsTime())
	require.Equal(t, want.GetRecordIds(), got.GetRecordIds())
}

func TestQueueByteLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *queue.Options) { o.MaxQueueBytes = 2000 })
	var acked []*edgev1.SubmitResult
	var full error
	for range 100 {
		acks, err := b.q.Submit(context.Background(), []*opsv1.Transaction{obsTx(newID())})
		if err != nil {
			full = err
			break
		}
		acked = append(acked, acks[0])
	}
	require.ErrorIs(t, full, queue.ErrQueueFull)
	require.NotEmpty(t, acked)
	last := b.q.LastSeq()
	require.Equal(t, uint64(len(acked)), last)
	// A refused call of several transactions stores none of them.
	_, err := b.q.Submit(context.Background(), []*opsv1.Transaction{obsTx(newID()), obsTx(newID())})
	require.ErrorIs(t, err, queue.ErrQueueFull)
	require.Equal(t, last, b.q.LastSeq())
	st, err := b.q.Stats()
	require.NoError(t, err)
	require.Equal(t, uint64(len(acked)), st.Count)
	require.LessOrEqual(t, st.Bytes, uint64(2000))

	// Nothing lost: every acknowledged transaction is there.
	es, err := b.q.Read(1, 1000, 1<<20)
	require.NoError(t, err)
	require.Len(t, es, len(acked))

	// Central commits everything; the pruner frees the payloads: accepted again.
	require.NoError(t, b.q.ApplyCommit(applied(es, 1)))
	_, err = b.q.Prune(context.Background())
	require.NoError(t, err)
	a := submit1(t, b.q, obsTx(newID()))
	require.Equal(t, last+1, a.GetSeq())
}

// applied is central's answer that every entry was applied.
func applied(es []queue.Entry, lsn uint64) queue.CommitResult {
	res := queue.CommitResult{ThroughSeq: es[len(es)-1].Seq, LSN: lsn, LSNText: fmt.Sprintf("0/%X", lsn), CommittedAt: time.Now()}
	for _, e := range es {
		res.Results = append(res.Results, &centralv1.TransactionResult{
			TransactionId: e.Tx.GetId(), Seq: e.Seq, Outcome: centralv1.Outcome_OUTCOME_APPLIED,
		})
	}
	return res
}

func TestDiskReserve(t *testing.T) {
	t.Parallel()
	var free atomic.Uint64
	free.Store(1 << 40)
	b := setup(t, func(o *queue.Options) {
		o.StatFS = func(string) (uint64, error) { return free.Load(), nil }
	})
	submit1(t, b.q, obsTx(newID()))

	free.Store(queue.DefaultDiskReserve - 1)
	_, err := b.q.Submit(context.Background(), []*opsv1.Transaction{obsTx(newID())})
	require.ErrorIs(t, err, queue.ErrDiskFull)
	require.Equal(t, uint64(1), b.q.LastSeq(), "nothing written")
	st, err := b.q.Stats()
	require.NoError(t, err)
	require.Equal(t, uint64(queue.DefaultDiskReserve-1), st.DiskFree)

	// Just above the reserve, but not for the payload: still refused.
	free.Store(queue.DefaultDiskReserve + 10)
	_, err = b.q.Submit(context.Background(), []*opsv1.Transaction{obsTx(newID())})
	require.ErrorIs(t, err, queue.ErrDiskFull)

	free.Store(1 << 40)
	a := submit1(t, b.q, obsTx(newID()))
	require.Equal(t, uint64(2), a.GetSeq())
}

func TestRestartKeepsEverything(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	epoch := b.q.Epoch()
	var ids []string
	for range 10 {
		id := newID()
		ids = append(ids, id)
		submit1(t, b.q, obsTx(id))
	}
	es, err := b.q.Read(1, 4, 1<<20)
	require.NoError(t, err)
	require.NoError(t, b.q.ApplyCommit(applied(es, 42)))

	b.reopen(t)
	require.Equal(t, epoch, b.q.Epoch())
	require.Equal(t, uint64(10), b.q.LastSeq())
	require.Equal(t, uint64(4), b.q.CommittedThrough())
	for i, id := range ids {
		st, err := b.q.GetTransaction(id)
		require.NoError(t, err)
		require.Equal(t, uint64(i+1), st.GetSeq())
		if i < 4 {
			require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_COMMITTED, st.GetState())
			require.Equal(t, uint64(42), st.GetCommitLsnValue())
		} else {
			require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED, st.GetState())
		}
	}
	stats, err := b.q.Stats()
	require.NoError(t, err)
	require.Equal(t, uint64(6), stats.Count)
	require.False(t, stats.OldestPending.IsZero())
	a := submit1(t, b.q, obsTx(newID()))
	require.Equal(t, uint64(11), a.GetSeq())

	// Another edge id may not open this store.
	require.NoError(t, b.q.Close())
	o := b.opts
	o.EdgeID = "someone-else"
	_, err = queue.Open(o)
	require.ErrorContains(t, err, "belongs to edge")
	b.q, err = queue.Open(b.opts)
	require.NoError(t, err)
}

func TestReadCommitRejectAndDeadLetters(t *testing.T) {
	t.Parallel()
	now := time.Now()
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	b := setup(t, func(o *queue.Options) {
		o.Now = func() time.Time { return time.Unix(0, clock.Load()) }
		o.PayloadRetention = time.Hour
	})
	var txs []*opsv1.Transaction
	for range 6 {
		txs = append(txs, obsTx(newID()))
	}
	_, err := b.q.Submit(context.Background(), txs)
	require.NoError(t, err)
	select {
	case <-b.q.Appended():
	default:
		t.Fatal("Appended not signalled after a durable group")
	}

	// Limits: count, bytes (but at least one entry).
	es, err := b.q.Read(2, 3, 1<<20)
	require.NoError(t, err)
	require.Equal(t, []uint64{2, 3, 4}, seqsOf(es))
	es, err = b.q.Read(1, 100, 1)
	require.NoError(t, err)
	require.Equal(t, []uint64{1}, seqsOf(es))
	es, err = b.q.Read(7, 100, 1<<20)
	require.NoError(t, err)
	require.Empty(t, es)

	all, err := b.q.Read(1, 100, 1<<20)
	require.NoError(t, err)
	res := applied(all[:4], 0x16B3748)
	res.Results[2].Outcome = centralv1.Outcome_OUTCOME_REJECTED
	res.Results[2].Reason = "foreign key violation"
	res.Results[2].Sqlstate = "23503"
	require.NoError(t, b.q.ApplyCommit(res))
	require.NoError(t, b.q.ApplyCommit(res), "idempotent")
	require.Equal(t, uint64(4), b.q.CommittedThrough())
	// An older answer arriving late does not move the cursor back.
	require.NoError(t, b.q.ApplyCommit(applied(all[:2], 1)))
	require.Equal(t, uint64(4), b.q.CommittedThrough())

	st, err := b.q.GetTransaction(all[0].Tx.GetId())
	require.NoError(t, err)
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_COMMITTED, st.GetState())
	require.Equal(t, "0/16B3748", st.GetCommitLsn())
	rej := all[2].Tx.GetId()
	st, err = b.q.GetTransaction(rej)
	require.NoError(t, err)
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_REJECTED, st.GetState())
	require.Equal(t, "foreign key violation", st.GetRejectReason())
	_, err = b.q.GetTransaction(newID())
	require.ErrorIs(t, err, queue.ErrNotFound)

	// Committed payloads stay readable (resends after central lost commits).
	again, err := b.q.Read(1, 100, 1<<20)
	require.NoError(t, err)
	require.Len(t, again, 6)

	// Dead letters: list, get, retry under a new seq.
	dls, next, err := b.q.ListDeadLetters("", 10)
	require.NoError(t, err)
	require.Empty(t, next)
	require.Len(t, dls, 1)
	require.Equal(t, rej, dls[0].GetTransaction().GetId())
	require.Equal(t, "23503", dls[0].GetSqlstate())
	stats, err := b.q.Stats()
	require.NoError(t, err)
	require.Equal(t, uint64(1), stats.DeadLetters)
	require.Equal(t, uint64(2), stats.Count)

	edited := proto.Clone(dls[0].GetTransaction()).(*opsv1.Transaction)
	edited.GetMutations()[0].GetObservation().Source = "fixed"
	a, err := b.q.RetryDeadLetter(context.Background(), rej, edited)
	require.NoError(t, err)
	require.Equal(t, uint64(7), a.GetSeq())
	st, err = b.q.GetTransaction(rej)
	require.NoError(t, err)
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED, st.GetState())
	require.Equal(t, uint64(7), st.GetSeq())
	_, err = b.q.GetDeadLetter(rej)
	require.ErrorIs(t, err, queue.ErrNotFound)
	e7, err := b.q.Read(7, 1, 1<<20)
	require.NoError(t, err)
	require.Equal(t, rej, e7[0].Tx.GetId())
	require.Equal(t, "fixed", e7[0].Tx.GetMutations()[0].GetObservation().GetSource())
	// A late answer for the old seq changes nothing.
	require.NoError(t, b.q.ApplyCommit(res))
	st, err = b.q.GetTransaction(rej)
	require.NoError(t, err)
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED, st.GetState())

	// Rejected again, then discarded: the id stays known.
	res2 := applied(e7, 9)
	res2.Results[0].Outcome = centralv1.Outcome_OUTCOME_REJECTED
	res2.ThroughSeq = 4 // central has not passed 5, 6 yet in this made-up answer
	require.NoError(t, b.q.ApplyCommit(res2))
	_, err = b.q.GetDeadLetter(rej)
	require.NoError(t, err)
	require.NoError(t, b.q.DiscardDeadLetter(rej))
	require.ErrorIs(t, b.q.DiscardDeadLetter(rej), queue.ErrNotFound)
	_, err = b.q.RetryDeadLetter(context.Background(), rej, nil)
	require.ErrorIs(t, err, queue.ErrNotFound)
	dup := submit1(t, b.q, obsTx(rej))
	require.True(t, dup.GetDuplicate())
	stats, err = b.q.Stats()
	require.NoError(t, err)
	require.Equal(t, uint64(0), stats.DeadLetters)

	// Before the retention nothing is pruned; after it the committed prefix is.
	n, err := b.q.Prune(context.Background())
	require.NoError(t, err)
	require.Zero(t, n)
	clock.Store(now.Add(2 * time.Hour).UnixNano())
	n, err = b.q.Prune(context.Background())
	require.NoError(t, err)
	require.Equal(t, 4, n)
	_, err = b.q.Read(1, 10, 1<<20)
	require.ErrorIs(t, err, queue.ErrPruned)
	es, err = b.q.Read(5, 10, 1<<20)
	require.NoError(t, err)
	require.Equal(t, []uint64{5, 6, 7}, seqsOf(es))
	stats, err = b.q.Stats()
	require.NoError(t, err)
	require.Equal(t, uint64(5), stats.Head)
	require.Zero(t, stats.RetainedBytes)
	require.NoError(t, b.q.RunGC())

	// The head survives a restart.
	b.reopen(t)
	_, err = b.q.Read(4, 10, 1<<20)
	require.ErrorIs(t, err, queue.ErrPruned)
	st, err = b.q.GetTransaction(all[0].Tx.GetId())
	require.NoError(t, err, "tx state outlives its payload")
	require.Equal(t, uint64(1), st.GetSeq())
}

func seqsOf(es []queue.Entry) []uint64 {
	var s []uint64
	for _, e := range es {
		s = append(s, e.Seq)
	}
	return s
}

func TestRunStopsWithContextAndClose(t *testing.T) {
	t.Parallel()
	b := setup(t, func(o *queue.Options) {
		o.PruneInterval = time.Millisecond
		o.GCInterval = time.Millisecond
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.q.Run(ctx) }()
	submit1(t, b.q, obsTx(newID()))
	cancel()
	require.NoError(t, <-done)
	q := b.q
	go func() { done <- q.Run(context.Background()) }()
	b.reopen(t) // Close stops Run too (or Run finds the queue closed)
	if err := <-done; err != nil {
		require.ErrorIs(t, err, queue.ErrClosed)
	}
}

// killChild is the child process of TestKill9: it submits from 8 goroutines
// and prints every acknowledged transaction until it is killed.
func killChild(dir string) {
	q, err := queue.Open(queue.Options{Dir: dir, EdgeID: "edge-test", Logger: discard()})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	for range 8 {
		go func() {
			for {
				id := newID()
				acks, err := q.Submit(context.Background(), []*opsv1.Transaction{obsTx(id)})
				if err != nil {
					continue
				}
				mu.Lock()
				fmt.Fprintf(out, "ACK %s %d\n", id, acks[0].GetSeq())
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	select {}
}

func TestKill9KeepsEveryAck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "QUEUE_KILL_CHILD_DIR="+dir)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	acked := map[string]uint64{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && len(acked) < 2000 {
		f := strings.Fields(sc.Text())
		require.Len(t, f, 3, sc.Text())
		seq, err := strconv.ParseUint(f[2], 10, 64)
		require.NoError(t, err)
		acked[f[1]] = seq
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	require.Len(t, acked, 2000)

	q, err := queue.Open(queue.Options{Dir: dir, EdgeID: "edge-test", Logger: discard()})
	require.NoError(t, err)
	defer func() { require.NoError(t, q.Close()) }()
	var maxSeq uint64
	for id, seq := range acked {
		st, err := q.GetTransaction(id)
		require.NoError(t, err, "acknowledged tx %s lost", id)
		require.Equal(t, seq, st.GetSeq())
		maxSeq = max(maxSeq, seq)
	}
	require.GreaterOrEqual(t, q.LastSeq(), maxSeq)
	// Gap-free, and every entry readable.
	n := uint64(0)
	for from := uint64(1); from <= q.LastSeq(); {
		es, err := q.Read(from, 1000, 4<<20)
		require.NoError(t, err)
		for _, e := range es {
			n++
			require.Equal(t, n, e.Seq)
		}
		from = es[len(es)-1].Seq + 1
	}
	require.Equal(t, q.LastSeq(), n)
	a := submit1(t, q, obsTx(newID()))
	require.Equal(t, n+1, a.GetSeq(), "seqs continue gap-free")
}

// TestLargeRequestSpansBadgerTransactions: one call larger than one Badger
// transaction holds is written in parts, all durable before the answer, with
// consistent counters after a restart.
func TestLargeRequestSpansBadgerTransactions(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	var txs []*opsv1.Transaction
	for range 12000 {
		txs = append(txs, obsTx(newID()))
	}
	acks, err := b.q.Submit(context.Background(), txs)
	require.NoError(t, err)
	require.Len(t, acks, 12000)
	require.Equal(t, uint64(12000), acks[11999].GetSeq())
	b.reopen(t)
	require.Equal(t, uint64(12000), b.q.LastSeq())
	st, err := b.q.Stats()
	require.NoError(t, err)
	require.Equal(t, uint64(12000), st.Count)
	var sum uint64
	for from := uint64(1); from <= 12000; {
		es, err := b.q.Read(from, 5000, 8<<20)
		require.NoError(t, err)
		for _, e := range es {
			sum += uint64(e.Size)
		}
		from = es[len(es)-1].Seq + 1
	}
	require.Equal(t, sum, st.Bytes, "byte counter matches the stored payloads")
}

// The appender prepares a group while the one before it commits; an id
// given to both (or to a group prepared ahead and then prepared again
// because another writer got in between) must still be stored once.
func TestDuplicatesAcrossPipelinedGroups(t *testing.T) {
	t.Parallel()
	for _, otherWriter := range []bool{false, true} {
		t.Run(fmt.Sprintf("other_writer=%v", otherWriter), func(t *testing.T) {
			t.Parallel()
			duplicatesAcrossGroups(t, otherWriter)
		})
	}
}

func duplicatesAcrossGroups(t *testing.T, otherWriter bool) {
	b := setup(t, nil)
	ids := make([]string, 400)
	for i := range ids {
		ids[i] = newID()
	}
	stop := make(chan struct{})
	var other sync.WaitGroup
	if otherWriter {
		other.Go(func() { // another writer taking the write lock all along
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := b.q.Replayed(0); err != nil {
					t.Errorf("Replayed: %v", err)
					return
				}
			}
		})
	}
	var mu sync.Mutex
	seqOf := map[string]uint64{}
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := range ids {
				id := ids[(i+w)%len(ids)]
				acks, err := b.q.Submit(context.Background(), []*opsv1.Transaction{obsTx(id)})
				if !assertNoErr(t, err) {
					return
				}
				mu.Lock()
				if s, ok := seqOf[id]; ok && s != acks[0].GetSeq() {
					t.Errorf("id %s answered with seq %d and %d", id, s, acks[0].GetSeq())
				}
				seqOf[id] = acks[0].GetSeq()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	other.Wait()
	require.Len(t, seqOf, len(ids))
	require.Equal(t, uint64(len(ids)), b.q.LastSeq(), "one entry per id")
	es, err := b.q.Read(1, 1000, 1<<24)
	require.NoError(t, err)
	require.Len(t, es, len(ids))
	for i, e := range es {
		require.Equal(t, uint64(i+1), e.Seq)
		require.Equal(t, e.Seq, seqOf[e.Tx.GetId()])
	}
	st, err := b.q.Stats()
	require.NoError(t, err)
	require.Less(t, st.AppendGroups, uint64(32*len(ids)), "submissions share fsyncs")
}
