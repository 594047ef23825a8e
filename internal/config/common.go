package config

import (
	"flag"

	"github.com/chasqui/chasqui/internal/tlsconfig"
)

// DefaultLogLevel is the level of every binary's --log-level.
const DefaultLogLevel = "info"

// Common are the flags every long-running Chasqui binary takes.
type Common struct {
	// LogLevel is --log-level: debug, info, warn or error. Default
	// DefaultLogLevel.
	LogLevel string
	// Version is --version: print the version and exit.
	Version bool
}

// AddCommon declares --log-level and --version on fs.
func AddCommon(fs *flag.FlagSet) *Common {
	c := new(Common)
	fs.StringVar(&c.LogLevel, "log-level", DefaultLogLevel, "debug, info, warn or error")
	AddVersion(fs, &c.Version)
	return c
}

// AddVersion declares --version on fs (for binaries without a log).
func AddVersion(fs *flag.FlagSet, v *bool) {
	fs.BoolVar(v, "version", false, "print the version and exit")
}

// AddClientTLS declares --tls-ca, --tls-cert and --tls-key for a client of
// the edge: what verifies the edge's certificate, and the pair presented
// when the edge asks for a client certificate. caUsage says what happens
// without a CA (plaintext, for instance).
func AddClientTLS(fs *flag.FlagSet, f *tlsconfig.Files, caUsage string) {
	fs.StringVar(&f.CA, "tls-ca", "", caUsage)
	fs.StringVar(&f.Cert, "tls-cert", "", "client certificate, when the edge requires one")
	fs.StringVar(&f.Key, "tls-key", "", "client key")
}
