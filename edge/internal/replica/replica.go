// Package replica watches the site's read replica of central's database
// (docs/design.md, "Guarantees" 7): it polls pg_last_wal_replay_lsn() and
// pg_last_xact_replay_timestamp(), tells the store how far the replica has
// replayed (every committed transaction whose commit LSN is at or below it
// is visible there), and keeps the replica's state and lag for the status.
//
// The watcher runs beside the write path and never blocks it: it holds one
// connection of its own, each poll is bounded by a timeout, and an
// unreachable replica is a state to report, not an error to return.
package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chasqui/chasqui/internal/pglsn"
)

// States of the replica.
const (
	StateDisabled    = "disabled"    // no replica configured
	StateConnecting  = "connecting"  // not polled yet
	StateConnected   = "connected"   // the last poll succeeded
	StateUnreachable = "unreachable" // the last poll failed; Err says why
)

// Acked is what the store knows of central's acknowledgements.
type Acked struct {
	// Newest is the newest commit LSN central acknowledged (0: none).
	Newest uint64
	// OldestUnreplayed is when the edge received the oldest acknowledged
	// commit whose LSN is past the replay LSN (zero when there is none).
	OldestUnreplayed time.Time
}

// Commits is what the watcher needs of the store (the queue implements it).
type Commits interface {
	// Replayed records that the replica has replayed through lsn: every
	// committed transaction with commit LSN <= lsn becomes VISIBLE. It is
	// called after every poll (with the last known LSN while the replica is
	// unreachable; 0 before the first) and must be idempotent.
	Replayed(lsn uint64) (Acked, error)
}

// Config configures a Watcher. The zero value of each field means its default.
type Config struct {
	// URL is the replica's PostgreSQL URL. Required. It may hold a
	// password: it is never logged.
	URL string
	// Commits is told each replay LSN; nil: nothing becomes visible and lag
	// in bytes and seconds stays 0.
	Commits Commits
	// Interval is the time between polls. Default 200ms.
	Interval time.Duration
	// MaxInterval bounds the backoff between polls of an unreachable
	// replica. Default 5s.
	MaxInterval time.Duration
	// Timeout bounds one poll, connecting included. Default 2s.
	Timeout time.Duration
	// Logger receives state changes. Required.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Interval == 0 {
		c.Interval = 200 * time.Millisecond
	}
	if c.MaxInterval == 0 {
		c.MaxInterval = 5 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate names the first unusable field.
func (c Config) Validate() error {
	c.setDefaults()
	switch {
	case c.URL == "":
		return errors.New("replica: URL (--replica-url) is required")
	case c.Logger == nil:
		return errors.New("replica: Logger is required")
	case c.Interval < 0 || c.MaxInterval < c.Interval || c.Timeout <= 0:
		return errors.New("replica: Interval, MaxInterval and Timeout must be positive, MaxInterval >= Interval")
	}
	if _, err := pgx.ParseConfig(c.URL); err != nil {
		return errors.New("replica: URL (--replica-url) is not a PostgreSQL URL")
	}
	return nil
}

// Status is the replica as last seen.
type Status struct {
	State string
	// Err is why the last poll failed (StateUnreachable).
	Err string
	// ReplayLSN is the last replayed LSN seen (kept while unreachable).
	ReplayLSN uint64
	// ReplayTimestamp is pg_last_xact_replay_timestamp(): the primary's
	// commit time of the last transaction replayed (zero when unknown).
	ReplayTimestamp time.Time
	// NewestAcked is the newest LSN central acknowledged.
	NewestAcked uint64
	// LagBytes is NewestAcked - ReplayLSN (0 when replayed past it).
	LagBytes uint64
	// LagSeconds is 0 when ReplayLSN >= NewestAcked, else the age of the
	// oldest acknowledged commit not replayed yet.
	LagSeconds float64
	// CheckedAt is when the last poll ended; Since when the state began.
	CheckedAt, Since time.Time
}

// Watcher polls the replica. Build it with New, run it with Run.
type Watcher struct {
	cfg Config
	log *slog.Logger

	conn *pgx.Conn // owned by Run's goroutine

	mu      sync.Mutex
	st      Status
	oldest  time.Time     // Acked.OldestUnreplayed of the last poll
	changed chan struct{} // closed and replaced after every poll
}

// New checks cfg and returns a watcher that has not polled yet.
func New(cfg Config) (*Watcher, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Watcher{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "replica"),
		st:      Status{State: StateConnecting, Since: cfg.Now()},
		changed: make(chan struct{}),
	}, nil
}

// Status returns the replica's state and lag now. A nil watcher reports
// StateDisabled.
func (w *Watcher) Status() Status {
	if w == nil {
		return Status{State: StateDisabled}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.st
	// Lag in seconds grows between polls (and while unreachable).
	if st.ReplayLSN < st.NewestAcked && !w.oldest.IsZero() {
		st.LagSeconds = max(0, w.cfg.Now().Sub(w.oldest).Seconds())
	}
	return st
}

// Changed is closed after the next poll: wait on it, then call Status.
func (w *Watcher) Changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}

// Run polls until ctx is done, then closes its connection and returns nil.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.closeConn()
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		if err := w.poll(ctx); err != nil && ctx.Err() == nil {
			// Back off while unreachable: doubling, bounded.
			wait = min(max(2*wait, w.cfg.Interval), w.cfg.MaxInterval)
		} else {
			wait = w.cfg.Interval
		}
	}
}

// poll reads the replica once and records what it saw.
func (w *Watcher) poll(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	lsn, ts, err := w.read(pctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	w.mu.Lock()
	prev := w.st
	w.mu.Unlock()
	if err != nil {
		w.closeConn()
		lsn, ts = prev.ReplayLSN, prev.ReplayTimestamp
	}
	var acked Acked
	if w.cfg.Commits != nil {
		var cerr error
		if acked, cerr = w.cfg.Commits.Replayed(lsn); cerr != nil {
			w.log.Error("recording the replay LSN failed", "replay_lsn", FormatLSN(lsn), "err", cerr)
			acked = Acked{Newest: prev.NewestAcked}
		}
	}
	now := w.cfg.Now()
	st := Status{
		State: StateConnected, ReplayLSN: lsn, ReplayTimestamp: ts,
		NewestAcked: acked.Newest, CheckedAt: now, Since: prev.Since,
	}
	if err != nil {
		st.State, st.Err = StateUnreachable, err.Error()
	}
	if st.State != prev.State {
		st.Since = now
		if err != nil {
			w.log.Warn("replica unreachable; reads fall back to central", "err", err)
		} else {
			w.log.Info("replica connected", "replay_lsn", FormatLSN(lsn))
		}
	}
	if acked.Newest > lsn {
		st.LagBytes = acked.Newest - lsn
	}
	w.mu.Lock()
	w.st, w.oldest = st, acked.OldestUnreplayed
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
	return err
}

// read connects when needed and reads the replay position. A server that
// is not in recovery (the edge pointed at a primary) has replayed all it
// has: its current WAL position stands for the replay LSN.
func (w *Watcher) read(ctx context.Context) (uint64, time.Time, error) {
	if w.conn == nil {
		cfg, err := pgx.ParseConfig(w.cfg.URL)
		if err != nil {
			return 0, time.Time{}, errors.New("replica URL does not parse")
		}
		cfg.RuntimeParams["application_name"] = "chasqui-edge-replica-watcher"
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return 0, time.Time{}, fmt.Errorf("connect: %w", err)
		}
		w.conn = conn
	}
	var (
		lsn string
		ts  *time.Time
	)
	err := w.conn.QueryRow(ctx, `SELECT
		coalesce(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END, '0/0')::text,
		pg_last_xact_replay_timestamp()`).Scan(&lsn, &ts)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("query: %w", err)
	}
	v, err := ParseLSN(lsn)
	if err != nil {
		return 0, time.Time{}, err
	}
	var at time.Time
	if ts != nil {
		at = *ts
	}
	return v, at, nil
}

func (w *Watcher) closeConn() {
	if w.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = w.conn.Close(ctx)
		cancel()
		w.conn = nil
	}
}

// ParseLSN parses PostgreSQL's text form of an LSN ("16/B374D848").
func ParseLSN(s string) (uint64, error) { return pglsn.Parse(s) }

// FormatLSN is the inverse of ParseLSN.
func FormatLSN(v uint64) string { return pglsn.Format(v) }
