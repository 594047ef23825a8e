package e2e

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
)

// A write is accepted, forwarded, committed, and its commit LSN reported
// back to the edge (guarantees 1 and 7).
func TestWriteCommittedWithLSN(t *testing.T) {
	t.Parallel()
	s := NewStack(t, StackOptions{})
	txID, obsID := newID(), newID()
	resp := submit(t, s, insertObs(txID, obsID))
	res := resp.GetResults()[0]
	require.Equal(t, txID, res.GetTransactionId())
	require.NotZero(t, res.GetSeq())
	require.Equal(t, []string{obsID}, res.GetRecordIds())

	st := waitCommitted(t, s, txID)
	require.NotEmpty(t, st.GetCommitLsn())
	require.NotZero(t, st.GetCommitLsnValue())
	require.Equal(t, res.GetSeq(), st.GetSeq())

	status, _, found := observationRow(t, s, obsID)
	require.True(t, found, "observation in chasqui.observations")
	require.Equal(t, "RUNNING", status)
	// The reported LSN is a real position of this server's WAL, at or past
	// the commit record of the row just read.
	require.Equal(t, 1, countRows(t, s,
		`SELECT count(*) FROM chasqui.applied_transactions a
		 WHERE a.tx_id = $1 AND $2::pg_lsn <= pg_current_wal_insert_lsn() AND $2::pg_lsn > '0/0'::pg_lsn`,
		txID, st.GetCommitLsn()))

	h := NewHistory()
	h.Acked(Ack{TxID: txID, EdgeID: s.EdgeID, Seq: res.GetSeq(), ObsRows: 1})
	s.Check(h)
}

// The edge compresses the link with gzip by default; central must
// accept it.
func TestLinkGzip(t *testing.T) {
	t.Parallel()
	s := NewStack(t, StackOptions{Compression: "gzip"})
	txID := newID()
	submit(t, s, insertObs(txID, newID()))
	waitCommitted(t, s, txID)
}

// An update to an observation still buffered at the edge (link down) lands
// after its insert once the link returns (guarantee 4).
func TestBufferedUpdateLandsAfterInsert(t *testing.T) {
	t.Parallel()
	s := NewStack(t, StackOptions{})
	s.Proxy.Down()
	ins, upd, obsID := newID(), newID(), newID()
	r1 := submit(t, s, insertObs(ins, obsID)).GetResults()[0]
	r2 := submit(t, s, finishObs(upd, obsID)).GetResults()[0]
	require.Less(t, r1.GetSeq(), r2.GetSeq())
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED, txState(t, s, upd), "link is down: buffered")
	_, _, found := observationRow(t, s, obsID)
	require.False(t, found, "nothing reaches PostgreSQL while the link is down")

	s.Proxy.Up()
	waitCommitted(t, s, upd)
	status, end, found := observationRow(t, s, obsID)
	require.True(t, found)
	require.Equal(t, "COMPLETED", status, "the update was applied after the insert")
	require.NotNil(t, end)

	h := NewHistory()
	h.Acked(Ack{TxID: ins, EdgeID: s.EdgeID, Seq: r1.GetSeq(), ObsRows: 1})
	h.Acked(Ack{TxID: upd, EdgeID: s.EdgeID, Seq: r2.GetSeq(), ObsRows: 0})
	s.Check(h)
}

// Central down for a while: the edge keeps accepting at its own pace (Submit
// never waits for the WAN) and everything drains when central returns; the
// ids in PostgreSQL are exactly the acknowledged ids (guarantees 1-3).
func TestCentralDownEdgeKeepsAccepting(t *testing.T) {
	s := NewStack(t, StackOptions{})
	h := NewHistory()
	ctx := context.Background()
	cfg := LoadConfig{Writers: 4, EdgeID: s.EdgeID, SubmitTimeout: 20 * time.Second, Rows: true}

	before := StartLoad(ctx, s.Client, h, LoadConfig{Writers: 4, EdgeID: s.EdgeID, MaxTx: 400, Rows: true}).Wait()
	t.Logf("central up:   %s", before)

	require.NoError(t, s.Central.Stop())
	cfg.Duration = 5 * time.Second // the outage's length, not a wait for state
	during := StartLoad(ctx, s.Client, h, cfg).Wait()
	t.Logf("central down: %s", during)
	require.Greater(t, during.Acked, 100, "the edge keeps accepting while central is down")
	require.Zero(t, during.FailedCalls, "no client error while central is down")
	// Bound far from normal (milliseconds): Submit must not wait for the WAN.
	require.Less(t, during.LatencyP99, 2*time.Second, "Submit latency does not depend on central")

	require.NoError(t, s.Central.Start())
	s.WaitApplied(h, drainTimeout)
	r := s.Check(h)
	require.Zero(t, r.Uncertain)
	require.Equal(t, r.Acknowledged, r.AppliedRows, "ids in PostgreSQL equal the acknowledged ids")
}

// kill -9 of the edge during sustained concurrent writes, several times,
// with a backlog buffered: every acknowledged transaction arrives exactly
// once and in order, every poison one ends dead-lettered (guarantees 2-4, 6).
func TestEdgeKill9MidBacklog(t *testing.T) {
	s := NewStack(t, StackOptions{})
	h := NewHistory()
	load := StartLoad(context.Background(), s.Client, h, LoadConfig{
		Writers: 4, EdgeID: s.EdgeID, SubmitTimeout: 20 * time.Second, Duration: 3 * time.Minute,
		PoisonEvery: faultPoisonEvery, Rows: true,
	})
	t.Cleanup(func() { load.Stop() })
	waitAcks := func(n int) {
		t.Helper()
		target := load.Acked() + n
		Eventually(t, 2*time.Minute, "load makes progress", func() bool { return load.Acked() >= target })
	}
	for i := range 6 {
		var undo func()
		switch i % 3 {
		case 0: // a backlog only the edge's disk holds
			s.Proxy.Down()
			undo = s.Proxy.Up
		case 1: // forwarding a backlog at full speed
		case 2: // forwarding over a slow link: many batches in flight
			undo = s.Proxy.Latency(50, 10)
		}
		waitAcks(800)
		killRestartEdge(t, s)
		waitAcks(100)
		if undo != nil {
			undo()
		}
	}
	stats := load.Drain()
	t.Logf("load: %s", stats)
	s.WaitApplied(h, drainTimeout)
	require.Positive(t, s.Check(h).Poison, "poison transactions crossed the kills")
}

// The same transaction id submitted twice, also across an edge restart and
// while buffered, is stored once (guarantee 3).
func TestSameTransactionTwiceOneRow(t *testing.T) {
	t.Parallel()
	s := NewStack(t, StackOptions{})
	a, b := newID(), newID()
	ra := submit(t, s, insertObs(a, newID())).GetResults()[0]
	again := submit(t, s, NewObservationTxWithID(a)).GetResults()[0]
	require.True(t, again.GetDuplicate())
	require.Equal(t, ra.GetSeq(), again.GetSeq(), "the first answer again")
	waitCommitted(t, s, a)

	s.Proxy.Down() // b stays buffered across the restart
	rb := submit(t, s, insertObs(b, newID())).GetResults()[0]
	killRestartEdge(t, s)
	for _, id := range []string{a, b} {
		r := submit(t, s, NewObservationTxWithID(id)).GetResults()[0]
		require.True(t, r.GetDuplicate(), "tx %s known after restart", id)
	}
	s.Proxy.Up()
	waitCommitted(t, s, b)
	for _, id := range []string{a, b} {
		require.Equal(t, 1, countRows(t, s, `SELECT count(*) FROM chasqui.observations WHERE tx_id = $1`, id))
	}
	h := NewHistory()
	h.Acked(Ack{TxID: a, EdgeID: s.EdgeID, Seq: ra.GetSeq(), ObsRows: 1})
	h.Acked(Ack{TxID: b, EdgeID: s.EdgeID, Seq: rb.GetSeq(), ObsRows: 1})
	s.Check(h)
}

// NewObservationTxWithID is a fresh single-observation transaction under a
// given id: a resubmission whose body differs must still get the first answer.
func NewObservationTxWithID(id string) *edgev1.SubmitRequest {
	req := NewObservationTx("CHAI", "resubmit")
	req.Transactions[0].Id = id
	return req
}

// The grpcurl example body lands in chasqui.observations, also when central
// is down at the time of the call and started later.
func TestExampleSubmitBody(t *testing.T) {
	body, err := os.ReadFile(repoFile(t, "examples/submit-observation.json"))
	require.NoError(t, err)
	var req edgev1.SubmitRequest
	require.NoError(t, protojson.Unmarshal(body, &req))
	obsID := req.GetTransactions()[0].GetMutations()[0].GetObservation().GetId()
	require.NotEmpty(t, obsID)

	for _, centralDown := range []bool{false, true} {
		name := map[bool]string{false: "central_up", true: "central_down_then_started"}[centralDown]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := NewStack(t, StackOptions{CentralDown: centralDown})
			res := submit(t, s, &req).GetResults()[0]
			if centralDown {
				require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED, txState(t, s, res.GetTransactionId()))
				require.NoError(t, s.Central.Start())
			}
			waitCommitted(t, s, res.GetTransactionId())
			status, _, found := observationRow(t, s, obsID)
			require.True(t, found)
			require.Equal(t, "RUNNING", status)
		})
	}
}
