package forward_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/chasqui/chasqui/edge/internal/forward"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/fixture"
	"github.com/chasqui/chasqui/internal/pgtest"
)

// An edge restored from an old backup of its store (same
// epoch) gives its new transactions seqs central already applied after the
// backup. They must never be taken as applied: while central keeps its
// outcomes it names the transaction it applied there; once it pruned them
// it cannot compare the ids, and still refuses (before, it answered the
// same epoch "outcome unknown" and the queue moved on over a write never
// applied). Either way the edge holds its queue with a clear error, and
// the new transaction stays ACCEPTED, its payload kept.
func TestRestoredBackupNeverTakenAsApplied(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t, centralTemplate)
	addr := startCentral(t, dbURL)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "edge")
	backup := filepath.Join(t.TempDir(), "backup")
	cfg := forward.Config{BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}

	q := openQueue(t, dir)
	_, err := q.Submit(ctx, []*opsv1.Transaction{fixture.ObservationTx(), fixture.ObservationTx()})
	require.NoError(t, err)
	b := start(t, addr, cfg, q)
	require.Eventually(t, func() bool { return q.CommittedThrough() == 2 }, 60*time.Second, poll, "committed before the backup")
	b.stop()
	require.NoError(t, q.Close())
	require.NoError(t, os.CopyFS(backup, os.DirFS(dir)))

	q = openQueue(t, dir)
	later := []*opsv1.Transaction{fixture.ObservationTx(), fixture.ObservationTx()}
	_, err = q.Submit(ctx, later)
	require.NoError(t, err)
	b = start(t, addr, cfg, q)
	require.Eventually(t, func() bool { return q.CommittedThrough() == 4 }, 60*time.Second, poll, "committed after the backup")
	b.stop()
	require.NoError(t, q.Close())

	// The edge is restored from the backup: seqs 1-2, same epoch.
	q = openQueue(t, backup)
	fresh := fixture.ObservationTx()
	_, err = q.Submit(ctx, []*opsv1.Transaction{fresh})
	require.NoError(t, err)
	require.Equal(t, uint64(3), q.LastSeq(), "the new transaction reuses seq 3")

	b = start(t, addr, cfg, q)
	require.Eventually(t, func() bool { return b.fwd.State() == forward.StateConflict }, 60*time.Second, poll, "conflict while central keeps its outcomes")
	require.Contains(t, b.fwd.LastError(), later[0].GetId(), "names the transaction central applied at seq 3")
	b.stop()

	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer func() { _ = conn.Close(ctx) }()
	// Central's retention passes: its outcomes are pruned.
	_, err = conn.Exec(ctx, `DELETE FROM chasqui.applied_transactions WHERE edge_id = $1`, q.EdgeID())
	require.NoError(t, err)

	b = start(t, addr, cfg, q)
	require.Eventually(t, func() bool { return b.fwd.State() == forward.StateConflict }, 60*time.Second, poll, "conflict after central pruned")
	require.Contains(t, b.fwd.LastError(), "pruned its record")
	require.Contains(t, b.fwd.LastError(), "operator action needed")
	st, err := q.GetTransaction(fresh.GetId())
	require.NoError(t, err)
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED, st.GetState(), "never taken as applied")
	require.Equal(t, uint64(2), q.CommittedThrough())
	es, err := q.Read(3, 10, 1<<20)
	require.NoError(t, err)
	require.Equal(t, fresh.GetId(), es[0].Tx.GetId(), "its payload is kept")
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM chasqui.observations WHERE id = $1::uuid`,
		fresh.GetMutations()[0].GetObservation().GetId()).Scan(&n))
	require.Zero(t, n)
}
