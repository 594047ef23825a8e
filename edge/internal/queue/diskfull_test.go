package queue

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	"github.com/chasqui/chasqui/internal/fixture"
	"github.com/chasqui/chasqui/internal/tmpfstest"
)

// Draining a backlog onto a nearly full disk (a real tmpfs, filled by
// another file to just above the reserve once the backlog is accepted)
// never crashes the edge: central's answers (here rejections, whose dead
// letters copy every payload, so the drain writes as much as the backlog
// holds) are written while there is room and then wait, instead of
// running Badger into the full disk (SIGBUS through mmap). Once space is
// freed the drain completes; every transaction is then REJECTED with its
// dead letter, before and after a reopen.
func TestDrainOntoNearlyFullDisk(t *testing.T) {
	mnt := tmpfstest.Mount(t, "1536m")
	dir := filepath.Join(mnt, "edge-data")
	opts := Options{Dir: dir, EdgeID: "edge-diskfull", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	q, err := Open(opts)
	require.NoError(t, err)
	closed := false
	defer func() {
		if !closed {
			require.NoError(t, q.Close())
		}
	}()

	// 2,400 transactions of 100 KiB: 240 MiB of backlog, as much again
	// of read overlays.
	blob := structpb.NewStringValue(strings.Repeat("x", 100<<10))
	for range 24 {
		txs := fixture.ObservationTxs(100)
		for _, tx := range txs {
			tx.GetMutations()[0].GetObservation().Attributes = &structpb.Struct{Fields: map[string]*structpb.Value{"blob": blob}}
		}
		_, err := q.Submit(t.Context(), txs)
		require.NoError(t, err)
	}
	total := q.LastSeq()

	free := tmpfstest.Free(t, mnt)
	require.Greater(t, free, DefaultDiskReserve+uint64(8<<20), "room to fill")
	filler := filepath.Join(mnt, "filler")
	fd, err := os.Create(filler)
	require.NoError(t, err)
	require.NoError(t, syscall.Fallocate(int(fd.Fd()), 0, 0, int64(free-DefaultDiskReserve-1<<20)))
	require.NoError(t, fd.Close())
	t.Logf("free after filling: %d MiB (reserve %d MiB), backlog %d transactions", tmpfstest.Free(t, mnt)>>20, DefaultDiskReserve>>20, total)

	drained := make(chan error, 1)
	go func() {
		drained <- func() error {
			for from := uint64(1); from <= total; {
				es, err := q.Read(from, 20, 64<<20)
				if err != nil {
					return err
				}
				res := CommitResult{ThroughSeq: es[len(es)-1].Seq, CommittedAt: time.Now()}
				for _, e := range es {
					res.Results = append(res.Results, &centralv1.TransactionResult{TransactionId: e.Tx.GetId(), Seq: e.Seq,
						Outcome: centralv1.Outcome_OUTCOME_REJECTED, Reason: "poison", Sqlstate: "23514"})
				}
				if err := q.ApplyCommit(res); err != nil {
					return err
				}
				from = es[len(es)-1].Seq + 1
			}
			return nil
		}()
	}()
	require.Eventually(t, func() bool {
		st, err := q.Stats()
		return err == nil && st.DiskWaits > 0
	}, 5*time.Minute, 100*time.Millisecond, "the drain waits for space instead of filling the disk")
	require.Less(t, q.CommittedThrough(), total, "the drain could not finish within the reserve")
	t.Logf("drain waiting at %d of %d with %d MiB free", q.CommittedThrough(), total, tmpfstest.Free(t, mnt)>>20)

	require.NoError(t, os.Remove(filler))
	select {
	case err := <-drained:
		require.NoError(t, err)
	case <-time.After(5 * time.Minute):
		t.Fatal("the drain did not complete once space was freed")
	}
	check := func() {
		require.Equal(t, total, q.CommittedThrough())
		st, err := q.Stats()
		require.NoError(t, err)
		require.Equal(t, total, st.DeadLetters, "every rejected transaction is a dead letter")
		es, err := q.Read(1, 1, 1<<20)
		require.NoError(t, err)
		s, err := q.GetTransaction(es[0].Tx.GetId())
		require.NoError(t, err)
		require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_REJECTED, s.GetState())
	}
	check()
	require.NoError(t, q.Close())
	closed = true
	q, err = Open(opts)
	require.NoError(t, err)
	closed = false
	check()
}
