package queue

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/fixture"
)

// Tests of a group written the plain way (writeGroup: it outgrows one
// Badger transaction, so it is written in parts, each committed durably)
// whose later part fails: the parts before it are durable, so the counters
// must be read back from the store (settle's reload), every caller gets the
// error, the callers' retries get the first answers of what is durable, and
// new seqs continue gap-free after it.

// partTxs is how many transactions the large request holds: enough for
// several Badger transactions (TestLargeRequestSpansBadgerTransactions) at
// two keys per transaction.
const partTxs = 12000

// failingParts controls the Badger commits of a queue's batches through
// testHooks.commitPart: once armed, each part commits until the first one
// fail picks, which is discarded and fails with errPart.
type failingParts struct {
	fail func(n int, final bool) bool // n counts the parts since armed, from 1

	mu      sync.Mutex
	armed   bool
	n       int
	failedN int  // the part that failed (0: none yet)
	final   bool // it was its batch's last
	durable meta // the counters committed with the last part before it
}

var errPart = errors.New("injected: badger commit of a part failed")

func (c *failingParts) arm() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed, c.n = true, 0
}

func (c *failingParts) commitPart(txn *badger.Txn, final bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.armed {
		return txn.Commit()
	}
	c.n++
	if c.fail(c.n, final) {
		c.armed, c.failedN, c.final = false, c.n, final
		txn.Discard()
		return errPart
	}
	m, err := readMeta(txn) // the counters this part carries (pending writes)
	if err != nil {
		txn.Discard()
		return err
	}
	if err := txn.Commit(); err != nil {
		return err
	}
	c.durable = m
	return nil
}

// A group written in parts whose second part (a flush) or last part (the
// final commit) fails: the first parts stay durable and count, nothing of
// the failed part does.
func TestFailedPartOfAPlainGroup(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// calls are the sizes of the group's requests. The appender gives
		// a request this large a group of its own (it fits no other
		// request beside it), so a group of several callers is written
		// with writeGroup directly (direct), as the appender would.
		calls  []int
		direct bool
		fail   func(n int, final bool) bool
	}{
		{name: "flush", calls: []int{partTxs}, fail: func(n int, final bool) bool { return n == 2 && !final }},
		{name: "final_commit", calls: []int{partTxs}, fail: func(_ int, final bool) bool { return final }},
		{name: "several_callers", calls: []int{40, partTxs, 40}, direct: true, fail: func(n int, final bool) bool { return n == 2 && !final }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			failedPart(t, tc.calls, tc.direct, tc.fail)
		})
	}
}

func failedPart(t *testing.T, sizes []int, direct bool, fail func(n int, final bool) bool) {
	ctx := context.Background()
	c := &failingParts{fail: fail}
	q, opts := openDurableTest(t, func(o *Options) { o.hooks.commitPart = c.commitPart })

	// Acknowledged before the group (the pipelined path): the group's seqs
	// start after them.
	want := submitEach(t, q, 3) // want[i]: the id stored under seq i+1
	base := uint64(len(want))

	// The group, and the same transactions as the callers will resend them
	// (the queue fills in the ones it takes).
	var calls, resend [][]*opsv1.Transaction
	var all []string
	for _, n := range sizes {
		var txs, again []*opsv1.Transaction
		for range n {
			tx := fixture.ObservationTx()
			txs = append(txs, tx)
			again = append(again, proto.Clone(tx).(*opsv1.Transaction))
			all = append(all, tx.GetId())
		}
		calls, resend = append(calls, txs), append(resend, again)
	}

	c.arm()
	errs := make([]error, len(calls))
	if direct {
		var group []*submitReq
		for _, txs := range calls {
			r := &submitReq{txs: txs, done: make(chan submitResp, 1)}
			r.estimate()
			group = append(group, r)
		}
		q.lockWrite()
		q.app.writeGroup(group)
		q.unlockWrite()
		for i, r := range group {
			resp := answerOf(t, r)
			require.Empty(t, resp.acks, "caller %d of the failed group got acks", i)
			errs[i] = resp.err
		}
	} else {
		require.Len(t, calls, 1)
		acks, err := q.Submit(ctx, calls[0])
		require.Empty(t, acks)
		errs[0] = err
	}
	for i, err := range errs {
		require.ErrorIs(t, err, errPart, "caller %d of the failed group", i)
	}

	c.mu.Lock()
	failedN, final, durable := c.failedN, c.final, c.durable
	c.mu.Unlock()
	require.Positive(t, failedN, "no part failed")
	require.True(t, fail(failedN, final))
	require.Greater(t, failedN, 1, "no part before the failed one: nothing of the group is durable")
	require.Greater(t, durable.lastSeq, base, "the parts before the failed one hold none of the group")
	k := int(durable.lastSeq - base) // the group's transactions that are durable
	require.Less(t, k, len(all), "every transaction of the group is durable")
	t.Logf("part %d of the group failed (final %v); %d of %d transactions durable", failedN, final, k, len(all))

	// The store holds what the parts before the failed one wrote, and the
	// counters (Stats) say so.
	want = append(want, all[:k]...)
	bytes := checkStored(t, q, want)
	require.Equal(t, durable.cumLast, bytes, "the durable parts' byte counter")

	// A new submission continues after what is durable.
	tx := fixture.ObservationTx()
	acks, err := q.Submit(ctx, []*opsv1.Transaction{tx})
	require.NoError(t, err)
	want = append(want, tx.GetId())
	require.Equal(t, uint64(len(want)), acks[0].GetSeq(), "a new submission after the failed group leaves a gap or reuses a seq")

	// The callers retry, in order: the durable transactions get their first
	// answers, the rest new seqs after the new submission.
	i := 0
	for _, txs := range resend {
		acks, err := q.Submit(ctx, txs)
		require.NoError(t, err)
		require.Len(t, acks, len(txs))
		for j, a := range acks {
			require.Equal(t, txs[j].GetId(), a.GetTransactionId())
			if i < k {
				require.True(t, a.GetDuplicate(), "durable tx %d not answered as a duplicate", i)
				require.Equal(t, base+uint64(i)+1, a.GetSeq(), "durable tx %d: not its first answer", i)
			} else {
				require.False(t, a.GetDuplicate(), "tx %d of the failed part answered as a duplicate", i)
				want = append(want, a.GetTransactionId())
				require.Equal(t, uint64(len(want)), a.GetSeq(), "tx %d of the failed part: seq not gap-free", i)
			}
			i++
		}
	}
	checkStored(t, q, want)
	st, err := q.Stats()
	require.NoError(t, err)
	require.Equal(t, uint64(len(want)), st.Accepted,
		"accepted counts every transaction stored once: the failed group's durable part too, its retried duplicates not")

	// After a restart (a plain queue on the same store).
	require.NoError(t, q.Close())
	opts.hooks.commitPart = nil
	q2, err := Open(opts)
	require.NoError(t, err)
	defer func() { require.NoError(t, q2.Close()) }()
	checkStored(t, q2, want)
	acks, err = q2.Submit(ctx, []*opsv1.Transaction{fixture.ObservationTx()})
	require.NoError(t, err)
	require.Equal(t, uint64(len(want))+1, acks[0].GetSeq())
}

// checkStored reads the store itself (not through the counters): it holds
// the entries want (want[i] under seq i+1) and nothing more, each once with
// its state, and Stats agree. It returns the entries' payload bytes.
func checkStored(t *testing.T, q *Queue, want []string) uint64 {
	t.Helper()
	var bytes uint64
	seqOf := make(map[string]uint64, len(want))
	err := q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: prefixQueue})
		defer it.Close()
		n := 0
		for it.Rewind(); it.Valid(); it.Next() {
			seq := binary.BigEndian.Uint64(it.Item().Key()[len(prefixQueue):])
			require.Less(t, n, len(want), "entry %d stored beyond the %d expected", seq, len(want))
			require.Equal(t, uint64(n+1), seq, "entries not gap-free")
			err := it.Item().Value(func(v []byte) error {
				e, _, err := decodeEntry(seq, v, q.opts.EdgeID, q.epoch)
				if err != nil {
					return err
				}
				require.Equal(t, want[n], e.Tx.GetId(), "entry %d holds another transaction", seq)
				bytes += uint64(e.Size)
				return nil
			})
			if err != nil {
				return err
			}
			seqOf[want[n]] = seq
			n++
		}
		require.Equal(t, len(want), n, "entries missing")

		it2 := txn.NewIterator(badger.IteratorOptions{Prefix: prefixTx})
		defer it2.Close()
		states := 0
		for it2.Rewind(); it2.Valid(); it2.Next() {
			states++
		}
		require.Equal(t, len(want), states, "transaction states stored beyond the entries")
		for id, seq := range seqOf {
			st, found, err := getState(txn, id)
			if err != nil {
				return err
			}
			require.True(t, found, "tx %s has no state", id)
			require.Equal(t, seq, st.Seq, "tx %s: state and entry disagree", id)
		}
		return nil
	})
	require.NoError(t, err)

	st, err := q.Stats()
	require.NoError(t, err)
	last := uint64(len(want))
	require.Equal(t, last, st.LastSeq, "Stats.LastSeq is not what is durable")
	require.Equal(t, last, st.Count, "Stats.Count is not what is durable")
	require.Equal(t, bytes, st.Bytes, "Stats.Bytes is not what is durable")
	return bytes
}
