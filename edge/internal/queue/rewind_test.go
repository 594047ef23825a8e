package queue_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chasqui/chasqui/edge/internal/queue"
	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
)

// appliedRange is one answer applying txs at seqs first.. with one LSN.
func appliedRange(ids []string, first, lsn uint64) queue.CommitResult {
	res := queue.CommitResult{ThroughSeq: first + uint64(len(ids)) - 1, LSN: lsn, LSNText: "0/0", CommittedAt: time.Now()}
	for i, id := range ids {
		res.Results = append(res.Results, &centralv1.TransactionResult{
			TransactionId: id, Seq: first + uint64(i), Outcome: centralv1.Outcome_OUTCOME_APPLIED})
	}
	return res
}

// TestRewindAfterCentralLostCommits: central's database lost the commits of
// seqs 3 and 4 (one answer with seqs 1 and 2): they go back to ACCEPTED
// without an LSN (the one VISIBLE gets its overlays back), the mark goes
// back to 2, and a replay past their old LSN does not make them VISIBLE.
// The resend's answer brings the new LSN, and seqs 1 and 2 still become
// VISIBLE on theirs although the new answer's unseen record has the same
// last seq as the lost one. All of it survives a reopen.
func TestRewindAfterCentralLostCommits(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	var ids, obs []string
	for range 4 {
		id := newID()
		a := submit1(t, b.q, obsTx(id))
		ids, obs = append(ids, id), append(obs, a.GetRecordIds()[0])
	}
	state := func(i int) *edgev1.TransactionStatus {
		st, err := b.q.GetTransaction(ids[i])
		require.NoError(t, err)
		return st
	}
	require.NoError(t, b.q.ApplyCommit(appliedRange(ids[:3], 1, 1000)))
	require.NoError(t, b.q.ApplyCommit(appliedRange(ids[3:], 4, 2000)))
	_, err := b.q.Replayed(1000) // seqs 1-3 VISIBLE, seq 4 COMMITTED
	require.NoError(t, err)
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_VISIBLE, state(2).GetState())
	ov, err := b.q.Reads().Overlays(obs[2])
	require.NoError(t, err)
	require.Empty(t, ov, "a VISIBLE write is read from the replica")

	// Central's cursor is at 2 now: it expects seq 3.
	n, err := b.q.Rewind(3)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Equal(t, uint64(2), b.q.CommittedThrough())
	b.reopen(t)
	require.Equal(t, uint64(2), b.q.CommittedThrough())
	for _, i := range []int{2, 3} {
		st := state(i)
		require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED, st.GetState(), "seq %d", i+1)
		require.Zero(t, st.GetCommitLsnValue(), "seq %d: the lost commit's LSN is gone", i+1)
		require.Nil(t, st.GetVisibleAt())
	}
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_VISIBLE, state(1).GetState(), "seq 2 was not lost")
	ov, err = b.q.Reads().Overlays(obs[2])
	require.NoError(t, err)
	require.Len(t, ov, 1, "the write waits again: reads show it from the buffer")
	require.False(t, ov[0].Committed)
	_, err = b.q.Replayed(5000)
	require.NoError(t, err)
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED, state(3).GetState(), "no VISIBLE on a lost commit's LSN")

	// The resend of 3 and 4, applied anew.
	require.NoError(t, b.q.ApplyCommit(appliedRange(ids[2:], 3, 9000)))
	require.Equal(t, uint64(4), b.q.CommittedThrough())
	for _, i := range []int{2, 3} {
		require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_COMMITTED, state(i).GetState())
		require.Equal(t, uint64(9000), state(i).GetCommitLsnValue(), "the new answer's LSN")
	}
	_, err = b.q.Replayed(8999)
	require.NoError(t, err)
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_COMMITTED, state(3).GetState())
	_, err = b.q.Replayed(9000)
	require.NoError(t, err)
	for i := range ids {
		require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_VISIBLE, state(i).GetState(), "seq %d", i+1)
	}
}

// TestRewindKeepsTheUnseenOfCommitsNotLost: seqs 1-4 were committed by one
// answer (one unseen record, keyed by seq 4); central lost 3 and 4. Seqs 1
// and 2 stay in the unseen records and become VISIBLE on their LSN,
// although the resend's record is keyed by seq 4 again.
func TestRewindKeepsTheUnseenOfCommitsNotLost(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	var ids []string
	for range 4 {
		id := newID()
		submit1(t, b.q, obsTx(id))
		ids = append(ids, id)
	}
	require.NoError(t, b.q.ApplyCommit(appliedRange(ids, 1, 1000)))
	_, err := b.q.Rewind(3)
	require.NoError(t, err)
	require.NoError(t, b.q.ApplyCommit(appliedRange(ids[2:], 3, 2000)))
	_, err = b.q.Replayed(1000)
	require.NoError(t, err)
	for i, want := range []edgev1.TransactionState{
		edgev1.TransactionState_TRANSACTION_STATE_VISIBLE, edgev1.TransactionState_TRANSACTION_STATE_VISIBLE,
		edgev1.TransactionState_TRANSACTION_STATE_COMMITTED, edgev1.TransactionState_TRANSACTION_STATE_COMMITTED,
	} {
		st, err := b.q.GetTransaction(ids[i])
		require.NoError(t, err)
		require.Equal(t, want, st.GetState(), "seq %d", i+1)
	}
}

// TestRewindKeepsPayloadsToResend: seqs made VISIBLE and then taken back
// keep their payloads through a prune, before and after the resend's
// answer, until they are VISIBLE again.
func TestRewindKeepsPayloadsToResend(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	var ids []string
	for range 4 {
		id := newID()
		submit1(t, b.q, obsTx(id))
		ids = append(ids, id)
	}
	require.NoError(t, b.q.ApplyCommit(appliedRange(ids[:2], 1, 1000)))
	require.NoError(t, b.q.ApplyCommit(appliedRange(ids[2:], 3, 2000)))
	// Central lost 3 and 4 before the replica replayed them.
	_, err := b.q.Rewind(3)
	require.NoError(t, err)
	_, err = b.q.Replayed(1000) // 1 and 2 VISIBLE
	require.NoError(t, err)
	_, err = b.q.Prune(t.Context())
	require.NoError(t, err)
	require.NoError(t, b.q.ApplyCommit(appliedRange(ids[2:], 3, 3000)))
	_, err = b.q.Prune(t.Context())
	require.NoError(t, err)
	es, err := b.q.Read(3, 10, 1<<20)
	require.NoError(t, err, "the resent payloads are kept until VISIBLE again")
	require.Len(t, es, 2)
}
