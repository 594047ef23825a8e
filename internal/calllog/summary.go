package calllog

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultSummaryInterval is how often a server logs its calls summary.
const DefaultSummaryInterval = time.Minute

// SummaryMessage is the message of the summary line.
const SummaryMessage = "calls served"

// Summary counts served calls by method and outcome, so that an operator
// at INFO still sees the traffic (one line per interval, not per call).
// The zero value is ready; a nil *Summary counts nothing.
type Summary struct {
	mu sync.RWMutex
	m  map[string]*counts
}

type counts struct{ calls, failed atomic.Int64 }

// add counts one call. A map read under a read lock: no allocation once
// the method has been seen.
func (s *Summary) add(method string, failed bool) {
	if s == nil {
		return
	}
	s.mu.RLock()
	c := s.m[method]
	s.mu.RUnlock()
	if c == nil {
		s.mu.Lock()
		if s.m == nil {
			s.m = map[string]*counts{}
		}
		if c = s.m[method]; c == nil {
			c = &counts{}
			s.m[method] = c
		}
		s.mu.Unlock()
	}
	c.calls.Add(1)
	if failed {
		c.failed.Add(1)
	}
}

// Run logs, every interval until ctx is done, one INFO line with the calls
// since the last line, by method: calls and failed. Idle intervals log
// nothing; the last calls are logged when ctx ends.
func (s *Summary) Run(ctx context.Context, logger *slog.Logger, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.log(context.WithoutCancel(ctx), logger, interval)
			return
		case <-t.C:
			s.log(ctx, logger, interval)
		}
	}
}

func (s *Summary) log(ctx context.Context, logger *slog.Logger, interval time.Duration) {
	s.mu.RLock()
	methods := make([]string, 0, len(s.m))
	for m := range s.m {
		methods = append(methods, m)
	}
	s.mu.RUnlock()
	sort.Strings(methods)
	var calls, failed int64
	var by []any
	for _, m := range methods {
		s.mu.RLock()
		c := s.m[m]
		s.mu.RUnlock()
		n, f := c.calls.Swap(0), c.failed.Swap(0)
		if n == 0 {
			continue
		}
		calls, failed = calls+n, failed+f
		by = append(by, slog.Group(m, slog.Int64("calls", n), slog.Int64("failed", f)))
	}
	if calls == 0 {
		return
	}
	logger.LogAttrs(ctx, slog.LevelInfo, SummaryMessage, slog.Duration("interval", interval),
		slog.Int64("calls", calls), slog.Int64("failed", failed), slog.Group("methods", by...))
}
