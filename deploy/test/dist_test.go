package deploytest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDistScript checks scripts/dist.sh parses and packs what the tarball
// promises. (Running it builds four static binaries: `make dist` does that.)
func TestDistScript(t *testing.T) {
	t.Parallel()
	script := repoPath("scripts/dist.sh")
	if out, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n %s: %v\n%s", script, err, out)
	}
	raw, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	for _, want := range []string{
		"git describe --tags --always --dirty",
		"CGO_ENABLED=0",
		"-X $pkg.Version=$version -X $pkg.Commit=$commit",
		"pkg=github.com/chasqui/chasqui/internal/version",
		"./central/cmd/chasqui-central", "./edge/cmd/chasqui-edge", "./edge/cmd/chasqui ", "./edge/cmd/chasqui-sim",
		"deploy/systemd/chasqui-edge.service", "deploy/systemd/chasqui-central.service",
		"deploy/systemd/edge.env.example", "deploy/systemd/central.env.example", "README.md",
		"chasqui-${version}-linux-${arch}",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("dist.sh lacks %q", want)
		}
	}
	if fi, err := os.Stat(script); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("dist.sh is not executable: %v", err)
	}
}
