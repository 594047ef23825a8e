package version

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestStringShowsStampedValues(t *testing.T) {
	oldV, oldC := Version, Commit
	t.Cleanup(func() { Version, Commit = oldV, oldC })
	Version, Commit = "v1.2.3", "0123abcd"
	if got, want := String(), "v1.2.3 (commit 0123abcd, "+runtime.Version()+")"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

func TestRevisionNeverEmpty(t *testing.T) {
	oldC := Commit
	t.Cleanup(func() { Commit = oldC })
	Commit = ""
	if Revision() == "" {
		t.Fatal("Revision() is empty without a stamped Commit")
	}
}

// TestLdflagsStamp builds a program with the same -X flags scripts/dist.sh
// and the Dockerfile pass, so a renamed variable or package breaks here and
// not silently in a release ("dev" in production).
func TestLdflagsStamp(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "stampcheck")
	const pkg = "github.com/chasqui/chasqui/internal/version"
	cmd := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X "+pkg+".Version=v9.8.7 -X "+pkg+".Commit=cafef00d", "./testdata/stampcheck")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out); !strings.HasPrefix(got, "v9.8.7 (commit cafef00d, ") {
		t.Fatalf("stamped binary prints %q", got)
	}
}
