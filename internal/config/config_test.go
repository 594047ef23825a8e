package config

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func newSet() (*flag.FlagSet, *string, *time.Duration, *bool) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("grpc-addr", ":1", "")
	wait := fs.Duration("gap-wait", time.Second, "")
	insecure := fs.Bool("insecure", false, "")
	return fs, addr, wait, insecure
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestEnvFallbackAndPrecedence(t *testing.T) {
	fs, addr, wait, insecure := newSet()
	err := Parse(fs, []string{"--grpc-addr", ":3"}, env(map[string]string{
		"CHASQUI_GRPC_ADDR": ":2", "CHASQUI_GAP_WAIT": "250ms", "CHASQUI_INSECURE": "true",
	}))
	require.NoError(t, err)
	require.Equal(t, ":3", *addr, "a flag on the command line wins over the environment")
	require.Equal(t, 250*time.Millisecond, *wait, "unset flag taken from the environment")
	require.True(t, *insecure)
}

func TestDefaultsWithoutEnv(t *testing.T) {
	fs, addr, wait, _ := newSet()
	require.NoError(t, Parse(fs, nil, env(nil)))
	require.Equal(t, ":1", *addr)
	require.Equal(t, time.Second, *wait)
}

func TestBadEnvValueNamesVariable(t *testing.T) {
	fs, _, _, _ := newSet()
	err := Parse(fs, nil, env(map[string]string{"CHASQUI_GAP_WAIT": "soon"}))
	require.ErrorContains(t, err, "CHASQUI_GAP_WAIT")
	require.ErrorContains(t, err, "--gap-wait")
}

func TestEnvName(t *testing.T) {
	require.Equal(t, "CHASQUI_DATA_DIR", EnvName("data-dir"))
}

func TestPrefixedReadsOnlyItsOwnNames(t *testing.T) {
	fs, addr, _, _ := newSet()
	err := ParsePrefixed(fs, nil, env(map[string]string{
		"CHASQUI_GRPC_ADDR": ":2", "CHASQUI_TOOL_GAP_WAIT": "3s",
	}), "CHASQUI_TOOL_")
	require.NoError(t, err)
	require.Equal(t, ":1", *addr, "the service's variable does not reach the tool")
	require.Equal(t, "CHASQUI_TOOL_GRPC_ADDR", PrefixedEnvName("CHASQUI_TOOL_", "grpc-addr"))
}
