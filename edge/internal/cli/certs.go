package cli

import (
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/chasqui/chasqui/internal/certs"
	"github.com/chasqui/chasqui/internal/config"
)

const certsUsage = `chasqui certs — certificates for a Chasqui site (standard library crypto, ECDSA P-256)

Usage:
  chasqui certs init          [--dir DIR] [--name NAME] [--validity D]     a CA: DIR/ca.pem, DIR/ca-key.pem
  chasqui certs issue-edge    --id EDGE_ID [--hosts H,...] [--dir DIR]    DIR/edge-EDGE_ID.pem and -key.pem
  chasqui certs issue-central --hosts H,... [--dir DIR]                   DIR/central.pem and -key.pem
  chasqui certs issue-client  --name NAME [--dir DIR]                     DIR/client-NAME.pem and -key.pem

An edge certificate names its edge in a URI SAN chasqui://edge/EDGE_ID: that
is the identity central checks (an edge may only write as itself). It is a
client certificate (towards central) and a server certificate (towards
instruments) for --hosts. Central's certificate is a server certificate
only, so it cannot pose as an edge. Keys are written with mode 0600; the CA
key (ca-key.pem) signs everything: keep it off the service hosts.
Existing files are kept unless --force. Replacing a service's certificate
files (issue again with --force) takes effect without a restart.
`

// certsCmd runs `chasqui certs ...`. It needs no edge.
func (c *command) certsCmd(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(c.env.Stderr, certsUsage)
		if len(args) == 0 {
			return usageError("certs: missing subcommand")
		}
		return nil
	}
	sub := args[0]
	fs := flag.NewFlagSet("chasqui certs "+sub, flag.ContinueOnError)
	fs.SetOutput(c.env.Stderr)
	dir := fs.String("dir", "certs", "directory of the site's certificates")
	force := fs.Bool("force", false, "replace existing files")
	validity := fs.Duration("validity", 0, "validity (default: 10 years for the CA, 397 days for leaves)")
	var name, id, hosts string
	switch sub {
	case "init":
		fs.StringVar(&name, "name", "Chasqui site CA", "the CA's common name")
	case "issue-edge":
		fs.StringVar(&id, "id", "", "the edge id (required)")
		fs.StringVar(&hosts, "hosts", "localhost,127.0.0.1,::1", "comma-separated DNS names and IPs instruments use to reach the edge")
	case "issue-central":
		fs.StringVar(&hosts, "hosts", "", "comma-separated DNS names and IPs edges use to reach central (required)")
	case "issue-client":
		fs.StringVar(&name, "name", "", "the client's name, its certificate's common name (required)")
	default:
		return usageError("certs: unknown subcommand %q (init, issue-edge, issue-central, issue-client)", sub)
	}
	fs.Usage = config.UsagePrefixed(fs, EnvPrefix, strings.TrimSuffix(certsUsage, "\n"))
	if err := config.ParsePrefixed(fs, args[1:], c.env.LookupEnv, EnvPrefix); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return usageError("%v", err)
	}
	if fs.NArg() > 0 {
		return usageError("certs %s: unexpected argument %q", sub, fs.Arg(0))
	}
	now := time.Now()
	leafValidity := *validity
	if leafValidity == 0 {
		leafValidity = certs.DefaultLeafValidity
	}
	if sub == "init" {
		v := *validity
		if v == 0 {
			v = certs.DefaultCAValidity
		}
		_, pair, err := certs.NewCA(name, v, now)
		if err != nil {
			return err
		}
		cert, key, err := certs.WritePair(*dir, "ca", pair, *force)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.env.Stdout, "CA %q: %s (key %s, keep it safe)\n", name, cert, key)
		return nil
	}
	ca, err := certs.LoadCA(filepath.Join(*dir, "ca.pem"), filepath.Join(*dir, "ca-key.pem"))
	if err != nil {
		return fmt.Errorf("certs %s: %w (run 'chasqui certs init --dir %s' first)", sub, err, *dir)
	}
	var (
		pair certs.Pair
		file string
	)
	switch sub {
	case "issue-edge":
		if id == "" {
			return usageError("certs issue-edge: --id is required")
		}
		pair, _, err = ca.IssueEdge(id, splitList(hosts), leafValidity, now)
		file = "edge-" + fileSafe(id)
	case "issue-central":
		if hosts == "" {
			return usageError("certs issue-central: --hosts is required (the names edges dial)")
		}
		pair, _, err = ca.IssueCentral(splitList(hosts), leafValidity, now)
		file = "central"
	case "issue-client":
		if name == "" {
			return usageError("certs issue-client: --name is required")
		}
		pair, _, err = ca.IssueClient(name, leafValidity, now)
		file = "client-" + fileSafe(name)
	}
	if err != nil {
		return err
	}
	cert, key, err := certs.WritePair(*dir, file, pair, *force)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.env.Stdout, "%s: %s (key %s)\n", sub, cert, key)
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, h := range strings.Split(s, ",") {
		if h = strings.TrimSpace(h); h != "" {
			out = append(out, h)
		}
	}
	return out
}

// fileSafe keeps an id usable as a file name.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}
