package powercut

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

type undoKind int

const (
	undoCreate undoKind = iota // remove what was created
	undoRemove                 // bring back what was removed
	undoRename                 // rename back
	sizeChange                 // a truncate or fallocate: nothing to undo, see commit
)

// undo is one directory operation no sync has covered yet, with what it
// takes to undo it. Paths are absolute, in the backing directory.
type undo struct {
	kind     undoKind
	path     string // created or removed; renamed from
	to       string // renamed to
	exchange bool   // a RENAME_EXCHANGE
	attic    string // a removed non-directory, linked here
	mode     uint32 // a removed directory's mode, owner and group
	uid, gid uint32
	file     *fileState // sizeChange: the file, its new size and its sync generation then
	size     int64
	gen      int
}

func (u undo) apply(f *FS) error {
	var err error
	switch u.kind {
	case sizeChange: // the file's own restore brings its size back
	case undoCreate:
		err = os.Remove(u.path)
	case undoRename:
		if u.exchange {
			err = unix.Renameat2(unix.AT_FDCWD, u.to, unix.AT_FDCWD, u.path, unix.RENAME_EXCHANGE)
		} else {
			err = os.Rename(u.to, u.path)
		}
	case undoRemove:
		if u.attic != "" {
			err = errors.Join(os.Link(u.attic, u.path), os.Remove(u.attic))
		} else {
			err = errors.Join(syscall.Mkdir(u.path, u.mode&0o7777),
				os.Lchown(u.path, int(u.uid), int(u.gid)), os.Chmod(u.path, os.FileMode(u.mode&0o777)))
		}
	}
	if err != nil {
		return fmt.Errorf("powercut: undoing %+v: %w", u, err)
	}
	return nil
}

// record appends u to the journal.
func (f *FS) record(u undo) {
	f.smu.Lock()
	defer f.smu.Unlock()
	f.journal = append(f.journal, u)
}

// journalMark is the journal's length; commit(mark) makes the operations
// before it durable. A sync covers the operations that completed before it
// started, not the ones running beside it.
func (f *FS) journalMark() int {
	f.smu.Lock()
	defer f.smu.Unlock()
	return len(f.journal)
}

func (f *FS) commit(mark int) {
	var sizes []undo
	f.smu.Lock()
	if mark > len(f.journal) { // a cut emptied it meanwhile
		f.smu.Unlock()
		return
	}
	for _, u := range f.journal[:mark] {
		if u.attic != "" {
			_ = os.Remove(u.attic)
		}
		if u.kind == sizeChange {
			sizes = append(sizes, u)
		}
	}
	f.journal = append([]undo(nil), f.journal[mark:]...)
	f.smu.Unlock()
	// Outside smu: writers hold a file's lock and then take smu.
	for _, u := range sizes {
		u.file.sizeCommitted(u.size, u.gen)
	}
}

// keep readies the removal of path (which must exist): a non-directory is
// linked into the attic, a directory's mode and owner are noted. The
// caller records the undo once the removal succeeded, or calls drop.
func (f *FS) keep(path string) (undo, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return undo{}, err
	}
	u := undo{kind: undoRemove, path: path}
	if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		u.mode, u.uid, u.gid = st.Mode, st.Uid, st.Gid
		return u, nil
	}
	f.smu.Lock()
	f.atticSeq++
	u.attic = filepath.Join(f.attic, strconv.Itoa(f.atticSeq))
	f.smu.Unlock()
	if err := os.Link(path, u.attic); err != nil {
		return undo{}, err
	}
	return u, nil
}

func (u undo) drop() {
	if u.attic != "" {
		_ = os.Remove(u.attic)
	}
}

func exists(path string) bool {
	var st syscall.Stat_t
	return syscall.Lstat(path, &st) == nil
}
