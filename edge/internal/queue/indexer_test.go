package queue

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// openIndexTest opens a store whose indexer goroutine never indexes
// (noIndexLoop): overlays are written only by the catch-ups of readers
// and writers, as when the goroutine is behind.
func openIndexTest(t *testing.T, dir string, idle bool) *Queue {
	t.Helper()
	opts := Options{Dir: dir, EdgeID: "edge-test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	opts.hooks.noIndexLoop = idle
	q, err := Open(opts)
	require.NoError(t, err)
	return q
}

// fileTx is a transaction with one raw data file of observation obs.
func fileTx(obs string) *opsv1.Transaction {
	return &opsv1.Transaction{Id: uuid.Must(uuid.NewV7()).String(), Mutations: []*opsv1.Mutation{
		{Kind: &opsv1.Mutation_RawDataFile{RawDataFile: &opsv1.RawDataFile{ObservationId: obs, Path: "/a"}}},
	}}
}

// countPrefix counts the keys under prefix.
func countPrefix(t *testing.T, q *Queue, prefix []byte) int {
	t.Helper()
	n := 0
	require.NoError(t, q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	}))
	return n
}

// TestSubmitWritesNoOverlays: the accept path writes the entry and the
// state only; a read that starts after Submit answered still sees the
// transaction's overlay (read-your-writes), written by its catch-up.
func TestSubmitWritesNoOverlays(t *testing.T) {
	t.Parallel()
	q := openIndexTest(t, t.TempDir(), true)
	defer func() { require.NoError(t, q.Close()) }()
	obs := uuid.Must(uuid.NewV7()).String()
	_, err := q.Submit(context.Background(), []*opsv1.Transaction{fileTx(obs)})
	require.NoError(t, err)
	require.Zero(t, countPrefix(t, q, prefixOverlay), "Submit wrote overlays")
	require.Zero(t, countPrefix(t, q, prefixOverlaySeq), "Submit wrote an overlay list")

	st, err := q.Stats()
	require.NoError(t, err)
	require.Zero(t, st.Indexed, "Stats.Indexed before any catch-up")
	require.Zero(t, st.IndexKeys)

	ov, err := q.Reads().Overlays(obs)
	require.NoError(t, err)
	require.Len(t, ov, 1, "a read after Submit misses its write")
	st, err = q.Stats()
	require.NoError(t, err)
	require.Equal(t, uint64(1), st.Indexed, "Stats.Indexed after the read's catch-up")
	// The overlay, its list and the indexer's position: what the bench's
	// queue_accept_keys_per_tx takes off Badger's own count.
	require.Equal(t, uint64(countPrefix(t, q, prefixOverlay)+countPrefix(t, q, prefixOverlaySeq)+1), st.IndexKeys)
	require.Equal(t, uint64(1), ov[0].Seq)
	seen, err := q.Reads().OverlaidObservations()
	require.NoError(t, err)
	require.Contains(t, seen, obs)
}

// TestAnswersIndexBeforeDroppingOverlays: a transaction central answers
// before the indexer got to it ends with no overlay: applied and made
// visible, or rejected. Were its overlays written after the answers, reads
// would show a stale pending write for good.
func TestAnswersIndexBeforeDroppingOverlays(t *testing.T) {
	t.Parallel()
	q := openIndexTest(t, t.TempDir(), true)
	defer func() { require.NoError(t, q.Close()) }()
	visible, rejected := uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String()
	_, err := q.Submit(context.Background(), []*opsv1.Transaction{fileTx(visible), fileTx(rejected)})
	require.NoError(t, err)
	es, err := q.Read(1, 10, 1<<20)
	require.NoError(t, err)
	require.Len(t, es, 2)
	require.NoError(t, q.ApplyCommit(CommitResult{ThroughSeq: 2, LSN: 100, LSNText: "0/64", CommittedAt: time.Now(),
		Results: []*centralv1.TransactionResult{
			{TransactionId: es[0].Tx.GetId(), Seq: 1, Outcome: centralv1.Outcome_OUTCOME_APPLIED},
			{TransactionId: es[1].Tx.GetId(), Seq: 2, Outcome: centralv1.Outcome_OUTCOME_REJECTED, Reason: "no"},
		}}))
	_, err = q.Replayed(100)
	require.NoError(t, err)
	for _, obs := range []string{visible, rejected} {
		ov, err := q.Reads().Overlays(obs)
		require.NoError(t, err)
		require.Empty(t, ov, "overlay of a settled transaction came back")
	}
	require.Zero(t, countPrefix(t, q, prefixOverlay))
}

// TestIndexerResumesAfterRestart: overlays not yet written when the store
// closed are written by the indexer's goroutine after it opens again, from
// the persisted position, without a read asking; indexing again from an
// earlier position writes no second overlay.
func TestIndexerResumesAfterRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openIndexTest(t, dir, true)
	obs := uuid.Must(uuid.NewV7()).String()
	for range 3 {
		_, err := q.Submit(context.Background(), []*opsv1.Transaction{fileTx(obs)})
		require.NoError(t, err)
	}
	require.Zero(t, countPrefix(t, q, prefixOverlay))
	require.NoError(t, q.Close())

	q = openIndexTest(t, dir, false)
	require.Eventually(t, func() bool { return countPrefix(t, q, prefixOverlay) == 3 }, 30*time.Second, 10*time.Millisecond,
		"the indexer did not resume after the restart")
	require.Equal(t, uint64(3), q.ix.through.Load())
	// Indexing again from the start (as after a crash before keyIndexed
	// landed) is idempotent.
	require.NoError(t, q.db.Update(func(txn *badger.Txn) error {
		return txn.Set(keyIndexed, binary.BigEndian.AppendUint64(nil, 0))
	}))
	require.NoError(t, q.Close())
	q = openIndexTest(t, dir, true)
	defer func() { require.NoError(t, q.Close()) }()
	require.Zero(t, q.ix.through.Load())
	ov, err := q.Reads().Overlays(obs)
	require.NoError(t, err)
	require.Len(t, ov, 3)
	for i, o := range ov {
		require.Equal(t, uint64(i+1), o.Seq)
	}
	require.Equal(t, 3, countPrefix(t, q, prefixOverlay))
	require.Equal(t, 3, countPrefix(t, q, prefixOverlaySeq))
}
