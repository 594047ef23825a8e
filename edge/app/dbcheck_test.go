package app_test

import (
	"context"
	"net"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

type bundleDB struct{ url string }

// requireNoEdge checks that nothing of edge id reached PostgreSQL.
func (b *bundleDB) requireNoEdge(t *testing.T, id string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), b.url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var n int
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT count(*) FROM chasqui.edge_cursors WHERE edge_id = $1", id).Scan(&n))
	require.Zero(t, n)
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT count(*) FROM chasqui.applied_transactions").Scan(&n))
	require.Equal(t, 5, n, "only site-a's five transactions")
}

func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}
