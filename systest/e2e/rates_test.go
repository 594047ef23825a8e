package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/chasqui/chasqui/edge/client"
	"github.com/chasqui/chasqui/edge/faultproxy"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	"github.com/chasqui/chasqui/internal/grpcclient"
	"github.com/chasqui/chasqui/internal/logging/logtest"
)

// Guarantee 9: no retry loop is unbounded in rate. The bound is ~5-10
// requests/s per client; normal behaviour under an outage is about one
// connection attempt per reconnect backoff (100 ms growing to 5 s).
const maxAttemptsPerSec = 10

// rateWatch samples a proxy's counters until stopped and reports the
// highest rate of attempts (requests + connections + refused connection
// attempts) over any one-second window, and the average.
type rateWatch struct {
	p    *faultproxy.Proxy
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	samples []faultproxy.Snapshot
}

func watchRates(p *faultproxy.Proxy) *rateWatch {
	w := &rateWatch{p: p, stop: make(chan struct{}), done: make(chan struct{})}
	w.samples = append(w.samples, p.Stats())
	go func() {
		defer close(w.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				w.mu.Lock()
				w.samples = append(w.samples, p.Stats())
				w.mu.Unlock()
				return
			case <-tick.C:
				w.mu.Lock()
				w.samples = append(w.samples, p.Stats())
				w.mu.Unlock()
			}
		}
	}()
	return w
}

// Stop ends sampling and returns the peak attempts in any 1 s window, the
// average per second, and the totals over the whole window.
func (w *rateWatch) Stop() (peak float64, avg float64, total faultproxy.Snapshot) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.samples
	first, last := s[0], s[len(s)-1]
	total, _, _ = last.Sub(first)
	if secs := last.At.Sub(first.At).Seconds(); secs > 0 {
		avg = float64(total.Attempts()) / secs
	}
	// For each sample, the attempts in the following second (sample
	// granularity 100 ms: a window may be up to 1.1 s, which only
	// overstates the rate).
	j := 0
	for i := range s {
		for j < len(s)-1 && s[j].At.Sub(s[i].At) < time.Second {
			j++
		}
		n := float64(s[j].Attempts() - s[i].Attempts())
		secs := max(s[j].At.Sub(s[i].At).Seconds(), 1)
		peak = max(peak, n/secs)
	}
	return peak, avg, total
}

func outageLength(short, long time.Duration) time.Duration {
	if os.Getenv("CHASQUI_FAULTS") == "long" {
		return long
	}
	return short
}

// A long outage of both links (instrument client -> edge and edge ->
// central): what reaches the far side of each proxy — calls, connections
// and connection attempts refused while down — stays at or under 10 per
// second per client, and everything acknowledged arrives exactly once.
func TestFaultAttemptRates(t *testing.T) {
	outage := outageLength(20*time.Second, 3*time.Minute)
	s := NewStack(t, StackOptions{})
	// One instrument client (one connection, the project's policy) reaching
	// the edge through its own proxy.
	cp := faultproxy.New(t, s.Edge.Addr())
	conn, err := grpcclient.Dial(cp.Addr(), grpcclient.Options{Logger: clientLogger(t)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	h := NewHistory()
	load := StartLoad(context.Background(), edgev1.NewEdgeServiceClient(conn), h, LoadConfig{
		Writers: 4, EdgeID: s.EdgeID, Pause: 5 * time.Millisecond,
		SubmitTimeout: 20 * time.Second, Duration: 10 * time.Minute,
	})
	t.Cleanup(func() { load.Stop() })
	waitLoad := func(n int) {
		t.Helper()
		target := load.Acked() + n
		Eventually(t, 2*time.Minute, "the load makes progress", func() bool { return load.Acked() >= target })
	}
	waitLoad(300)

	s.Proxy.Down()
	cp.Down()
	// Counted from the cut on: calls in flight before it are not retries.
	wan, inst := watchRates(s.Proxy), watchRates(cp)
	time.Sleep(outage) // the outage
	wanPeak, wanAvg, wanTot := wan.Stop()
	instPeak, instAvg, instTot := inst.Stop()
	s.Proxy.Up()
	cp.Up()
	t.Logf("fault %s: both links down %s; edge->central: %s, peak %.1f attempts/s, avg %.2f/s",
		t.Name(), outage, wanTot, wanPeak, wanAvg)
	t.Logf("fault %s: client->edge: %s, peak %.1f attempts/s, avg %.2f/s", t.Name(), instTot, instPeak, instAvg)
	require.Positive(t, wanTot.Refused, "the edge kept probing the dead link (else the bound proves nothing)")
	require.Positive(t, instTot.Refused, "the client kept probing the dead link")
	require.LessOrEqual(t, wanPeak, float64(maxAttemptsPerSec), "edge->central attempts per second")
	require.LessOrEqual(t, instPeak, float64(maxAttemptsPerSec), "client->edge attempts per second")

	waitLoad(200)
	stats := load.Drain()
	t.Logf("load: %s", stats)
	s.WaitApplied(h, drainTimeout)
	s.Check(h)
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct{ logtest.Buffer }

// Lines parses the JSON log lines written so far (others are left out).
func (b *syncBuffer) Lines() []map[string]any {
	lines, _ := b.JSONLines()
	return lines
}

// The instrument client library (edge/client) through a fault proxy in
// front of the edge: a 1 s outage costs no error; calls that keep failing
// give up after the configured attempts with UNAVAILABLE, each attempt
// logged with its number and the request id; 64 callers failing at once
// are held by the client-wide retry budget, counted at the proxy.
func TestFaultClientToEdge(t *testing.T) {
	s := NewStack(t, StackOptions{})
	cp := faultproxy.New(t, s.Edge.Addr())
	var logs syncBuffer
	const attempts = 4
	c, err := client.Dial(context.Background(), cp.Addr(),
		client.WithLogger(slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		client.WithMaxAttempts(attempts))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ec := edgev1.NewEdgeServiceClient(c.Conn())

	t.Run("outage_1s_no_error", func(t *testing.T) {
		h := NewHistory()
		load := StartLoad(context.Background(), ec, h, LoadConfig{
			Writers: 4, EdgeID: s.EdgeID, Pause: 5 * time.Millisecond,
			SubmitTimeout: 20 * time.Second, Duration: 10 * time.Minute, Resubmits: 1,
		})
		t.Cleanup(func() { load.Stop() })
		waitN := func(n int) {
			target := load.Acked() + n
			Eventually(t, 2*time.Minute, "the load makes progress", func() bool { return load.Acked() >= target })
		}
		waitN(200)
		for range 3 {
			cp.Down()
			time.Sleep(time.Second) // the outage
			cp.Up()
			waitN(100)
		}
		stats := load.Drain()
		t.Logf("fault %s: 3 client->edge outages of 1 s; load: %s", t.Name(), stats)
		require.Zero(t, stats.FailedCalls, "a 1 s outage causes no client error")
		s.WaitApplied(h, drainTimeout)
		s.Check(h)
	})

	t.Run("gives_up_unavailable_each_attempt_logged", func(t *testing.T) {
		remove := cp.CutCalls()
		defer remove()
		before := cp.Stats()
		mark := len(logs.Lines()) // earlier subtests' lines
		tx := NewObservationTx("E2E", "give-up")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := ec.Submit(ctx, tx)
		require.Equal(t, codes.Unavailable, status.Code(err), "gives up with UNAVAILABLE: %v", err)
		d, _, _ := cp.Stats().Sub(before)
		t.Logf("one call, link cutting every call: %s", d)
		require.Equal(t, int64(attempts), d.Requests, "exactly the configured attempts reached the proxy")

		// Each attempt is logged with its number and the call's request id.
		var reqID string
		seen := map[float64]bool{}
		for _, m := range logs.Lines()[mark:] {
			if m["grpc.method"] != "Submit" && m["grpc.method"] != nil {
				continue
			}
			rid, _ := m["request_id"].(string)
			att, ok := m["attempt"].(float64)
			if rid == "" || !ok || m["grpc.code"] != "Unavailable" {
				continue
			}
			if reqID == "" {
				reqID = rid
			}
			if rid == reqID {
				seen[att] = true
			}
		}
		if len(seen) < attempts {
			for _, m := range logs.Lines()[mark:] {
				t.Logf("client log: %v", m)
			}
		}
		for a := 1; a <= attempts; a++ {
			require.True(t, seen[float64(a)], "attempt %d logged with request id %q (saw %v)", a, reqID, seen)
		}
	})

	t.Run("retry_budget_holds_64_callers", func(t *testing.T) {
		remove := cp.CutCalls()
		defer remove()
		run := func(ec edgev1.EdgeServiceClient) (faultproxy.Snapshot, time.Duration) {
			before := cp.Stats()
			t0 := time.Now()
			var wg sync.WaitGroup
			for i := range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					_, err := ec.Submit(ctx, NewObservationTx("E2E", fmt.Sprintf("budget-%d", i)))
					// UNAVAILABLE, or (rarely) a bare EOF from gRPC when the
					// connection closes as the request is written.
					if err == nil {
						t.Errorf("caller %d: the link cuts every call, yet it succeeded", i)
					}
				}()
			}
			wg.Wait()
			d, _, _ := cp.Stats().Sub(before)
			return d, time.Since(t0)
		}
		d, took := run(ec)
		// Budget: the burst plus its rate on top of the 64 first attempts.
		bound := 64 + grpcclient.DefaultRetryBurst + int64(grpcclient.DefaultRetryBudget*took.Seconds()) + 8
		t.Logf("64 callers with the budget: %s in %s (bound %d; 64 x %d attempts = %d)",
			d, took.Round(time.Millisecond), bound, attempts, 64*attempts)
		require.LessOrEqual(t, d.Requests, bound, "the retry budget holds retries")

		// The same through a client whose budget is effectively unlimited:
		// the proxy sees several times more (not exactly 64 x attempts: calls
		// sharing a connection that is cut fail together, some before their
		// HEADERS left), so the bound above is the budget's doing.
		conn, err := grpcclient.Dial(cp.Addr(), grpcclient.Options{
			Logger: clientLogger(t), MaxAttempts: attempts, RetryBudget: 1e6, RetryBurst: 1 << 20,
		})
		require.NoError(t, err)
		defer conn.Close()
		d2, took2 := run(edgev1.NewEdgeServiceClient(conn))
		t.Logf("64 callers without a budget: %s in %s", d2, took2.Round(time.Millisecond))
		require.GreaterOrEqual(t, d2.Requests, int64(64*attempts/2), "without the budget the retries multiply")
	})
}
