package app

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/chasqui/chasqui/edge/internal/api"
	"github.com/chasqui/chasqui/edge/internal/forward"
	"github.com/chasqui/chasqui/edge/internal/queue"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	"github.com/chasqui/chasqui/internal/auth"
	"github.com/chasqui/chasqui/internal/grpcclient"
	"github.com/chasqui/chasqui/internal/grpcserver"
	"github.com/chasqui/chasqui/internal/metrics"
	"github.com/chasqui/chasqui/internal/tlsconfig"
	"github.com/chasqui/chasqui/internal/tracing"
	"github.com/chasqui/chasqui/internal/validate"
)

// This file holds the edge's security and observability wiring: TLS,
// who may call which service, metrics and tracing.

// checkAccess is the part of Validate about TLS and access.
func (c Config) checkAccess() error {
	switch {
	case !c.Insecure && (c.TLSCert == "" || c.TLSKey == ""):
		return fmt.Errorf("config: TLSCert and TLSKey (--tls-cert, --tls-key) are required unless Insecure (--insecure)")
	case c.Insecure && (c.TLSCert != "" || c.TLSKey != "" || c.TLSCA != ""):
		return fmt.Errorf("config: Insecure (--insecure) conflicts with TLSCert/TLSKey/TLSCA")
	case c.InstrumentClientCert && c.TLSCA == "":
		return fmt.Errorf("config: InstrumentClientCert (--instrument-client-cert) needs TLSCA (--tls-ca)")
	case !c.Insecure && c.AdminAddr == "" && c.AdminToken == "":
		return fmt.Errorf("config: AdminAddr (--admin-addr) or AdminToken (--admin-token) is required with TLS, " +
			"so that instruments cannot reach the admin service")
	case c.AdminAddr != "" && c.AdminAddr == c.GRPCAddr && !strings.HasSuffix(c.AdminAddr, ":0"):
		return fmt.Errorf("config: AdminAddr (--admin-addr) must differ from GRPCAddr (--grpc-addr)")
	}
	return nil
}

// checkInsecure applies the plaintext rule; Validate runs it last so that
// other fields are named first.
func (c Config) checkInsecure() error {
	if c.Insecure {
		return tlsconfig.CheckInsecure(c.AllowInsecureRemote, map[string]string{
			"GRPCAddr (--grpc-addr)":       c.GRPCAddr,
			"AdminAddr (--admin-addr)":     c.AdminAddr,
			"CentralAddr (--central-addr)": c.CentralAddr,
		})
	}
	return nil
}

// tlsConfigs builds the server side (instruments, admin) and the client
// side (central) from the same files, both re-read on change. Client
// certificates are verified when given; whether one is required is decided
// per service by the interceptors, so health stays open.
func tlsConfigs(cfg Config, logger *slog.Logger) (server *tls.Config, client credentials.TransportCredentials, err error) {
	if cfg.Insecure {
		logger.Warn("INSECURE: the edge serves plaintext gRPC and talks to central in plaintext, without authentication",
			"grpc_addr", cfg.GRPCAddr, "admin_addr", cfg.AdminAddr, "central_addr", cfg.CentralAddr,
			"allow_insecure_remote", cfg.AllowInsecureRemote)
		return nil, nil, nil
	}
	files := tlsconfig.Files{Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSCA}
	opts := tlsconfig.Options{OptionalClientCert: true, Logger: logger}
	if server, err = tlsconfig.Server(files, opts); err != nil {
		return nil, nil, err
	}
	if client, err = tlsconfig.ClientCredentials(files, opts); err != nil {
		return nil, nil, err
	}
	return server, client, nil
}

// dialCentral dials central with the forwarder's policy, the client RPC
// metrics inside the retry interceptor (each attempt counts) and tracing.
func (a *App) dialCentral(clientTLS credentials.TransportCredentials) (*grpc.ClientConn, error) {
	rpc := metrics.ClientRPC(a.reg)
	extra := append(tracing.DialOptions(), grpc.WithChainUnaryInterceptor(tracing.UnaryClientBatchLinks()))
	return grpcclient.Dial(a.cfg.CentralAddr, grpcclient.Options{
		Logger: a.log.With("component", "central-client"),
		Creds:  clientTLS,
		Unary:  []grpc.UnaryClientInterceptor{rpc.UnaryClientInterceptor()},
		// Central's receive limit: a larger batch is refused before it is
		// sent, and the forwarder splits it.
		MaxCallSendMsgSize: validate.DefaultMaxMessageBytes,
		WindowBytes:        a.cfg.CentralHTTP2Window,
	}, extra...)
}

// buildServers makes the gRPC server of instruments and, with AdminAddr,
// the admin server, each with its access rules:
//   - EdgeService: open, or a bearer token (InstrumentToken) and/or a
//     verified client certificate (InstrumentClientCert).
//   - AdminService: on its own listener (AdminAddr) and/or behind a bearer
//     token (AdminToken); never reachable by an instrument's credentials.
//   - health and reflection: open.
func (a *App) buildServers(serverTLS *tls.Config, fwd api.Forwarder) {
	cfg := a.cfg
	rpc := metrics.ServerRPC(a.reg)
	mu, ms := metrics.ServerInterceptors(rpc)
	edgeSvc := edgev1.EdgeService_ServiceDesc.ServiceName
	adminSvc := edgev1.AdminService_ServiceDesc.ServiceName

	// Submit stores the caller's trace context in each transaction, so the
	// forward attempts (tracing.UnaryClientBatchLinks) link back to it.
	submit := "/" + edgeSvc + "/Submit"
	instrumentU := []grpc.UnaryServerInterceptor{tracing.UnaryServerStoreTraceContext(func(m string) bool { return m == submit })}
	var instrumentS []grpc.StreamServerInterceptor
	if cfg.InstrumentClientCert {
		u, s := auth.CertInterceptors(auth.Service(edgeSvc))
		instrumentU, instrumentS = append(instrumentU, u), append(instrumentS, s)
	}
	if cfg.InstrumentToken != "" {
		u, s := auth.TokenInterceptors(cfg.InstrumentToken, auth.Service(edgeSvc))
		instrumentU, instrumentS = append(instrumentU, u), append(instrumentS, s)
	}
	var adminU []grpc.UnaryServerInterceptor
	var adminS []grpc.StreamServerInterceptor
	if cfg.AdminToken != "" {
		u, s := auth.TokenInterceptors(cfg.AdminToken, auth.Service(adminSvc))
		adminU, adminS = append(adminU, u), append(adminS, s)
	}

	opts := func(u []grpc.UnaryServerInterceptor, s []grpc.StreamServerInterceptor) grpcserver.Options {
		return grpcserver.Options{
			Logger: a.log, TLS: serverTLS, ServerOptions: tracing.ServerOptions(),
			WindowBytes: cfg.HTTP2Window,
			Unary:       append([]grpc.UnaryServerInterceptor{mu}, u...),
			Stream:      append([]grpc.StreamServerInterceptor{ms}, s...),
		}
	}
	edgeImpl := api.NewEdgeService(a.q, a.log, a.apiOptions())
	adminImpl := api.NewAdminService(a.q, fwd, a.log, a.apiOptions())
	if cfg.AdminAddr == "" {
		a.grpc = grpcserver.New(opts(append(instrumentU, adminU...), append(instrumentS, adminS...)))
		edgev1.RegisterEdgeServiceServer(a.grpc.Server, edgeImpl)
		edgev1.RegisterAdminServiceServer(a.grpc.Server, adminImpl)
		setServing(a.grpc, "", edgeSvc, adminSvc)
	} else {
		a.grpc = grpcserver.New(opts(instrumentU, instrumentS))
		edgev1.RegisterEdgeServiceServer(a.grpc.Server, edgeImpl)
		setServing(a.grpc, "", edgeSvc)
		a.admin = grpcserver.New(opts(adminU, adminS))
		edgev1.RegisterAdminServiceServer(a.admin.Server, adminImpl)
		setServing(a.admin, "", adminSvc)
		rpc.InitializeMetrics(a.admin.Server)
	}
	rpc.InitializeMetrics(a.grpc.Server)
}

// registerMetrics adds the edge's series (metrics.EdgeMetrics), read from
// the same status as /status at every scrape.
func (a *App) registerMetrics() {
	a.reg.MustRegister(metrics.NewEdgeCollector(func() (metrics.EdgeSnapshot, error) {
		st, err := a.status()
		if err != nil {
			return metrics.EdgeSnapshot{}, err
		}
		disk, err := metrics.DirBytes(a.cfg.DataDir)
		if err != nil {
			disk = -1
		}
		qs, err := a.q.Stats()
		if err != nil {
			return metrics.EdgeSnapshot{}, err
		}
		snap := metrics.EdgeSnapshot{
			Status: st, Forwarding: a.fwd != nil, Started: a.started, DiskBytes: disk,
			ForwardedTotal: a.forwarded.Load(), DeadLettersTotal: a.deadLettered.Load(),
			AcceptedTotal: qs.Accepted, AppendGroupsTotal: qs.AppendGroups,
		}
		if a.fwd != nil {
			r := a.fwd.Reachability()
			snap.CentralProbed, snap.CentralReachable, snap.CentralLastReachable = r.Known, r.Reachable, r.LastOK
		}
		return snap, nil
	}))
}

// countingStore counts what the forwarder settles, for the _total series.
type countingStore struct {
	forward.Store
	forwarded, deadLettered *atomic.Uint64
	// rejected, when set, sees each batch's results once they are kept.
	rejected func([]*centralv1.TransactionResult)
}

func (s countingStore) ApplyCommit(res queue.CommitResult) error {
	if err := s.Store.ApplyCommit(res); err != nil {
		return err
	}
	var rejected uint64
	for _, r := range res.Results {
		if r.GetOutcome() == centralv1.Outcome_OUTCOME_REJECTED {
			rejected++
		}
	}
	s.forwarded.Add(uint64(len(res.Results)))
	s.deadLettered.Add(rejected)
	if rejected > 0 && s.rejected != nil {
		s.rejected(res.Results)
	}
	return nil
}

// newRegistry returns cfg's registry or a fresh one.
func newRegistry(r *prometheus.Registry) *prometheus.Registry {
	if r != nil {
		return r
	}
	return metrics.NewRegistry()
}

func setServing(s *grpcserver.Server, services ...string) {
	for _, svc := range services {
		s.Health.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
	}
}
