package store

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestJSONRoundTrips(t *testing.T) {
	t.Parallel()
	in := map[string]any{
		"s": "quote \" backslash \\ newline \n tab \t ctl \x01 ünï 🚀", "n": 0.42, "big": 1e300, "i": -3.0,
		"b": true, "null": nil, "list": []any{1.0, "x", []any{}, map[string]any{}}, "obj": map[string]any{"k": "v"},
	}
	s, err := structpb.NewStruct(in)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal([]byte(JSON(s)), &out))
	require.Equal(t, in, out)
	require.Equal(t, "{}", JSON(nil))
}
