package forward_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/chasqui/chasqui/edge/internal/forward"
	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	"github.com/chasqui/chasqui/internal/logging/logtest"
)

const probeFailedMsg = "central unreachable: link probe failed"

// logCount counts the log lines with msg at level.
func logCount(t *testing.T, logs *logtest.Buffer, level, msg string) int {
	t.Helper()
	lines, err := logs.JSONLines()
	require.NoError(t, err)
	n := 0
	for _, l := range lines {
		if l["msg"] == msg && l["level"] == level {
			n++
		}
	}
	return n
}

// An idle forwarder (nothing queued, so no Commit is ever sent) sees
// central go away and come back through its link probe, within a few
// probe intervals each way, while its state stays idle.
func TestProbeSeesCentralGoAndComeBackWhileIdle(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	addr, stopCentral := serveCentralAt(t, "127.0.0.1:0", central)
	b := start(t, addr, forward.Config{ProbeInterval: 100 * time.Millisecond}, newMemStore("e1"))
	reachable := func(want bool) func() bool {
		return func() bool { r := b.fwd.Reachability(); return r.Known && r.Reachable == want }
	}

	require.Eventually(t, reachable(true), 10*time.Second, poll, "central reachable")
	require.False(t, b.fwd.Reachability().LastOK.IsZero())

	stopCentral()
	require.Eventually(t, reachable(false), 10*time.Second, poll, "central unreachable after it stopped")
	require.Equal(t, forward.StateIdle, b.fwd.State(), "nothing to send: the forwarder itself stays idle")
	require.Contains(t, b.fwd.LastError(), "link probe (GetCursor) failed")
	require.Eventually(t, func() bool { return logCount(t, b.logs, "WARN", probeFailedMsg) > 0 }, 10*time.Second, poll, "failed probe logged")
	require.Contains(t, b.logs.String(), `"err":"link probe (GetCursor) failed: rpc error`, "the warning carries the error")

	serveCentralAt(t, addr, central)
	require.Eventually(t, reachable(true), 10*time.Second, poll, "central reachable again")
	require.Eventually(t, func() bool { return logCount(t, b.logs, "INFO", "central reachable again: link probe answered") >= 1 }, 10*time.Second, poll,
		"recovery logged")
	require.Zero(t, central.calls.Load(), "no Commit was sent: the probe alone saw it")
}

// The probe runs at once, then once per interval on the forwarder's clock;
// a commit counts as an answer and postpones it by a full interval.
func TestProbeScheduleAndCommitCountsAsProbe(t *testing.T) {
	t.Parallel()
	const interval = 10 * time.Second
	central := newFakeCentral()
	store := newMemStore("e1")
	clock := newFakeClock()
	b := start(t, serveCentral(t, central), forward.Config{ProbeInterval: interval, Linger: -1, Clock: clock}, store)
	probes := central.cursorCalls.Load
	asleepAfter := func(n int64) func() bool {
		return func() bool { return probes() == n && clock.pending() == 1 }
	}

	require.Eventually(t, asleepAfter(1), 10*time.Second, poll, "first probe at once")
	require.True(t, b.fwd.Reachability().Reachable)
	clock.advance(interval - time.Millisecond)
	require.Equal(t, 1, clock.pending(), "no probe before the interval is over")
	clock.advance(time.Millisecond)
	require.Eventually(t, asleepAfter(2), 10*time.Second, poll, "second probe one interval later")

	// A commit half an interval later is an answer: the probe due at one
	// interval waits until the commit is one interval old.
	clock.advance(interval / 2)
	store.append(1, 0)
	require.Eventually(t, func() bool { return store.CommittedThrough() == 1 }, 10*time.Second, poll, "committed")
	clock.advance(interval / 2)
	require.Eventually(t, asleepAfter(2), 10*time.Second, poll, "probe skipped after a recent commit")
	require.Equal(t, clock.Now().Add(-interval/2), b.fwd.Reachability().LastOK, "the commit was the last answer")
	clock.advance(interval / 2)
	require.Eventually(t, asleepAfter(3), 10*time.Second, poll, "probe once the commit is an interval old")
}

// Failing probes mark central unreachable, each is logged at WARN with its
// error, and they come once per interval, never faster.
func TestProbeFailuresBoundedAndLogged(t *testing.T) {
	t.Parallel()
	const interval = 15 * time.Second
	central := newFakeCentral()
	central.cursorHook = func(context.Context) error { return status.Error(codes.Unavailable, "database unavailable; retry") }
	clock := newFakeClock()
	b := start(t, serveCentral(t, central), forward.Config{ProbeInterval: interval, Clock: clock}, newMemStore("e1"))

	require.Eventually(t, func() bool { return central.cursorCalls.Load() == 1 && clock.pending() == 1 }, 10*time.Second, poll, "first probe")
	for i := int64(2); i <= 4; i++ {
		clock.advance(interval - time.Millisecond)
		require.Equal(t, i-1, central.cursorCalls.Load(), "no probe within the interval")
		clock.advance(time.Millisecond)
		require.Eventually(t, func() bool { return central.cursorCalls.Load() == i && clock.pending() == 1 }, 10*time.Second, poll, "probe %d", i)
	}
	require.Equal(t, forward.Reachability{Known: true}, b.fwd.Reachability(), "unreachable, never answered")
	require.Equal(t, 4, logCount(t, b.logs, "WARN", probeFailedMsg), "one warning per failed probe")
	require.Contains(t, b.logs.String(), "database unavailable; retry")
	require.Contains(t, b.fwd.LastError(), "Unavailable")
	require.Equal(t, forward.StateIdle, b.fwd.State())
}

// No probe while a batch is in flight: its own outcome speaks for the link.
func TestProbeSkippedWhileBatchInFlight(t *testing.T) {
	t.Parallel()
	const interval = 10 * time.Second
	central := newFakeCentral()
	release := make(chan struct{})
	central.hook = func(ctx context.Context, _ *centralv1.CommitRequest) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	store := newMemStore("e1")
	clock := newFakeClock()
	b := start(t, serveCentral(t, central), forward.Config{
		ProbeInterval: interval, Linger: -1, Clock: clock, AttemptTimeoutBase: time.Hour,
	}, store)
	require.Eventually(t, func() bool { return central.cursorCalls.Load() == 1 && clock.pending() == 1 }, 10*time.Second, poll, "first probe")
	store.append(1, 0)
	require.Eventually(t, func() bool { return b.fwd.State() == forward.StateForwarding }, 10*time.Second, poll, "batch in flight")
	clock.advance(interval)
	require.Eventually(t, func() bool { return clock.pending() == 1 }, 10*time.Second, poll, "probe loop asleep again")
	require.Equal(t, int64(1), central.cursorCalls.Load(), "no probe beside a batch in flight")
	close(release)
	require.Eventually(t, func() bool { return store.CommittedThrough() == 1 }, 10*time.Second, poll, "committed")
}

// A probe waiting on central ends at once on shutdown and is not taken for
// an unreachable central.
func TestProbeStopsAtOnce(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	central.cursorHook = func(ctx context.Context) error {
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	b := start(t, serveCentral(t, central), forward.Config{ProbeInterval: time.Hour, ProbeTimeout: time.Hour}, newMemStore("e1"))
	require.Eventually(t, func() bool { return central.cursorCalls.Load() == 1 }, 10*time.Second, poll, "probe in flight")
	require.Less(t, b.stop(), 2*time.Second, "Run returns promptly")
	require.False(t, b.fwd.Reachability().Known, "a probe cut by shutdown says nothing about central")
	require.Zero(t, logCount(t, b.logs, "WARN", probeFailedMsg))
}

// ProbeInterval < 0 turns the probe off: no call, and no view of central.
func TestProbeDisabled(t *testing.T) {
	t.Parallel()
	central := newFakeCentral()
	store := newMemStore("e1")
	store.append(3, 0)
	b := start(t, serveCentral(t, central), forward.Config{ProbeInterval: -1}, store)
	require.Eventually(t, func() bool { return store.CommittedThrough() == 3 }, 10*time.Second, poll, "committed")
	require.Zero(t, central.cursorCalls.Load())
	require.False(t, b.fwd.Reachability().Known)
}
