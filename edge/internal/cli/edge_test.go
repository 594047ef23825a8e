package cli

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chasqui/chasqui/edge/app"
)

// startEdge runs a real edge (plaintext on loopback) serving AdminService
// on an address of its own, as `chasqui-edge --admin-addr` does. Central
// is an address nobody listens on: the CLI's commands here do not need it.
func startEdge(t *testing.T) *app.App {
	t.Helper()
	return startEdgeIn(t, t.TempDir())
}

// startEdgeIn is startEdge on the data directory dir.
func startEdgeIn(t *testing.T, dir string) *app.App {
	t.Helper()
	a, err := app.New(app.Config{
		EdgeID: "site-cli", DataDir: dir, Insecure: true,
		GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", HTTPAddr: "-",
		CentralAddr: closedAddr(t),
	}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, a.Close())
	})
	return a
}

// An edge with --admin-addr serves no AdminService on its instrument
// address: status there says which address to give, not "not offered yet".
func TestStatusOnInstrumentAddressNamesAdminAddr(t *testing.T) {
	t.Parallel()
	a := startEdge(t)

	code, _, stderr := run(t, "", "--addr", a.GRPCAddr(), "status")
	t.Logf("chasqui status without --admin-addr:\n%s", stderr)
	require.Equal(t, ExitUsage, code, stderr)
	require.Contains(t, stderr, a.GRPCAddr()+" does not serve the edge's admin service")
	require.Contains(t, stderr, "--admin-addr (CHASQUI_CLI_ADMIN_ADDR)")
	require.NotContains(t, stderr, "does not offer that yet")

	// The other way round: the admin address given as --addr.
	code, _, stderr = run(t, "", "--addr", a.AdminAddr(), "get", "019ab3c2-7e10-7a2b-9c41-5d2e8f0a1b01")
	require.Equal(t, ExitUsage, code, stderr)
	require.Contains(t, stderr, a.AdminAddr()+" does not serve the edge service")
	require.Contains(t, stderr, "--addr (CHASQUI_CLI_ADDR)")

	code, stdout, stderr := run(t, "", "--addr", a.GRPCAddr(), "--admin-addr", a.AdminAddr(), "status")
	require.Equal(t, ExitOK, code, stderr)
	require.Regexp(t, `edge\s+site-cli`, stdout)
}
