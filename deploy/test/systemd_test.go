package deploytest

import (
	"bufio"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// unitFile is a systemd unit: section -> key -> values (keys may repeat).
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, rel string) unitFile {
	t.Helper()
	f, err := os.Open(repoPath(rel))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not key=value in a section: %q", rel, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u unitFile) get(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

var envLine = regexp.MustCompile(`^#?\s*(CHASQUI_[A-Z0-9_]+)=`)

// envExampleNames returns the CHASQUI_* names of an env example, commented
// or not.
func envExampleNames(t *testing.T, rel string) []string {
	t.Helper()
	raw, err := os.ReadFile(repoPath(rel))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(string(raw), "\n") {
		if m := envLine.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			names = append(names, m[1])
		}
	}
	return names
}

func TestSystemdUnits(t *testing.T) {
	t.Parallel()
	hardening := map[string]string{
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
		"PrivateTmp": "yes", "Restart": "always",
	}
	for _, c := range []struct {
		unit, binary, envFile, typ, dataDir string
	}{
		{"chasqui-edge.service", "chasqui-edge", "/etc/chasqui/edge.env", "notify", "/var/lib/chasqui/edge"},
		{"chasqui-central.service", "chasqui-central", "/etc/chasqui/central.env", "exec", ""},
	} {
		u := parseUnit(t, "deploy/systemd/"+c.unit)
		svc := func(k string) string { return u.get("Service", k) }
		if got := svc("Type"); got != c.typ {
			t.Errorf("%s: Type=%s, want %s", c.unit, got, c.typ)
		}
		if got := svc("ExecStart"); got != "/usr/local/bin/"+c.binary {
			t.Errorf("%s: ExecStart=%s", c.unit, got)
		}
		if got := svc("EnvironmentFile"); got != c.envFile {
			t.Errorf("%s: EnvironmentFile=%s, want %s", c.unit, got, c.envFile)
		}
		for k, want := range hardening {
			if got := svc(k); got != want {
				t.Errorf("%s: %s=%q, want %q", c.unit, k, got, want)
			}
		}
		for _, k := range []string{"RestartSec", "LimitNOFILE", "User"} {
			if svc(k) == "" {
				t.Errorf("%s: %s unset", c.unit, k)
			}
		}
		if svc("User") != "" && svc("DynamicUser") == "yes" {
			t.Errorf("%s: both User= and DynamicUser=", c.unit)
		}
		if u.get("Install", "WantedBy") != "multi-user.target" {
			t.Errorf("%s: not WantedBy=multi-user.target", c.unit)
		}
		if c.dataDir != "" {
			if got := svc("ReadWritePaths"); got != c.dataDir {
				t.Errorf("%s: ReadWritePaths=%s, want the data dir %s", c.unit, got, c.dataDir)
			}
			if got := "/var/lib/" + svc("StateDirectory"); got != c.dataDir {
				t.Errorf("%s: StateDirectory makes %s, want %s", c.unit, got, c.dataDir)
			}
			if !strings.Contains(strings.Join(u["Service"]["Environment"], " "), "CHASQUI_DATA_DIR="+c.dataDir) {
				t.Errorf("%s: Environment does not default CHASQUI_DATA_DIR to %s", c.unit, c.dataDir)
			}
		}
		// Environment= names real flags too.
		var names []string
		for _, e := range u["Service"]["Environment"] {
			for _, kv := range strings.Fields(e) {
				k, _, _ := strings.Cut(kv, "=")
				names = append(names, k)
			}
		}
		checkEnvNames(t, c.unit+" Environment=", c.binary, names)
	}
	edgeEnv := envExampleNames(t, "deploy/systemd/edge.env.example")
	if !slices.Contains(edgeEnv, "CHASQUI_DATA_DIR") {
		t.Error("edge.env.example does not name CHASQUI_DATA_DIR")
	}
}

// TestEnvExamplesNameRealFlags: every CHASQUI_* in an env example is a flag
// of its binary, and every configuration flag of the binary is documented
// there (so a new flag reaches the operators' example).
func TestEnvExamplesNameRealFlags(t *testing.T) {
	t.Parallel()
	for file, bin := range map[string]string{
		"deploy/systemd/edge.env.example":    "chasqui-edge",
		"deploy/systemd/central.env.example": "chasqui-central",
	} {
		names := envExampleNames(t, file)
		if len(names) == 0 {
			t.Errorf("%s names no CHASQUI_* variable", file)
			continue
		}
		seen := map[string]int{}
		for _, n := range names {
			seen[n]++
			if seen[n] == 2 {
				t.Errorf("%s: %s appears twice", file, n)
			}
		}
		checkEnvNames(t, file, bin, names)
		for f := range realFlags(t, bin) {
			if !notConfig[f] && seen[envName(f)] == 0 {
				t.Errorf("%s: flag --%s of %s is not documented (add %s)", file, f, bin, envName(f))
			}
		}
	}
}
