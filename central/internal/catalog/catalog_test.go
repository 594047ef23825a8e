package catalog_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chasqui/chasqui/central/internal/catalog"
	"github.com/chasqui/chasqui/internal/rows"
)

func TestAllowList(t *testing.T) {
	t.Parallel()
	a, err := catalog.ParseAllowList([]string{"ops.*", " lab.runs ", ""})
	require.NoError(t, err)
	for name, want := range map[string]bool{
		"ops.unit": true, "ops.package": true, "lab.runs": true,
		"lab.other": false, "public.unit": false,
	} {
		tb, err := rows.ParseTable(name)
		require.NoError(t, err)
		require.Equal(t, want, a.Allows(tb), name)
	}

	// Never writable, even when listed.
	for _, bad := range []string{"chasqui.*", "chasqui.edge_cursors", "pg_catalog.pg_class", "information_schema.*", "pg_toast.*", "pg_temp_3.t"} {
		_, err := catalog.ParseAllowList([]string{bad})
		require.ErrorContains(t, err, "never writable", bad)
	}
	for _, bad := range []string{"ops", "Ops.*", `ops."t"`, "ops.t;x"} {
		_, err := catalog.ParseAllowList([]string{bad})
		require.Error(t, err, bad)
	}
	require.True(t, catalog.AllowList{}.Empty())
}

func TestParseEdgeTables(t *testing.T) {
	t.Parallel()
	m, err := catalog.ParseEdgeTables([]string{"site-1=ops.unit,lab.*; site-2=ops.package", "site-1=ops.package"})
	require.NoError(t, err)
	allows := func(edge, table string) bool {
		tb, err := rows.ParseTable(table)
		require.NoError(t, err)
		return m[edge].Allows(tb)
	}
	require.True(t, allows("site-1", "ops.unit"))
	require.True(t, allows("site-1", "lab.x"))
	require.True(t, allows("site-1", "ops.package"))
	require.False(t, allows("site-2", "ops.unit"))
	require.True(t, allows("site-2", "ops.package"))
	for _, bad := range []string{"ops.unit", "=ops.unit", "site-1=chasqui.observations", "site-1=Ops.x"} {
		_, err := catalog.ParseEdgeTables([]string{bad})
		require.Error(t, err, bad)
	}
}
