// Package faultproxy is a TCP fault proxy (Shopify's toxiproxy, in process)
// for tests: link outages, latency, narrow bandwidth, resets and cut calls
// between an edge and central, with counts of what crossed the wire. The
// edge's forwarder tests and the system tests (systest/e2e) use it.
package faultproxy

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"
)

// Proxy is a TCP fault proxy (Shopify's toxiproxy, in process) on the WAN
// link between edge and central. It counts what goes through it: TCP
// connections accepted, upstream dials that failed, and gRPC requests (HTTP/2
// HEADERS frames from the client), so tests can bound retry rates as seen on
// the wire, independent of what the services log about themselves.
type Proxy struct {
	t      testing.TB
	p      *toxiproxy.Proxy
	listen string
	stats  *ProxyStats

	mu       sync.Mutex
	down     bool
	seq      int
	refuser  net.Listener  // while down: accepts and closes, counting
	refuserW chan struct{} // closed when the refuser's accept loop ends
}

// ProxyStats counts traffic through the proxy.
type ProxyStats struct {
	Connections  atomic.Int64 // client connections accepted
	DialFailures atomic.Int64 // accepted, but the upstream refused
	Requests     atomic.Int64 // HTTP/2 HEADERS frames client->server (gRPC calls)
	Refused      atomic.Int64 // connection attempts while the link was down
}

// Snapshot is a point-in-time copy of ProxyStats.
type Snapshot struct {
	At                                           time.Time
	Connections, DialFailures, Requests, Refused int64
}

// Attempts is everything that reached the server side of the proxy: calls,
// connections, and connection attempts refused while the link was down.
func (s Snapshot) Attempts() int64 { return s.Connections + s.Requests + s.Refused }

// Sub returns the counts of b-a and their rate per second.
func (s Snapshot) Sub(a Snapshot) (d Snapshot, connPerSec, reqPerSec float64) {
	d = Snapshot{
		At:           s.At,
		Connections:  s.Connections - a.Connections,
		DialFailures: s.DialFailures - a.DialFailures,
		Requests:     s.Requests - a.Requests,
		Refused:      s.Refused - a.Refused,
	}
	secs := s.At.Sub(a.At).Seconds()
	if secs > 0 {
		connPerSec = float64(d.Connections) / secs
		reqPerSec = float64(d.Requests) / secs
	}
	return d, connPerSec, reqPerSec
}

func (s Snapshot) String() string {
	return fmt.Sprintf("connections=%d dial_failures=%d requests=%d refused_while_down=%d",
		s.Connections, s.DialFailures, s.Requests, s.Refused)
}

// counters by proxy name: toxiproxy instantiates toxics from JSON by type,
// so the request counter finds its ProxyStats through the name it carries.
var proxyCounters sync.Map // string -> *ProxyStats

func init() {
	toxics.Register("chasqui_h2count", new(h2CountToxic))
	toxics.Register("chasqui_h2cut", new(h2CutToxic))
}

var proxySeq atomic.Int64

// New starts a proxy on a free 127.0.0.1 port forwarding to upstream,
// stopped when t ends.
func New(t testing.TB, upstream string) *Proxy {
	t.Helper()
	name := fmt.Sprintf("wan-%d", proxySeq.Add(1))
	stats := &ProxyStats{}
	proxyCounters.Store(name, stats)
	logger := zerolog.New(zerolog.Nop()).Hook(countHook{stats}).Level(zerolog.InfoLevel)
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), logger)
	tp := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := tp.Start(); err != nil {
		t.Fatalf("faultproxy: starting proxy: %v", err)
	}
	p := &Proxy{t: t, p: tp, listen: tp.Listen, stats: stats}
	// Keep the listen address across Down/Up: the edge dials it by address.
	tp.Listen = p.listen
	p.addToxic("h2count", "chasqui_h2count", "upstream", map[string]any{"proxy": name})
	t.Cleanup(func() {
		p.mu.Lock()
		if p.refuser != nil {
			_ = p.refuser.Close()
			<-p.refuserW
		}
		p.mu.Unlock()
		tp.Stop()
		proxyCounters.Delete(name)
	})
	return p
}

// Addr is where the edge must dial to reach central through the proxy.
func (p *Proxy) Addr() string { return p.listen }

// Stats returns the current counts.
func (p *Proxy) Stats() Snapshot {
	return Snapshot{
		At:           time.Now(),
		Connections:  p.stats.Connections.Load(),
		DialFailures: p.stats.DialFailures.Load(),
		Requests:     p.stats.Requests.Load(),
		Refused:      p.stats.Refused.Load(),
	}
}

// Down cuts the link: every open connection is closed and, until Up, a
// listener on the same address accepts each connection attempt and closes
// it at once, counting it (Refused), so tests can bound the rate at which
// clients knock on a dead link.
func (p *Proxy) Down() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return
	}
	p.p.Stop()
	p.down = true
	lis := p.listenRetry()
	p.refuser, p.refuserW = lis, make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			p.stats.Refused.Add(1)
			_ = c.Close()
		}
	}(p.refuserW)
}

// listenRetry listens on the proxy's address; the port was ours a moment
// ago, so retry briefly in case the kernel has not released it yet.
func (p *Proxy) listenRetry() net.Listener {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		lis, err := net.Listen("tcp", p.listen)
		if err == nil {
			return lis
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("faultproxy: proxy down-listener on %s: %v", p.listen, err)
		}
		time.Sleep(50 * time.Millisecond) // retry interval, not a wait for state
	}
}

// Up restores the link on the same address.
func (p *Proxy) Up() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.down {
		return
	}
	if p.refuser != nil {
		_ = p.refuser.Close()
		<-p.refuserW
		p.refuser = nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.p.Listen = p.listen
		err := p.p.Start()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("faultproxy: proxy up on %s: %v", p.listen, err)
		}
		time.Sleep(50 * time.Millisecond) // retry interval, not a wait for state
	}
	p.down = false
}

// SetUpstream points the proxy at another upstream; connections made from
// now on go there (open ones are closed: the proxy restarts).
func (p *Proxy) SetUpstream(addr string) {
	p.t.Helper()
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if !down {
		p.Down()
	}
	p.mu.Lock()
	p.p.Upstream = addr
	p.mu.Unlock()
	p.Up()
}

// Latency delays data both ways by ms +/- jitter milliseconds (so a round
// trip costs about 2*ms). Returns a func removing it.
func (p *Proxy) Latency(ms, jitter int) (remove func()) {
	a := p.addToxic("", "latency", "upstream", map[string]any{"latency": ms, "jitter": jitter})
	b := p.addToxic("", "latency", "downstream", map[string]any{"latency": ms, "jitter": jitter})
	return func() { p.removeToxic(a); p.removeToxic(b) }
}

// Bandwidth limits both directions to kbPerSec KB/s.
func (p *Proxy) Bandwidth(kbPerSec int) (remove func()) {
	a := p.addToxic("", "bandwidth", "upstream", map[string]any{"rate": kbPerSec})
	b := p.addToxic("", "bandwidth", "downstream", map[string]any{"rate": kbPerSec})
	return func() { p.removeToxic(a); p.removeToxic(b) }
}

// Blackhole makes the link half-open: connections are accepted but no data
// flows in either direction, and after timeoutMs (0: never) the connection
// is closed. Removing the toxic closes the connections it held.
func (p *Proxy) Blackhole(timeoutMs int) (remove func()) {
	a := p.addToxic("", "timeout", "upstream", map[string]any{"timeout": timeoutMs})
	b := p.addToxic("", "timeout", "downstream", map[string]any{"timeout": timeoutMs})
	return func() { p.removeToxic(a); p.removeToxic(b) }
}

// DropAnswers lets requests through but drops every answer (server to
// client): calls reach central and commit, their acks are lost. Removing it
// closes the connections it held.
func (p *Proxy) DropAnswers() (remove func()) {
	a := p.addToxic("", "timeout", "downstream", map[string]any{"timeout": 0})
	return func() { p.removeToxic(a) }
}

// ResetPeer resets connections (TCP RST) timeoutMs after data arrives from
// the given direction ("upstream": requests; "downstream": answers).
func (p *Proxy) ResetPeer(direction string, timeoutMs int) (remove func()) {
	a := p.addToxic("", "reset_peer", direction, map[string]any{"timeout": timeoutMs})
	return func() { p.removeToxic(a) }
}

// CutCalls lets connections set up (the HTTP/2 handshake passes) and closes
// each one as soon as a call's HEADERS frame arrives, before the server sees
// it: every attempt fails with UNAVAILABLE on the client side while the
// proxy's request counter still counts it. Returns a func removing it.
func (p *Proxy) CutCalls() (remove func()) {
	a := p.addToxic("", "chasqui_h2cut", "upstream", map[string]any{})
	// The toxic parses frames from a connection's first byte: restart the
	// proxy so that no connection predates it.
	p.Down()
	p.Up()
	return func() { p.removeToxic(a) }
}

// Reset removes every toxic but the request counter.
func (p *Proxy) Reset() {
	p.mu.Lock()
	var names []string
	for i := 1; i <= p.seq; i++ {
		n := fmt.Sprintf("t%d", i)
		if p.p.Toxics.GetToxic(n) != nil {
			names = append(names, n)
		}
	}
	p.mu.Unlock()
	for _, n := range names {
		p.removeToxic(n)
	}
}

func (p *Proxy) addToxic(name, typ, direction string, attrs map[string]any) string {
	p.t.Helper()
	if name == "" {
		p.mu.Lock()
		p.seq++
		name = fmt.Sprintf("t%d", p.seq)
		p.mu.Unlock()
	}
	body, err := json.Marshal(map[string]any{
		"name": name, "type": typ, "stream": direction, "toxicity": 1.0, "attributes": attrs,
	})
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(string(body))); err != nil {
		p.t.Fatalf("faultproxy: adding %s toxic: %v", typ, err)
	}
	return name
}

func (p *Proxy) removeToxic(name string) {
	if err := p.p.Toxics.RemoveToxic(context.Background(), name); err != nil && err != toxiproxy.ErrToxicNotFound {
		p.t.Errorf("faultproxy: removing toxic %s: %v", name, err)
	}
}

// countHook counts toxiproxy's own log events: one "Accepted client" per
// TCP connection, one "Unable to open connection to upstream" per refused
// upstream dial.
type countHook struct{ s *ProxyStats }

func (h countHook) Run(_ *zerolog.Event, _ zerolog.Level, msg string) {
	switch msg {
	case "Accepted client":
		h.s.Connections.Add(1)
	case "Unable to open connection to upstream":
		h.s.DialFailures.Add(1)
	}
}

// h2CountToxic passes data through unchanged while parsing the client's
// HTTP/2 frames, counting HEADERS frames: a gRPC client sends exactly one
// per call (it never sends trailers), so this counts calls on the wire.
type h2CountToxic struct {
	Proxy string `json:"proxy"`
}

type h2State struct {
	preface int    // preface bytes still to skip
	buf     []byte // partial frame header
	skip    int    // payload bytes still to skip
}

func (t *h2CountToxic) NewState() any { return &h2State{preface: 24} }

func (t *h2CountToxic) Pipe(stub *toxics.ToxicStub) {
	var stats *ProxyStats
	if v, ok := proxyCounters.Load(t.Proxy); ok {
		stats = v.(*ProxyStats)
	}
	st, _ := stub.State.(*h2State)
	if st == nil {
		st = &h2State{preface: 24}
		stub.State = st
	}
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			if stats != nil {
				stats.Requests.Add(int64(st.feed(c.Data)))
			}
			stub.Output <- c
		}
	}
}

// feed consumes client bytes and returns how many HEADERS frames began.
func (s *h2State) feed(b []byte) int {
	n := 0
	for len(b) > 0 {
		switch {
		case s.preface > 0:
			k := min(s.preface, len(b))
			s.preface -= k
			b = b[k:]
		case s.skip > 0:
			k := min(s.skip, len(b))
			s.skip -= k
			b = b[k:]
		default:
			k := min(9-len(s.buf), len(b))
			s.buf = append(s.buf, b[:k]...)
			b = b[k:]
			if len(s.buf) == 9 {
				length := int(binary.BigEndian.Uint32(append([]byte{0}, s.buf[:3]...)))
				if s.buf[3] == 0x1 { // HEADERS
					n++
				}
				s.skip = length
				s.buf = s.buf[:0]
			}
		}
	}
	return n
}

var _ toxics.StatefulToxic = (*h2CountToxic)(nil)

// h2CutToxic forwards client bytes until a HEADERS frame begins, then
// closes the connection (the chunk holding it is dropped).
type h2CutToxic struct{}

func (t *h2CutToxic) NewState() any { return &h2State{preface: 24} }

func (t *h2CutToxic) Pipe(stub *toxics.ToxicStub) {
	st, _ := stub.State.(*h2State)
	if st == nil {
		st = &h2State{preface: 24}
		stub.State = st
	}
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil || st.feed(c.Data) > 0 {
				stub.Close()
				return
			}
			stub.Output <- c
		}
	}
}

var _ toxics.StatefulToxic = (*h2CutToxic)(nil)
