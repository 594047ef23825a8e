package forward

import (
	"context"
	"fmt"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/retry"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
)

// The link probe. A forwarder with nothing to send makes no calls, so
// without it a central or WAN outage would show only once records wait
// for it. While no commit succeeded within ProbeInterval and no batch is in
// flight, the probe asks central for this edge's cursor. GetCursor, and
// not the gRPC health check, because it proves what forwarding needs:
// it travels the forwarder's own connection with the edge's credentials,
// central authorizes it for this edge id exactly as it does Commit, and
// answers it from PostgreSQL. Health is served to anyone, certificate or
// not, and says nothing of the database: an edge whose certificate central
// no longer accepts, or a central without its database, would look
// reachable while no commit can succeed.

// Reachability is central as the link probe last saw it.
type Reachability struct {
	// Known is false with the probe disabled, and until central first
	// answered a probe or a commit or a probe first failed.
	Known bool
	// Reachable is true when central answered the last probe or
	// committed a batch after it, false when the last probe failed.
	Reachable bool
	// LastOK is when central last answered a probe or committed a batch
	// (zero if never).
	LastOK time.Time
}

// reachState is the record behind Reachability, guarded by Forwarder.mu.
type reachState struct {
	known, ok bool
	lastOK    time.Time
	// answers counts central's answers (probes and commits), so that a
	// probe which fails after a commit succeeded meanwhile does not mark
	// central unreachable.
	answers uint64
	// downSince is when the first failed probe of the outage started.
	downSince time.Time
}

// Reachability is the link probe's view of central; safe for concurrent
// use.
func (f *Forwarder) Reachability() Reachability {
	if f.cfg.ProbeInterval < 0 {
		return Reachability{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return Reachability{Known: f.reach.known, Reachable: f.reach.ok, LastOK: f.reach.lastOK}
}

// answeredLocked records that central answered at now; back reports that
// it had been unreachable, for down.
func (f *Forwarder) answeredLocked(now time.Time) (back bool, down time.Duration) {
	r := &f.reach
	if r.known && !r.ok {
		back, down = true, now.Sub(r.downSince)
	}
	r.known, r.ok, r.lastOK = true, true, now
	r.answers++
	return back, down
}

// probeLoop probes central until ctx ends: at once when central has not
// answered yet, then whenever its last answer (probe or commit) is one
// interval old. At most one probe per interval; none while a batch is in
// flight (its own outcome speaks for the link, and on a narrow link a probe
// queued behind a large batch would time out and cry wolf).
func (f *Forwarder) probeLoop(ctx context.Context) {
	interval := f.cfg.ProbeInterval
	if interval < 0 {
		return
	}
	for {
		now := f.cfg.Clock.Now()
		f.mu.Lock()
		lastOK, busy := f.reach.lastOK, f.state == StateForwarding
		f.mu.Unlock()
		wait := interval
		switch {
		case busy:
		case !lastOK.IsZero() && now.Sub(lastOK) < interval:
			wait = interval - now.Sub(lastOK)
		default:
			f.probe(ctx)
		}
		if !f.sleep(ctx, wait) {
			return
		}
	}
}

// probe makes one GetCursor attempt and records its outcome. A failure is
// logged at WARN each time: probes are at most one per interval.
func (f *Forwarder) probe(ctx context.Context) {
	f.mu.Lock()
	answers := f.reach.answers
	f.mu.Unlock()
	start := f.cfg.Clock.Now()
	pctx, cancel := context.WithTimeout(ctx, f.cfg.ProbeTimeout)
	_, err := f.client.GetCursor(pctx, &centralv1.GetCursorRequest{EdgeId: f.store.EdgeID()},
		retry.WithMax(1), retry.WithPerRetryTimeout(f.cfg.ProbeTimeout))
	cancel()
	if ctx.Err() != nil {
		return // shutting down: says nothing about central
	}
	now := f.cfg.Clock.Now()
	f.mu.Lock()
	if err == nil {
		back, down := f.answeredLocked(now)
		f.mu.Unlock()
		if back {
			f.log.Info("central reachable again: link probe answered", "unreachable_for", down)
		}
		return
	}
	err = fmt.Errorf("link probe (GetCursor) failed: %w", err)
	r := &f.reach
	if r.answers == answers { // nothing answered while the probe waited
		if !r.known || r.ok {
			r.downSince = start
		}
		r.known, r.ok = true, false
	}
	// An idle forwarder's last error is old news; a failing one's (a
	// conflict, a refusal) says more than the probe and stays.
	if f.state == StateIdle {
		f.lastErr, f.lastErrAt = err.Error(), f.cfg.Clock.Now()
	}
	attrs := []any{"err", err, "probe_timeout", f.cfg.ProbeTimeout, "next_probe_in", f.cfg.ProbeInterval}
	if !r.ok {
		attrs = append(attrs, "unreachable_since", r.downSince)
	}
	if !r.lastOK.IsZero() {
		attrs = append(attrs, "last_answer", r.lastOK)
	}
	f.mu.Unlock()
	f.log.Warn("central unreachable: link probe failed", attrs...)
}
