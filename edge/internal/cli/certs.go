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
	var o certsOptions
	fs.StringVar(&o.dir, "dir", "certs", "directory of the site's certificates")
	fs.BoolVar(&o.force, "force", false, "replace existing files")
	fs.DurationVar(&o.validity, "validity", 0, "validity (default: 10 years for the CA, 397 days for leaves)")
	switch sub {
	case "init":
		fs.StringVar(&o.name, "name", "Chasqui site CA", "the CA's common name")
	case "issue-edge":
		fs.StringVar(&o.id, "id", "", "the edge id (required)")
		fs.StringVar(&o.hosts, "hosts", "localhost,127.0.0.1,::1", "comma-separated DNS names and IPs instruments use to reach the edge")
	case "issue-central":
		fs.StringVar(&o.hosts, "hosts", "", "comma-separated DNS names and IPs edges use to reach central (required)")
	case "issue-client":
		fs.StringVar(&o.name, "name", "", "the client's name, its certificate's common name (required)")
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
	if sub == "init" {
		return c.certsInit(o, time.Now())
	}
	return c.certsIssue(sub, o, time.Now())
}

// certsOptions are the flags of one certs subcommand; a zero validity means
// the default for what is being made.
type certsOptions struct {
	dir             string
	force           bool
	validity        time.Duration
	name, id, hosts string
}

// certsInit makes the site's CA.
func (c *command) certsInit(o certsOptions, now time.Time) error {
	v := o.validity
	if v == 0 {
		v = certs.DefaultCAValidity
	}
	_, pair, err := certs.NewCA(o.name, v, now)
	if err != nil {
		return err
	}
	cert, key, err := certs.WritePair(o.dir, "ca", pair, o.force)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.env.Stdout, "CA %q: %s (key %s, keep it safe)\n", o.name, cert, key)
	return nil
}

// certsIssue signs a leaf certificate with the CA in o.dir.
func (c *command) certsIssue(sub string, o certsOptions, now time.Time) error {
	leafValidity := o.validity
	if leafValidity == 0 {
		leafValidity = certs.DefaultLeafValidity
	}
	ca, err := certs.LoadCA(filepath.Join(o.dir, "ca.pem"), filepath.Join(o.dir, "ca-key.pem"))
	if err != nil {
		return fmt.Errorf("certs %s: %w (run 'chasqui certs init --dir %s' first)", sub, err, o.dir)
	}
	var (
		pair certs.Pair
		file string
	)
	switch sub {
	case "issue-edge":
		if o.id == "" {
			return usageError("certs issue-edge: --id is required")
		}
		pair, _, err = ca.IssueEdge(o.id, splitList(o.hosts), leafValidity, now)
		file = "edge-" + fileSafe(o.id)
	case "issue-central":
		if o.hosts == "" {
			return usageError("certs issue-central: --hosts is required (the names edges dial)")
		}
		pair, _, err = ca.IssueCentral(splitList(o.hosts), leafValidity, now)
		file = "central"
	case "issue-client":
		if o.name == "" {
			return usageError("certs issue-client: --name is required")
		}
		pair, _, err = ca.IssueClient(o.name, leafValidity, now)
		file = "client-" + fileSafe(o.name)
	}
	if err != nil {
		return err
	}
	cert, key, err := certs.WritePair(o.dir, file, pair, o.force)
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
