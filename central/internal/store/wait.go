package store

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// A batch that arrives ahead of its predecessor (HTTP/2 interleaves an
// edge's calls) waits for the cursor to reach it without holding the cursor
// lock or a connection. It is woken, not polled: each commit that moves a
// cursor signals the waiters of that edge on this central, and NOTIFYs
// CursorChannel in its own transaction so that the other centrals' Listen
// wakes theirs. Only while no listener runs does a waiter re-read the
// cursor every GapPoll.

// CursorChannel is the PostgreSQL notification channel of cursor moves;
// the payload is "<last_seq> <edge_id>".
const CursorChannel = "chasqui_cursor"

// Defaults of Options.
const (
	// DefaultGapWait is Options.GapWait.
	DefaultGapWait = 2 * time.Second
	// DefaultGapPoll is Options.GapPoll: without a listener a waiting batch
	// is behind by at most this much of another central's commit.
	DefaultGapPoll = 100 * time.Millisecond
	// DefaultListenRetryMax caps the wait between attempts to reconnect
	// the listener.
	DefaultListenRetryMax = 5 * time.Second
)

// WaitStats count how waiting batches went on: tests and metrics tell a
// woken batch from a polled one.
type WaitStats struct {
	// Woken: retries after a signal that the edge's cursor moved (a commit
	// on this central, or a notification from any).
	Woken uint64
	// Polled: retries after GapPoll passed without a signal (no listener).
	Polled uint64
	// Extended: gap waits prolonged past GapWait because a batch that can
	// fill the gap was in flight on this central.
	Extended uint64
	// Refused: batches refused with a GapError.
	Refused uint64
	// Notified: cursor notifications the listener received.
	Notified uint64
	// Waiting: batches waiting now.
	Waiting int64
	// Listening: a listener connection is LISTENing now.
	Listening bool
}

// waitStats are WaitStats' atomic counters.
type waitStats struct {
	woken, polled, extended, refused, notified atomic.Uint64
	waiting                                    atomic.Int64
}

// edgeWait is what this central knows of one edge while it has calls.
type edgeWait struct {
	// cursor is the highest last_seq known committed (0: not known).
	cursor uint64
	// moved is closed and replaced when cursor rises or everyone must
	// re-read it.
	moved chan struct{}
	// inFlight are the seq ranges of this edge's calls on this central.
	inFlight map[*span]struct{}
}

type span struct{ first, last uint64 }

// waits hold the per-edge wake-ups of one Store.
type waits struct {
	mu    sync.Mutex
	edges map[string]*edgeWait
}

// enter registers a call for first..last; the caller must leave it.
func (w *waits) enter(edgeID string, first, last uint64) *span {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.edges == nil {
		w.edges = map[string]*edgeWait{}
	}
	e := w.edges[edgeID]
	if e == nil {
		e = &edgeWait{moved: make(chan struct{}), inFlight: map[*span]struct{}{}}
		w.edges[edgeID] = e
	}
	sp := &span{first, last}
	e.inFlight[sp] = struct{}{}
	return sp
}

func (w *waits) leave(edgeID string, sp *span) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.edges[edgeID]
	delete(e.inFlight, sp)
	if len(e.inFlight) == 0 {
		delete(w.edges, edgeID)
	}
}

// snapshot returns the channel closed at the edge's next cursor move and
// the cursor known now. Taken before an attempt reads the cursor, it
// cannot miss a move that attempt did not see.
func (w *waits) snapshot(edgeID string) (<-chan struct{}, uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.edges[edgeID]
	return e.moved, e.cursor
}

// advance records that the edge's cursor reached seq and wakes its waiters.
// An edge without calls here is not tracked.
func (w *waits) advance(edgeID string, seq uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.edges[edgeID]
	if e == nil || seq <= e.cursor {
		return
	}
	e.cursor = seq
	close(e.moved)
	e.moved = make(chan struct{})
}

// wakeAll makes every waiter re-read its cursor: notifications may have
// been lost while the listener was down.
func (w *waits) wakeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.edges {
		close(e.moved)
		e.moved = make(chan struct{})
	}
}

// filling reports whether a call of this edge on this central covers seq:
// it is being applied or waits itself, and may fill the gap at seq.
func (w *waits) filling(edgeID string, seq uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for sp := range w.edges[edgeID].inFlight {
		if sp.first <= seq && seq <= sp.last {
			return true
		}
	}
	return false
}

// Stats returns the wait counters since New.
func (s *Store) Stats() WaitStats {
	return WaitStats{
		Woken: s.stats.woken.Load(), Polled: s.stats.polled.Load(), Extended: s.stats.extended.Load(),
		Refused: s.stats.refused.Load(), Notified: s.stats.notified.Load(),
		Waiting: s.stats.waiting.Load(), Listening: s.listening.Load(),
	}
}

// awaitMove waits, without any lock or connection held, until the edge's
// cursor may have reached first-1 (nil: retry), or until deadline with
// nothing on this central able to fill the gap at expected (errWaitOver).
// moved and known come from the snapshot taken before the attempt that
// found the gap. Past the deadline it keeps waiting as long as a call
// covering expected is in flight here: refusing would only make the edge
// resend what is about to fit.
func (s *Store) awaitMove(ctx context.Context, edgeID string, first, expected uint64, moved <-chan struct{}, known uint64, deadline time.Time) error {
	if known+1 >= first {
		return nil // moved between the snapshot and the attempt's read
	}
	s.stats.waiting.Add(1)
	defer s.stats.waiting.Add(-1)
	for {
		var poll <-chan time.Time
		if !s.listening.Load() {
			t := time.NewTimer(s.opts.GapPoll)
			poll = t.C
			defer t.Stop()
		}
		over := time.NewTimer(time.Until(deadline))
		select {
		case <-ctx.Done():
			over.Stop()
			return ctx.Err()
		case <-moved:
			over.Stop()
			var now uint64
			moved, now = s.waits.snapshot(edgeID)
			if now > known && now+1 < first {
				// Moved, not far enough: no use reading it again.
				known = now
				continue
			}
			s.stats.woken.Add(1)
			return nil
		case <-poll:
			over.Stop()
			s.stats.polled.Add(1)
			return nil
		case <-over.C:
			if !s.waits.filling(edgeID, expected) {
				return errWaitOver
			}
			s.stats.extended.Add(1)
			deadline = time.Now().Add(s.opts.GapWait)
		}
	}
}

// Listen keeps a connection LISTENing on CursorChannel and wakes the
// batches waiting on this central when another central (or this one)
// moves their edge's cursor, until ctx ends. While it is down, waiting
// batches fall back to re-reading the cursor every GapPoll; each failure
// is logged. It returns nil when ctx ends.
func (s *Store) Listen(ctx context.Context) error {
	wait := 100 * time.Millisecond
	for {
		listened, err := s.listenOnce(ctx)
		s.listening.Store(false)
		s.waits.wakeAll()
		if ctx.Err() != nil {
			return nil
		}
		if listened {
			wait = 100 * time.Millisecond
		}
		s.opts.Logger.WarnContext(ctx, "cursor listener down: batches waiting for a predecessor poll the cursor",
			"error", err, "poll", s.opts.GapPoll, "retry_in", wait)
		if !sleep(ctx, wait) {
			return nil
		}
		wait = min(wait*2, DefaultListenRetryMax)
	}
}

// listenOnce runs one listener connection until it fails; listened says
// whether LISTEN took effect.
func (s *Store) listenOnce(ctx context.Context) (listened bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return false, translate("listen connect", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "LISTEN "+CursorChannel); err != nil {
		return false, translate("listen", err)
	}
	s.listening.Store(true)
	// Moves committed before LISTEN took effect were not notified here.
	s.waits.wakeAll()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, translate("wait for notification", err)
		}
		s.stats.notified.Add(1)
		seqText, edgeID, ok := strings.Cut(n.Payload, " ")
		seq, perr := strconv.ParseUint(seqText, 10, 64)
		if !ok || perr != nil {
			s.opts.Logger.WarnContext(ctx, "cursor notification not understood", "payload", n.Payload)
			continue
		}
		s.waits.advance(edgeID, seq)
	}
}

// notifyPayload is CursorChannel's payload for edgeID's cursor at seq.
func notifyPayload(edgeID string, seq uint64) string {
	return strconv.FormatUint(seq, 10) + " " + edgeID
}
