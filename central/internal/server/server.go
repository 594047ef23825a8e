// Package server runs central: it connects to PostgreSQL, migrates the
// schema, and serves IngestService over gRPC (with health and reflection)
// and health and status over HTTP, until its context ends. PostgreSQL
// being down at start is an outage like any other, not a reason to exit:
// central serves NOT_SERVING and keeps trying. It is public so
// that other modules' tests (the edge's) can run central in-process.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"

	"github.com/chasqui/chasqui/central/internal/api"
	"github.com/chasqui/chasqui/central/internal/catalog"
	"github.com/chasqui/chasqui/central/internal/read"
	"github.com/chasqui/chasqui/central/internal/store"
	"github.com/chasqui/chasqui/central/migrations"
	"github.com/chasqui/chasqui/internal/auth"
	"github.com/chasqui/chasqui/internal/grpcserver"
	"github.com/chasqui/chasqui/internal/metrics"
	"github.com/chasqui/chasqui/internal/tlsconfig"
	"github.com/chasqui/chasqui/internal/tracing"
	"github.com/chasqui/chasqui/internal/validate"
)

// Config configures central. The zero value of each field means its default.
type Config struct {
	// GRPCAddr is where IngestService listens. Default ":7443"; ":0" picks a
	// free port (see Server.GRPCAddr).
	GRPCAddr string
	// HTTPAddr serves /healthz, /readyz, /status and /metrics. Default ":7480";
	// "-" disables the HTTP server.
	HTTPAddr string
	// DatabaseURL is the PostgreSQL URL (postgres://user:pass@host:port/db).
	// Required. It holds a password: it is never logged.
	DatabaseURL string
	// TLSCert and TLSKey are the server's PEM certificate and key; TLSCA
	// is the site CA that signs the edges' client certificates (mutual
	// TLS). All three are required unless Insecure. The files are re-read
	// when they change (rotation without restart).
	//
	// Identity: an edge is who its verified certificate says (the URI SAN
	// chasqui://edge/<id>, else the subject CN) and may only Commit and
	// GetCursor as that edge (PERMISSION_DENIED otherwise, nothing
	// written). Health and reflection stay open without a certificate: the
	// TLS layer verifies a client certificate only when one is given, and
	// the auth interceptor demands one for every other method
	// (UNAUTHENTICATED).
	TLSCert, TLSKey, TLSCA string
	// Insecure serves plaintext gRPC with no authentication: anyone who
	// reaches the port can write as any edge. Allowed only when GRPCAddr is
	// a loopback address, unless AllowInsecureRemote. Logged at WARN.
	// Default false.
	Insecure bool
	// AllowInsecureRemote lets Insecure listen beyond loopback (a trusted
	// private network, a compose network). Default false.
	AllowInsecureRemote bool
	// HTTP2Window is the HTTP/2 flow-control window, in bytes, of each
	// stream and of each edge's connection: how much an edge may send
	// before central grants more. Fixed, so gRPC's BDP estimation pings are
	// off. Default grpcserver.DefaultWindowBytes (8 MiB, sized for
	// 100 Mbit/s and more at 250 ms RTT); a credit, not an allocation.
	HTTP2Window int
	// GapWait is how long a batch arriving ahead of its predecessors waits
	// for them (woken when the cursor moves, on this central or, through
	// PostgreSQL LISTEN/NOTIFY, on another) before it is refused with
	// ABORTED; it waits on while a call of this central that can fill the
	// gap is still in flight. Default 2s.
	GapWait time.Duration
	// Retention is how long outcomes of applied transactions are kept for
	// duplicate detection by transaction id. Default 720h (30 days).
	Retention time.Duration
	// PruneInterval is how often outcomes older than Retention are deleted.
	// Default 1h.
	PruneInterval time.Duration
	// HealthInterval is how often PostgreSQL is pinged for gRPC health and
	// /readyz. Default 1s.
	HealthInterval time.Duration
	// DatabaseRetryMax caps the wait between attempts to connect to
	// PostgreSQL and migrate the schema while it has not answered since
	// start; the wait starts at DefaultDatabaseRetryBase and doubles.
	// Default DefaultDatabaseRetryMax (10s).
	DatabaseRetryMax time.Duration
	// ShutdownTimeout bounds the graceful stop; calls still running after it
	// are cut off. Default 10s.
	ShutdownTimeout time.Duration
	// AllowTables lists the tables edges may write rows to: "schema.table"
	// or "schema.*". PostgreSQL's catalogs (pg_*, information_schema) and
	// chasqui's own schema are never writable, even if listed. Default
	// none: every row is rejected. Central's database role needs INSERT,
	// UPDATE, DELETE and SELECT on exactly these tables
	// (docs/operations.md).
	AllowTables []string
	// EdgeTables restricts named edges to some of the allowed tables:
	// entries "edge=schema.table,schema.*" (several joined with ";").
	// An edge named may write only what both lists allow; GetSchema shows
	// it only those. Default none: every edge may write every allowed
	// table.
	EdgeTables []string
	// MaxConns bounds the PostgreSQL connection pool. Default 16.
	MaxConns int32
	// AuthorizeEdge, when set, decides per call whether the caller may act
	// as edgeID; it returns an error wrapping api.ErrPermissionDenied to
	// refuse (PERMISSION_DENIED). Nil means: under mutual TLS, the caller's
	// certificate must name edgeID (a second check behind the auth
	// interceptor); with Insecure, every caller is allowed.
	AuthorizeEdge func(ctx context.Context, edgeID string) error
	// Registry receives central's metrics, served at /metrics. Default: a
	// new registry with the Go and process collectors.
	Registry *prometheus.Registry
}

// Defaults of Config (chasqui-central's flags use them too).
const (
	// DefaultGRPCAddr is Config.GRPCAddr.
	DefaultGRPCAddr = ":7443"
	// DefaultHTTPAddr is Config.HTTPAddr.
	DefaultHTTPAddr = ":7480"
	// DefaultGapWait is Config.GapWait.
	DefaultGapWait = store.DefaultGapWait
	// DefaultRetention is Config.Retention: outcomes are kept 30 days.
	DefaultRetention = 30 * 24 * time.Hour
	// DefaultShutdownTimeout is Config.ShutdownTimeout.
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultDatabaseRetryBase is the first wait before connecting to
	// PostgreSQL again after it did not answer at start.
	DefaultDatabaseRetryBase = 250 * time.Millisecond
	// DefaultDatabaseRetryMax is Config.DatabaseRetryMax: short enough that
	// central serves within seconds of PostgreSQL coming up, long enough
	// that a long outage logs a line per 10 s, not a flood.
	DefaultDatabaseRetryMax = 10 * time.Second
	// DefaultDatabaseConnectTimeout bounds one attempt to connect when the
	// database URL sets no connect_timeout, so that an unreachable host
	// (packets dropped, not refused) does not hold an attempt for minutes.
	DefaultDatabaseConnectTimeout = 10 * time.Second
)

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.GRPCAddr == "" {
		c.GRPCAddr = DefaultGRPCAddr
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.HTTP2Window == 0 {
		c.HTTP2Window = grpcserver.DefaultWindowBytes
	}
	def(&c.GapWait, DefaultGapWait)
	def(&c.Retention, DefaultRetention)
	def(&c.PruneInterval, time.Hour)
	def(&c.HealthInterval, time.Second)
	def(&c.ShutdownTimeout, DefaultShutdownTimeout)
	def(&c.DatabaseRetryMax, DefaultDatabaseRetryMax)
	if c.MaxConns == 0 {
		c.MaxConns = 16
	}
}

// Validate checks the configuration (after defaults) and names the bad field.
func (c Config) Validate() error {
	c.setDefaults()
	insecureErr := tlsconfig.CheckInsecure(c.AllowInsecureRemote, map[string]string{"GRPCAddr (--grpc-addr)": c.GRPCAddr})
	switch {
	case c.DatabaseURL == "":
		return errors.New("config: DatabaseURL (--database-url) is required")
	case !c.Insecure && (c.TLSCert == "" || c.TLSKey == "" || c.TLSCA == ""):
		return errors.New("config: TLSCert, TLSKey and TLSCA (--tls-cert, --tls-key, --tls-ca) are required: " +
			"central requires mutual TLS unless Insecure (--insecure)")
	case c.Insecure && (c.TLSCert != "" || c.TLSKey != "" || c.TLSCA != ""):
		return errors.New("config: Insecure (--insecure) conflicts with TLSCert/TLSKey/TLSCA")
	case c.Insecure && insecureErr != nil:
		return insecureErr
	case grpcserver.CheckWindow("HTTP2Window (--http2-window)", c.HTTP2Window) != nil:
		return fmt.Errorf("config: %w", grpcserver.CheckWindow("HTTP2Window (--http2-window)", c.HTTP2Window))
	case c.GapWait < 0:
		return fmt.Errorf("config: GapWait (--gap-wait) must not be negative, got %s", c.GapWait)
	case c.Retention < time.Minute:
		return fmt.Errorf("config: Retention (--retention) must be at least 1m, got %s", c.Retention)
	case c.PruneInterval < 0, c.HealthInterval < 0, c.ShutdownTimeout < 0, c.DatabaseRetryMax < 0:
		return errors.New("config: PruneInterval, HealthInterval, ShutdownTimeout and DatabaseRetryMax must not be negative")
	case allowErr(c.AllowTables) != nil:
		return fmt.Errorf("config: AllowTables (--allow-tables): %w", allowErr(c.AllowTables))
	case edgeTablesErr(c.EdgeTables) != nil:
		return fmt.Errorf("config: EdgeTables (--edge-tables): %w", edgeTablesErr(c.EdgeTables))
	case c.MaxConns < 2:
		return fmt.Errorf("config: MaxConns must be at least 2, got %d", c.MaxConns)
	}
	return nil
}

// Server is a configured central, listening but not yet serving.
type Server struct {
	cfg     Config
	logger  *slog.Logger
	pool    *pgxpool.Pool
	store   *store.Store
	catalog *catalog.Catalog
	grpc    *grpcserver.Server
	grpcLis net.Listener
	httpLis net.Listener
	ready   atomic.Bool
	started time.Time
	metrics *centralMetrics
	// connCfg connects to migrate; migrated is closed once the schema is
	// current, and until then IngestService and ReadService answer
	// UNAVAILABLE.
	connCfg  *pgx.ConnConfig
	migrated chan struct{}
}

// New binds the listeners and tries once to connect to PostgreSQL and
// migrate the schema. If PostgreSQL does not answer, New still succeeds:
// Run keeps trying, and central answers NOT_SERVING and UNAVAILABLE until
// then. The caller must Run or Close it.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (_ *Server, err error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tlsCfg, err := serverTLS(cfg, logger)
	if err != nil {
		return nil, err
	}
	if cfg.Registry == nil {
		cfg.Registry = metrics.NewRegistry()
	}
	s := &Server{cfg: cfg, logger: logger, started: time.Now(), migrated: make(chan struct{})}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()

	if err := s.openDatabase(ctx); err != nil {
		return nil, err
	}
	s.buildGRPC(tlsCfg)
	if err := s.listen(); err != nil {
		return nil, err
	}
	logger.Info("central listening", "grpc_addr", s.GRPCAddr(), "http_addr", s.HTTPAddr(),
		"tls", !cfg.Insecure, "mtls", cfg.TLSCA != "", "database", redact(s.connCfg))
	if err := s.connect(ctx); err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		logger.Warn("PostgreSQL not ready at start; serving NOT_SERVING and retrying",
			"error", err, "retry_in", DefaultDatabaseRetryBase)
	}
	return s, nil
}

// serverTLS loads the gRPC server's TLS, or returns nil and warns loudly when
// cfg.Insecure asks for plaintext.
func serverTLS(cfg Config, logger *slog.Logger) (*tls.Config, error) {
	if cfg.Insecure {
		logger.Warn("INSECURE: central serves plaintext gRPC without authentication; any client can write as any edge",
			"grpc_addr", cfg.GRPCAddr, "allow_insecure_remote", cfg.AllowInsecureRemote)
		return nil, nil
	}
	return tlsconfig.Server(tlsconfig.Files{Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSCA},
		tlsconfig.Options{OptionalClientCert: true, Logger: logger})
}

// openDatabase makes the pool, the table catalog and the store. Nothing here
// waits for PostgreSQL.
func (s *Server) openDatabase(ctx context.Context) error {
	cfg, logger := s.cfg, s.logger
	poolCfg, err := store.PoolConfig(cfg.DatabaseURL)
	if err != nil {
		return err
	}
	poolCfg.MaxConns = cfg.MaxConns
	if poolCfg.ConnConfig.ConnectTimeout == 0 {
		poolCfg.ConnConfig.ConnectTimeout = DefaultDatabaseConnectTimeout
	}
	s.connCfg = poolCfg.ConnConfig
	// The pool connects on first use, so it can exist before PostgreSQL
	// answers.
	if s.pool, err = pgxpool.NewWithConfig(ctx, poolCfg); err != nil {
		return fmt.Errorf("database pool: %w", err)
	}
	allow, err := catalog.ParseAllowList(cfg.AllowTables)
	if err != nil {
		return fmt.Errorf("config: AllowTables (--allow-tables): %w", err)
	}
	// Read on first use: PostgreSQL may not answer yet.
	perEdge, err := catalog.ParseEdgeTables(cfg.EdgeTables)
	if err != nil {
		return fmt.Errorf("config: EdgeTables (--edge-tables): %w", err)
	}
	s.catalog = catalog.New(s.pool, allow, catalog.Options{PerEdge: perEdge})
	s.store = store.New(s.pool, store.Options{GapWait: cfg.GapWait, Logger: logger, Catalog: s.catalog})
	return nil
}

// buildGRPC makes the gRPC server with its interceptor chain and services,
// reporting NOT_SERVING until the schema is migrated.
func (s *Server) buildGRPC(tlsCfg *tls.Config) {
	cfg, logger := s.cfg, s.logger
	rpcMetrics := metrics.ServerRPC(cfg.Registry)
	s.metrics = newCentralMetrics(cfg.Registry, s.ready.Load, s.store.Stats)
	// The receive limit is named here, not left to the default: the edge
	// sizes its transactions (validate.MaxTransactionBytes) below it.
	gopts := grpcserver.Options{Logger: logger, TLS: tlsCfg, ServerOptions: tracing.ServerOptions(),
		MaxRecvMsgSize: validate.DefaultMaxMessageBytes, WindowBytes: cfg.HTTP2Window}
	// Chain (after request id and logging): RPC metrics -> auth -> outcome
	// counters -> recovery. Metrics sit outside auth so refusals are counted.
	mu, ms := metrics.ServerInterceptors(rpcMetrics)
	gopts.Unary = append(gopts.Unary, mu)
	gopts.Stream = append(gopts.Stream, ms)
	var authz api.Authorizer
	if cfg.AuthorizeEdge != nil {
		authz = cfg.AuthorizeEdge
	}
	if !cfg.Insecure {
		au, as := auth.EdgeInterceptors(auth.EdgeOptions{})
		gopts.Unary = append(gopts.Unary, au)
		gopts.Stream = append(gopts.Stream, as)
		if authz == nil {
			authz = func(ctx context.Context, edgeID string) error {
				if err := auth.CheckEdge(ctx, edgeID); err != nil {
					return fmt.Errorf("%w: %w", api.ErrPermissionDenied, err)
				}
				return nil
			}
		}
	}
	gopts.Unary = append(gopts.Unary, s.refuseUntilMigrated, s.metrics.countOutcomes)
	s.grpc = grpcserver.New(gopts)
	centralv1.RegisterIngestServiceServer(s.grpc.Server, api.New(s.store, s.catalog, authz, logger))
	rpcMetrics.InitializeMetrics(s.grpc.Server)
	centralv1.RegisterReadServiceServer(s.grpc.Server, read.New(s.pool, s.catalog, logger))
	s.setServing(false)

}

// listen opens the gRPC and, unless disabled with "-", the HTTP listener.
func (s *Server) listen() (err error) {
	cfg := s.cfg
	if s.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return fmt.Errorf("grpc listen %s: %w", cfg.GRPCAddr, err)
	}
	if cfg.HTTPAddr != "-" {
		if s.httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return fmt.Errorf("http listen %s: %w", cfg.HTTPAddr, err)
		}
	}
	return nil
}

// connect migrates the schema and, once it is current, lets calls through
// and reports SERVING.
func (s *Server) connect(ctx context.Context) error {
	if err := migrate(ctx, s.connCfg); err != nil {
		return err
	}
	close(s.migrated)
	s.ready.Store(true)
	s.setServing(true)
	s.logger.Info("central ready: PostgreSQL connected, schema current", "database", redact(s.connCfg))
	return nil
}

// awaitDatabase retries connect, waiting DefaultDatabaseRetryBase doubling
// up to DatabaseRetryMax between attempts, until it succeeds (true) or ctx
// ends (false). Each failure is logged: it is an outage the operator must
// see.
func (s *Server) awaitDatabase(ctx context.Context) bool {
	wait := min(DefaultDatabaseRetryBase, s.cfg.DatabaseRetryMax)
	for attempt := 2; ; attempt++ {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		err := s.connect(ctx)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		wait = min(wait*2, s.cfg.DatabaseRetryMax)
		s.logger.Warn("PostgreSQL still not ready; serving NOT_SERVING and retrying",
			"error", err, "attempt", attempt, "retry_in", wait)
	}
}

// isMigrated tells whether the schema is current.
func (s *Server) isMigrated() bool {
	select {
	case <-s.migrated:
		return true
	default:
		return false
	}
}

// refuseUntilMigrated answers UNAVAILABLE for central's own services until
// the schema is current: before, every query would fail or, on a database
// not yet migrated, reach tables that do not exist. Health and reflection
// pass.
func (s *Server) refuseUntilMigrated(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !s.isMigrated() && (strings.HasPrefix(info.FullMethod, "/"+centralv1.IngestService_ServiceDesc.ServiceName+"/") ||
		strings.HasPrefix(info.FullMethod, "/"+centralv1.ReadService_ServiceDesc.ServiceName+"/")) {
		return nil, status.Error(codes.Unavailable, "central has not connected to PostgreSQL yet; retry")
	}
	return handler(ctx, req)
}

func migrate(ctx context.Context, cc *pgx.ConnConfig) error {
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		// pgconn.ConnectError names host, user and database, never the password.
		return fmt.Errorf("connecting to PostgreSQL at %s: %w", redact(cc), err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	return migrations.Migrate(ctx, conn)
}

// redact names the database without credentials.
func redact(cc *pgx.ConnConfig) string {
	return fmt.Sprintf("%s@%s:%d/%s", cc.User, cc.Host, cc.Port, cc.Database)
}

// GRPCAddr is the bound gRPC address (the real port when configured ":0").
func (s *Server) GRPCAddr() string {
	if s.grpcLis == nil {
		return ""
	}
	return s.grpcLis.Addr().String()
}

// HTTPAddr is the bound HTTP address, or "" when disabled.
func (s *Server) HTTPAddr() string {
	if s.httpLis == nil {
		return ""
	}
	return s.httpLis.Addr().String()
}

// Run serves until ctx is done, then stops gracefully (bounded by
// ShutdownTimeout) and returns. It closes the pool when it returns.
func (s *Server) Run(ctx context.Context) error {
	defer s.pool.Close()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.grpc.Serve(ctx, s.grpcLis, s.cfg.ShutdownTimeout) })
	if s.httpLis != nil {
		hs := &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			if err := hs.Serve(s.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("http serve: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
			defer cancel()
			return hs.Shutdown(sctx)
		})
	}
	g.Go(func() error {
		if !s.isMigrated() && !s.awaitDatabase(ctx) {
			return nil
		}
		s.watchDatabase(ctx)
		return nil
	})
	g.Go(func() error {
		select {
		case <-s.migrated:
		case <-ctx.Done():
			return nil
		}
		return s.store.RunPruner(ctx, s.cfg.PruneInterval, s.cfg.Retention)
	})
	g.Go(func() error {
		select {
		case <-s.migrated:
		case <-ctx.Done():
			return nil
		}
		// Wakes the batches waiting here for a predecessor another
		// central commits.
		return s.store.Listen(ctx)
	})
	err := g.Wait()
	s.logger.Info("central stopped")
	return err
}

// Close releases what New acquired, for a Server that will not Run.
func (s *Server) Close() error {
	var errs []error
	if s.grpcLis != nil {
		if err := s.grpcLis.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if s.httpLis != nil {
		if err := s.httpLis.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if s.grpc != nil {
		s.grpc.Stop()
	}
	if s.pool != nil {
		s.pool.Close()
	}
	return errors.Join(errs...)
}

// watchDatabase keeps gRPC health and /readyz in step with PostgreSQL.
func (s *Server) watchDatabase(ctx context.Context) {
	t := time.NewTicker(s.cfg.HealthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, max(s.cfg.HealthInterval, time.Second))
		err := s.store.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		ok := err == nil
		if s.ready.Swap(ok) != ok {
			if ok {
				s.logger.Info("database reachable again")
			} else {
				s.logger.Warn("database unreachable", "error", err)
			}
			s.setServing(ok)
		}
	}
}

func (s *Server) setServing(ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.grpc.Health.SetServingStatus("", st)
	s.grpc.Health.SetServingStatus(centralv1.IngestService_ServiceDesc.ServiceName, st)
	s.grpc.Health.SetServingStatus(centralv1.ReadService_ServiceDesc.ServiceName, st)
}

func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "database unreachable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", metrics.Handler(s.cfg.Registry))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		stat := s.pool.Stat()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"service":        "chasqui-central",
			"database_ready": s.ready.Load(),
			"grpc_addr":      s.GRPCAddr(),
			"uptime_seconds": int64(time.Since(s.started).Seconds()),
			"pool": map[string]any{
				"total_conns": stat.TotalConns(), "idle_conns": stat.IdleConns(),
				"acquired_conns": stat.AcquiredConns(), "max_conns": stat.MaxConns(),
			},
			"gap_wait_seconds":  s.cfg.GapWait.Seconds(),
			"retention_seconds": s.cfg.Retention.Seconds(),
		})
	})
	return mux
}

func allowErr(entries []string) error {
	_, err := catalog.ParseAllowList(entries)
	return err
}

func edgeTablesErr(specs []string) error {
	_, err := catalog.ParseEdgeTables(specs)
	return err
}
