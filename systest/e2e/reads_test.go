package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/pglsn"
	"github.com/chasqui/chasqui/internal/pgtest"
)

// Read-your-writes and precise visibility (docs/design.md, "Guarantees" 7
// and 8) against a real primary and a
// streaming site replica, central and the edge as processes.

const (
	accepted  = edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED
	committed = edgev1.TransactionState_TRANSACTION_STATE_COMMITTED
	visible   = edgev1.TransactionState_TRANSACTION_STATE_VISIBLE
)

type transition struct {
	id    string
	state edgev1.TransactionState
}

// replicaSQL runs one statement on the replica and scans one row.
func replicaSQL(t *testing.T, url, sql string, dest ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer func() { _ = conn.Close(context.Background()) }()
	require.NoError(t, conn.QueryRow(ctx, sql).Scan(dest...))
}

func getObs(t *testing.T, s *Stack, id string) *edgev1.GetObservationResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := s.Client.GetObservation(ctx, &edgev1.GetObservationRequest{Id: id})
	require.NoError(t, err)
	return r
}

func edgeStatus(t *testing.T, s *Stack) *edgev1.GetStatusResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := s.Admin.GetStatus(ctx, &edgev1.GetStatusRequest{})
	require.NoError(t, err)
	return st
}

// watcher collects a WatchTransactions stream in a goroutine.
type watcher struct {
	cancel context.CancelFunc
	ch     chan *edgev1.WatchTransactionsResponse
	done   chan error
}

func watch(t *testing.T, s *Stack, req *edgev1.WatchTransactionsRequest) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := s.Client.WatchTransactions(ctx, req)
	require.NoError(t, err)
	w := &watcher{cancel: cancel, ch: make(chan *edgev1.WatchTransactionsResponse, 64), done: make(chan error, 1)}
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				w.done <- err
				close(w.ch)
				return
			}
			w.ch <- r
		}
	}()
	t.Cleanup(cancel)
	return w
}

// next returns the next change (failing t after the deadline).
func (w *watcher) next(t *testing.T) *edgev1.WatchTransactionsResponse {
	t.Helper()
	select {
	case r, ok := <-w.ch:
		if !ok {
			t.Fatalf("stream ended: %v", <-w.done)
		}
		t.Logf("watch: change %d %s %s %s", r.GetChange(), r.GetTransaction().GetTransactionId(), r.GetTransaction().GetState(), r.GetTransaction().GetCommitLsn())
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no change within the deadline")
		return nil
	}
}

// TestReadYourWritesAndVisibility: reads with central down, COMMITTED then
// VISIBLE exactly at the replay LSN (replay paused and resumed), every
// transition watched in order across a reconnect, reads with the replica
// down and with both down.
func TestReadYourWritesAndVisibility(t *testing.T) {
	t.Parallel()
	s := NewStack(t, StackOptions{OwnCluster: true, CentralDown: true, EdgeID: "site-reads"})
	rep := s.Cluster.StartReplica(t, pgtest.ReplicaOptions{Slot: "site_replica"})
	repURL := rep.URL("chasqui")
	s.Edge.SetExtraArgs("--replica-url", repURL)
	require.NoError(t, s.Edge.Restart())
	Eventually(t, commitTimeout, "replica connected", func() bool { return edgeStatus(t, s).GetReplicaState() == "connected" })

	txInsert, txFinish, obsID := newID(), newID(), newID()
	w := watch(t, s, &edgev1.WatchTransactionsRequest{TransactionIds: []string{txInsert, txFinish}})

	// Central is down: a write reads back at once from the buffer, flagged.
	submit(t, s, insertObs(txInsert, obsID))
	g := getObs(t, s, obsID)
	require.True(t, g.GetBufferOnly())
	require.Equal(t, edgev1.RecordSource_RECORD_SOURCE_BUFFERED, g.GetObservation().GetSource())
	require.Equal(t, opsv1.ObservationStatus_OBSERVATION_STATUS_RUNNING, g.GetObservation().GetObservation().GetStatus())
	// Finished while buffered: COMPLETED before it reaches central.
	submit(t, s, finishObs(txFinish, obsID))
	g = getObs(t, s, obsID)
	require.Equal(t, opsv1.ObservationStatus_OBSERVATION_STATUS_COMPLETED, g.GetObservation().GetObservation().GetStatus())
	require.NotNil(t, g.GetObservation().GetObservation().GetEndTime())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	l, err := s.Client.ListObservations(ctx, &edgev1.ListObservationsRequest{
		Instrument: "CHAI", Status: opsv1.ObservationStatus_OBSERVATION_STATUS_COMPLETED})
	cancel()
	require.NoError(t, err)
	require.True(t, l.GetBufferOnly())
	require.Len(t, l.GetObservations(), 1)
	require.Equal(t, obsID, l.GetObservations()[0].GetObservation().GetId())
	require.Zero(t, countRows(t, s, `SELECT count(*) FROM pg_tables WHERE schemaname = 'chasqui' AND tablename = 'observations'`),
		"central has not even migrated yet")

	// Replay paused: central commits, the state goes COMMITTED and stays
	// there although the watcher has polled since (it knows the commit
	// LSN: lag_bytes > 0).
	var paused string
	replicaSQL(t, repURL, `SELECT 'requested' FROM (SELECT pg_wal_replay_pause()) p`, &paused)
	Eventually(t, commitTimeout, "replay paused", func() bool {
		replicaSQL(t, repURL, `SELECT pg_get_wal_replay_pause_state()`, &paused)
		return paused == "paused"
	})
	require.NoError(t, s.Central.Start())
	st1, st2 := waitCommitted(t, s, txInsert), waitCommitted(t, s, txFinish)
	require.Equal(t, committed, st1.GetState())
	require.Equal(t, committed, st2.GetState())
	require.Less(t, st1.GetCommitLsnValue(), st2.GetCommitLsnValue())
	var lagged *edgev1.GetStatusResponse
	Eventually(t, commitTimeout, "watcher saw the commits past the replay LSN", func() bool {
		lagged = edgeStatus(t, s)
		return lagged.GetReplicaLagBytes() > 0
	})
	var replay string
	replicaSQL(t, repURL, `SELECT pg_last_wal_replay_lsn()::text`, &replay)
	replayV := parseLSN(t, replay)
	require.Less(t, replayV, st1.GetCommitLsnValue(), "replay is paused before the commit")
	require.Equal(t, committed, txState(t, s, txFinish), "not visible: the replay LSN has not reached the commit LSN")
	t.Logf("paused: replay %s, commits %s and %s, status lag %d bytes %.3f s",
		replay, st1.GetCommitLsn(), st2.GetCommitLsn(), lagged.GetReplicaLagBytes(), lagged.GetReplicaLagSeconds())
	require.Greater(t, lagged.GetReplicaLagSeconds(), 0.0)
	// The replica lacks the rows (it has not even replayed the schema):
	// reads come from central, committed.
	g = getObs(t, s, obsID)
	require.False(t, g.GetBufferOnly())
	require.Equal(t, edgev1.RecordSource_RECORD_SOURCE_COMMITTED, g.GetObservation().GetSource())
	require.Equal(t, opsv1.ObservationStatus_OBSERVATION_STATUS_COMPLETED, g.GetObservation().GetObservation().GetStatus())

	// The watch so far: accepted, accepted, committed, committed. Then the
	// client reconnects, resuming after the last change it got.
	var got []transition
	var last uint64
	for range 4 {
		r := w.next(t)
		got = append(got, transition{r.GetTransaction().GetTransactionId(), r.GetTransaction().GetState()})
		require.Greater(t, r.GetChange(), last)
		last = r.GetChange()
		if r.GetTransaction().GetState() == committed {
			require.NotEmpty(t, r.GetTransaction().GetCommitLsn())
		}
	}
	w.cancel()
	w2 := watch(t, s, &edgev1.WatchTransactionsRequest{TransactionIds: []string{txInsert, txFinish}, AfterChange: last})

	// Resume replay: both become VISIBLE, the status lag goes to 0.
	replicaSQL(t, repURL, `SELECT 'resumed' FROM (SELECT pg_wal_replay_resume()) r`, &paused)
	for range 2 {
		r := w2.next(t)
		got = append(got, transition{r.GetTransaction().GetTransactionId(), r.GetTransaction().GetState()})
		require.Greater(t, r.GetChange(), last)
		last = r.GetChange()
		require.NotNil(t, r.GetTransaction().GetVisibleAt())
	}
	require.Equal(t, []transition{
		{txInsert, accepted}, {txFinish, accepted},
		{txInsert, committed}, {txFinish, committed},
		{txInsert, visible}, {txFinish, visible},
	}, got)
	replicaSQL(t, repURL, `SELECT pg_last_wal_replay_lsn()::text`, &replay)
	require.GreaterOrEqual(t, parseLSN(t, replay), st2.GetCommitLsnValue())
	Eventually(t, commitTimeout, "lag back to 0", func() bool {
		st := edgeStatus(t, s)
		return st.GetReplicaLagBytes() == 0 && st.GetReplicaLagSeconds() == 0
	})
	g = getObs(t, s, obsID)
	require.False(t, g.GetBufferOnly())
	require.Equal(t, edgev1.RecordSource_RECORD_SOURCE_VISIBLE, g.GetObservation().GetSource(), "read from the replica")
	require.Equal(t, opsv1.ObservationStatus_OBSERVATION_STATUS_COMPLETED, g.GetObservation().GetObservation().GetStatus())

	// Replica down: writes go on, reads come from central, flagged by source.
	require.NoError(t, rep.StopImmediate())
	Eventually(t, commitTimeout, "replica unreachable", func() bool { return edgeStatus(t, s).GetReplicaState() == "unreachable" })
	tx3, obs3 := newID(), newID()
	submit(t, s, insertObs(tx3, obs3))
	require.Equal(t, committed, waitCommitted(t, s, tx3).GetState())
	g = getObs(t, s, obsID)
	require.False(t, g.GetBufferOnly())
	require.Equal(t, edgev1.RecordSource_RECORD_SOURCE_COMMITTED, g.GetObservation().GetSource(), "read from central")
	g = getObs(t, s, obs3)
	require.Equal(t, edgev1.RecordSource_RECORD_SOURCE_COMMITTED, g.GetObservation().GetSource())

	// Central down too: the buffer alone, said so.
	require.NoError(t, s.Central.Stop())
	tx4, obs4 := newID(), newID()
	submit(t, s, insertObs(tx4, obs4))
	g = getObs(t, s, obs4)
	require.True(t, g.GetBufferOnly())
	require.Equal(t, edgev1.RecordSource_RECORD_SOURCE_BUFFERED, g.GetObservation().GetSource())
	g = getObs(t, s, obs3) // committed, not visible: its overlay is still held
	require.True(t, g.GetBufferOnly())
	require.Equal(t, edgev1.RecordSource_RECORD_SOURCE_COMMITTED, g.GetObservation().GetSource())
}

func parseLSN(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := pglsn.Parse(s)
	require.NoError(t, err)
	return v
}
