package queue

import "encoding/binary"

// The key layout of the Badger database. Every kind of record has its own
// prefix, so each is scanned alone; counters live under m/. How the read
// side uses o/, os/, v/, V/ and w/ is told in visible.go.
var (
	prefixQueue      = []byte("q/")  // + be64(seq) -> entry (header + marshalled transaction)
	prefixTx         = []byte("t/")  // + tx id -> txState (JSON)
	prefixDead       = []byte("d/")  // + tx id -> edgev1.DeadLetter
	prefixMark       = []byte("c/")  // + be64(through seq) -> commit mark (committed at, cumulative bytes)
	prefixQuarantine = []byte("x/")  // + be64(seq) -> corrupt entry as found, with the error
	prefixOverlay    = []byte("o/")  // + observation id + "/" + be64(seq) + be16(index) -> opsv1.Mutation (overlayKey)
	prefixRowOverlay = []byte("r/")  // + table + 0 + row key + 0 + be64(seq) + be16(index) -> opsv1.Mutation (rowoverlay.go)
	prefixOverlaySeq = []byte("os/") // + be64(seq) -> the length-prefixed o/ and r/ keys of that transaction
	prefixUnseen     = []byte("v/")  // + be64(seq): one per transaction: stores written before unseen records
	prefixUnseenRec  = []byte("V/")  // + be64(last seq): unseen records, one per Badger transaction
	prefixChange     = []byte("w/")  // + be64(last change number) -> the changes one Badger transaction logs

	keyEdgeID       = []byte("m/edge_id")
	keyEpoch        = []byte("m/epoch")
	keyLastSeq      = []byte("m/last_seq")
	keyCumLast      = []byte("m/cum_last")
	keyCommitted    = []byte("m/committed")
	keyCumCommitted = []byte("m/cum_committed")
	keyHead         = []byte("m/head")
	keyCumHead      = []byte("m/cum_head")
	keyDead         = []byte("m/dead")
	keyChange       = []byte("m/change")
	keyNewestLSN    = []byte("m/newest_lsn")
)

// keyApplyHigh holds the highest seq an ApplyCommit ever wrote a result
// for (8 bytes, big-endian). It is written into the first Badger
// transaction of every ApplyCommit that goes past it, so it covers an
// ApplyCommit that outgrew one Badger transaction and failed half-way:
// the state of a seq above max(committed, apply-high) is exactly what the
// appender wrote when it accepted the transaction.
var keyApplyHigh = []byte("m/apply_high")

// keyVisibleHigh holds the highest seq Replayed made VISIBLE (8 bytes,
// big-endian). With the first seq still in an unseen record it bounds the
// payloads the pruner may delete before their retention (visibleThrough).
var keyVisibleHigh = []byte("m/visible_high")

// keyIndexed holds the seq through which the indexer wrote the overlays
// (8 bytes, big-endian; indexer.go). Stores written before the indexer
// have none: their overlays were written at accept.
var keyIndexed = []byte("m/indexed")

// keyGCFlush is written and dropped by flushMemtables, nothing else.
var keyGCFlush = []byte("m/gc_flush")

func seqKey(prefix []byte, seq uint64) []byte {
	k := make([]byte, len(prefix)+8)
	copy(k, prefix)
	binary.BigEndian.PutUint64(k[len(prefix):], seq)
	return k
}

func idKey(prefix []byte, id string) []byte {
	k := make([]byte, 0, len(prefix)+len(id))
	return append(append(k, prefix...), id...)
}

// overlayKey is the key of mutation j of transaction seq, on observation
// obsID: the observation first, so one prefix scan finds its pending
// writes, in seq order.
func overlayKey(obsID string, seq uint64, j int) []byte {
	k := make([]byte, 0, len(prefixOverlay)+len(obsID)+1+10)
	k = append(append(append(k, prefixOverlay...), obsID...), '/')
	k = binary.BigEndian.AppendUint64(k, seq)
	return binary.BigEndian.AppendUint16(k, uint16(j))
}
