package deploytest

import (
	"context"
	"net"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// composeBinaries maps the compose services that run a Chasqui binary to it.
var composeBinaries = map[string]string{
	"central": "chasqui-central",
	"edge":    "chasqui-edge",
	"sim":     "chasqui-sim",
}

var composeServices = []string{"postgres-primary", "postgres-replica", "central", "edge", "sim", "prometheus"}

// loadCompose loads docker-compose.yml with compose-go, the library behind
// `docker compose`: schema validation, interpolation with the defaults (an
// empty environment), YAML anchors and merge keys resolved.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	file := repoPath("docker-compose.yml")
	project, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  repoRoot,
		ConfigFiles: []types.ConfigFile{{Filename: file}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("chasqui", true) })
	if err != nil {
		t.Fatalf("load %s: %v", file, err)
	}
	return project
}

func envValue(env types.MappingWithEquals, key string) string {
	if v, ok := env[key]; ok && v != nil {
		return *v
	}
	return ""
}

// port is the port of a listen or dial address ("host:port" or ":port").
func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil || p == "" {
		t.Errorf("address %q has no port: %v", addr, err)
	}
	return p
}

func TestComposeServicesAndHealthchecks(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	for _, name := range composeServices {
		s, ok := p.Services[name]
		if !ok {
			t.Errorf("service %s missing", name)
			continue
		}
		hc := s.HealthCheck
		if hc == nil || hc.Disable || len(hc.Test) < 2 || hc.Test[0] == "NONE" {
			t.Errorf("service %s has no healthcheck", name)
			continue
		}
		if _, chasqui := composeBinaries[name]; chasqui {
			// Distroless: no shell, so CMD form and the probe built into
			// the image.
			if hc.Test[0] != "CMD" || path.Base(hc.Test[1]) != "grpc-health-probe" {
				t.Errorf("service %s: healthcheck %v, want [CMD .../grpc-health-probe ...] (the image has no shell)", name, hc.Test)
			}
			if s.Build == nil {
				t.Errorf("service %s: not built from the Dockerfile", name)
			}
			if len(s.Command) == 0 || path.Base(s.Command[0]) != composeBinaries[name] {
				t.Errorf("service %s: command %v, want %s", name, s.Command, composeBinaries[name])
			}
		}
	}
	for name := range p.Services {
		if !slices.Contains(composeServices, name) {
			t.Errorf("service %s is not known to this test: add it to composeServices", name)
		}
	}
	// The probe and every commanded binary must be built into the image.
	dockerfile, err := os.ReadFile(repoPath("Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"grpc-ecosystem/grpc-health-probe@", "./central/cmd/chasqui-central", "./edge/cmd/chasqui-edge", "./edge/cmd/chasqui-sim", "./edge/cmd/chasqui ", "CGO_ENABLED=0", "distroless/static"} {
		if !strings.Contains(string(dockerfile), want) {
			t.Errorf("Dockerfile does not mention %q", want)
		}
	}
}

func TestComposeVolumesAreNamed(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	// Where each service keeps its state; it must be on a named volume.
	dataDirs := map[string]string{
		"postgres-primary": "/var/lib/postgresql/data",
		"postgres-replica": "/var/lib/postgresql/data",
		"prometheus":       "/prometheus",
	}
	if e, ok := p.Services["edge"]; ok {
		dataDirs["edge"] = envValue(e.Environment, "CHASQUI_DATA_DIR")
	}
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			switch v.Type {
			case types.VolumeTypeVolume:
				if v.Source == "" {
					t.Errorf("service %s: anonymous volume at %s", name, v.Target)
				} else if _, ok := p.Volumes[v.Source]; !ok {
					t.Errorf("service %s: volume %s is not declared under volumes:", name, v.Source)
				}
			case types.VolumeTypeBind:
				if !v.ReadOnly {
					t.Errorf("service %s: bind mount %s -> %s is writable; state belongs on named volumes", name, v.Source, v.Target)
				}
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("service %s: bind mount source: %v", name, err)
				}
			}
		}
		dir, ok := dataDirs[name]
		if !ok {
			continue
		}
		if dir == "" {
			t.Errorf("service %s: no data directory", name)
			continue
		}
		onNamed := slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
			return v.Type == types.VolumeTypeVolume && v.Source != "" &&
				(dir == v.Target || strings.HasPrefix(dir, strings.TrimSuffix(v.Target, "/")+"/"))
		})
		if !onNamed {
			t.Errorf("service %s: data directory %s is not on a named volume", name, dir)
		}
	}
}

func TestComposeEnvironmentNamesRealFlags(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	for svc, bin := range composeBinaries {
		s, ok := p.Services[svc]
		if !ok {
			t.Errorf("service %s missing", svc)
			continue
		}
		var names []string
		for k := range s.Environment {
			if !strings.HasPrefix(k, "CHASQUI_") {
				t.Errorf("service %s: environment %s is not a CHASQUI_* flag variable", svc, k)
				continue
			}
			names = append(names, k)
		}
		checkEnvNames(t, "docker-compose.yml service "+svc, bin, names)
	}
}

// TestComposeWiring checks that the addresses point where the services are:
// central at the primary, the edge at central and at the replica, the
// simulator at the edge, and that the replica is a pg_basebackup clone.
func TestComposeWiring(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	env := func(svc, key string) string {
		s, ok := p.Services[svc]
		if !ok {
			t.Fatalf("service %s missing", svc)
		}
		v := envValue(s.Environment, key)
		if v == "" {
			t.Errorf("service %s: %s unset", svc, key)
		}
		return v
	}
	dbHost := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			t.Errorf("%q: %v", raw, err)
			return ""
		}
		return u.Hostname()
	}
	if h := dbHost(env("central", "CHASQUI_DATABASE_URL")); h != "postgres-primary" {
		t.Errorf("central's database is %q, want postgres-primary", h)
	}
	if h := dbHost(env("edge", "CHASQUI_REPLICA_URL")); h != "postgres-replica" {
		t.Errorf("edge's replica is %q, want postgres-replica", h)
	}
	if got, want := env("edge", "CHASQUI_CENTRAL_ADDR"), "central:"+port(t, env("central", "CHASQUI_GRPC_ADDR")); got != want {
		t.Errorf("edge CHASQUI_CENTRAL_ADDR = %q, want %q", got, want)
	}
	if got, want := env("sim", "CHASQUI_EDGE_ADDR"), "edge:"+port(t, env("edge", "CHASQUI_GRPC_ADDR")); got != want {
		t.Errorf("sim CHASQUI_EDGE_ADDR = %q, want %q", got, want)
	}
	for svc, addr := range map[string]string{"central": "CHASQUI_GRPC_ADDR", "edge": "CHASQUI_GRPC_ADDR"} {
		want := "-addr=127.0.0.1:" + port(t, env(svc, addr))
		if hc := p.Services[svc].HealthCheck; hc == nil || !slices.Contains(hc.Test, want) {
			t.Errorf("service %s: healthcheck does not probe %s", svc, want)
		}
	}
	replica := p.Services["postgres-replica"]
	if !strings.Contains(strings.Join(replica.Entrypoint, " "), "replica-entrypoint.sh") {
		t.Errorf("postgres-replica entrypoint %v does not run replica-entrypoint.sh", replica.Entrypoint)
	}
	script, err := os.ReadFile(repoPath("deploy/postgres/replica-entrypoint.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"pg_basebackup", "-R", "exec docker-entrypoint.sh"} {
		if !strings.Contains(string(script), want) {
			t.Errorf("replica-entrypoint.sh lacks %q", want)
		}
	}
	if _, ok := replica.DependsOn["postgres-primary"]; !ok {
		t.Error("postgres-replica does not depend on postgres-primary")
	}
}

// TestComposeOpsRowsHaveTheirTables: the simulator writes rows of ops.*
// by default, so the primary must create those tables and central must
// allow them; otherwise every row the demo writes is a dead letter.
func TestComposeOpsRowsHaveTheirTables(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	if got := envValue(p.Services["central"].Environment, "CHASQUI_ALLOW_TABLES"); !slices.Contains(strings.Split(got, ","), "ops.*") {
		t.Errorf("central CHASQUI_ALLOW_TABLES = %q, want it to list ops.*", got)
	}
	mounted := slices.ContainsFunc(p.Services["postgres-primary"].Volumes, func(v types.ServiceVolumeConfig) bool {
		return strings.HasSuffix(v.Source, "examples/ops-schema.sql") &&
			strings.HasPrefix(v.Target, "/docker-entrypoint-initdb.d/") && strings.HasSuffix(v.Target, ".sql")
	})
	if !mounted {
		t.Error("postgres-primary does not run examples/ops-schema.sql from /docker-entrypoint-initdb.d")
	}
	if _, err := os.Stat(repoPath("examples/ops-schema.sql")); err != nil {
		t.Error(err)
	}
}
