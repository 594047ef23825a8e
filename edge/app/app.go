// Package app wires the edge process: the durable queue, the gRPC services
// (EdgeService, AdminService, health, reflection), the HTTP status server and
// the forwarder to central. It is public so that tests and fault tests can
// run an edge in-process (New, Run, Close, GRPCAddr) or through the
// chasqui-edge binary, which is a thin main around it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/chasqui/chasqui/edge/internal/api"
	"github.com/chasqui/chasqui/edge/internal/forward"
	"github.com/chasqui/chasqui/edge/internal/queue"
	"github.com/chasqui/chasqui/edge/internal/schema"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	"github.com/chasqui/chasqui/internal/grpcserver"
	"github.com/chasqui/chasqui/internal/metrics"
)

// Config configures the edge. The zero value of each field means its default.
type Config struct {
	// EdgeID identifies this edge to central; it is stamped on every
	// transaction and bound to the data directory. Required.
	EdgeID string
	// GRPCAddr is where EdgeService and AdminService listen. Default ":7444";
	// ":0" picks a free port (see App.GRPCAddr).
	GRPCAddr string
	// HTTPAddr serves /healthz, /readyz and /status. Default ":7481"; "-"
	// disables the HTTP server.
	HTTPAddr string
	// DataDir is the Badger directory of the queue. Required.
	DataDir string
	// CentralAddr is central's gRPC address. Empty runs the edge without a
	// forwarder (accept only: tests, or a site cut off by design).
	CentralAddr string

	// QueueMaxBytes bounds the payload bytes waiting for central; above it
	// Submit answers RESOURCE_EXHAUSTED. Default 1 GiB.
	QueueMaxBytes int64
	// DiskReserveBytes is the free disk space under which Submit answers
	// RESOURCE_EXHAUSTED. Default queue.DefaultDiskReserve (160 MiB: two
	// memtables, one value-log file and compaction headroom).
	DiskReserveBytes uint64
	// TxRetention is how long a settled transaction's first answer is kept
	// (resubmits deduplicated, GetTransaction answered). Default 168h (7 days).
	TxRetention time.Duration
	// PayloadRetention is how long committed payloads are kept for resends
	// after central lost commits. Default 24h.
	PayloadRetention time.Duration

	// BatchMaxCount and BatchMaxBytes cut Commit batches. Defaults 4000 and 1 MiB.
	BatchMaxCount int
	BatchMaxBytes int
	// BatchLinger is how long a batch that is not full waits for more.
	// Default 5ms.
	BatchLinger time.Duration
	// Window is how many batches are in flight to central at once. Default 4.
	Window int
	// BandwidthBytesPerSec caps the link bytes per second. Default 0: no cap.
	BandwidthBytesPerSec int64
	// Compression of the link to central: "gzip" or "none". Default "gzip".
	Compression string
	// CentralHTTP2Window is the HTTP/2 flow-control window, in bytes, of
	// each stream and of the connection to central: how much of central's
	// answers the edge takes before it grants more (central's own setting
	// bounds what the edge sends). Fixed, so gRPC's BDP estimation pings
	// are off. Default grpcserver.DefaultWindowBytes (8 MiB, sized for
	// 100 Mbit/s and more at 250 ms RTT); a credit, not an allocation.
	CentralHTTP2Window int
	// CentralProbeInterval is how often the forwarder probes central
	// (GetCursor for this edge, over its own connection) while nothing was
	// committed within the interval, so that chasqui_central_reachable
	// drops within about one interval of an outage even when the site
	// writes nothing. Default 15s; negative disables the probe.
	CentralProbeInterval time.Duration

	// TLSCert and TLSKey are this edge's PEM certificate and key (from
	// `chasqui certs issue-edge`): served to instruments and presented to
	// central, whose mutual TLS reads the edge id from it. TLSCA is the
	// site CA: it verifies central and any client certificate an
	// instrument presents. Required unless Insecure; re-read on change.
	TLSCert, TLSKey, TLSCA string
	// HTTP2Window is the HTTP/2 flow-control window, in bytes, of each
	// stream and of each connection of the instruments' gRPC server. Fixed:
	// gRPC's BDP estimation sends a PING beside the data of busy calls,
	// which cost ~33 us of CPU per Submit. Default
	// DefaultInstrumentHTTP2Window.
	HTTP2Window int
	// Insecure uses plaintext gRPC on both sides without authentication,
	// for local runs and tests: GRPCAddr, AdminAddr and CentralAddr must be
	// loopback unless AllowInsecureRemote. Logged at WARN. Default false.
	Insecure bool
	// AllowInsecureRemote lets Insecure use non-loopback addresses (a
	// trusted network). Default false.
	AllowInsecureRemote bool
	// AdminAddr, when set, serves AdminService (status, dead letters) on a
	// listener of its own, and not on GRPCAddr. Default "": AdminService
	// on GRPCAddr, which with TLS requires AdminToken.
	AdminAddr string
	// AdminToken, when set, is the bearer token AdminService calls must
	// carry. A secret: never logged. Default "".
	AdminToken string
	// InstrumentToken, when set, is the bearer token EdgeService calls must
	// carry. A secret: never logged. Default "" (no token).
	InstrumentToken string
	// InstrumentClientCert requires EdgeService callers to present a client
	// certificate signed by TLSCA. Default false.
	InstrumentClientCert bool
	// Registry receives the edge's metrics, served at /metrics. Default: a
	// new registry with the Go and process collectors.
	Registry *prometheus.Registry
	// ShutdownTimeout bounds the graceful stop. Default 10s.
	ShutdownTimeout time.Duration

	// ReplicaURL is the site replica of central's database (PostgreSQL
	// URL): its replay LSN turns commits VISIBLE and reads come from it.
	// Empty: reads go through to central (buffer only when it is down).
	ReplicaURL string

	// StatFS, when set, replaces statfs(2) for the disk reserve check (tests).
	StatFS func(dir string) (uint64, error)
}

// Defaults of Config that belong to the edge as a whole (the queue's and
// the forwarder's are their packages' Default… constants).
const (
	// DefaultGRPCAddr is Config.GRPCAddr.
	DefaultGRPCAddr = ":7444"
	// DefaultHTTPAddr is Config.HTTPAddr.
	DefaultHTTPAddr = ":7481"
	// DefaultShutdownTimeout is Config.ShutdownTimeout.
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultInstrumentHTTP2Window is Config.HTTP2Window (1 MiB).
	// Instruments sit on the site's LAN: 1 Gbit/s at 1 ms RTT is 125 KB in
	// flight, so 1 MiB keeps a connection full at 8 ms RTT and holds a
	// 100-transaction Submit many times over. It is a credit: memory is
	// used only for request bytes received and not yet read.
	DefaultInstrumentHTTP2Window = 1 << 20
	// DefaultMemoryLimit is the Go soft memory limit chasqui-edge sets
	// (192 MiB): with a 1M backlog the edge's anonymous memory stays under
	// 256 MiB (docs/performance.md).
	DefaultMemoryLimit = 192 << 20
)

func (c *Config) setDefaults() {
	if c.GRPCAddr == "" {
		c.GRPCAddr = DefaultGRPCAddr
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.QueueMaxBytes == 0 {
		c.QueueMaxBytes = queue.DefaultMaxQueueBytes
	}
	if c.DiskReserveBytes == 0 {
		c.DiskReserveBytes = queue.DefaultDiskReserve
	}
	if c.TxRetention == 0 {
		c.TxRetention = queue.DefaultTxRetention
	}
	if c.PayloadRetention == 0 {
		c.PayloadRetention = queue.DefaultPayloadRetention
	}
	if c.Compression == "" {
		c.Compression = forward.CompressionGzip
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.HTTP2Window == 0 {
		c.HTTP2Window = DefaultInstrumentHTTP2Window
	}
	if c.CentralHTTP2Window == 0 {
		c.CentralHTTP2Window = grpcserver.DefaultWindowBytes
	}
}

// Validate checks the configuration (after defaults) and names the bad field.
func (c Config) Validate() error {
	c.setDefaults()
	switch {
	case c.EdgeID == "":
		return errors.New("config: EdgeID (--edge-id) is required")
	case len(c.EdgeID) > 256:
		return errors.New("config: EdgeID (--edge-id) is longer than 256 bytes")
	case c.DataDir == "":
		return errors.New("config: DataDir (--data-dir) is required")
	case c.checkAccess() != nil:
		return c.checkAccess()
	case c.QueueMaxBytes < 0:
		return fmt.Errorf("config: QueueMaxBytes (--queue-max-bytes) must not be negative, got %d", c.QueueMaxBytes)
	case c.TxRetention < time.Minute:
		return fmt.Errorf("config: TxRetention (--tx-retention) must be at least 1m, got %s", c.TxRetention)
	case c.PayloadRetention < 0:
		return fmt.Errorf("config: PayloadRetention (--payload-retention) must not be negative, got %s", c.PayloadRetention)
	case c.BatchMaxCount < 0:
		return fmt.Errorf("config: BatchMaxCount (--batch-max-count) must not be negative, got %d", c.BatchMaxCount)
	case c.BatchMaxBytes < 0:
		return fmt.Errorf("config: BatchMaxBytes (--batch-max-bytes) must not be negative, got %d", c.BatchMaxBytes)
	case c.Window < 0:
		return fmt.Errorf("config: Window (--window) must not be negative, got %d", c.Window)
	case c.BandwidthBytesPerSec < 0:
		return fmt.Errorf("config: BandwidthBytesPerSec (--bandwidth) must not be negative, got %d", c.BandwidthBytesPerSec)
	case c.Compression != forward.CompressionGzip && c.Compression != forward.CompressionNone:
		return fmt.Errorf("config: Compression (--compression) must be gzip or none, got %q", c.Compression)
	case c.ShutdownTimeout < 0:
		return errors.New("config: ShutdownTimeout must not be negative")
	}
	if err := grpcserver.CheckWindow("HTTP2Window (--http2-window)", c.HTTP2Window); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := grpcserver.CheckWindow("CentralHTTP2Window (--central-http2-window)", c.CentralHTTP2Window); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return c.checkInsecure()
}

// App is a configured edge, listening but not yet serving.
type App struct {
	cfg     Config
	log     *slog.Logger
	q       *queue.Queue
	fwd     *forward.Forwarder // nil without CentralAddr
	central *grpc.ClientConn
	grpc    *grpcserver.Server
	grpcLis net.Listener
	httpLis net.Listener
	started time.Time
	rs      readSide // replica watcher and reads (reads.go)
	// schema is the schema learned from central; learner keeps it
	// current (nil without CentralAddr). schema.go.
	schema  *schema.Cache
	learner *schema.Learner
	// admin serves AdminService on AdminAddr (nil: on grpc).
	admin    *grpcserver.Server
	adminLis net.Listener
	// reg holds the metrics; forwarded and deadLettered feed the _total series.
	reg                     *prometheus.Registry
	forwarded, deadLettered atomic.Uint64

	closeOnce sync.Once
	closeErr  error
}

// New opens the queue, binds the listeners and prepares the forwarder.
// The caller must Close it (after Run, if it ran).
func New(cfg Config, logger *slog.Logger) (_ *App, err error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		return nil, errors.New("app: logger is required")
	}
	serverTLS, clientTLS, err := tlsConfigs(cfg, logger)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: logger, started: time.Now(), reg: newRegistry(cfg.Registry)}
	defer func() {
		if err != nil {
			_ = a.Close()
		}
	}()
	a.q, err = queue.Open(queue.Options{
		Dir:              cfg.DataDir,
		EdgeID:           cfg.EdgeID,
		Logger:           logger,
		MaxQueueBytes:    cfg.QueueMaxBytes,
		DiskReserve:      cfg.DiskReserveBytes,
		TxRetention:      cfg.TxRetention,
		PayloadRetention: cfg.PayloadRetention,
		StatFS:           cfg.StatFS,
		RowKey:           a.rowKey,
	})
	if err != nil {
		return nil, err
	}
	if cfg.CentralAddr != "" {
		if err = a.openForwarder(clientTLS); err != nil {
			return nil, err
		}
	}
	if err = a.openSchema(); err != nil {
		return nil, err
	}

	var fwd api.Forwarder
	if a.fwd != nil {
		fwd = a.fwd
	}
	if err = a.openReads(); err != nil {
		return nil, err
	}
	a.buildServers(serverTLS, fwd)
	a.registerMetrics()

	if err = a.listen(); err != nil {
		return nil, err
	}
	logger.Info("edge ready", "edge_id", cfg.EdgeID, "epoch", a.q.Epoch(), "grpc_addr", a.GRPCAddr(),
		"http_addr", a.HTTPAddr(), "data_dir", cfg.DataDir, "central_addr", cfg.CentralAddr,
		"last_seq", a.q.LastSeq(), "committed_through", a.q.CommittedThrough(), "tls", !cfg.Insecure,
		"admin_addr", a.AdminAddr(), "admin_token", cfg.AdminToken != "", "instrument_token", cfg.InstrumentToken != "",
		"instrument_client_cert", cfg.InstrumentClientCert)
	return a, nil
}

// openForwarder dials central and makes the forwarder that drains the queue
// to it.
func (a *App) openForwarder(clientTLS credentials.TransportCredentials) (err error) {
	cfg, logger := a.cfg, a.log
	a.central, err = a.dialCentral(clientTLS)
	if err != nil {
		return fmt.Errorf("dial central %s: %w", cfg.CentralAddr, err)
	}
	a.fwd, err = forward.New(forward.Config{
		CentralAddr:          cfg.CentralAddr,
		MaxCount:             cfg.BatchMaxCount,
		MaxBytes:             cfg.BatchMaxBytes,
		Linger:               cfg.BatchLinger,
		Window:               cfg.Window,
		BandwidthBytesPerSec: cfg.BandwidthBytesPerSec,
		Compression:          cfg.Compression,
		ProbeInterval:        cfg.CentralProbeInterval,
	}, countingStore{Store: a.q, forwarded: &a.forwarded, deadLettered: &a.deadLettered, rejected: a.refreshOnStale}, a.central, logger)
	if err != nil {
		return err
	}
	return nil
}

// listen opens the instrument gRPC listener, the admin listener when the
// admin service is on, and the HTTP listener unless disabled with "-".
func (a *App) listen() (err error) {
	cfg := a.cfg
	if a.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return fmt.Errorf("grpc listen %s: %w", cfg.GRPCAddr, err)
	}
	if a.admin != nil {
		if a.adminLis, err = net.Listen("tcp", cfg.AdminAddr); err != nil {
			return fmt.Errorf("admin listen %s: %w", cfg.AdminAddr, err)
		}
	}
	if cfg.HTTPAddr != "-" {
		if a.httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return fmt.Errorf("http listen %s: %w", cfg.HTTPAddr, err)
		}
	}
	return nil
}

// GRPCAddr is the bound gRPC address (the real port when configured ":0").
func (a *App) GRPCAddr() string {
	if a.grpcLis == nil {
		return ""
	}
	return a.grpcLis.Addr().String()
}

// AdminAddr is the bound admin address, or "" when AdminService shares
// GRPCAddr.
func (a *App) AdminAddr() string {
	if a.adminLis == nil {
		return ""
	}
	return a.adminLis.Addr().String()
}

// HTTPAddr is the bound HTTP address, or "" when disabled.
func (a *App) HTTPAddr() string {
	if a.httpLis == nil {
		return ""
	}
	return a.httpLis.Addr().String()
}

// Epoch is the random id of the data directory.
func (a *App) Epoch() string { return a.q.Epoch() }

// Run serves until ctx is done, then stops gracefully (bounded by
// ShutdownTimeout) and returns. Close it afterwards.
func (a *App) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.grpc.Serve(ctx, a.grpcLis, a.cfg.ShutdownTimeout) })
	if a.admin != nil {
		g.Go(func() error { return a.admin.Serve(ctx, a.adminLis, a.cfg.ShutdownTimeout) })
	}
	if a.httpLis != nil {
		hs := &http.Server{Handler: a.httpHandler(), ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			if err := hs.Serve(a.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("http serve: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
			defer cancel()
			return hs.Shutdown(sctx)
		})
	}
	g.Go(func() error { return a.q.Run(ctx) })
	a.runReads(ctx, g)
	if a.fwd != nil {
		g.Go(func() error { return a.fwd.Run(ctx) })
	}
	if a.learner != nil {
		g.Go(func() error { return a.learner.Run(ctx) })
	}
	err := g.Wait()
	a.log.Info("edge stopped", "last_seq", a.q.LastSeq(), "committed_through", a.q.CommittedThrough())
	return err
}

// Close releases everything: listeners, the connection to central, and
// the queue (Badger) last.
func (a *App) Close() error {
	a.closeOnce.Do(func() {
		var errs []error
		for _, l := range []net.Listener{a.grpcLis, a.adminLis, a.httpLis} {
			if l != nil {
				if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
					errs = append(errs, err)
				}
			}
		}
		if a.grpc != nil {
			a.grpc.Stop()
		}
		if a.admin != nil {
			a.admin.Stop()
		}
		a.closeReads()
		if a.central != nil {
			errs = append(errs, a.central.Close())
		}
		if a.q != nil {
			errs = append(errs, a.q.Close())
		}
		a.closeErr = errors.Join(errs...)
	})
	return a.closeErr
}

func (a *App) status() (*edgev1.GetStatusResponse, error) {
	var fwd api.Forwarder
	if a.fwd != nil {
		fwd = a.fwd
	}
	return api.Status(a.q, fwd, time.Now(), a.replicaStatus())
}

func (a *App) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	// Ready means able to accept writes: the store answers and the disk
	// is above the reserve.
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		st, err := a.q.Stats()
		switch {
		case err != nil:
			a.log.Error("readyz: queue stats", "err", err)
			http.Error(w, "queue unavailable", http.StatusServiceUnavailable)
		case st.DiskFree < a.cfg.DiskReserveBytes:
			http.Error(w, "disk space below reserve", http.StatusServiceUnavailable)
		case st.Bytes >= st.LimitBytes:
			http.Error(w, "queue full", http.StatusServiceUnavailable)
		default:
			_, _ = w.Write([]byte("ok\n"))
		}
	})
	mux.Handle("GET /metrics", metrics.Handler(a.reg))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		st, err := a.status()
		if err != nil {
			a.log.Error("status", "err", err)
			http.Error(w, "status unavailable", http.StatusInternalServerError)
			return
		}
		b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(st)
		if err != nil {
			http.Error(w, "status unavailable", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(append(b, '\n'))
	})
	return mux
}
