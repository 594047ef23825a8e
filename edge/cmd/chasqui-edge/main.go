// Command chasqui-edge accepts the site's writes durably and forwards them
// to central.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/chasqui/chasqui/edge/app"
	"github.com/chasqui/chasqui/edge/internal/forward"
	"github.com/chasqui/chasqui/edge/internal/queue"
	"github.com/chasqui/chasqui/internal/config"
	"github.com/chasqui/chasqui/internal/grpcserver"
	"github.com/chasqui/chasqui/internal/logging"
	"github.com/chasqui/chasqui/internal/tracing"
	"github.com/chasqui/chasqui/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:])
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "chasqui-edge:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("chasqui-edge", flag.ContinueOnError)
	var cfg app.Config
	configFlags(fs, &cfg)
	memLimit := fs.Int64("memory-limit", app.DefaultMemoryLimit, "Go soft memory limit in bytes (GC works harder near it; 0: GOMEMLIMIT or none)")
	common := config.AddCommon(fs)
	fs.Usage = config.Usage(fs, "chasqui-edge accepts the site's writes durably (fsync before ack) and forwards them to central.")
	if err := config.Parse(fs, args, os.LookupEnv); err != nil {
		return err
	}
	if common.Version {
		fmt.Println("chasqui-edge", version.String())
		return nil
	}
	if cfg.CentralAddr == "" {
		return errors.New("--central-addr is required")
	}
	if cfg.CentralProbeInterval == 0 {
		cfg.CentralProbeInterval = -1 // the flag's 0 is app.Config's "disabled"
	}
	logger, err := logging.New(os.Stderr, common.LogLevel)
	if err != nil {
		return err
	}
	// Badger's memtables and table-builder buffers live on the Go heap;
	// without a limit the heap may grow to twice the live data during
	// compactions of a large backlog (peak ~430 MiB anonymous measured for
	// a 1M-transaction backlog written at full speed, ~170 MiB with a
	// 160 MiB limit). The limit keeps the edge well under 256 MiB RSS
	// (mmapped files aside: they are page cache).
	if *memLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(*memLimit)
	}
	// Spans are exported only when the OTEL_* environment asks for it.
	shutdownTracing, err := tracing.Setup(ctx, "chasqui-edge", logger)
	if err != nil {
		return err
	}
	defer func() { _ = shutdownTracing(context.WithoutCancel(ctx)) }()
	a, err := app.New(cfg, logger)
	if err != nil {
		return err
	}
	// The store is open and the listeners are bound: tell systemd
	// (Type=notify) we are ready. A no-op outside systemd.
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		logger.Warn("sd_notify READY failed", "err", err)
	}
	defer func() { _, _ = daemon.SdNotify(false, daemon.SdNotifyStopping) }()
	runErr := a.Run(ctx)
	if err := a.Close(); err != nil {
		logger.Error("close", "err", err)
		return errors.Join(runErr, err)
	}
	return runErr
}

// configFlags binds the edge's configuration to its flags.
func configFlags(fs *flag.FlagSet, cfg *app.Config) {
	fs.StringVar(&cfg.EdgeID, "edge-id", "", "this edge's id (required)")
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", app.DefaultGRPCAddr, "gRPC listen address")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", app.DefaultHTTPAddr, "HTTP listen address for /healthz, /readyz, /status, /metrics (\"-\" disables)")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "queue data directory (required)")
	fs.StringVar(&cfg.CentralAddr, "central-addr", "", "central's gRPC address (required)")
	fs.StringVar(&cfg.ReplicaURL, "replica-url", "", "site replica of central's database (PostgreSQL URL): VISIBLE states, replication lag, reads (empty: reads go through to central)")
	fs.Int64Var(&cfg.QueueMaxBytes, "queue-max-bytes", queue.DefaultMaxQueueBytes, "most payload bytes waiting for central")
	fs.Uint64Var(&cfg.DiskReserveBytes, "disk-reserve", queue.DefaultDiskReserve, "free disk bytes under which writes are refused")
	fs.DurationVar(&cfg.TxRetention, "tx-retention", queue.DefaultTxRetention, "how long a settled transaction's first answer is kept")
	fs.DurationVar(&cfg.PayloadRetention, "payload-retention", queue.DefaultPayloadRetention, "how long committed payloads are kept for resends")
	fs.IntVar(&cfg.BatchMaxCount, "batch-max-count", forward.DefaultMaxCount, "most transactions per Commit batch (at most 5000, central's limit; --batch-max-bytes bounds a batch on a slow link)")
	fs.IntVar(&cfg.BatchMaxBytes, "batch-max-bytes", forward.DefaultMaxBytes, "most bytes per Commit batch")
	fs.DurationVar(&cfg.BatchLinger, "batch-linger", forward.DefaultLinger, "how long a batch that is not full waits for more")
	fs.IntVar(&cfg.Window, "window", forward.DefaultWindow, "batches in flight to central")
	fs.Int64Var(&cfg.BandwidthBytesPerSec, "bandwidth", 0, "link cap in bytes/s (0: none)")
	fs.StringVar(&cfg.Compression, "compression", "gzip", "link compression: gzip or none")
	fs.IntVar(&cfg.HTTP2Window, "http2-window", app.DefaultInstrumentHTTP2Window, "HTTP/2 flow-control window per stream and per connection of the instruments' server, in bytes")
	fs.IntVar(&cfg.CentralHTTP2Window, "central-http2-window", grpcserver.DefaultWindowBytes, "HTTP/2 flow-control window per stream and per connection to central, in bytes (fixed: sized for the link's bandwidth x RTT)")
	fs.DurationVar(&cfg.CentralProbeInterval, "central-probe-interval", forward.DefaultProbeInterval,
		"how often to probe central (GetCursor) while nothing was committed within it, for chasqui_central_reachable (0 disables)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "edge certificate (PEM, from 'chasqui certs issue-edge'), served to instruments and presented to central; re-read on change")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "edge key (PEM); re-read on change")
	fs.StringVar(&cfg.TLSCA, "tls-ca", "", "site CA: verifies central and instrument client certificates")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "plaintext gRPC without authentication (loopback addresses only)")
	fs.BoolVar(&cfg.AllowInsecureRemote, "allow-insecure-remote", false, "allow --insecure on non-loopback addresses (trusted networks only)")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", "", "serve AdminService (status, dead letters) on this address only (default: on --grpc-addr, which with TLS needs --admin-token)")
	fs.StringVar(&cfg.AdminToken, "admin-token", "", "bearer token AdminService calls must carry (secret: prefer the environment variable)")
	fs.StringVar(&cfg.InstrumentToken, "instrument-token", "", "bearer token EdgeService calls must carry (secret: prefer the environment variable)")
	fs.BoolVar(&cfg.InstrumentClientCert, "instrument-client-cert", false, "require instrument client certificates signed by --tls-ca")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", app.DefaultShutdownTimeout, "graceful stop bound")
}
