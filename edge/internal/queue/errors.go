package queue

import "errors"

// Errors of the queue. The API maps them to gRPC codes.
var (
	// ErrQueueFull: accepting would take the queue past MaxQueueBytes.
	ErrQueueFull = errors.New("queue: full")
	// ErrDiskFull: free disk space is below the reserve.
	ErrDiskFull = errors.New("queue: disk space below reserve")
	// ErrNotFound: no such transaction or dead letter.
	ErrNotFound = errors.New("queue: not found")
	// ErrClosed: the queue is closed.
	ErrClosed = errors.New("queue: closed")
	// ErrInvalid: a request the queue cannot take as it is (the API
	// validates before; this guards direct callers).
	ErrInvalid = errors.New("queue: invalid request")
	// ErrCountersStale: a write failed and the counters could not be read
	// back from the store after it, so the in-memory ones may be behind
	// what is durable (a group written in several Badger transactions
	// fails half-way). Every write is refused, having changed nothing,
	// until they can be read back; each write tries again. Transient.
	ErrCountersStale = errors.New("queue: counters could not be read back after a failed write")
	// ErrRetry: the write was built on stale counters, read back since,
	// and changed nothing. Retrying it at once is safe (resubmitted
	// transaction ids get their first answers).
	ErrRetry = errors.New("queue: write built on stale counters, read back since; retry it")
	// ErrSyncFailed: Badger could not fsync its value log after a write.
	// Badger only logs that (value.go, valueLog.write) and reports the
	// write done, so what was written since the last good fsync may not be
	// on disk, and after a failed fsync the kernel may have dropped the
	// dirty pages: no later fsync can prove it is. Every write is refused,
	// and none acknowledged, until the store is reopened (the edge
	// restarted), which reads back what is really on disk.
	ErrSyncFailed = errors.New("queue: an fsync of the value log failed; writes refused until the edge restarts")
	// ErrPruned is returned (wrapped) by Queue.Read when a payload asked for
	// was already pruned after its retention: central wants seqs the edge no
	// longer holds (operator action).
	ErrPruned = errors.New("queue: payload pruned")
	// ErrChangesPruned: a watcher asked to resume after a change the log no
	// longer holds.
	ErrChangesPruned = errors.New("queue: changes pruned")

	// Internal sentinels, matched inside the package.

	// errGroupFull: a prepared group does not fit one Badger transaction.
	errGroupFull = errors.New("queue: group outgrows one Badger transaction")
	// errCorrupt marks a stored entry that cannot be decoded.
	errCorrupt = errors.New("queue: corrupt entry")
)
