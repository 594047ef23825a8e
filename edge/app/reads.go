package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/chasqui/chasqui/edge/internal/api"
	"github.com/chasqui/chasqui/edge/internal/queue"
	"github.com/chasqui/chasqui/edge/internal/reads"
	"github.com/chasqui/chasqui/edge/internal/replica"
	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
)

// This file wires the read side (docs/design.md, "Guarantees" 7 and 8): the site
// replica's watcher, which turns COMMITTED transactions VISIBLE from the
// replay LSN, and the reads of EdgeService, which merge the replica (or
// central's ReadService over the forwarder's link when there is no replica
// or it is down) with the edge's buffer.

// readSide is the App's read wiring; the zero value is "not opened".
type readSide struct {
	watcher  *replica.Watcher // nil without ReplicaURL
	pool     *pgxpool.Pool    // reads on the replica; nil without ReplicaURL
	reader   *reads.Reader
	stopping chan struct{} // closed when Run's context ends (ends watch streams)
}

// replayed adapts the queue to replica.Commits.
type replayed struct{ q *queue.Queue }

func (r replayed) Replayed(lsn uint64) (replica.Acked, error) {
	a, err := r.q.Replayed(lsn)
	return replica.Acked{Newest: a.Newest, OldestUnreplayed: a.OldestUnreplayed}, err
}

// openReads builds the watcher, the replica pool and the reader. Nothing
// connects here: an unreachable replica is a state, never a startup error.
func (a *App) openReads() error {
	a.rs.stopping = make(chan struct{})
	rc := reads.Config{Buffer: api.Buffer{Q: a.q.Reads()}, Rows: api.RowBuffer{Q: a.q.Reads()}, Tables: a.schema, Logger: a.log}
	if a.cfg.ReplicaURL != "" {
		w, err := replica.New(replica.Config{URL: a.cfg.ReplicaURL, Commits: replayed{a.q}, Logger: a.log})
		if err != nil {
			return err
		}
		pc, err := pgxpool.ParseConfig(a.cfg.ReplicaURL)
		if err != nil {
			return errors.New("config: ReplicaURL (--replica-url) is not a PostgreSQL URL")
		}
		pc.MaxConns = 4
		pc.ConnConfig.ConnectTimeout = 2 * time.Second
		pc.ConnConfig.RuntimeParams["application_name"] = "chasqui-edge-reads"
		// Rows read back with timestamptz in UTC, as central answers them.
		pc.ConnConfig.RuntimeParams["timezone"] = "UTC"
		pool, err := pgxpool.NewWithConfig(context.Background(), pc)
		if err != nil {
			return fmt.Errorf("replica pool: %w", err)
		}
		a.rs.watcher, a.rs.pool = w, pool
		rc.Replica = pool
		rc.ReplicaUp = func() bool { return w.Status().State != replica.StateUnreachable }
	}
	if a.central != nil {
		rc.Central = centralv1.NewReadServiceClient(a.central)
	}
	r, err := reads.New(rc)
	if err != nil {
		return err
	}
	a.rs.reader = r
	return nil
}

// apiOptions are the read side's parts of the gRPC services.
func (a *App) apiOptions() api.Options {
	o := api.Options{Reads: a.rs.reader, Stopping: a.rs.stopping, Schema: a.schema}
	if a.rs.watcher != nil {
		o.Replica = a.rs.watcher
	}
	return o
}

// runReads runs the watcher in g until ctx ends, and ends watch streams then.
func (a *App) runReads(ctx context.Context, g *errgroup.Group) {
	g.Go(func() error {
		<-ctx.Done()
		close(a.rs.stopping)
		return nil
	})
	if a.rs.watcher != nil {
		g.Go(func() error { return a.rs.watcher.Run(ctx) })
	}
}

// closeReads closes the replica pool.
func (a *App) closeReads() {
	if a.rs.pool != nil {
		a.rs.pool.Close()
	}
}

// replicaStatus is the watcher for the status (reports "disabled" when nil).
func (a *App) replicaStatus() api.Replica { return a.rs.watcher }
