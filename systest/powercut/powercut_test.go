package powercut_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/chasqui/chasqui/internal/pgtest"
	"github.com/chasqui/chasqui/systest/e2e"
	"github.com/chasqui/chasqui/systest/powercut"
)

// cycle cuts the power and turns it on again.
func cycle(t *testing.T, f *powercut.FS) {
	t.Helper()
	require.NoError(t, f.Cut())
	require.NoError(t, f.PowerOn())
}

func syncDir(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	require.NoError(t, err)
	defer d.Close()
	require.NoError(t, d.Sync())
}

// write, fsync, write, cut: the file holds exactly the synced prefix.
func TestCutKeepsSyncedPrefix(t *testing.T) {
	t.Parallel()
	f := powercut.MountT(t)
	p := filepath.Join(f.Mountpoint(), "log")
	w, err := os.Create(p)
	require.NoError(t, err)
	synced := bytes.Repeat([]byte("synced-"), 1000)
	_, err = w.Write(synced)
	require.NoError(t, err)
	require.NoError(t, w.Sync())
	_, err = w.Write(bytes.Repeat([]byte("lost-"), 3000))
	require.NoError(t, err)
	_, err = w.WriteAt([]byte("OVERWRITTEN"), 10) // inside the synced prefix
	require.NoError(t, err)
	got, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Len(t, got, len(synced)+15000, "before the cut the writes are there")

	require.NoError(t, f.Cut())
	_, err = w.Write([]byte("after the cut"))
	require.ErrorIs(t, err, syscall.EIO, "a write after the cut is dropped")
	_ = w.Close()
	require.NoError(t, f.PowerOn())

	got, err = os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, synced, got, "exactly the synced prefix")
	require.Equal(t, 1, f.Cuts())
}

// mmap, write, msync, write, cut: likewise. The writer is a child
// process, killed with -9 right after the cut: its dirty pages reach the
// file system when the kernel tears the mapping down, after the cut, and
// are dropped. (A process must not touch a mapping of a FUSE file system it
// serves itself: a page fault there cannot stop for the garbage collector,
// which then waits for ever.)
func TestCutKeepsMsyncedPages(t *testing.T) {
	t.Parallel()
	f := powercut.MountT(t)
	p := filepath.Join(f.Mountpoint(), "mapped")
	page := os.Getpagesize()
	require.NoError(t, os.WriteFile(p, make([]byte, 4*page), 0o644))
	syncFile(t, p)
	child := startMmapHelper(t, "msync", p)

	require.NoError(t, f.Cut())
	require.NoError(t, child.Process.Kill())
	_ = child.Wait()
	require.NoError(t, f.PowerOn())

	got, err := os.ReadFile(p)
	require.NoError(t, err)
	want := make([]byte, 4*page)
	copy(want, bytes.Repeat([]byte{'s'}, page))
	require.Equal(t, want, got, "the msynced page and nothing else")
}

// Without the msync, a page written through mmap is lost, although it
// reached the backing file (and would survive a kill -9).
func TestCutLosesUnsyncedMmap(t *testing.T) {
	t.Parallel()
	f := powercut.MountT(t)
	p := filepath.Join(f.Mountpoint(), "mapped")
	page := os.Getpagesize()
	require.NoError(t, os.WriteFile(p, make([]byte, page), 0o644))
	syncFile(t, p)
	child := startMmapHelper(t, "unmap", p)
	require.NoError(t, child.Wait(), "the helper unmaps and exits")
	b, err := os.ReadFile(filepath.Join(f.Backing(), "mapped"))
	require.NoError(t, err)
	require.Equal(t, "written, never synced", string(bytes.TrimRight(b, "\x00")), "the backing file has it before the cut")

	cycle(t, f)
	got, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, make([]byte, page), got)
}

func syncFile(t *testing.T, p string) {
	t.Helper()
	w, err := os.OpenFile(p, os.O_RDWR, 0)
	require.NoError(t, err)
	require.NoError(t, w.Sync())
	require.NoError(t, w.Close())
}

// startMmapHelper runs this test binary as a child that maps the file at
// p (TestMain's mmapHelper) and waits until it reports "ready".
func startMmapHelper(t *testing.T, mode, p string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperPathEnv+"="+p)
	cmd.Stderr = os.Stderr
	if _, err := cmd.StdinPipe(); err != nil { // kept open: the helper waits on it
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err, "mmap helper")
	require.Equal(t, "ready\n", line)
	return cmd
}

const (
	helperEnv     = "POWERCUT_TEST_MMAP_HELPER"
	helperPathEnv = "POWERCUT_TEST_MMAP_PATH"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		if err := mmapHelper(mode, os.Getenv(helperPathEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "mmap helper:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	code := pgtest.Main(m)
	e2e.CleanupBinaries()
	os.Exit(code)
}

// mmapHelper maps p shared and writable. "msync": fills page 0 and msyncs
// it, then dirties page 2 and page 0 again, reports ready and waits to be
// killed. "unmap": writes page 0, unmaps (the kernel writes it back, with
// no fsync) and exits after reporting ready.
func mmapHelper(mode, p string) error {
	w, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	fi, err := w.Stat()
	if err != nil {
		return err
	}
	m, err := unix.Mmap(int(w.Fd()), 0, int(fi.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	page := os.Getpagesize()
	switch mode {
	case "msync":
		copy(m[0:], bytes.Repeat([]byte{'s'}, page))
		if err := unix.Msync(m, unix.MS_SYNC); err != nil {
			return err
		}
		copy(m[2*page:], bytes.Repeat([]byte{'u'}, page))
		copy(m[10:], "unsynced")
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, os.Stdin) // open until the test kills it
		return errors.New("stdin closed before the kill")
	case "unmap":
		copy(m, "written, never synced")
		if err := unix.Munmap(m); err != nil {
			return err
		}
		fmt.Println("ready")
		return w.Close()
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// truncate and fallocate (punch hole, zero range, allocate past the end)
// after a sync are undone by the cut.
func TestCutUndoesTruncateAndFallocate(t *testing.T) {
	t.Parallel()
	f := powercut.MountT(t)
	content := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	names := []string{"truncated", "punched", "zeroed", "grown"}
	files := map[string]*os.File{}
	for _, n := range names {
		w, err := os.Create(filepath.Join(f.Mountpoint(), n))
		require.NoError(t, err)
		_, err = w.Write(content)
		require.NoError(t, err)
		require.NoError(t, w.Sync())
		files[n] = w
	}
	require.NoError(t, files["truncated"].Truncate(100))
	_, err := files["truncated"].WriteAt([]byte("regrown"), 50000) // over the truncated range
	require.NoError(t, err)
	require.NoError(t, unix.Fallocate(int(files["punched"].Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 4096, 16384))
	require.NoError(t, unix.Fallocate(int(files["zeroed"].Fd()), unix.FALLOC_FL_ZERO_RANGE, 0, 8192))
	require.NoError(t, unix.Fallocate(int(files["grown"].Fd()), 0, 0, 1<<20))
	for _, n := range names {
		fi, err := files[n].Stat()
		require.NoError(t, err)
		b, err := os.ReadFile(filepath.Join(f.Mountpoint(), n))
		require.NoError(t, err)
		require.False(t, bytes.Equal(content, b) && fi.Size() == int64(len(content)), "%s changed before the cut", n)
	}

	require.NoError(t, f.Cut())
	for _, w := range files {
		_ = w.Close()
	}
	require.NoError(t, f.PowerOn())
	for _, n := range names {
		got, err := os.ReadFile(filepath.Join(f.Mountpoint(), n))
		require.NoError(t, err)
		require.True(t, bytes.Equal(content, got), "%s: %d bytes back, want the synced 64 KiB", n, len(got))
	}
}

// The directory rules: a sync of anything commits every directory
// operation before it; after the last sync, a created file disappears, a
// removed one comes back with its synced contents, and a rename is undone
// with the file it replaced.
func TestCutDirectoryRules(t *testing.T) {
	t.Parallel()
	f := powercut.MountT(t)
	mnt := f.Mountpoint()
	at := func(n string) string { return filepath.Join(mnt, n) }
	read := func(n string) string {
		b, err := os.ReadFile(at(n))
		require.NoError(t, err, n)
		return string(b)
	}
	require.NoError(t, os.Mkdir(at("dir"), 0o750))
	require.NoError(t, os.WriteFile(at("dir/current"), []byte("v1"), 0o644))
	require.NoError(t, os.WriteFile(at("doomed"), []byte("keep me"), 0o644))
	require.NoError(t, os.WriteFile(at("tmp"), []byte("v2"), 0o644))
	// Syncing the files: their data, and (ext4's journal) every name above.
	for _, n := range []string{"dir/current", "doomed", "tmp"} {
		w, err := os.OpenFile(at(n), os.O_RDWR, 0)
		require.NoError(t, err)
		require.NoError(t, w.Sync())
		require.NoError(t, w.Close())
	}

	// After the last sync: a rename over an existing file, a removal, a
	// new file and a new directory, with their data synced or not.
	require.NoError(t, os.Rename(at("tmp"), at("dir/current")))
	require.NoError(t, os.Remove(at("doomed")))
	require.NoError(t, os.WriteFile(at("new"), []byte("never synced"), 0o644))
	require.NoError(t, os.MkdirAll(at("newdir/sub"), 0o755))
	cycle(t, f)

	require.Equal(t, "v1", read("dir/current"), "the rename is undone with the file it replaced")
	require.Equal(t, "v2", read("tmp"))
	require.Equal(t, "keep me", read("doomed"), "the removal is undone")
	require.NoFileExists(t, at("new"), "a file created since the last sync disappears")
	require.NoDirExists(t, at("newdir"))
	fi, err := os.Stat(at("dir"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o750), fi.Mode().Perm())

	// The same rename followed by an fsync of the directory is durable.
	require.NoError(t, os.Rename(at("tmp"), at("dir/current")))
	syncDir(t, at("dir"))
	require.NoError(t, os.Remove(at("doomed")))
	syncDir(t, mnt)
	cycle(t, f)
	require.Equal(t, "v2", read("dir/current"))
	require.NoFileExists(t, at("tmp"))
	require.NoFileExists(t, at("doomed"))
	entries, err := os.ReadDir(f.Backing() + "/..")
	require.NoError(t, err)
	for _, e := range entries {
		if e.IsDir() && e.Name() != "backing" && e.Name() != "mnt" {
			attic, err := os.ReadDir(filepath.Join(f.Backing(), "..", e.Name()))
			require.NoError(t, err)
			require.Empty(t, attic, "removals that were synced leave nothing behind")
		}
	}
}

// A file whose data was synced survives although its directory was never
// synced: the file's fsync committed its creation (ext4's single journal).
func TestCutFileSyncCommitsItsCreation(t *testing.T) {
	t.Parallel()
	f := powercut.MountT(t)
	p := filepath.Join(f.Mountpoint(), "sub", "wal")
	require.NoError(t, os.Mkdir(filepath.Dir(p), 0o755))
	w, err := os.Create(p)
	require.NoError(t, err)
	_, err = w.Write([]byte("record"))
	require.NoError(t, err)
	require.NoError(t, w.Sync())
	require.NoError(t, w.Close())
	cycle(t, f)
	got, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "record", string(got))
}
