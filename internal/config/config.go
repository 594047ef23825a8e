// Package config binds command-line flags to CHASQUI_* environment
// variables, so every flag of every binary has an environment fallback.
//
// Precedence: a flag given on the command line wins, then the environment,
// then the flag's default.
package config

import (
	"flag"
	"fmt"
	"strings"
)

// EnvPrefix is put before every environment variable name.
const EnvPrefix = "CHASQUI_"

// EnvName is the environment variable that backs a flag: upper case, dashes
// to underscores, with EnvPrefix ("grpc-addr" -> "CHASQUI_GRPC_ADDR").
func EnvName(flagName string) string { return PrefixedEnvName(EnvPrefix, flagName) }

// PrefixedEnvName is EnvName with another prefix.
func PrefixedEnvName(prefix, flagName string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args into fs and then takes every flag that was not given on
// the command line from its environment variable, when that is set.
// lookupEnv is os.LookupEnv outside tests. An unusable value names both the
// variable and the flag.
func Parse(fs *flag.FlagSet, args []string, lookupEnv func(string) (string, bool)) error {
	return ParsePrefixed(fs, args, lookupEnv, EnvPrefix)
}

// ParsePrefixed is Parse with variables named prefix + FLAG. A tool run on
// a service's host takes a prefix of its own: an operator who exports the
// service's environment must not point the tool at the service's listen
// addresses or make it present the service's certificate.
func ParsePrefixed(fs *flag.FlagSet, args []string, lookupEnv func(string) (string, bool), prefix string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var firstErr error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || firstErr != nil {
			return
		}
		name := PrefixedEnvName(prefix, f.Name)
		v, ok := lookupEnv(name)
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			firstErr = fmt.Errorf("%s (flag --%s): %w", name, f.Name, err)
		}
	})
	return firstErr
}

// Usage prints the flags with the environment variable of each, for -h.
func Usage(fs *flag.FlagSet, summary string) func() { return UsagePrefixed(fs, EnvPrefix, summary) }

// UsagePrefixed is Usage for ParsePrefixed.
func UsagePrefixed(fs *flag.FlagSet, prefix, summary string) func() {
	return func() {
		w := fs.Output()
		fmt.Fprintf(w, "%s\n\nFlags (each also read from its environment variable):\n", summary)
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" {
				def = fmt.Sprintf(" (default %q)", f.DefValue)
			}
			fmt.Fprintf(w, "  --%s  [%s]%s\n      %s\n", f.Name, PrefixedEnvName(prefix, f.Name), def, f.Usage)
		})
	}
}
