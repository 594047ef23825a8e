package forward_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/chasqui/chasqui/edge/internal/forward"
	"github.com/chasqui/chasqui/edge/internal/queue"
	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/fixture"
	"github.com/chasqui/chasqui/internal/pgtest"
)

// openQueue opens the real queue in dir as edge-1 until the test ends (or
// until the test closes it itself, to restart the edge).
func openQueue(t *testing.T, dir string) *queue.Queue {
	t.Helper()
	q, err := queue.Open(queue.Options{Dir: dir, EdgeID: "edge-1", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { _ = q.Close() }) })
	return q
}

// answerLoss loses central's answers the way a broken link does: the
// call reaches central, which commits, and the edge sees UNAVAILABLE.
// Batch [1,2]: its first answer is lost; its resend waits until batch
// [3,4] committed, so central answers it with through seq 4. Batch [3,4]:
// its first answer is lost, and every attempt fails until release.
type answerLoss struct {
	mu       sync.Mutex
	lost     map[uint64]*centralv1.CommitResponse // first seq -> the answer lost
	second   chan struct{}                        // closed when batch [3,4] committed
	released bool
}

func newAnswerLoss() *answerLoss {
	return &answerLoss{lost: map[uint64]*centralv1.CommitResponse{}, second: make(chan struct{})}
}

func (l *answerLoss) release() {
	l.mu.Lock()
	l.released = true
	l.mu.Unlock()
}

func (l *answerLoss) lostAnswer(first uint64) *centralv1.CommitResponse {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost[first]
}

func (l *answerLoss) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	cr, ok := req.(*centralv1.CommitRequest)
	if !ok {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	first := cr.GetFirstSeq()
	l.mu.Lock()
	released, answered := l.released, l.lost[first] != nil
	l.mu.Unlock()
	switch {
	case released:
		return invoker(ctx, method, req, reply, cc, opts...)
	case first == 1 && answered:
		select {
		case <-l.second:
		case <-ctx.Done():
			return ctx.Err()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	case answered:
		return status.Error(codes.Unavailable, "test: link down")
	}
	if err := invoker(ctx, method, req, reply, cc, opts...); err != nil {
		return err
	}
	l.mu.Lock()
	l.lost[first] = reply.(*centralv1.CommitResponse)
	l.mu.Unlock()
	if first == 3 {
		close(l.second)
	}
	return status.Error(codes.Unavailable, "test: answer lost")
}

// Two pipelined batches both commit, both answers are
// lost, the resend of the first is answered with the second's through
// seq, then the edge restarts (forwarder stopped, queue closed and
// reopened). Every transaction must end with its outcome recorded: the
// applied ones COMMITTED with an LSN never below their original commit,
// the rejected one REJECTED and in the dead letters. Before the fix the
// edge moved its mark to central's through seq, restarted past the second
// batch, and left it ACCEPTED for good.
func TestLostAnswersThenRestartRecordEveryOutcome(t *testing.T) {
	t.Parallel()
	addr := startCentral(t, pgtest.NewDatabase(t, centralTemplate))
	dir := t.TempDir()
	q := openQueue(t, dir)
	txs := []*opsv1.Transaction{fixture.ObservationTx(), fixture.ObservationTx(), fixture.ObservationTx(),
		// An update of an observation that does not exist: central rejects it for its data.
		fixture.Tx(fixture.Finish(fixture.ID(), fixture.Start, nil))}
	ids := make([]string, len(txs))
	for i, tx := range txs {
		ids[i] = tx.GetId()
	}
	_, err := q.Submit(context.Background(), txs)
	require.NoError(t, err)

	loss := newAnswerLoss()
	cfg := forward.Config{MaxCount: 2, Window: 2, BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}
	b := start(t, addr, cfg, q, loss.intercept)
	state := func(q *queue.Queue, id string) *edgev1.TransactionStatus {
		st, err := q.GetTransaction(id)
		require.NoError(t, err)
		return st
	}
	committed := edgev1.TransactionState_TRANSACTION_STATE_COMMITTED
	require.Eventually(t, func() bool { return state(q, ids[1]).GetState() == committed }, 60*time.Second, poll, "the first batch's resend answered")
	require.Equal(t, uint64(4), loss.lostAnswer(1).GetCommittedThroughSeq(), "the resend of batch 1 is answered with batch 2's through seq")
	require.NotNil(t, loss.lostAnswer(3), "batch 2 committed at central, its answer lost")
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED, state(q, ids[2]).GetState())
	b.stop()
	require.NoError(t, q.Close())

	q = openQueue(t, dir)
	loss.release()
	start(t, addr, cfg, q, loss.intercept)
	rejected := edgev1.TransactionState_TRANSACTION_STATE_REJECTED
	require.Eventually(t, func() bool {
		return state(q, ids[2]).GetState() == committed && state(q, ids[3]).GetState() == rejected
	}, 60*time.Second, poll, "the second batch's outcomes recorded after the restart")
	require.Equal(t, uint64(4), q.CommittedThrough())
	for i, first := range []uint64{1, 1, 3} {
		st := state(q, ids[i])
		require.Equal(t, committed, st.GetState(), "tx %d", i+1)
		require.GreaterOrEqual(t, st.GetCommitLsnValue(), loss.lostAnswer(first).GetCommitLsnValue(),
			"tx %d: LSN never below its original commit", i+1)
	}
	dl, err := q.GetDeadLetter(ids[3])
	require.NoError(t, err)
	require.Equal(t, ids[3], dl.GetTransaction().GetId())
	require.NotEmpty(t, dl.GetReason())
}
