package powercut

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

type fileKey struct{ dev, ino uint64 }

// fileState is one backing file's unsynced changes as an undo log: before
// a range is overwritten, truncated away or punched out, its bytes as they
// were (or the fact that it was a hole) are appended to a temporary file.
// Applied newest first, the log brings every byte back to its value at the
// last sync, since the oldest record of a byte holds that value; a final
// truncate brings the size back.
type fileState struct {
	mu       sync.Mutex
	fd       *os.File // the backing file, read-write, whatever its name now
	undoFile *os.File // unlinked at once; holds the saved bytes
	undoLen  int64
	recs     []rec
	dirty    bool
	synced   int64 // the size at the last sync, valid while dirty
	gen      int   // counts syncs of the file
}

type rec struct {
	off, n int64
	at     int64 // in undoFile
	hole   bool  // the range read as zeros and held no data
}

// state returns the state of the backing file open at fd, creating it.
func (f *FS) state(fd int) (*fileState, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, err
	}
	k := fileKey{uint64(st.Dev), st.Ino}
	f.smu.Lock()
	defer f.smu.Unlock()
	if s, ok := f.files[k]; ok {
		return s, nil
	}
	// Through /proc: the file may be open write-only, or unlinked already.
	rw, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(fd), os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	uf, err := os.CreateTemp(f.attic, "undo-")
	if err != nil {
		rw.Close()
		return nil, err
	}
	_ = os.Remove(uf.Name())
	s := &fileState{fd: rw, undoFile: uf}
	f.files[k] = s
	return s, nil
}

// statePath is state for a file known by its path only.
func (f *FS) statePath(path string) (*fileState, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	return f.state(fd)
}

func (s *fileState) size() (int64, error) {
	fi, err := s.fd.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// save records [off, off+n) as it is now, before it changes. The caller
// holds s.mu and changes the range only if save succeeded.
func (s *fileState) save(off, n int64) error {
	size, err := s.size()
	if err != nil {
		return err
	}
	if !s.dirty {
		s.dirty, s.synced = true, size
	}
	if off >= size || n <= 0 {
		return nil // beyond the end: the final truncate takes care of it
	}
	end := min(off+n, size)
	fd := int(s.fd.Fd())
	for pos := off; pos < end; {
		// Holes (Badger's files are large and sparse) are noted, not copied.
		data, err := unix.Seek(fd, pos, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			data = end
		} else if err != nil {
			return err
		}
		if data > pos {
			data = min(data, end)
			s.recs = append(s.recs, rec{off: pos, n: data - pos, hole: true})
			pos = data
			continue
		}
		hole, err := unix.Seek(fd, pos, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		hole = min(hole, end)
		if err := copyRange(s.undoFile, s.undoLen, s.fd, pos, hole-pos); err != nil {
			return err
		}
		s.recs = append(s.recs, rec{off: pos, n: hole - pos, at: s.undoLen})
		s.undoLen += hole - pos
		pos = hole
	}
	return nil
}

// restore brings the file back to its last synced contents and size.
func (s *fileState) restore() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirty {
		return nil
	}
	fd := int(s.fd.Fd())
	for i := len(s.recs) - 1; i >= 0; i-- {
		r := s.recs[i]
		if r.hole {
			if err := unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, r.off, r.n); err != nil {
				if err := writeZeros(s.fd, r.off, r.n); err != nil {
					return fmt.Errorf("powercut: restoring a hole: %w", err)
				}
			}
			continue
		}
		if err := copyRange(s.fd, r.off, s.undoFile, r.at, r.n); err != nil {
			return fmt.Errorf("powercut: restoring %d bytes at %d: %w", r.n, r.off, err)
		}
	}
	if err := s.fd.Truncate(s.synced); err != nil {
		return fmt.Errorf("powercut: restoring the size: %w", err)
	}
	s.reset()
	return nil
}

// synced marks the changes before mark (a length of recs) and the size
// taken with it as durable.
func (s *fileState) markSynced(mark int, size int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirty || mark > len(s.recs) {
		return
	}
	if mark == len(s.recs) && size == s.mustSize() {
		s.reset()
		return
	}
	// Something changed while the fsync ran: that stays unsynced.
	s.gen++
	s.recs = append([]rec(nil), s.recs[mark:]...)
	s.synced = size
}

func (s *fileState) mustSize() int64 {
	n, err := s.size()
	if err != nil {
		return -1
	}
	return n
}

// sizeCommitted is a journal commit covering a size change (ext4 journals
// truncate and allocation: their size is durable at the next commit, not
// only at the file's own sync). A sync of the file since (gen) superseded it.
func (s *fileState) sizeCommitted(size int64, gen int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirty && s.gen == gen {
		s.synced = size
	}
}

// sizeChanged journals a size change the caller (holding s.mu) made.
func (f *FS) sizeChanged(s *fileState) {
	size, err := s.size()
	if err != nil {
		return // not journaled: the stricter outcome
	}
	f.record(undo{kind: sizeChange, file: s, size: size, gen: s.gen})
}

func (s *fileState) reset() {
	s.gen++
	s.recs, s.dirty, s.synced = nil, false, 0
	if err := s.undoFile.Truncate(0); err == nil {
		s.undoLen = 0
	}
}

func (s *fileState) close() {
	_ = s.fd.Close()
	_ = s.undoFile.Close()
}

// copyRange copies n bytes from src at soff to dst at doff.
func copyRange(dst *os.File, doff int64, src *os.File, soff, n int64) error {
	for n > 0 {
		so, do := soff, doff
		c, err := unix.CopyFileRange(int(src.Fd()), &so, int(dst.Fd()), &do, int(min(n, 1<<30)), 0)
		if err != nil || c == 0 {
			// Not supported between these files: copy through memory.
			w, err := io.Copy(io.NewOffsetWriter(dst, doff), io.NewSectionReader(src, soff, n))
			if err == nil && w < n {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		soff, doff, n = soff+int64(c), doff+int64(c), n-int64(c)
	}
	return nil
}

func writeZeros(f *os.File, off, n int64) error {
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		w, err := f.WriteAt(buf[:min(n, int64(len(buf)))], off)
		if err != nil {
			return err
		}
		off, n = off+int64(w), n-int64(w)
	}
	return nil
}

// file is an open file. It wraps go-fuse's loopback file rather than
// embedding it, so that it does not offer FUSE passthrough (the kernel
// would then write to the backing file without asking) and every change
// goes through the node's Write, Setattr and Allocate.
type file struct {
	pc *FS
	lf *fs.LoopbackFile
	fd int

	once sync.Once
	st   *fileState
	err  error
}

func newFile(pc *FS, fh fs.FileHandle) (*file, syscall.Errno) {
	lf, ok := fh.(*fs.LoopbackFile)
	if !ok {
		return nil, syscall.EIO
	}
	fd, ok := lf.PassthroughFd()
	if !ok {
		return nil, syscall.EBADF
	}
	return &file{pc: pc, lf: lf, fd: fd}, 0
}

func (fl *file) state() (*fileState, error) {
	fl.once.Do(func() { fl.st, fl.err = fl.pc.state(fl.fd) })
	return fl.st, fl.err
}

var (
	_ fs.FileReader    = (*file)(nil)
	_ fs.FileReleaser  = (*file)(nil)
	_ fs.FileFlusher   = (*file)(nil)
	_ fs.FileGetattrer = (*file)(nil)
	_ fs.FileLseeker   = (*file)(nil)
	_ fs.FileGetlker   = (*file)(nil)
	_ fs.FileSetlker   = (*file)(nil)
	_ fs.FileSetlkwer  = (*file)(nil)
)

func (fl *file) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if !fl.pc.enter() {
		return nil, syscall.EIO
	}
	defer fl.pc.leave()
	// Read into buf now: a result read later could see a restore.
	n, err := syscall.Pread(fl.fd, buf, off)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	return fuse.ReadResultData(buf[:n]), 0
}

func (fl *file) Release(ctx context.Context) syscall.Errno { return fl.lf.Release(ctx) }
func (fl *file) Flush(ctx context.Context) syscall.Errno   { return fl.lf.Flush(ctx) }
func (fl *file) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return fl.lf.Getattr(ctx, out)
}
func (fl *file) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	return fl.lf.Lseek(ctx, off, whence)
}
func (fl *file) Getlk(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32, out *fuse.FileLock) syscall.Errno {
	return fl.lf.Getlk(ctx, owner, lk, flags, out)
}
func (fl *file) Setlk(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	return fl.lf.Setlk(ctx, owner, lk, flags)
}
func (fl *file) Setlkw(ctx context.Context, owner uint64, lk *fuse.FileLock, flags uint32) syscall.Errno {
	return fl.lf.Setlkw(ctx, owner, lk, flags)
}

// write is the node's Write on this file.
func (fl *file) write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	st, err := fl.state()
	if err != nil {
		return 0, fs.ToErrno(err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.save(off, int64(len(data))); err != nil {
		return 0, fs.ToErrno(err)
	}
	return fl.lf.Write(ctx, data, off)
}

// fsync syncs the file and, as ext4's journal commit does, every directory
// operation that completed before it.
func (fl *file) fsync(ctx context.Context, flags uint32) syscall.Errno {
	st, err := fl.state()
	if err != nil {
		return fs.ToErrno(err)
	}
	mark := fl.pc.journalMark()
	st.mu.Lock()
	recs := len(st.recs)
	size, err := st.size()
	st.mu.Unlock()
	if err != nil {
		return fs.ToErrno(err)
	}
	if errno := fl.lf.Fsync(ctx, flags); errno != 0 {
		return errno
	}
	st.markSynced(recs, size)
	fl.pc.commit(mark)
	return 0
}

// allocate is fallocate: ranges it zeroes, punches or shifts are saved
// first; plain allocation only grows the size, which the size restores.
func (fl *file) allocate(ctx context.Context, off, n uint64, mode uint32) syscall.Errno {
	st, err := fl.state()
	if err != nil {
		return fs.ToErrno(err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	var serr error
	switch {
	case mode&(unix.FALLOC_FL_COLLAPSE_RANGE|unix.FALLOC_FL_INSERT_RANGE) != 0:
		serr = st.save(int64(off), 1<<62)
	case mode&(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_ZERO_RANGE) != 0:
		serr = st.save(int64(off), int64(n))
	default:
		serr = st.save(0, 0)
	}
	if serr != nil {
		return fs.ToErrno(serr)
	}
	errno := fl.lf.Allocate(ctx, off, n, mode)
	if errno == 0 && mode&unix.FALLOC_FL_KEEP_SIZE == 0 {
		fl.pc.sizeChanged(st)
	}
	return errno
}
