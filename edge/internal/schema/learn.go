package schema

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
)

// Defaults of LearnerConfig.
const (
	// DefaultMinRefreshInterval is LearnerConfig.MinRefreshInterval.
	DefaultMinRefreshInterval = 5 * time.Second
	// DefaultFetchTimeout is LearnerConfig.FetchTimeout.
	DefaultFetchTimeout = 15 * time.Second
	// DefaultRetryMax is LearnerConfig.RetryMax.
	DefaultRetryMax = time.Minute
)

// SQLSTATEs of central's rejections that say the edge's schema may be
// stale: a table or column it does not know, or a table no longer allowed.
const (
	sqlstateUndefinedTable  = "42P01"
	sqlstateUndefinedColumn = "42703"
	sqlstateNotAllowed      = "42501"
)

// StaleSchema tells whether a rejection by central with this SQLSTATE
// means the schema the edge holds may be out of date (a migration ran, the
// allow-list changed): the edge then learns it again.
func StaleSchema(sqlstate string) bool {
	switch sqlstate {
	case sqlstateUndefinedTable, sqlstateUndefinedColumn, sqlstateNotAllowed:
		return true
	}
	return false
}

// Conn is the connection state the learner watches to refresh after each
// reconnection (*grpc.ClientConn implements it).
type Conn interface {
	GetState() connectivity.State
	WaitForStateChange(ctx context.Context, s connectivity.State) bool
}

// LearnerConfig configures a Learner. The zero value of each field means
// its default.
type LearnerConfig struct {
	// EdgeID is sent with each GetSchema. Required.
	EdgeID string
	// MinRefreshInterval is the least time between two fetches: rejections
	// of many rows, or many refused Submits, make one fetch. Default
	// DefaultMinRefreshInterval (5 s, central's own re-read limit).
	MinRefreshInterval time.Duration
	// FetchTimeout bounds one GetSchema call, waiting for the link
	// included. Default DefaultFetchTimeout (15 s).
	FetchTimeout time.Duration
	// RetryMax caps the backoff between failed fetches (exponential from
	// MinRefreshInterval, jittered). Default DefaultRetryMax (1 min).
	RetryMax time.Duration
}

// Learner keeps a Cache up to date from central: at start, after each
// reconnection of the link, and when asked (Refresh). It never blocks the
// caller of Refresh; Submit never waits for it.
type Learner struct {
	cfg    LearnerConfig
	cache  *Cache
	client centralv1.IngestServiceClient
	conn   Conn
	log    *slog.Logger
	kick   chan struct{}
}

// NewLearner learns into cache over cc, the forwarder's connection (same
// link and credentials: central authorizes GetSchema for the edge id as it
// does Commit). conn, usually cc itself, may be nil: no refresh on
// reconnection then. The cache's refusals of unknown tables and columns
// ask for a refresh too.
func NewLearner(cfg LearnerConfig, cache *Cache, cc grpc.ClientConnInterface, conn Conn, logger *slog.Logger) (*Learner, error) {
	if cfg.EdgeID == "" {
		return nil, errors.New("schema: LearnerConfig.EdgeID is required")
	}
	if cache == nil || cc == nil || logger == nil {
		return nil, errors.New("schema: cache, connection and logger are required")
	}
	if cfg.MinRefreshInterval <= 0 {
		cfg.MinRefreshInterval = DefaultMinRefreshInterval
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = DefaultFetchTimeout
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	l := &Learner{
		cfg:    cfg,
		cache:  cache,
		client: centralv1.NewIngestServiceClient(cc),
		conn:   conn,
		log:    logger.With("component", "schema"),
		kick:   make(chan struct{}, 1),
	}
	refresh := l.Refresh
	cache.onUnknown.Store(&refresh)
	return l, nil
}

// Refresh asks for a fetch as soon as the rate limit allows; requests
// while one is pending are one request.
func (l *Learner) Refresh() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Run fetches at once, then on every Refresh and reconnection, until ctx
// ends; it returns nil then. A failed fetch is logged and retried with
// backoff.
func (l *Learner) Run(ctx context.Context) error {
	if l.conn != nil {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			l.watch(ctx)
		}()
	}
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     l.cfg.MinRefreshInterval,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         l.cfg.RetryMax,
	}
	l.Refresh()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.kick:
		}
		if wait := time.Until(last.Add(l.cfg.MinRefreshInterval)); wait > 0 && !sleep(ctx, wait) {
			return nil
		}
		bo.Reset()
		for {
			last = time.Now()
			err := l.fetch(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			wait := bo.NextBackOff()
			l.log.Warn("could not learn the schema from central; retrying", "err", err, "retry_in", wait,
				"known_version", l.cache.Version())
			if !sleep(ctx, wait) {
				return nil
			}
		}
	}
}

func (l *Learner) fetch(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, l.cfg.FetchTimeout)
	defer cancel()
	known := l.cache.Version()
	resp, err := l.client.GetSchema(cctx, &centralv1.GetSchemaRequest{EdgeId: l.cfg.EdgeID, KnownVersion: known})
	if err != nil {
		return err
	}
	now := time.Now()
	if resp.GetUnchanged() && known != "" {
		return l.cache.Confirm(now)
	}
	s := resp.GetSchema()
	if s == nil {
		return errors.New("central answered GetSchema without a schema")
	}
	if err := l.cache.Set(s, now); err != nil {
		return err
	}
	l.log.Info("learned the schema from central", "version", s.GetVersion(), "previous_version", known,
		"tables", len(s.GetTables()))
	return nil
}

// watch asks for a refresh each time the link becomes READY again after it
// was READY once: a reconnection may follow a central restart, and with it
// a migration. The first READY is the start's own fetch.
func (l *Learner) watch(ctx context.Context) {
	wasReady := false
	st := l.conn.GetState()
	for {
		if st == connectivity.Ready {
			if wasReady {
				l.Refresh()
			}
			wasReady = true
		}
		if !l.conn.WaitForStateChange(ctx, st) {
			return // ctx ended
		}
		st = l.conn.GetState()
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
