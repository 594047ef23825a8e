package app_test

import (
	"context"
	"log/slog"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/chasqui/chasqui/edge/app"
	"github.com/chasqui/chasqui/edge/client"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/logging"
	"github.com/chasqui/chasqui/internal/logging/logtest"
)

// submitLines runs an edge logging at level (as --log-level does), makes
// two good Submits and one bad one, and returns the server's Submit lines.
// Central is an address nobody listens on: Submit does not wait for it.
func submitLines(t *testing.T, level string) []map[string]any {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	central := l.Addr().String()
	require.NoError(t, l.Close())

	var logs logtest.Buffer
	log, err := logging.New(&logs, level)
	require.NoError(t, err)
	a, err := app.New(app.Config{EdgeID: "site-log", DataDir: t.TempDir(), Insecure: true,
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "-", CentralAddr: central}, log)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	c, err := client.Dial(ctx, a.GRPCAddr(), client.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	for range 2 {
		_, err = c.StartObservation(ctx, observation())
		require.NoError(t, err)
	}
	_, err = c.Submit(ctx, client.Tx(&opsv1.Mutation{})) // no record: refused
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.NoError(t, c.Close())
	cancel()
	require.NoError(t, <-done)
	require.NoError(t, a.Close())

	all, err := logs.JSONLines()
	require.NoError(t, err)
	var lines []map[string]any
	for _, m := range all {
		if m["grpc.method"] == "Submit" {
			lines = append(lines, m)
		}
	}
	return lines
}

// At the default level a successful Submit writes no line (one per call
// filled a site host's disk); a refused one does. --log-level debug shows
// every call.
func TestSubmitLogLines(t *testing.T) {
	t.Parallel()
	lines := submitLines(t, "info")
	require.Len(t, lines, 1, "only the refused Submit: %v", lines)
	require.Equal(t, "InvalidArgument", lines[0]["grpc.code"])
	require.Equal(t, "INFO", lines[0]["level"])
	require.Equal(t, 1.0, lines[0]["attempt"])

	lines = submitLines(t, "debug")
	require.Len(t, lines, 3, "every call at debug: %v", lines)
	require.Equal(t, "OK", lines[0]["grpc.code"])
	require.Equal(t, "DEBUG", lines[0]["level"])
}
