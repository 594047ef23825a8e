package main

import (
	"github.com/chasqui/chasqui/internal/proccpu"

	"context"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chasqui/chasqui/internal/pglsn"
)

// The census of one measurement: what a row costs beside its rate, so a
// gap to the copy line can be explained from the same run. Each figure is
// the difference over the timed batches (the warm-up excluded).

// wire counts what a pool's connections write: bytes, and writes, one per
// flush of pgx's buffer, so one per round trip.
type wire struct{ bytes, writes atomic.Int64 }

type countingConn struct {
	net.Conn
	w *wire
}

func (c countingConn) Write(b []byte) (int, error) {
	c.w.writes.Add(1)
	n, err := c.Conn.Write(b)
	c.w.bytes.Add(int64(n))
	return n, err
}

// count makes cfg's connections count into w.
func (w *wire) count(cfg *pgxpool.Config) {
	dial := cfg.ConnConfig.DialFunc
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{Conn: c, w: w}, nil
	}
}

// sample is the state the census takes differences of.
type sample struct {
	clientCPU, serverCPU time.Duration
	backendCPU           time.Duration // the database's backends only
	wal                  uint64
	mallocs, allocBytes  uint64
	sent, writes         int64
}

type meter struct {
	postmaster int
	db         string        // the database's name: its backends show it
	pool       *pgxpool.Pool // reads the WAL position
	wire       *wire
}

func (m meter) take(ctx context.Context) (sample, error) {
	var s sample
	var lsn string
	if err := m.pool.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
		return s, fmt.Errorf("read wal position: %w", err)
	}
	var err error
	if s.wal, err = pglsn.Parse(lsn); err != nil {
		return s, err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.mallocs, s.allocBytes = ms.Mallocs, ms.TotalAlloc
	s.clientCPU, s.serverCPU, s.backendCPU = proccpu.Self(), proccpu.Tree(m.postmaster, ""), proccpu.Tree(m.postmaster, " "+m.db+" ")
	s.sent, s.writes = m.wire.bytes.Load(), m.wire.writes.Load()
	return s, nil
}

// report prints the census of name's rows between a and b over batches.
func (a sample) report(name string, b sample, rows, batches int) {
	per := func(v float64) float64 { return v / float64(rows) }
	us := func(d time.Duration) float64 { return per(float64(d) / float64(time.Microsecond)) }
	fmt.Printf("BENCH %s_client_cpu_us_per_row %.2f us\n", name, us(b.clientCPU-a.clientCPU))
	fmt.Printf("BENCH %s_postgres_cpu_us_per_row %.2f us (%.2f in its backends)\n", name, us(b.serverCPU-a.serverCPU), us(b.backendCPU-a.backendCPU))
	fmt.Printf("BENCH %s_wal_bytes_per_row %.0f bytes\n", name, per(float64(b.wal-a.wal)))
	fmt.Printf("BENCH %s_sent_bytes_per_row %.0f bytes\n", name, per(float64(b.sent-a.sent)))
	fmt.Printf("BENCH %s_writes_per_batch %.1f writes (round trips)\n", name, float64(b.writes-a.writes)/float64(batches))
	fmt.Printf("BENCH %s_allocs_per_row %.1f allocs (%.0f bytes)\n", name, per(float64(b.mallocs-a.mallocs)), per(float64(b.allocBytes-a.allocBytes)))
}
