package queue

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

func TestCorruptEntryIsQuarantinedNotFatal(t *testing.T) {
	t.Parallel()
	q, err := Open(Options{Dir: t.TempDir(), EdgeID: "edge-test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, q.Close()) })
	var txs []*opsv1.Transaction
	for range 3 {
		txs = append(txs, &opsv1.Transaction{Id: uuid.Must(uuid.NewV7()).String(), Mutations: []*opsv1.Mutation{{
			Kind: &opsv1.Mutation_RawDataFile{RawDataFile: &opsv1.RawDataFile{ObservationId: uuid.Must(uuid.NewV7()).String(), Path: "/data/x"}},
		}}})
	}
	_, err = q.Submit(context.Background(), txs)
	require.NoError(t, err)

	// seq 2: valid header, garbage payload; seq 3: garbage altogether.
	h := entryHeader{cum: 100, acceptedAt: time.Now()}
	require.NoError(t, q.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(seqKey(prefixQueue, 2), encodeEntry(h, []byte{0xff, 0xff, 0xff})); err != nil {
			return err
		}
		return txn.Set(seqKey(prefixQueue, 3), []byte{9})
	}))
	es, err := q.Read(1, 10, 1<<20)
	require.NoError(t, err)
	require.Len(t, es, 3)
	require.Equal(t, txs[0].GetId(), es[0].Tx.GetId())
	for i, e := range es[1:] {
		seq := uint64(i + 2)
		require.Equal(t, seq, e.Seq)
		require.Equal(t, seq, e.Tx.GetSeq(), "tombstone keeps the seq")
		require.NotEqual(t, txs[i+1].GetId(), e.Tx.GetId())
		require.NotNil(t, e.Tx.GetMutations()[0].GetObservationUpdate())
		require.NoError(t, q.db.View(func(txn *badger.Txn) error {
			_, err := txn.Get(seqKey(prefixQuarantine, seq))
			return err
		}), "raw bytes quarantined")
	}
	// Read again: the same tombstones (stored), no new quarantine.
	again, err := q.Read(2, 10, 1<<20)
	require.NoError(t, err)
	require.Equal(t, es[1].Tx.GetId(), again[0].Tx.GetId())
}
