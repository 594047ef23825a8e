package queue_test

// Upgrade from the stores written before the indexer (indexer.go): those
// wrote every accepted transaction's overlays with its entry, at accept,
// and have no m/indexed. writeAcceptOverlays is a FROZEN copy of what they
// left for the read side, added to a v1 store: keep it as it is when the
// format moves on.
//
//	o/<observation id>/<be64 seq><be16 index>  marshalled opsv1.Mutation
//	os/<be64 seq>                             the uvarint-length-prefixed o/ keys of seq

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// writeAcceptOverlays adds to s the overlays a store written before the
// indexer kept for its transactions from seq from on (those not yet
// visible; the rejected one's were dropped with its rejection).
func writeAcceptOverlays(t *testing.T, s *v1Store, from uint64) {
	t.Helper()
	db, err := badger.Open(plainBadger(s.dir))
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	for i, tx := range s.txs {
		seq := uint64(i + 1)
		if seq < from || seq == s.rejected {
			continue
		}
		var list []byte
		for j, m := range tx.GetMutations() {
			k := append([]byte("o/"+m.GetRawDataFile().GetObservationId()+"/"), v1U64(seq)...)
			k = binary.BigEndian.AppendUint16(k, uint16(j))
			v, err := proto.Marshal(m)
			require.NoError(t, err)
			require.NoError(t, wb.Set(k, v))
			list = binary.AppendUvarint(list, uint64(len(k)))
			list = append(list, k...)
		}
		require.NoError(t, wb.Set(v1Seq("os/", seq), list))
	}
	require.NoError(t, wb.Flush())
}

// TestUpgradeKeepsOverlaysWrittenAtAccept: a store whose overlays were
// written at accept opens with the indexer: each waiting transaction reads
// back with its one overlay (none indexed twice, none of the answered ones
// brought back), new transactions get theirs, and they leave once visible.
func TestUpgradeKeepsOverlaysWrittenAtAccept(t *testing.T) {
	t.Parallel()
	const n, committed, rejected = 30, 10, 5
	s := writeV1Store(t, n, committed, rejected, 0, 0)
	writeAcceptOverlays(t, s, committed+1)
	q := s.open(t)
	defer func() { require.NoError(t, q.Close()) }()

	obsOf := func(seq uint64) string {
		return s.txs[seq-1].GetMutations()[0].GetRawDataFile().GetObservationId()
	}
	for seq := uint64(1); seq <= n; seq++ {
		ov, err := q.Reads().Overlays(obsOf(seq))
		require.NoError(t, err)
		if seq <= committed {
			require.Empty(t, ov, "seq %d was answered before the upgrade", seq)
			continue
		}
		require.Len(t, ov, 1, "seq %d", seq)
		require.Equal(t, seq, ov[0].Seq)
		require.True(t, proto.Equal(s.txs[seq-1].GetMutations()[0], ov[0].Mutation), "seq %d", seq)
		ts, err := q.GetTransaction(s.txs[seq-1].GetId())
		require.NoError(t, err)
		require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED, ts.GetState())
	}
	dls, _, err := q.ListDeadLetters("", 10)
	require.NoError(t, err)
	require.Len(t, dls, 1)

	// A new transaction continues the sequence and reads back.
	obs := newID()
	tx := &opsv1.Transaction{Id: newID(), Mutations: []*opsv1.Mutation{{Kind: &opsv1.Mutation_RawDataFile{
		RawDataFile: &opsv1.RawDataFile{ObservationId: obs, Path: "/new"}}}}}
	acks, err := q.Submit(context.Background(), []*opsv1.Transaction{tx})
	require.NoError(t, err)
	require.Equal(t, uint64(n+1), acks[0].GetSeq())
	ov, err := q.Reads().Overlays(obs)
	require.NoError(t, err)
	require.Len(t, ov, 1)
	require.Equal(t, uint64(n+1), ov[0].Seq)

	// Drained and visible, no overlay is left.
	applyAll(t, q, committed+1, n+1)
	_, err = q.Replayed(0x2000000)
	require.NoError(t, err)
	for seq := uint64(1); seq <= n; seq++ {
		ov, err := q.Reads().Overlays(obsOf(seq))
		require.NoError(t, err)
		require.Empty(t, ov, "seq %d", seq)
	}
	ov, err = q.Reads().Overlays(obs)
	require.NoError(t, err)
	require.Empty(t, ov)
	require.Eventually(t, func() bool { return q.CommittedThrough() == n+1 }, 10*time.Second, 10*time.Millisecond)
}
