package cli

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func run(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, Env{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		LookupEnv: func(string) (string, bool) { return "", false },
	})
	return code, out.String(), errb.String()
}

func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func TestUnreachableEdgeSaysSoWithExitCode(t *testing.T) {
	t.Parallel()
	addr := closedAddr(t)
	code, _, stderr := run(t, "", "--addr", addr, "--timeout", "500ms", "status")
	require.Equal(t, ExitUnreachable, code)
	require.Contains(t, stderr, "unreachable")
	require.Contains(t, stderr, addr)
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"get"},
		{"get", "not-a-uuid"},
		{"submit"},
		{"deadletters"},
		{"deadletters", "explode"},
		{"--no-such-flag", "status"},
	} {
		code, _, stderr := run(t, "", args...)
		require.Equal(t, ExitUsage, code, "args %q: %s", args, stderr)
	}
}

func TestParseSubmissionFillsMissingTransactionID(t *testing.T) {
	t.Parallel()
	req, err := parseSubmission([]byte(`{"mutations":[{"observation":{"instrument":"CHAI","status":"OBSERVATION_STATUS_RUNNING"}}]}`))
	require.NoError(t, err)
	require.Len(t, req.Transactions, 1)
	require.Len(t, req.Transactions[0].Id, 36, "a bare Transaction gets an id before the first attempt")

	req, err = parseSubmission([]byte(`{"transactions":[{"id":"019ab3c2-7e10-7a2b-9c41-5d2e8f0a1b01","mutations":[]}]}`))
	require.NoError(t, err)
	require.Equal(t, "019ab3c2-7e10-7a2b-9c41-5d2e8f0a1b01", req.Transactions[0].Id)

	_, err = parseSubmission([]byte(`{"nonsense": 1}`))
	require.Error(t, err)
}

// -h prints the usage once, then one flag section: no stray heading.
func TestHelpHasOneFlagsHeading(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-h"}, {"certs", "init", "-h"}} {
		code, _, stderr := run(t, "", args...)
		require.Equal(t, ExitOK, code, "args %q", args)
		require.Contains(t, stderr, "Usage:", "args %q", args)
		require.Contains(t, stderr, "\n  --", "args %q: flags listed", args)
		var headings []string
		for _, l := range strings.Split(stderr, "\n") {
			if strings.HasPrefix(l, "Flags") {
				headings = append(headings, l)
			}
		}
		require.Equal(t, []string{"Flags (each also read from its environment variable):"}, headings, "args %q:\n%s", args, stderr)
	}
}

// An operator on the edge's host with the edge's environment exported: the
// CLI reads only its own CHASQUI_CLI_* names, never the edge's listen
// addresses or server certificate.
func TestEdgeEnvironmentDoesNotSteerTheCLI(t *testing.T) {
	t.Parallel()
	mine, edges := closedAddr(t), closedAddr(t)
	envs := map[string]string{
		// The edge's own settings (deploy/systemd/edge.env.example names).
		"CHASQUI_ADDR": edges, "CHASQUI_ADMIN_ADDR": edges, "CHASQUI_GRPC_ADDR": edges,
		"CHASQUI_TLS_CA": "/nonexistent/ca.pem", "CHASQUI_TLS_CERT": "/nonexistent/edge.pem",
		"CHASQUI_TLS_KEY": "/nonexistent/edge-key.pem", "CHASQUI_TIMEOUT": "nonsense",
		// The CLI's.
		"CHASQUI_CLI_ADDR": mine, "CHASQUI_CLI_TIMEOUT": "500ms",
	}
	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"status"}, Env{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		LookupEnv: func(k string) (string, bool) { v, ok := envs[k]; return v, ok },
	})
	require.Equal(t, ExitUnreachable, code, errb.String())
	require.Contains(t, errb.String(), "the edge at "+mine+" is unreachable", "CHASQUI_CLI_ADDR, with --admin-addr defaulting to it")
	require.NotContains(t, errb.String(), edges)
	require.Contains(t, errb.String(), "CHASQUI_CLI_ADDR", "the hint names the CLI's variable")

	_, _, help := run(t, "", "-h")
	require.Contains(t, help, "--addr  [CHASQUI_CLI_ADDR]")
	require.Contains(t, help, "--admin-addr  [CHASQUI_CLI_ADMIN_ADDR]")
}
