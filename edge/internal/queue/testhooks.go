package queue

import "github.com/dgraph-io/badger/v4"

// testHooks are the queue's stand-ins for tests: each, when set, replaces
// one step the tests need to hold or fail. They ride in Options (unexported,
// so only the package's own tests set them) because a test reopens a store
// with the options it opened it with. Nil means the real step.
type testHooks struct {
	// commitGroup, set by tests only, stands in for handing an append
	// group's Badger transaction to Badger (txn.CommitWith): it runs on a
	// goroutine of its own, as CommitWith's callback does, and must call
	// done once with the outcome, having committed txn or discarded it.
	// Tests hold a group's commit with it, or fail it, before the appender
	// lands the group.
	commitGroup func(p *flight, txn *badger.Txn, done func(error))
	// commitPart, set by tests only, stands in for the Badger commit
	// (txn.Commit) of each part of a batch: of a group written the plain
	// way, in parts when it outgrows one Badger transaction, and of the
	// other writers (pruner, Rewind, dead letters). final is false
	// for a part committed because the batch outgrew it, true for the
	// batch's last. It must commit txn or discard it, and return the
	// outcome. Tests fail a later part of a group with it.
	commitPart func(txn *badger.Txn, final bool) error
	// readBack, set by tests only, is consulted first whenever the
	// counters are read back from the store (reload): an error it returns
	// fails the read-back. Tests leave the counters stale with it.
	readBack func() error
	// noIndexLoop, set by tests only, keeps the indexer's goroutine from
	// indexing: overlays are then written only by the catch-ups of
	// readers and writers (indexer.go), as when the goroutine is behind.
	noIndexLoop bool
	// filled, set by tests only, is called with each group the appender
	// gathered, before it prepares it: tests hold the appender there
	// while they line up the requests of the next group.
	filled func(group []*submitReq)
}
