// Package tmpfstest gives tests a real, small file system to fill: a tmpfs
// mounted for one test. Tests of what happens on a full disk need one; a
// refused mount fails the test unless the opt-out is set, so a suite can
// never go green without ever filling a disk.
package tmpfstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// AllowNoTmpfsEnv names the opt-out for hosts where mount -t tmpfs is not
// permitted (an unprivileged container): set to 1, a refused mount skips
// the test, saying why, instead of failing it.
const AllowNoTmpfsEnv = "CHASQUI_ALLOW_NO_TMPFS"

// Mount mounts a tmpfs of size (mount's size= option, e.g. "64m") on a new
// directory, unmounted when t ends.
func Mount(t testing.TB, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		msg := fmt.Sprintf("this test needs a small real file system, but mount -t tmpfs was refused (%v: %s)",
			err, strings.TrimSpace(string(out)))
		if os.Getenv(AllowNoTmpfsEnv) == "1" {
			t.Skipf("%s; skipped because %s=1", msg, AllowNoTmpfsEnv)
		}
		t.Fatalf("%s; run as root (or with CAP_SYS_ADMIN), or set %s=1 to skip it knowingly", msg, AllowNoTmpfsEnv)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// Free is the space an unprivileged writer has left under dir.
func Free(t testing.TB, dir string) uint64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Bavail * uint64(st.Bsize)
}
