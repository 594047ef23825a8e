// Package powercut is a file system for tests that can lose, on command,
// what a power cut would lose (the idea of Jepsen's LazyFS, in Go on
// go-fuse). Killing a process with -9 leaves the kernel's page cache in
// place, so a write that was never fsync'd survives it and no such test can
// tell a correct group commit from one that acknowledges before its fsync.
// This file system can.
//
// An FS is mounted over a directory and passes every operation through to a
// backing directory. It remembers, per file, what was written since that
// file's last fsync or fdatasync, and, for the whole file system, the
// directory operations since the last fsync of anything. [FS.Cut] cuts the
// power: every file gets back its contents and size as of its last sync, the
// directory operations no sync covered are undone newest first, and from then
// on every operation fails with EIO, so that writes reaching the file system
// after the cut (the kernel flushing a killed process's dirty pages) are
// dropped. [FS.PowerOn] unmounts and mounts it again on what survived: a
// fresh mount has no page cache, as a machine after a power cut has none.
//
// # Rules
//
// They follow ext4 with its default options (data=ordered, a single
// journal), taking the strict side where ext4 may go either way:
//
//   - File data: a byte written (write, writeback of a shared mmap, which is
//     how msync reaches FUSE, followed by its fsync), truncated away or
//     punched out (fallocate) survives only if the file was synced after it.
//     fsync and fdatasync count the same. A size a write gave the file
//     counts as its data. Data written while an fsync runs is not covered
//     by it.
//   - Size changes by truncate and fallocate are journaled, as ext4 does:
//     the size (not the bytes written into it) is durable at the next sync
//     of anything (see below); the bytes a shrinking truncate cut off are
//     gone from then on too. ext4 also writes
//     data out on its own every few seconds; a cut may come first, so nothing
//     is written out on its own here.
//   - Directory operations (create, mkdir, mknod, symlink, link, unlink,
//     rmdir, rename) go into one journal, as in ext4, whose fsync of any file
//     or directory commits the running journal transaction, which holds
//     every directory operation before it. So a sync of anything makes every
//     directory operation that completed before it durable; a cut undoes the
//     ones after the last sync, newest first: a file created since may
//     disappear, a file removed since comes back with its synced contents,
//     and a rename since is undone (an overwritten target comes back).
//   - Not modelled: permission, owner, time and extended-attribute changes
//     (they pass through and survive), and copy_file_range (refused, so the
//     kernel falls back to read and write).
//
// Writable shared mmap works because the mount has no writeback cache and
// no FUSE passthrough: dirty pages reach the file system as WRITE requests
// when the kernel writes them back, on msync (WRITE then FSYNC) or when the
// mapping goes away.
package powercut

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// unmountTimeout bounds waiting for the FUSE server to stop after an
// unmount; a loaded machine may take a while to release the last reference.
const unmountTimeout = 30 * time.Second

// FS is a mounted power-cut file system. Its methods may be called from
// several goroutines.
type FS struct {
	backing    string
	mountpoint string
	attic      string // holds removed files until their removal is durable

	// mu is held for reading by every file system operation and for
	// writing by Cut, so that a cut falls between operations.
	mu     sync.RWMutex
	dead   bool
	server *fuse.Server
	conn   uint32 // the FUSE connection's number in /sys/fs/fuse/connections

	smu      sync.Mutex // guards files, journal, atticSeq
	files    map[fileKey]*fileState
	journal  []undo
	atticSeq int
	cuts     int
}

// Mount mounts a power-cut file system over mountpoint (an existing, empty
// directory), passing through to backing (an existing directory). Removed
// files are kept until their removal is durable in a directory created
// beside backing, so both must be on one file system (link(2)).
func Mount(backing, mountpoint string) (*FS, error) {
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, err
	}
	attic, err := os.MkdirTemp(filepath.Dir(backing), ".powercut-attic-")
	if err != nil {
		return nil, fmt.Errorf("powercut: %w", err)
	}
	f := &FS{backing: backing, mountpoint: mountpoint, attic: attic, files: map[fileKey]*fileState{}}
	if err := f.mount(); err != nil {
		_ = os.RemoveAll(attic)
		return nil, err
	}
	return f, nil
}

func (f *FS) mount() error {
	var st syscall.Stat_t
	if err := syscall.Stat(f.backing, &st); err != nil {
		return fmt.Errorf("powercut: backing directory: %w", err)
	}
	lr := &fs.LoopbackRoot{Path: f.backing, Dev: uint64(st.Dev)}
	root := &node{LoopbackNode: &fs.LoopbackNode{RootData: lr}, pc: f}
	lr.RootNode = root
	srv, err := fs.Mount(f.mountpoint, root, &fs.Options{MountOptions: fuse.MountOptions{
		// PostgreSQL runs as its own user on it.
		AllowOther: true,
		FsName:     "powercut:" + f.backing,
		Name:       "powercut",
	}})
	if err != nil {
		return fmt.Errorf("powercut: mounting over %s (FUSE refused?): %w", f.mountpoint, err)
	}
	f.server = srv
	var mst syscall.Stat_t
	if err := syscall.Stat(f.mountpoint, &mst); err == nil {
		f.conn = unix.Minor(mst.Dev)
	}
	return nil
}

// Backing is the directory the file system passes through to.
func (f *FS) Backing() string { return f.backing }

// Mountpoint is the directory the file system is mounted over.
func (f *FS) Mountpoint() string { return f.mountpoint }

// Cuts is how many times the power was cut.
func (f *FS) Cuts() int {
	f.smu.Lock()
	defer f.smu.Unlock()
	return f.cuts
}

// Cut cuts the power: it waits for the operations in flight, then brings
// every file back to its last synced contents, undoes the directory
// operations no sync covered, and fails every later operation with EIO
// until PowerOn. Kill the processes using the file system right after it
// (they see EIO until then, as they would see nothing at all after a real
// power cut), and call PowerOn once they are gone. An error means the
// backing directory could not be brought back entirely; what it holds then
// is not what a power cut would leave.
func (f *FS) Cut() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		return errors.New("powercut: the power is already cut")
	}
	f.dead = true
	f.smu.Lock()
	defer f.smu.Unlock()
	f.cuts++
	var errs []error
	// Data first: a file whose creation is undone next is unlinked with
	// whatever it holds, and a file whose removal is undone comes back
	// with its synced contents either way.
	for _, st := range f.files {
		errs = append(errs, st.restore())
	}
	for i := len(f.journal) - 1; i >= 0; i-- {
		errs = append(errs, f.journal[i].apply(f))
	}
	f.journal = nil
	return errors.Join(errs...)
}

// PowerOn unmounts the file system and mounts it again over what survived
// the cut. The processes that used it must be gone (killed and reaped);
// otherwise the old mount is detached lazily and stays dead for them.
func (f *FS) PowerOn() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.dead {
		return errors.New("powercut: the power is on")
	}
	if err := f.unmount(); err != nil {
		return err
	}
	f.forgetFiles()
	if err := f.mount(); err != nil {
		return err
	}
	f.dead = false
	return nil
}

// Close unmounts the file system as it is (no cut) and removes the attic.
func (f *FS) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.unmount()
	f.forgetFiles()
	f.dead = true
	return errors.Join(err, os.RemoveAll(f.attic))
}

func (f *FS) unmount() error {
	if f.server == nil {
		return nil
	}
	srv := f.server
	f.server = nil
	if err := srv.Unmount(); err != nil {
		// Busy: something still has a file open or its working directory
		// there. Detach it lazily so no mount is left behind.
		if out, lerr := exec.Command("fusermount3", "-u", "-z", f.mountpoint).CombinedOutput(); lerr != nil {
			return fmt.Errorf("powercut: unmounting %s: %v; lazy unmount: %v: %s", f.mountpoint, err, lerr, out)
		}
	}
	if mounted(f.mountpoint) {
		_ = exec.Command("fusermount3", "-u", "-z", f.mountpoint).Run()
	}
	done := make(chan struct{})
	go func() {
		srv.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-time.After(unmountTimeout):
		// Something holds the detached mount and waits for an answer:
		// abort the connection so that it gets an error instead.
		_ = os.WriteFile(fmt.Sprintf("/sys/fs/fuse/connections/%d/abort", f.conn), []byte("1"), 0)
		return fmt.Errorf("powercut: FUSE server of %s still running %s after unmount", f.mountpoint, unmountTimeout)
	}
}

// forgetFiles drops the per-file state; the caller holds mu for writing.
func (f *FS) forgetFiles() {
	f.smu.Lock()
	defer f.smu.Unlock()
	for k, st := range f.files {
		st.close()
		delete(f.files, k)
	}
	for _, u := range f.journal {
		if u.attic != "" {
			_ = os.Remove(u.attic)
		}
	}
	f.journal = nil
}

// enter starts an operation; false means the power is cut. The caller
// calls leave when enter returned true.
func (f *FS) enter() bool {
	f.mu.RLock()
	if f.dead {
		f.mu.RUnlock()
		return false
	}
	return true
}

func (f *FS) leave() { f.mu.RUnlock() }

// mounted reports whether a power-cut file system is mounted at dir.
func mounted(dir string) bool {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if fields := strings.Fields(line); len(fields) > 2 && fields[1] == dir && fields[2] == "fuse.powercut" {
			return true
		}
	}
	return false
}
