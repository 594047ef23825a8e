package deploytest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
)

// repoRoot is the repository, two levels above this package.
var repoRoot = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}()

func repoPath(rel string) string { return filepath.Join(repoRoot, filepath.FromSlash(rel)) }

// binaries are the programs these tests build (those whose flags the deploy
// files configure, the CLI, and a test-support tool): the module directory
// and the package to build.
var binaries = map[string]struct{ module, pkg string }{
	"chasqui-central":    {"central", "./cmd/chasqui-central"},
	"chasqui-edge":       {"edge", "./cmd/chasqui-edge"},
	"chasqui-sim":        {"edge", "./cmd/chasqui-sim"},
	"chasqui":            {"edge", "./cmd/chasqui"},
	"chasqui-queue-seed": {"edge", "./internal/cmd/chasqui-queue-seed"},
}

// notConfig are flags that are not configuration and need no CHASQUI_*
// entry in the environment examples.
var notConfig = map[string]bool{"help": true, "h": true, "version": true}

// EnvName mirrors internal/config.EnvName (this module does not import the
// project's modules, so that it stays out of their module graph).
func envName(flag string) string {
	return "CHASQUI_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

var (
	binDir     string
	buildMu    sync.Mutex
	buildOnce  = map[string]func() (string, error){}
	flagsMu    sync.Mutex
	flagsOnce  = map[string]func() (map[string]bool, error){}
	usageLine  = regexp.MustCompile(`^\s{1,4}--?([a-z0-9][a-z0-9-]*)(?:\s|$)`)
	bracketEnv = regexp.MustCompile(`\[(CHASQUI_[A-Z0-9_]+)\]`)
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "deploytest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// realFlags builds the binary and returns the flag names its -h lists
// (internal/config.Usage prints "  --name  [CHASQUI_NAME] ..." lines; the
// standard "  -name type" lines are understood too). Asking the binary
// itself, rather than reading its source, sees flags registered anywhere.
func realFlags(t *testing.T, name string) map[string]bool {
	t.Helper()
	flagsMu.Lock()
	get, ok := flagsOnce[name]
	if !ok {
		get = sync.OnceValues(func() (map[string]bool, error) { return buildAndList(name) })
		flagsOnce[name] = get
	}
	flagsMu.Unlock()
	flags, err := get()
	if err != nil {
		t.Fatalf("flags of %s: %v", name, err)
	}
	return flags
}

// buildBinary builds one of binaries into binDir, once per test binary,
// and returns its path.
func buildBinary(name string) (string, error) {
	buildMu.Lock()
	get, ok := buildOnce[name]
	if !ok {
		get = sync.OnceValues(func() (string, error) {
			b, ok := binaries[name]
			if !ok {
				return "", fmt.Errorf("unknown binary %q", name)
			}
			bin := filepath.Join(binDir, name)
			build := exec.Command("go", "build", "-o", bin, b.pkg)
			build.Dir = repoPath(b.module)
			// Build the way `make build` does, in the workspace, even when
			// this module's own tests run with GOWORK=off.
			build.Env = append(os.Environ(), "GOWORK="+repoPath("go.work"))
			if out, err := build.CombinedOutput(); err != nil {
				return "", fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
			}
			return bin, nil
		})
		buildOnce[name] = get
	}
	buildMu.Unlock()
	return get()
}

func buildAndList(name string) (map[string]bool, error) {
	bin, err := buildBinary(name)
	if err != nil {
		return nil, err
	}
	// -h exits non-zero with some binaries; the usage text is what counts.
	out, _ := exec.Command(bin, "-h").CombinedOutput()
	flags := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		m := usageLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if e := bracketEnv.FindStringSubmatch(line); e != nil && e[1] != envName(m[1]) {
			return nil, fmt.Errorf("%s -h: flag --%s shows %s, want %s", name, m[1], e[1], envName(m[1]))
		}
		flags[m[1]] = true
	}
	if len(flags) < 3 {
		return nil, fmt.Errorf("%s -h lists %d flags; the usage format changed?\n%s", name, len(flags), out)
	}
	return flags, nil
}

// checkEnvNames reports every CHASQUI_* name that is not a real flag of
// binary.
func checkEnvNames(t *testing.T, where, binary string, names []string) {
	t.Helper()
	flags := realFlags(t, binary)
	byEnv := map[string]string{}
	for f := range flags {
		byEnv[envName(f)] = f
	}
	for _, n := range names {
		f, ok := byEnv[n]
		switch {
		case !ok:
			t.Errorf("%s: %s is not a flag of %s (flags: %s)", where, n, binary, sortedKeys(flags))
		case notConfig[f]:
			t.Errorf("%s: %s sets --%s, which is not configuration", where, n, f)
		}
	}
}

func sortedKeys[V any](m map[string]V) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

func TestRealFlagsSeesKnownFlags(t *testing.T) {
	t.Parallel()
	for bin, want := range map[string][]string{
		"chasqui-central": {"grpc-addr", "http-addr", "database-url", "insecure"},
		"chasqui-edge":    {"edge-id", "data-dir", "central-addr", "queue-max-bytes"},
		"chasqui-sim":     {"edge-addr"},
	} {
		flags := realFlags(t, bin)
		for _, f := range want {
			if !flags[f] {
				t.Errorf("%s: --%s not found in -h output (got %s)", bin, f, sortedKeys(flags))
			}
		}
		if flags["no-such-flag"] {
			t.Errorf("%s: parser invents flags", bin)
		}
	}
}
