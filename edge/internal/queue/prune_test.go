package queue

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/require"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	"github.com/chasqui/chasqui/internal/fixture"
)

// countKeys counts the live keys under prefix and returns the highest
// change-log number among them when prefix is the change log's.
func countKeys(t *testing.T, q *Queue, prefix []byte) (n int, oldest uint64) {
	t.Helper()
	require.NoError(t, q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if n == 0 && len(it.Item().Key()) == len(prefix)+8 {
				oldest = binary.BigEndian.Uint64(it.Item().Key()[len(prefix):])
			}
			n++
		}
		return nil
	}))
	return n, oldest
}

// commitAll answers every transaction from seq from on as central does,
// per commits of per transactions, each with its own LSN, at time at.
func commitAll(t *testing.T, q *Queue, from uint64, per int, lsn *uint64, at time.Time) {
	t.Helper()
	for from <= q.LastSeq() {
		es, err := q.Read(from, per, 64<<20)
		require.NoError(t, err)
		*lsn++
		res := CommitResult{ThroughSeq: es[len(es)-1].Seq, LSN: *lsn, LSNText: "0/1", CommittedAt: at}
		for _, e := range es {
			res.Results = append(res.Results, &centralv1.TransactionResult{
				TransactionId: e.Tx.GetId(), Seq: e.Seq, Outcome: centralv1.Outcome_OUTCOME_APPLIED,
			})
		}
		require.NoError(t, q.ApplyCommit(res))
		from = es[len(es)-1].Seq + 1
	}
}

// Without a replica nothing becomes VISIBLE, so only the pruner clears the
// read overlays, unseen records and change log of committed transactions.
// One prune pass clears all of them older than the retention however many
// there are (here 50,000 transactions answered ten at a time: 5,000
// commits, 5,000 unseen records, 5,100 change-log records), and keeps what
// is newer.
func TestPruneClearsEverythingOlderThanRetention(t *testing.T) {
	t.Parallel()
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	const maxChanges = 1000
	q, err := Open(Options{Dir: t.TempDir(), EdgeID: "edge-prune", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: clock, MaxChanges: maxChanges,
		// Without fsync the 5,000 commits take seconds, not minutes; what
		// the pruner finds and clears does not depend on it.
		UnsafeNoSync: true})
	require.NoError(t, err)
	defer func() { require.NoError(t, q.Close()) }()
	ctx := context.Background()

	const total, per = 50_000, 10
	for range total / 1000 {
		_, err := q.Submit(ctx, fixture.ObservationTxs(1000))
		require.NoError(t, err)
	}
	var lsn uint64
	commitAll(t, q, 1, per, &lsn, clock())
	old := q.LastSeq()
	require.Equal(t, uint64(total), old)

	// A day later a few more commit; then one prune pass.
	now.Add(int64(DefaultOverlayRetention + time.Hour))
	_, err = q.Submit(ctx, fixture.ObservationTxs(30))
	require.NoError(t, err)
	commitAll(t, q, old+1, per, &lsn, clock())
	_, err = q.Prune(ctx)
	require.NoError(t, err)

	unseen, oldest := countKeys(t, q, prefixUnseenRec)
	require.Equal(t, 3, unseen, "only the newer commits' unseen records are left")
	require.Greater(t, oldest, old, "every old unseen record is gone")
	overlays, _ := countKeys(t, q, prefixOverlaySeq)
	require.Equal(t, 30, overlays, "only the newer transactions' overlays are left")
	obs, err := q.Reads().OverlaidObservations()
	require.NoError(t, err)
	require.Len(t, obs, 30)
	records, first := countKeys(t, q, prefixChange)
	keep := q.Reads().LastChange() - maxChanges
	// Whole records go: the oldest one left may hold changes up to keep.
	require.GreaterOrEqual(t, first, keep, "every change-log record beyond MaxChanges is gone")
	require.LessOrEqual(t, records, maxChanges/per+1)

	// A cancelled prune stops.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = q.Prune(cctx)
	require.ErrorIs(t, err, context.Canceled)
}

// A replica that catches up on more transactions than one step of Replayed
// makes VISIBLE (replayStep) gets all of them in one call, and the queue
// still takes writes afterwards (each step lets go of the writers' lock).
func TestReplayedMoreThanOneStep(t *testing.T) {
	t.Parallel()
	q, err := Open(Options{Dir: t.TempDir(), EdgeID: "edge-replay", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	// Closed at the end, not deferred: Close waits for the writers' lock,
	// which a stuck Replayed would never give back.
	ctx := context.Background()
	n := replayStep + 1000
	_, err = q.Submit(ctx, fixture.ObservationTxs(n))
	require.NoError(t, err)
	var lsn uint64
	commitAll(t, q, 1, 1000, &lsn, time.Now())

	done := make(chan error, 1)
	go func() {
		acked, err := q.Replayed(lsn)
		if err == nil && !acked.OldestUnreplayed.IsZero() {
			err = fmt.Errorf("transactions left unreplayed, oldest committed at %s", acked.OldestUnreplayed)
		}
		done <- err
	}()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(2 * time.Minute):
		t.Fatal("Replayed did not return (it held the writers' lock and asked for it again)")
	}
	unseen, _ := countKeys(t, q, prefixUnseenRec)
	require.Zero(t, unseen, "every transaction is VISIBLE")
	_, err = q.Submit(ctx, fixture.ObservationTxs(1))
	require.NoError(t, err)
	require.NoError(t, q.Close())
}
