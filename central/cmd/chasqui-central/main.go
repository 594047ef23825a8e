// Command chasqui-central commits the edges' batches to PostgreSQL.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/chasqui/chasqui/central/internal/server"
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
		fmt.Fprintln(os.Stderr, "chasqui-central:", err)
		os.Exit(1)
	}
}

func realMain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("chasqui-central", flag.ContinueOnError)
	var cfg server.Config
	fs.StringVar(&cfg.GRPCAddr, "grpc-addr", server.DefaultGRPCAddr, "gRPC listen address")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", server.DefaultHTTPAddr, "HTTP listen address for /healthz, /readyz, /status, /metrics (\"-\" disables)")
	fs.StringVar(&cfg.DatabaseURL, "database-url", "", "PostgreSQL URL, postgres://user:password@host:port/db (required)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "server certificate (PEM; re-read when it changes)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "server key (PEM; re-read when it changes)")
	fs.StringVar(&cfg.TLSCA, "tls-ca", "", "site CA that signs the edges' client certificates (mutual TLS, required unless --insecure)")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "serve plaintext gRPC without authentication (loopback --grpc-addr only)")
	fs.BoolVar(&cfg.AllowInsecureRemote, "allow-insecure-remote", false, "allow --insecure on a non-loopback --grpc-addr (trusted networks only)")
	fs.IntVar(&cfg.HTTP2Window, "http2-window", grpcserver.DefaultWindowBytes, "HTTP/2 flow-control window per stream and per connection, in bytes (fixed: sized for the link's bandwidth x RTT)")
	fs.DurationVar(&cfg.GapWait, "gap-wait", server.DefaultGapWait, "how long a batch ahead of its predecessors waits (woken when they commit) before ABORTED, longer while one that fills the gap is in flight")
	fs.DurationVar(&cfg.Retention, "retention", server.DefaultRetention, "how long applied-transaction outcomes are kept")
	fs.Func("allow-tables", "comma-separated tables edges may write rows to: schema.table or schema.* (pg_*, information_schema and chasqui never)", func(v string) error {
		for _, e := range strings.Split(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				cfg.AllowTables = append(cfg.AllowTables, e)
			}
		}
		return nil
	})
	fs.Func("edge-tables", "restrict an edge to some allowed tables: edge=schema.table,schema.* (repeatable; entries may be joined with ;)", func(v string) error {
		cfg.EdgeTables = append(cfg.EdgeTables, v)
		return nil
	})
	common := config.AddCommon(fs)
	fs.Usage = config.Usage(fs, "chasqui-central commits the edges' batches to PostgreSQL exactly once, in order.")
	if err := config.Parse(fs, args, os.LookupEnv); err != nil {
		return err
	}
	if common.Version {
		fmt.Println("chasqui-central", version.String())
		return nil
	}
	logger, err := logging.New(os.Stderr, common.LogLevel)
	if err != nil {
		return err
	}
	// Spans are exported only when the OTEL_* environment asks for it.
	shutdownTracing, err := tracing.Setup(ctx, "chasqui-central", logger)
	if err != nil {
		return err
	}
	defer func() { _ = shutdownTracing(context.WithoutCancel(ctx)) }()
	srv, err := server.New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer func() { _ = srv.Close() }()
	return srv.Run(ctx)
}
