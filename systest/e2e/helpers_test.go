package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/fixture"
)

// Deadlines for state to arrive. Far above normal behaviour (milliseconds
// to a few seconds) so a loaded 2-core machine does not make tests flaky;
// draining after an outage includes the forwarder's capped backoff.
const (
	commitTimeout = 90 * time.Second
	drainTimeout  = 3 * time.Minute
)

func submit(t *testing.T, s *Stack, req *edgev1.SubmitRequest) *edgev1.SubmitResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := s.Client.Submit(ctx, req)
	require.NoError(t, err)
	require.Len(t, resp.GetResults(), len(req.GetTransactions()))
	return resp
}

// waitCommitted polls GetTransaction until the transaction reaches COMMITTED
// (or VISIBLE, which implies it) and returns its status; REJECTED fails
// the test at once.
func waitCommitted(t *testing.T, s *Stack, txID string) *edgev1.TransactionStatus {
	t.Helper()
	var last *edgev1.TransactionStatus
	done := assert.EventuallyWithT(t, func(ct *assert.CollectT) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := s.Client.GetTransaction(ctx, &edgev1.GetTransactionRequest{TransactionId: txID})
		if !assert.NoError(ct, err) {
			return
		}
		last = resp.GetTransaction()
		switch last.GetState() {
		case edgev1.TransactionState_TRANSACTION_STATE_COMMITTED, edgev1.TransactionState_TRANSACTION_STATE_VISIBLE,
			edgev1.TransactionState_TRANSACTION_STATE_REJECTED: // final: ends the wait
			return
		}
		assert.Fail(ct, "not committed", "tx %s: last state %v", txID, last)
	}, commitTimeout, 100*time.Millisecond)
	if !done {
		t.Fatalf("tx %s not committed after %s; edge status: %s", txID, commitTimeout, s.statusLine())
	}
	if last.GetState() == edgev1.TransactionState_TRANSACTION_STATE_REJECTED {
		t.Fatalf("tx %s rejected: %s (%s)", txID, last.GetRejectReason(), last.GetSqlstate())
	}
	return last
}

func txState(t *testing.T, s *Stack, txID string) edgev1.TransactionState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := s.Client.GetTransaction(ctx, &edgev1.GetTransactionRequest{TransactionId: txID})
	require.NoError(t, err)
	return resp.GetTransaction().GetState()
}

// observationRow reads one observation's status and end time from PostgreSQL.
func observationRow(t *testing.T, s *Stack, id string) (status string, end *time.Time, found bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := s.DB.QueryRow(ctx, `SELECT status, end_time FROM chasqui.observations WHERE id = $1`, id).Scan(&status, &end)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil, false
	}
	require.NoError(t, err)
	return status, end, true
}

func countRows(t *testing.T, s *Stack, sql string, args ...any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n int
	require.NoError(t, s.DB.QueryRow(ctx, sql, args...).Scan(&n))
	return n
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// insertObs is transaction txID inserting observation obsID (RUNNING).
func insertObs(txID, obsID string) *edgev1.SubmitRequest {
	return submitOne(txID, fixture.Observation(obsID))
}

// finishObs is transaction txID completing observation obsID.
func finishObs(txID, obsID string) *edgev1.SubmitRequest {
	return submitOne(txID, fixture.Finish(obsID, time.Now(), nil))
}

func submitOne(txID string, m *opsv1.Mutation) *edgev1.SubmitRequest {
	tx := fixture.Tx(m)
	tx.Id = txID
	return &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{tx}}
}

// repoFile finds path relative to the repository root.
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	wd, err := os.Getwd()
	require.NoError(t, err)
	for d := wd; d != filepath.Dir(d); d = filepath.Dir(d) {
		p := filepath.Join(d, rel)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("%s not found above %s", rel, wd)
	return ""
}

// killRestartEdge kill -9s the edge and starts it again on the same data
// directory and address.
func killRestartEdge(t *testing.T, s *Stack) {
	t.Helper()
	require.NoError(t, s.Edge.Kill())
	require.NoError(t, s.Edge.Start())
}
