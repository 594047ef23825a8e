package rows

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestParseTable(t *testing.T) {
	tb, err := ParseTable("ops.raw_data_package")
	require.NoError(t, err)
	require.Equal(t, Table{Schema: "ops", Name: "raw_data_package"}, tb)
	require.Equal(t, "ops.raw_data_package", tb.String())

	for _, bad := range []string{
		"", "ops", "ops.", ".t", "Ops.t", "ops.T", `ops."t"`, "ops.t;drop table x",
		"ops.t.u", "1ops.t", "ops.$t", "ops.t x", "ops.t\x00",
		"ops." + string(make([]byte, 64)),
	} {
		_, err := ParseTable(bad)
		require.Error(t, err, "%q", bad)
	}
}

func TestKeyIsCanonical(t *testing.T) {
	cols := []string{"site", "id"}
	a, err := structpb.NewStruct(map[string]any{"site": "cl", "id": 42.0, "x": "ignored"})
	require.NoError(t, err)
	b, err := structpb.NewStruct(map[string]any{"id": "42", "site": "cl"})
	require.NoError(t, err)
	ka, err := Key(cols, a)
	require.NoError(t, err)
	kb, err := Key(cols, b)
	require.NoError(t, err)
	require.Equal(t, ka, kb)
	require.Equal(t, `["cl","42"]`, ka)

	c, err := structpb.NewStruct(map[string]any{"site": "cl", "id": 43.0})
	require.NoError(t, err)
	kc, err := Key(cols, c)
	require.NoError(t, err)
	require.NotEqual(t, ka, kc)
}

func TestKeyRefusesMissingNullAndNested(t *testing.T) {
	cols := []string{"id"}
	for name, v := range map[string]map[string]any{
		"missing": {"other": 1.0},
		"null":    {"id": nil},
		"list":    {"id": []any{1.0}},
		"object":  {"id": map[string]any{"a": 1.0}},
	} {
		s, err := structpb.NewStruct(v)
		require.NoError(t, err)
		_, err = Key(cols, s)
		require.Error(t, err, name)
		require.Contains(t, err.Error(), `"id"`, name)
	}
}
