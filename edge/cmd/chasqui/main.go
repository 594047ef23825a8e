// Command chasqui is the operator's tool for a Chasqui edge; see package cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/chasqui/chasqui/edge/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, LookupEnv: os.LookupEnv})
	stop()
	os.Exit(code)
}
