package e2e

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chasqui/chasqui/edge/faultproxy"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
)

// The fault suite: each test runs sustained concurrent writes
// through the edge, injects one real fault, lets everything drain and runs
// the history check. Long faults run only with CHASQUI_FAULTS=long
// (`make test-faults`), so `go test ./...` stays within the CI budget.

func longFaults(t *testing.T) {
	t.Helper()
	if os.Getenv("CHASQUI_FAULTS") != "long" {
		t.Skip("long fault test: set CHASQUI_FAULTS=long (make test-faults)")
	}
}

// faultRun is a stack under load.
type faultRun struct {
	t    *testing.T
	s    *Stack
	h    *History
	load *Load
}

// faultPoisonEvery: one transaction in this many of the fault loads is
// poison, so rejections cross every fault as commits do.
const faultPoisonEvery = 40

// startFaultRun starts a stack and a paced load (4 writers, about 150 tx/s
// each at most, poison among them, rows of two ops tables beside the
// observations) and waits until writes flow end to end.
func startFaultRun(t *testing.T, opts StackOptions) *faultRun {
	t.Helper()
	f := startFaultLoad(t, opts)
	f.waitAcks(200)
	return f
}

// startFaultLoad is startFaultRun without the wait.
func startFaultLoad(t *testing.T, opts StackOptions) *faultRun {
	t.Helper()
	s := NewStack(t, opts)
	f := &faultRun{t: t, s: s, h: NewHistory()}
	f.load = StartLoad(context.Background(), s.Client, f.h, LoadConfig{
		Writers: 4, EdgeID: s.EdgeID, Pause: 5 * time.Millisecond,
		SubmitTimeout: 20 * time.Second, Duration: 10 * time.Minute, PoisonEvery: faultPoisonEvery, Rows: true,
	})
	t.Cleanup(func() { f.load.Stop() })
	return f
}

func (f *faultRun) waitAcks(n int) {
	f.t.Helper()
	target := f.load.Acked() + n
	Eventually(f.t, 2*time.Minute, "the load makes progress", func() bool { return f.load.Acked() >= target })
}

// window runs fault and logs what the proxy saw meanwhile.
func (f *faultRun) window(name string, fault func()) (d faultproxy.Snapshot, connPerSec, reqPerSec float64) {
	f.t.Helper()
	a := f.s.Proxy.Stats()
	fault()
	d, connPerSec, reqPerSec = f.s.Proxy.Stats().Sub(a)
	f.t.Logf("fault %s: %s lasted %s; at the proxy: %s, %.1f conn/s, %.1f calls/s",
		f.t.Name(), name, d.At.Sub(a.At).Round(time.Millisecond), d, connPerSec, reqPerSec)
	return d, connPerSec, reqPerSec
}

// finish stops the load, waits for the drain and checks the history, in
// PostgreSQL and at the edge; poison transactions crossed the fault.
func (f *faultRun) finish() (LoadStats, Report) {
	f.t.Helper()
	stats, r := f.finishReport()
	r.Assert(f.t)
	return stats, r
}

// finishReport is finish without asserting the report.
func (f *faultRun) finishReport() (LoadStats, Report) {
	f.t.Helper()
	f.waitAcks(100) // the system still accepts and the load still flows after the fault
	stats := f.load.Drain()
	f.t.Logf("load: %s", stats)
	f.s.WaitApplied(f.h, drainTimeout)
	r := f.s.CheckReport(f.h)
	require.Positive(f.t, r.Poison, "poison transactions were acknowledged (else the rejection path went untested)")
	require.Positive(f.t, r.RowWrites, "rows of the ops tables were written (else the row path went untested)")
	return stats, r
}

// Rows accepted before the edge ever learned the schema (central down
// since the edge started: a shape check only) arrive like the others once
// central is up: lost 0, duplicated 0, in order; the poison among them
// (packages of units nobody wrote) end as dead letters.
func TestFaultRowsBeforeSchemaLearned(t *testing.T) {
	f := startFaultLoad(t, StackOptions{CentralDown: true})
	f.waitAcks(300)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	schema, err := f.s.Client.GetSchema(ctx, &edgev1.GetSchemaRequest{})
	require.NoError(t, err)
	require.Nil(t, schema.GetSchema(), "the edge has not learned the schema: rows were accepted on their shape")
	f.window("central started", func() { require.NoError(t, f.s.Central.Start()) })
	f.finish()
}

// Guarantee 9: a link outage of 1 s causes no error in any client, and
// nothing is lost.
func TestFaultLinkDown1s(t *testing.T) {
	f := startFaultRun(t, StackOptions{})
	f.window("link down 1s", func() {
		f.s.Proxy.Down()
		time.Sleep(time.Second) // the outage
		f.s.Proxy.Up()
	})
	stats, _ := f.finish()
	require.Zero(t, stats.FailedCalls, "a 1 s outage causes no client error")
}

// A 30 s outage: the edge buffers, then drains.
func TestFaultLinkDown30s(t *testing.T) {
	longFaults(t)
	f := startFaultRun(t, StackOptions{})
	f.window("link down 30s", func() {
		f.s.Proxy.Down()
		time.Sleep(30 * time.Second) // the outage
		f.s.Proxy.Up()
	})
	stats, _ := f.finish()
	require.Zero(t, stats.FailedCalls)
}

// Flapping link: down 1 s, up 2 s, several times.
func TestFaultFlapping(t *testing.T) {
	f := startFaultRun(t, StackOptions{})
	flaps := 4
	if os.Getenv("CHASQUI_FAULTS") == "long" {
		flaps = 20
	}
	f.window("flapping", func() {
		for range flaps {
			f.s.Proxy.Down()
			time.Sleep(time.Second) // down
			f.s.Proxy.Up()
			time.Sleep(2 * time.Second) // up
		}
	})
	stats, _ := f.finish()
	require.Zero(t, stats.FailedCalls)
}

// The real WAN: 250 ms each way with jitter.
func TestFaultLatency(t *testing.T) {
	f := startFaultRun(t, StackOptions{})
	f.window("latency 250±50 ms each way", func() {
		remove := f.s.Proxy.Latency(250, 50)
		f.waitAcks(1000)
		remove()
	})
	f.finish()
}

// A narrow link (16 KB/s): batches must still get through (split on timeout).
func TestFaultNarrowBandwidth(t *testing.T) {
	f := startFaultRun(t, StackOptions{})
	f.window("bandwidth 16 KB/s", func() {
		remove := f.s.Proxy.Bandwidth(16)
		f.waitAcks(1000)
		// Some of the backlog crosses the narrow link before it widens.
		var committed uint64
		Eventually(t, 2*time.Minute, "commits progress over the narrow link", func() bool {
			st := f.status()
			if committed == 0 {
				committed = st.GetCommittedThroughSeq()
			}
			return st.GetCommittedThroughSeq() > committed
		})
		remove()
	})
	f.finish()
}

// Connections reset (TCP RST) as requests cross.
func TestFaultResetPeer(t *testing.T) {
	f := startFaultRun(t, StackOptions{})
	f.window("reset_peer upstream", func() {
		remove := f.s.Proxy.ResetPeer("upstream", 0)
		f.waitAcks(300)
		time.Sleep(2 * time.Second) // resets keep happening for a while
		remove()
	})
	f.finish()
}

// Half-open link: connections accepted, nothing flows either way; the
// forwarder's per-attempt timeout must notice and it must recover.
func TestFaultHalfOpen(t *testing.T) {
	f := startFaultRun(t, StackOptions{})
	f.window("timeout toxic (half-open) 6s", func() {
		remove := f.s.Proxy.Blackhole(0)
		time.Sleep(6 * time.Second) // the fault
		remove()
	})
	stats, _ := f.finish()
	require.Zero(t, stats.FailedCalls, "the edge accepts whatever the link does")
}

// The ack of a committed batch is lost (responses dropped): the edge must
// resend and central must answer from its records, applying nothing twice.
func TestFaultAckLostAfterCommit(t *testing.T) {
	f := startFaultRun(t, StackOptions{})
	var lostAcks int
	f.window("answers dropped 4s", func() {
		remove := f.s.Proxy.DropAnswers()
		time.Sleep(4 * time.Second) // the fault
		// Central committed more than the edge heard about.
		st := f.status()
		var inPG int64
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, f.s.DB.QueryRow(ctx,
			`SELECT coalesce(max(seq), 0) FROM chasqui.applied_transactions WHERE edge_id = $1`, f.s.EdgeID).Scan(&inPG))
		lostAcks = int(inPG) - int(st.GetCommittedThroughSeq())
		t.Logf("during the fault: central applied through seq %d, the edge knows through %d", inPG, st.GetCommittedThroughSeq())
		remove()
	})
	f.finish()
	require.Positive(t, lostAcks, "the fault lost acks of committed batches (else the test proves nothing)")
}

// kill -9 of central during writes, twice.
func TestFaultCentralKill9(t *testing.T) {
	f := startFaultRun(t, StackOptions{})
	for range 2 {
		f.window("central kill -9, down 2s", func() {
			require.NoError(t, f.s.Central.Kill())
			time.Sleep(2 * time.Second) // central's downtime
			require.NoError(t, f.s.Central.Start())
		})
		f.waitAcks(200)
	}
	stats, _ := f.finish()
	require.Zero(t, stats.FailedCalls, "central's crash is invisible to instruments")
}

// PostgreSQL crashes (kill -9 of every server process) and immediate
// shutdowns during writes, several rounds in one run: committed means durable, and central answers
// UNAVAILABLE meanwhile so the edge retries.
func TestFaultPostgresCrash(t *testing.T) {
	f := startFaultRun(t, StackOptions{OwnCluster: true})
	rounds := 2
	if os.Getenv("CHASQUI_FAULTS") == "long" {
		rounds = 5
	}
	for range rounds {
		f.window("postgres kill -9", func() {
			require.NoError(t, f.s.Cluster.Kill())
			require.NoError(t, f.s.Cluster.Start())
		})
		f.waitAcks(200)
		f.window("postgres stop -m immediate", func() {
			require.NoError(t, f.s.Cluster.StopImmediate())
			time.Sleep(time.Second) // PostgreSQL's downtime
			require.NoError(t, f.s.Cluster.Start())
		})
		f.waitAcks(200)
	}
	stats, _ := f.finish()
	require.Zero(t, stats.FailedCalls)
}

func (f *faultRun) status() *edgev1.GetStatusResponse {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := f.s.Admin.GetStatus(ctx, &edgev1.GetStatusRequest{})
	require.NoError(f.t, err)
	return st
}
