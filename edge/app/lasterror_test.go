package app_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chasqui/chasqui/edge/app"
	"github.com/chasqui/chasqui/edge/internal/centralproc"
	"github.com/chasqui/chasqui/edge/internal/cli"
	"github.com/chasqui/chasqui/internal/pgtest"
)

// cliStatus runs `chasqui status` against the edge at addr and returns
// its forwarder row.
func cliStatus(t *testing.T, addr string) string {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), []string{"--addr", addr, "status"}, cli.Env{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		LookupEnv: func(string) (string, bool) { return "", false },
	})
	require.Equal(t, cli.ExitOK, code, errb.String())
	for line := range strings.Lines(out.String()) {
		if strings.HasPrefix(line, "forwarder") {
			return strings.TrimSpace(line)
		}
	}
	t.Fatalf("no forwarder row in:\n%s", out.String())
	return ""
}

// The forwarder's last error carries its time, and once a commit follows
// it, /status and `chasqui status` show it as past instead of current.
// Central is down at first (the error), then starts on that address.
func TestLastErrorShownAsPastAfterCommit(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	centralAddr := l.Addr().String()
	require.NoError(t, l.Close())

	r := start(t, app.Config{EdgeID: "edge-lasterr", DataDir: t.TempDir(), CentralAddr: centralAddr,
		CentralProbeInterval: 100 * time.Millisecond})
	a := r.a
	deadline := time.Now().Add(30 * time.Second)
	st := waitStatus(t, a.HTTPAddr(), time.Until(deadline), func(st map[string]any) bool {
		return st["forwarder_last_error"] != ""
	}, "a forwarder error while central is down")
	require.NotEmpty(t, st["forwarder_last_error_at"], "the error has its time: %v", st)
	require.Equal(t, false, st["forwarder_last_error_past"], "current while nothing committed")
	row := cliStatus(t, a.GRPCAddr())
	require.Contains(t, row, "last error (")
	require.Contains(t, row, " ago): ")
	require.NotContains(t, row, "before the last commit")

	dbURL := pgtest.NewDatabase(t, centralTemplate)
	var central *centralproc.Central
	for {
		central, err = centralproc.Start(context.Background(), centralproc.Options{GRPCAddr: centralAddr, DatabaseURL: dbURL})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // poll interval while the port is taken
	}
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, central.Stop()) })

	ctx := context.Background()
	res, err := r.c.StartObservation(ctx, observation())
	require.NoError(t, err)
	st = waitStatus(t, a.HTTPAddr(), time.Until(deadline.Add(30*time.Second)), func(st map[string]any) bool {
		return st["committed_through_seq"] == "1"
	}, fmt.Sprintf("seq %d committed", res.GetSeq()))
	require.NotEmpty(t, st["forwarder_last_error"], "kept as history")
	require.Equal(t, true, st["forwarder_last_error_past"], "past once a commit followed it: %v", st)
	errAt, err := time.Parse(time.RFC3339Nano, st["forwarder_last_error_at"].(string))
	require.NoError(t, err)
	commitAt, err := time.Parse(time.RFC3339Nano, st["last_commit_at"].(string))
	require.NoError(t, err)
	require.True(t, errAt.Before(commitAt), "error %s, commit %s", errAt, commitAt)
	require.Contains(t, cliStatus(t, a.GRPCAddr()), "ago, before the last commit): ")
}
