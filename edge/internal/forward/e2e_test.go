package forward_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/chasqui/chasqui/edge/internal/centralproc"
	"github.com/chasqui/chasqui/edge/internal/forward"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/fixture"
	"github.com/chasqui/chasqui/internal/pgtest"
)

// centralTemplate is an empty database: central migrates it at start.
var centralTemplate = pgtest.Template{Name: "central", Migrate: centralproc.EmptyDatabase}

// startCentral runs the real chasqui-central binary on 127.0.0.1 over a
// fresh database until the test ends.
func startCentral(t *testing.T, dbURL string) string {
	t.Helper()
	return centralproc.StartT(t, centralproc.Options{DatabaseURL: dbURL}).GRPCAddr()
}

// End to end: the forwarder over a queue of N transactions and the real
// central with real PostgreSQL: PostgreSQL holds exactly those
// transactions, applied in seq order, and the queue recorded every answer
// in order.
func TestEndToEndRealCentral(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewDatabase(t, centralTemplate)
	addr := startCentral(t, dbURL)

	store := newMemStore(uuid.NewString())
	const n = 1200
	txs := make([]*opsv1.Transaction, n)
	for i := range txs {
		txs[i] = fixture.ObservationTx()
	}
	store.appendTxs(txs[:n/2]...)
	b := start(t, addr, forward.Config{MaxCount: 100, Window: 4}, store)
	store.appendTxs(txs[n/2:]...) // some arrive while it runs
	require.Eventually(t, func() bool { return store.CommittedThrough() == n }, 30*time.Second, poll, "all committed")
	require.Equal(t, seqs(1, n), store.applied())
	require.NotEmpty(t, b.fwd.CentralLSN())

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer func() { _ = conn.Close(ctx) }()
	var gotSeqs []uint64
	var gotIDs []string
	rows, err := conn.Query(ctx, `SELECT seq, tx_id::text FROM chasqui.applied_transactions
		WHERE edge_id = $1 AND outcome = 'applied' ORDER BY apply_order`, store.EdgeID())
	require.NoError(t, err)
	for rows.Next() {
		var seq int64
		var id string
		require.NoError(t, rows.Scan(&seq, &id))
		gotSeqs = append(gotSeqs, uint64(seq))
		gotIDs = append(gotIDs, id)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, seqs(1, n), gotSeqs, "applied in seq order, once each")
	require.Equal(t, store.ids(1, n), gotIDs)

	var obs, cursor int64
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM chasqui.observations WHERE edge_id = $1`, store.EdgeID()).Scan(&obs))
	require.NoError(t, conn.QueryRow(ctx, `SELECT last_seq FROM chasqui.edge_cursors WHERE edge_id = $1`, store.EdgeID()).Scan(&cursor))
	require.Equal(t, int64(n), obs)
	require.Equal(t, int64(n), cursor)
}

// A wiped edge store (new epoch, seqs from 1 again) meets the real
// central's cursor: the forwarder reports a conflict and keeps its data.
func TestEndToEndReplacedStoreConflict(t *testing.T) {
	t.Parallel()
	addr := startCentral(t, pgtest.NewDatabase(t, centralTemplate))

	old := newMemStore(uuid.NewString())
	old.appendTxs(fixture.ObservationTx(), fixture.ObservationTx(), fixture.ObservationTx())
	b := start(t, addr, forward.Config{}, old)
	require.Eventually(t, func() bool { return old.CommittedThrough() == 3 }, 30*time.Second, poll, "old store committed")
	b.stop()

	wiped := newMemStore(uuid.NewString())
	wiped.appendTxs(fixture.ObservationTx(), fixture.ObservationTx())
	b = start(t, addr, forward.Config{BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}, wiped)
	require.Eventually(t, func() bool { return b.fwd.State() == forward.StateConflict }, 30*time.Second, poll, "conflict")
	require.Contains(t, b.fwd.LastError(), "operator action")
	require.Zero(t, wiped.CommittedThrough())
}
