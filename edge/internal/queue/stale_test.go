package queue

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/fixture"
)

// Tests of a failed write after which the counters cannot be read back
// either: the in-memory counters are then behind what is durable (the
// parts of a group committed before the failed one), and a write built on
// them would reuse the seqs of durable entries, overwriting the entries
// their transactions' states point to. Every write must be refused,
// changing nothing, until the counters can be read back.

var errReadBack = errors.New("injected: reading the counters back failed")

func TestStaleCountersRefuseWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := &failingParts{fail: func(n int, final bool) bool { return n == 2 && !final }}
	var readBackFails atomic.Bool
	var commits atomic.Int64 // Badger commits made: batch parts and pipelined groups
	q, opts := openDurableTest(t, func(o *Options) {
		o.hooks.commitPart = func(txn *badger.Txn, final bool) error {
			commits.Add(1)
			return c.commitPart(txn, final)
		}
		o.hooks.commitGroup = func(_ *flight, txn *badger.Txn, done func(error)) {
			commits.Add(1)
			done(txn.Commit())
		}
		o.hooks.readBack = func() error {
			if readBackFails.Load() {
				return errReadBack
			}
			return nil
		}
	})

	// Acknowledged before the failure.
	want := submitEach(t, q, 3) // want[i]: the id stored under seq i+1
	acked := append([]string(nil), want...)
	base := uint64(len(want))
	es, err := q.Read(1, len(acked), 1<<20)
	require.NoError(t, err)
	central := appliedResult(es, base, 100) // central's answer for them, recorded later

	// A group written in parts whose second part fails, and the counters
	// cannot be read back after it.
	var big, resend []*opsv1.Transaction
	for range partTxs {
		tx := fixture.ObservationTx()
		big, resend = append(big, tx), append(resend, proto.Clone(tx).(*opsv1.Transaction))
	}
	readBackFails.Store(true)
	c.arm()
	acks, err := q.Submit(ctx, big)
	require.ErrorIs(t, err, errPart)
	require.Empty(t, acks)
	c.mu.Lock()
	durable := c.durable
	c.mu.Unlock()
	require.Greater(t, durable.lastSeq, base, "no part of the group is durable")
	k := int(durable.lastSeq - base) // the group's transactions that are durable
	require.Less(t, k, partTxs, "every transaction of the group is durable")
	require.Equal(t, base, q.LastSeq(), "the counters were read back: nothing is stale")

	// While the counters are stale every write is refused and changes
	// nothing: no Badger commit, the store and Stats as they were.
	commits0, digest0, stats0 := commits.Load(), storeDigest(t, q), statsOf(t, q)
	for i := range 2 {
		acks, err := q.Submit(ctx, []*opsv1.Transaction{fixture.ObservationTx()})
		require.ErrorIs(t, err, ErrCountersStale, "submit %d while stale", i)
		require.ErrorContains(t, err, "writes refused until they can")
		require.Empty(t, acks)
	}
	err = q.ApplyCommit(central)
	require.ErrorIs(t, err, ErrCountersStale, "ApplyCommit while stale")
	require.Equal(t, commits0, commits.Load(), "a write committed while the counters were stale")
	require.Equal(t, digest0, storeDigest(t, q), "the store changed while the counters were stale")
	require.Equal(t, stats0, statsOf(t, q), "Stats changed while the counters were stale")
	require.Zero(t, q.CommittedThrough())

	// The counters can be read back again: the first write reads them and
	// still fails (it was built on the stale ones), changing nothing.
	readBackFails.Store(false)
	tx := fixture.ObservationTx()
	again := proto.Clone(tx).(*opsv1.Transaction)
	acks, err = q.Submit(ctx, []*opsv1.Transaction{tx})
	require.ErrorIs(t, err, ErrRetry)
	require.Empty(t, acks)
	require.Equal(t, commits0, commits.Load(), "the write built on stale counters committed")
	require.Equal(t, digest0, storeDigest(t, q), "the write built on stale counters changed the store")

	// The counters are what is durable; its retry takes the next seq.
	want = append(want, transactionIDs(big[:k])...)
	checkStored(t, q, want)
	acks, err = q.Submit(ctx, []*opsv1.Transaction{again})
	require.NoError(t, err)
	require.False(t, acks[0].GetDuplicate())
	want = append(want, again.GetId())
	require.Equal(t, uint64(len(want)), acks[0].GetSeq(), "a seq reused or skipped after the counters were read back")

	// The failed group's callers resend: a durable transaction gets its
	// first answer, one of the failed part a new seq.
	acks, err = q.Submit(ctx, resend[k-1:k+1])
	require.NoError(t, err)
	require.True(t, acks[0].GetDuplicate())
	require.Equal(t, base+uint64(k), acks[0].GetSeq(), "the last durable tx of the group: not its first answer")
	require.False(t, acks[1].GetDuplicate())
	want = append(want, resend[k].GetId())
	require.Equal(t, uint64(len(want)), acks[1].GetSeq())
	checkStored(t, q, want)

	// The forwarder retries the refused ApplyCommit.
	require.NoError(t, q.ApplyCommit(central))
	require.Equal(t, base, q.CommittedThrough())
	checkAcked(t, q, acked, want)

	// After a restart (a plain queue on the same store).
	require.NoError(t, q.Close())
	opts.hooks.commitPart, opts.hooks.commitGroup, opts.hooks.readBack = nil, nil, nil
	q2, err := Open(opts)
	require.NoError(t, err)
	defer func() { require.NoError(t, q2.Close()) }()
	require.Equal(t, base, q2.CommittedThrough())
	checkAcked(t, q2, acked, want)
	acks, err = q2.Submit(ctx, []*opsv1.Transaction{fixture.ObservationTx()})
	require.NoError(t, err)
	require.Equal(t, uint64(len(want))+1, acks[0].GetSeq())
}

// checkAcked checks through the queue's readers that the store holds want
// (want[i] under seq i+1), Read and GetTransaction agreeing, and that the
// transactions acked (want's first) are COMMITTED.
func checkAcked(t *testing.T, q *Queue, acked, want []string) {
	t.Helper()
	var got []string
	for from := uint64(1); ; {
		es, err := q.Read(from, 1000, 8<<20)
		require.NoError(t, err)
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			require.Equal(t, uint64(len(got))+1, e.Seq)
			got = append(got, e.Tx.GetId())
		}
		from = es[len(es)-1].Seq + 1
	}
	require.Equal(t, want, got, "Read")
	st, err := q.Stats()
	require.NoError(t, err)
	require.Equal(t, uint64(len(want)), st.LastSeq)
	require.Equal(t, uint64(len(want)-len(acked)), st.Count)
	for i, id := range acked {
		ts, err := q.GetTransaction(id)
		require.NoError(t, err, "acknowledged tx %d", i)
		require.Equal(t, uint64(i)+1, ts.GetSeq(), "acknowledged tx %d", i)
		require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_COMMITTED, ts.GetState(), "acknowledged tx %d", i)
	}
	ts, err := q.GetTransaction(want[len(want)-1])
	require.NoError(t, err)
	require.Equal(t, uint64(len(want)), ts.GetSeq())
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED, ts.GetState())
}

// indexerKey: the indexer writes these on its own schedule (indexer.go),
// derived from durable entries: they are not what a write changed.
func indexerKey(k []byte) bool {
	for _, p := range [][]byte{prefixOverlay, prefixOverlaySeq, prefixRowOverlay, keyIndexed} {
		if bytes.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// storeDigest is a hash of every key and value in the store but the
// indexer's.
func storeDigest(t *testing.T, q *Queue) string {
	t.Helper()
	h := sha256.New()
	err := q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			key := it.Item().Key()
			if indexerKey(key) {
				continue
			}
			h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(key))))
			h.Write(key)
			if err := it.Item().Value(func(v []byte) error {
				h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(v))))
				h.Write(v)
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	return hex.EncodeToString(h.Sum(nil))
}

// statsOf is Stats without the free disk space (which moves by itself)
// and the count of append groups (failed ones count too).
func statsOf(t *testing.T, q *Queue) Stats {
	t.Helper()
	st, err := q.Stats()
	require.NoError(t, err)
	st.DiskFree, st.AppendGroups = 0, 0
	return st
}

func transactionIDs(txs []*opsv1.Transaction) []string {
	ids := make([]string, len(txs))
	for i, tx := range txs {
		ids[i] = tx.GetId()
	}
	return ids
}
