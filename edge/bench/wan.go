package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"
)

var (
	wanN      = flag.Int("wan-drain", 100_000, "backlog size of the drain_proxy and drain_wan figures")
	wanResetN = flag.Int("wan-reset-drain", 100_000, "backlog size of the drain_wan_reset figure (the slowest today)")
	wanBwN    = flag.Int("wan-bw-drain", 100_000, "backlog size of the drain_wan_bw figure (10 Mbit/s)")
	wanLimit  = flag.Duration("wan-timeout", 10*time.Minute, "give up on one WAN drain after this long")
	wanRounds = flag.Int("wan-rounds", 1, "rounds of the four WAN drains, alternated; the best of each is reported (a loaded machine)")
)

// The WAN the drain figures cross: the design's 250 ms round trip, a
// connection reset every 2 s, a 10 Mbit/s link.
const (
	wanOneWay     = 125 * time.Millisecond
	wanResetEvery = 2 * time.Second
	wanBwKBps     = 1250 // 10 Mbit/s in toxiproxy's KB/s (1000 bytes)
)

// wireBytes counts what crosses the bench's proxies, by direction.
var wireBytes = [2]atomic.Int64{} // 0: edge to central, 1: central to edge

// byteCountToxic passes data through unchanged, counting it.
type byteCountToxic struct {
	Dir int `json:"dir"`
}

func (t *byteCountToxic) Pipe(stub *toxics.ToxicStub) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			wireBytes[t.Dir].Add(int64(len(c.Data)))
			stub.Output <- c
		}
	}
}

func init() { toxics.Register("bench_bytes", new(byteCountToxic)) }

// wanProxy is Shopify's toxiproxy in process (as edge/faultproxy)
// between the forwarder and central.
type wanProxy struct {
	p    *toxiproxy.Proxy
	addr string
	n    int
}

var wanProxySeq atomic.Int64

func newWanProxy(upstream string) (*wanProxy, error) {
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	tp := toxiproxy.NewProxy(srv, fmt.Sprintf("bench-wan-%d", wanProxySeq.Add(1)), "127.0.0.1:0", upstream)
	if err := tp.Start(); err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	w := &wanProxy{p: tp, addr: tp.Listen}
	tp.Listen = w.addr // restarts (resets) keep the address the forwarder dials
	if err := w.toxic("bench_bytes", "upstream", map[string]any{"dir": 0}); err != nil {
		tp.Stop()
		return nil, err
	}
	if err := w.toxic("bench_bytes", "downstream", map[string]any{"dir": 1}); err != nil {
		tp.Stop()
		return nil, err
	}
	return w, nil
}

func (w *wanProxy) toxic(typ, stream string, attrs map[string]any) error {
	w.n++
	body, err := json.Marshal(map[string]any{"name": fmt.Sprintf("t%d", w.n), "type": typ, "stream": stream, "toxicity": 1.0, "attributes": attrs})
	if err != nil {
		return err
	}
	if _, err := w.p.Toxics.AddToxicJson(strings.NewReader(string(body))); err != nil {
		return fmt.Errorf("proxy: %s toxic: %w", typ, err)
	}
	return nil
}

// both adds a toxic to both directions.
func (w *wanProxy) both(typ string, attrs map[string]any) error {
	if err := w.toxic(typ, "upstream", attrs); err != nil {
		return err
	}
	return w.toxic(typ, "downstream", attrs)
}

// resetEvery closes every connection through the proxy each period
// (stop and restart on the same address) until ctx ends.
func (w *wanProxy) resetEvery(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.p.Stop()
		for ctx.Err() == nil {
			w.p.Listen = w.addr
			if err := w.p.Start(); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond) // the port is ours: retry until the kernel lets go
		}
	}
}

func (w *wanProxy) close() { w.p.Stop() }

// wanResult is what the WAN drain figures report.
type wanResult struct {
	proxy, wan, reset, bw drainResult
	upBytes, downBytes    int64 // through the bw run's proxy
	bwN                   int
}

// wanBench drains four backlogs into one central, each through a proxy of
// its own: no toxics (the reference), 125 ms each way, the same with every
// connection reset every 2 s, and 125 ms each way at 10 Mbit/s. With
// -wan-rounds above 1 it drains them again, alternated, each round from
// edges of its own, and keeps the best rate of each: on a shared machine
// a ratio of two single drains says more about the load of the moment
// than about the link.
func wanBench(dir string, logger *slog.Logger) (wanResult, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env, err := startDrainEnv(ctx, "bench-wan", logger)
	if err != nil {
		return wanResult{}, err
	}
	defer env.close()
	var res wanResult
	rate := func(d drainResult) float64 { return float64(d.n) / d.drain.Seconds() }
	for round := range max(*wanRounds, 1) {
		for _, f := range []struct {
			name  string
			n     int
			setup func(context.Context, *wanProxy) error
			out   *drainResult
		}{
			{"proxy", *wanN, func(context.Context, *wanProxy) error { return nil }, &res.proxy},
			{"wan", *wanN, func(_ context.Context, w *wanProxy) error {
				return w.both("latency", map[string]any{"latency": wanOneWay.Milliseconds()})
			}, &res.wan},
			{"wan-reset", *wanResetN, func(ctx context.Context, w *wanProxy) error {
				if err := w.both("latency", map[string]any{"latency": wanOneWay.Milliseconds()}); err != nil {
					return err
				}
				go w.resetEvery(ctx, wanResetEvery)
				return nil
			}, &res.reset},
			{"wan-bw", *wanBwN, func(_ context.Context, w *wanProxy) error {
				if err := w.both("latency", map[string]any{"latency": wanOneWay.Milliseconds()}); err != nil {
					return err
				}
				return w.both("bandwidth", map[string]any{"rate": wanBwKBps})
			}, &res.bw},
		} {
			name := f.name
			if round > 0 {
				name = fmt.Sprintf("%s-r%d", f.name, round) // an edge of its own: central keeps each one's cursor
			}
			err := func() error {
				q, fill, err := env.fill(ctx, dir+"/"+name, "bench-"+name, f.n)
				if err != nil {
					return err
				}
				defer q.Close()
				w, err := newWanProxy(env.central.GRPCAddr())
				if err != nil {
					return err
				}
				defer w.close()
				fctx, stop := context.WithCancel(ctx)
				defer stop()
				if err := f.setup(fctx, w); err != nil {
					return err
				}
				up0, down0 := wireBytes[0].Load(), wireBytes[1].Load()
				r, err := env.drain(ctx, q, w.addr, f.n, *wanLimit)
				if err != nil {
					return err
				}
				r.fill = fill
				if f.out.n > 0 && rate(r) <= rate(*f.out) {
					return nil
				}
				*f.out = r
				if f.name == "wan-bw" {
					res.upBytes, res.downBytes, res.bwN = wireBytes[0].Load()-up0, wireBytes[1].Load()-down0, f.n
				}
				return nil
			}()
			if err != nil {
				return res, fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return res, nil
}

func (r wanResult) print() {
	rate := func(d drainResult) float64 { return float64(d.n) / d.drain.Seconds() }
	p := rate(r.proxy)
	fmt.Printf("BENCH drain_proxy_tx_per_s %.0f tx/s (%d tx through the in-process proxy, no toxics)\n", p, r.proxy.n)
	fmt.Printf("BENCH drain_wan_tx_per_s %.0f tx/s (%d tx, %s each way)\n", rate(r.wan), r.wan.n, wanOneWay)
	fmt.Printf("BENCH drain_wan_vs_proxy_ratio %.2f x (goal >= 0.9)\n", rate(r.wan)/p)
	fmt.Printf("BENCH drain_wan_reset_tx_per_s %.0f tx/s (%d tx, %s each way, every connection reset every %s)\n", rate(r.reset), r.reset.n, wanOneWay, wanResetEvery)
	fmt.Printf("BENCH drain_wan_reset_vs_proxy_ratio %.2f x (goal >= 0.6)\n", rate(r.reset)/p)
	bw := rate(r.bw)
	perTx := float64(r.upBytes) / float64(max(r.bwN, 1))
	capacity := float64(wanBwKBps*1000) / max(perTx, 1) // tx/s the link carries edge to central
	fmt.Printf("BENCH drain_wan_bw_tx_per_s %.0f tx/s (%d tx, %s each way, %d kB/s = 10 Mbit/s each way)\n", bw, r.bwN, wanOneWay, wanBwKBps)
	fmt.Printf("BENCH drain_wire_bytes_per_tx %.1f B (edge to central through the proxy, per tx, in that run)\n", perTx)
	fmt.Printf("BENCH drain_wire_down_bytes_per_tx %.1f B (diagnosis: central to edge, same run)\n", float64(r.downBytes)/float64(max(r.bwN, 1)))
	fmt.Printf("BENCH drain_wan_bw_vs_goal_ratio %.2f x (of min(drain_proxy_tx_per_s, link %.0f tx/s); goal >= 0.8)\n", bw/min(p, capacity), capacity)
}
