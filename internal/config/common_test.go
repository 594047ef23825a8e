package config

import (
	"flag"
	"testing"

	"github.com/chasqui/chasqui/internal/tlsconfig"
)

func TestCommonFlagsReadTheirEnvironment(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	c := AddCommon(fs)
	var files tlsconfig.Files
	AddClientTLS(fs, &files, "ca")
	err := Parse(fs, []string{"--version"}, env(map[string]string{
		"CHASQUI_LOG_LEVEL": "debug",
		"CHASQUI_TLS_CA":    "ca.pem",
		"CHASQUI_TLS_CERT":  "c.pem",
		"CHASQUI_TLS_KEY":   "k.pem",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.LogLevel != "debug" || !c.Version {
		t.Fatalf("common = %+v, want debug and version", *c)
	}
	if files != (tlsconfig.Files{CA: "ca.pem", Cert: "c.pem", Key: "k.pem"}) {
		t.Fatalf("files = %+v", files)
	}

	fs = flag.NewFlagSet("y", flag.ContinueOnError)
	c = AddCommon(fs)
	if err := Parse(fs, nil, env(nil)); err != nil {
		t.Fatal(err)
	}
	if c.LogLevel != DefaultLogLevel || c.Version {
		t.Fatalf("defaults = %+v", *c)
	}
}
