package store

import (
	"context"
	"time"
)

// pruneChunk bounds one DELETE, so pruning never holds many row locks or
// one long transaction.
const pruneChunk = 10000

// Prune deletes outcomes older than retention and returns how many. The
// cursor keeps in-order resends exactly-once without them.
func (s *Store) Prune(ctx context.Context, retention time.Duration) (int64, error) {
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, `
			DELETE FROM chasqui.applied_transactions
			WHERE ctid = ANY(ARRAY(
				SELECT ctid FROM chasqui.applied_transactions
				WHERE applied_at < now() - make_interval(secs => $1)
				LIMIT $2))`, retention.Seconds(), pruneChunk)
		if err != nil {
			return total, translate("prune", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < pruneChunk {
			return total, nil
		}
	}
}

// RunPruner prunes every interval until ctx is done; failures are logged
// and retried at the next tick.
func (s *Store) RunPruner(ctx context.Context, interval, retention time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n, err := s.Prune(ctx, retention)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.opts.Logger.WarnContext(ctx, "pruning applied transactions", "error", err)
			continue
		}
		if n > 0 {
			s.opts.Logger.InfoContext(ctx, "pruned applied transactions", "rows", n, "retention", retention)
		}
	}
}
