package powercut

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Require makes sure FUSE can be used: /dev/fuse must exist and fuse3's
// fusermount3 be installed, which it installs from Debian when missing and
// running as root. It fails t with what is missing: a test that needs
// power cuts never skips silently.
func Require(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("powercut: FUSE is not available (%v): the power-cut tests need /dev/fuse", err)
	}
	if _, err := exec.LookPath("fusermount3"); err == nil {
		return
	}
	if os.Getuid() != 0 {
		t.Fatal("powercut: fusermount3 is missing: install fuse3 (apt-get install fuse3)")
	}
	t.Log("powercut: installing fuse3")
	for _, args := range [][]string{{"update"}, {"install", "-y", "fuse3"}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("powercut: fusermount3 is missing and apt-get %v failed: %v\n%s", args, err, out)
		}
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		t.Fatalf("powercut: fusermount3 still missing after installing fuse3: %v", err)
	}
}

// MountT mounts a power-cut file system for t over a new directory, backed
// by another, both in t.TempDir(); it is unmounted when t ends. A mount
// FUSE refuses fails t.
func MountT(t testing.TB) *FS {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	backing, mnt := filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return MountOverT(t, backing, mnt)
}

// MountOverT is Mount for t: it fails t when FUSE refuses, and unmounts
// when t ends (registered before t.TempDir's removal runs, so it runs first).
func MountOverT(t testing.TB, backing, mountpoint string) *FS {
	t.Helper()
	Require(t)
	f, err := Mount(backing, mountpoint)
	if err != nil {
		t.Fatalf("powercut: FUSE refused the mount: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("powercut: unmounting: %v", err)
		}
	})
	return f
}
