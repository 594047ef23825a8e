package queue

import (
	"time"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// Entry is one queued transaction as the forwarder reads it.
type Entry struct {
	// Seq is the edge's sequence number (gap-free, accept order).
	Seq uint64
	// Tx carries edge_id, epoch, seq and accepted_at already set.
	Tx *opsv1.Transaction
	// Size is the marshalled size of Tx in bytes (what it costs on the link).
	Size int
}

// CommitResult is central's answer to one Commit, as the forwarder hands it
// to the queue to record.
type CommitResult struct {
	// ThroughSeq is central's committed_through_seq.
	ThroughSeq uint64
	// LSN is the commit LSN (numeric) and LSNText its text form ("0/16B3748").
	LSN     uint64
	LSNText string
	// CommittedAt is when the edge received the answer.
	CommittedAt time.Time
	// Results holds one outcome per transaction of the batch, in seq order.
	Results []*centralv1.TransactionResult
	// Entries optionally holds the batch's entries as Read returned them,
	// Entries[i] for Results[i]. With them, a transaction central applied
	// for the first time gets its COMMITTED state without its ACCEPTED
	// state being read back (a point lookup and a decode per transaction):
	// that state is rebuilt from the entry (see acceptedState).
	Entries []Entry
}
