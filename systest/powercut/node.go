package powercut

import (
	"context"
	"path/filepath"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is a loopback node whose changes are recorded for a cut. Operations
// that change nothing (lookup, readdir, readlink, statfs, xattr reads) are
// go-fuse's loopback ones.
type node struct {
	*fs.LoopbackNode
	pc *FS
}

var (
	_ fs.NodeWrapChilder    = (*node)(nil)
	_ fs.NodeWriter         = (*node)(nil)
	_ fs.NodeFsyncer        = (*node)(nil)
	_ fs.NodeAllocater      = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeMknoder        = (*node)(nil)
	_ fs.NodeSymlinker      = (*node)(nil)
	_ fs.NodeLinker         = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRmdirer        = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
)

// WrapChild makes every node of the tree a node of this file system.
func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	if ln, ok := ops.(*fs.LoopbackNode); ok {
		return &node{LoopbackNode: ln, pc: n.pc}
	}
	return ops
}

// backing is the absolute backing path of name in this directory (of the
// node itself for name "").
func (n *node) backing(name string) string {
	return filepath.Join(n.pc.backing, n.Path(nil), name)
}

// inner unwraps a file handle for go-fuse's loopback methods.
func inner(f fs.FileHandle) fs.FileHandle {
	if fl, ok := f.(*file); ok {
		return fl.lf
	}
	return f
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if !n.pc.enter() {
		return nil, 0, syscall.EIO
	}
	defer n.pc.leave()
	fh, fuseFlags, errno := n.LoopbackNode.Open(ctx, flags&^syscall.O_TRUNC)
	if errno != 0 {
		return nil, 0, errno
	}
	fl, errno := newFile(n.pc, fh)
	if errno != 0 {
		_ = fh.(fs.FileReleaser).Release(ctx)
		return nil, 0, errno
	}
	if flags&syscall.O_TRUNC != 0 {
		if errno := fl.truncate(0); errno != 0 {
			_ = fl.Release(ctx)
			return nil, 0, errno
		}
	}
	return fl, fuseFlags, 0
}

// truncate sets the size, saving what it cuts off.
func (fl *file) truncate(size int64) syscall.Errno {
	st, err := fl.state()
	if err != nil {
		return fs.ToErrno(err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.save(size, 1<<62); err != nil {
		return fs.ToErrno(err)
	}
	if err := syscall.Ftruncate(fl.fd, size); err != nil {
		return fs.ToErrno(err)
	}
	fl.pc.sizeChanged(st)
	return 0
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if !n.pc.enter() {
		return nil, nil, 0, syscall.EIO
	}
	defer n.pc.leave()
	p := n.backing(name)
	existed := exists(p)
	if existed {
		flags &^= syscall.O_TRUNC // saved below
	}
	ino, fh, fuseFlags, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	fl, errno := newFile(n.pc, fh)
	if errno != 0 {
		_ = fh.(fs.FileReleaser).Release(ctx)
		return nil, nil, 0, errno
	}
	if !existed {
		n.pc.record(undo{kind: undoCreate, path: p})
	} else if flags&syscall.O_TRUNC != 0 {
		if errno := fl.truncate(0); errno != 0 {
			_ = fl.Release(ctx)
			return nil, nil, 0, errno
		}
	}
	return ino, fl, fuseFlags, 0
}

func (n *node) Write(ctx context.Context, f fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if !n.pc.enter() {
		return 0, syscall.EIO // a write after the cut is dropped
	}
	defer n.pc.leave()
	fl, ok := f.(*file)
	if !ok {
		return 0, syscall.EBADF
	}
	return fl.write(ctx, data, off)
}

func (n *node) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	if !n.pc.enter() {
		return syscall.EIO
	}
	defer n.pc.leave()
	if fl, ok := f.(*file); ok {
		return fl.fsync(ctx, flags)
	}
	return n.syncDir(ctx)
}

// syncDir is an fsync of this directory: it commits every directory
// operation that completed before it.
func (n *node) syncDir(ctx context.Context) syscall.Errno {
	mark := n.pc.journalMark()
	fd, err := syscall.Open(n.backing(""), syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return fs.ToErrno(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Fsync(fd); err != nil {
		return fs.ToErrno(err)
	}
	n.pc.commit(mark)
	return 0
}

func (n *node) Allocate(ctx context.Context, f fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	if !n.pc.enter() {
		return syscall.EIO
	}
	defer n.pc.leave()
	fl, ok := f.(*file)
	if !ok {
		return syscall.EBADF
	}
	return fl.allocate(ctx, off, size, mode)
}

func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	return n.LoopbackNode.Getattr(ctx, inner(f), out)
}

func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if !n.pc.enter() {
		return syscall.EIO
	}
	defer n.pc.leave()
	size, ok := in.GetSize()
	if !ok {
		return n.LoopbackNode.Setattr(ctx, inner(f), in, out)
	}
	st, err := n.sizeState(f)
	if err != nil {
		return fs.ToErrno(err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.save(int64(size), 1<<62); err != nil {
		return fs.ToErrno(err)
	}
	errno := n.LoopbackNode.Setattr(ctx, inner(f), in, out)
	if errno == 0 {
		n.pc.sizeChanged(st)
	}
	return errno
}

func (n *node) sizeState(f fs.FileHandle) (*fileState, error) {
	if fl, ok := f.(*file); ok {
		return fl.state()
	}
	return n.pc.statePath(n.backing(""))
}

// CopyFileRange is refused: the kernel then copies with read and write,
// which this file system records.
func (n *node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle,
	offOut uint64, size uint64, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}

func (n *node) created(name string, ino *fs.Inode, errno syscall.Errno) (*fs.Inode, syscall.Errno) {
	if errno == 0 {
		n.pc.record(undo{kind: undoCreate, path: n.backing(name)})
	}
	return ino, errno
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !n.pc.enter() {
		return nil, syscall.EIO
	}
	defer n.pc.leave()
	ino, errno := n.LoopbackNode.Mkdir(ctx, name, mode, out)
	return n.created(name, ino, errno)
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !n.pc.enter() {
		return nil, syscall.EIO
	}
	defer n.pc.leave()
	ino, errno := n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
	return n.created(name, ino, errno)
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !n.pc.enter() {
		return nil, syscall.EIO
	}
	defer n.pc.leave()
	ino, errno := n.LoopbackNode.Symlink(ctx, target, name, out)
	return n.created(name, ino, errno)
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !n.pc.enter() {
		return nil, syscall.EIO
	}
	defer n.pc.leave()
	ino, errno := n.LoopbackNode.Link(ctx, target, name, out)
	return n.created(name, ino, errno)
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	return n.remove(name, func() syscall.Errno { return n.LoopbackNode.Unlink(ctx, name) })
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	return n.remove(name, func() syscall.Errno { return n.LoopbackNode.Rmdir(ctx, name) })
}

func (n *node) remove(name string, op func() syscall.Errno) syscall.Errno {
	if !n.pc.enter() {
		return syscall.EIO
	}
	defer n.pc.leave()
	u, err := n.pc.keep(n.backing(name))
	if err != nil {
		return fs.ToErrno(err)
	}
	if errno := op(); errno != 0 {
		u.drop()
		return errno
	}
	n.pc.record(u)
	return 0
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if !n.pc.enter() {
		return syscall.EIO
	}
	defer n.pc.leave()
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	from, to := n.backing(name), np.backing(newName)
	exchange := flags&unix.RENAME_EXCHANGE != 0
	var replaced *undo
	if !exchange && exists(to) {
		u, err := n.pc.keep(to)
		if err != nil {
			return fs.ToErrno(err)
		}
		replaced = &u
	}
	if errno := n.LoopbackNode.Rename(ctx, name, np.LoopbackNode, newName, flags); errno != 0 {
		if replaced != nil {
			replaced.drop()
		}
		return errno
	}
	if replaced != nil {
		n.pc.record(*replaced) // undone after the rename is
	}
	n.pc.record(undo{kind: undoRename, path: from, to: to, exchange: exchange})
	return 0
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	ds, errno := fs.NewLoopbackDirStream(n.backing(""))
	if errno != 0 {
		return nil, 0, errno
	}
	return &dirHandle{ds: ds, n: n}, 0, 0
}

// dirHandle is an open directory whose fsync commits the journal.
type dirHandle struct {
	ds fs.DirStream
	n  *node
}

var (
	_ fs.FileFsyncdirer   = (*dirHandle)(nil)
	_ fs.FileReaddirenter = (*dirHandle)(nil)
	_ fs.FileSeekdirer    = (*dirHandle)(nil)
	_ fs.FileReleasedirer = (*dirHandle)(nil)
)

func (d *dirHandle) HasNext() bool                        { return d.ds.HasNext() }
func (d *dirHandle) Next() (fuse.DirEntry, syscall.Errno) { return d.ds.Next() }
func (d *dirHandle) Close()                               { d.ds.Close() }

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if r, ok := d.ds.(fs.FileReaddirenter); ok {
		return r.Readdirent(ctx)
	}
	if !d.ds.HasNext() {
		return nil, 0
	}
	e, errno := d.ds.Next()
	return &e, errno
}

func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if s, ok := d.ds.(fs.FileSeekdirer); ok {
		return s.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

func (d *dirHandle) Releasedir(ctx context.Context, flags uint32) { d.ds.Close() }

func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	if !d.n.pc.enter() {
		return syscall.EIO
	}
	defer d.n.pc.leave()
	return d.n.syncDir(ctx)
}
