package queue

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// FuzzDecodeEntry: whatever bytes a stored queue entry holds (torn write,
// bit rot, a foreign key), decodeEntry never panics; it either returns an
// entry consistent with the key and store, or an error wrapping errCorrupt
// (which the queue reports and quarantines, see
// TestCorruptEntryIsQuarantinedNotFatal).
func FuzzDecodeEntry(f *testing.F) {
	tx := &opsv1.Transaction{Id: "0190b3c4-0000-7000-8000-000000000001", EdgeId: "e", Epoch: "ep", Seq: 7,
		Mutations: []*opsv1.Mutation{{Kind: &opsv1.Mutation_RawDataFile{RawDataFile: &opsv1.RawDataFile{Path: "/x"}}}}}
	payload, err := proto.Marshal(tx)
	if err != nil {
		f.Fatal(err)
	}
	valid := encodeEntry(entryHeader{cum: 42, acceptedAt: time.Unix(1700000000, 0)}, payload)
	f.Add(uint64(7), valid)
	f.Add(uint64(8), valid)
	f.Add(uint64(7), valid[:entryHeaderSize])
	f.Add(uint64(7), valid[:entryHeaderSize-1])
	f.Add(uint64(7), []byte{})
	f.Add(uint64(7), []byte{entryVersion, 0xff, 0xff})
	f.Add(uint64(7), append(append([]byte{}, valid[:entryHeaderSize]...), 0xff, 0xff, 0xff))
	f.Fuzz(func(t *testing.T, seq uint64, v []byte) {
		e, _, err := decodeEntry(seq, v, "e", "ep")
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("error does not wrap errCorrupt: %v", err)
			}
			return
		}
		if e.Seq != seq || e.Tx.GetSeq() != seq || e.Tx.GetEdgeId() != "e" || e.Tx.GetEpoch() != "ep" || e.Tx.GetId() == "" {
			t.Fatalf("accepted an inconsistent entry: seq %d -> %+v", seq, e.Tx)
		}
		if e.Size != len(v)-entryHeaderSize {
			t.Fatalf("size %d, want %d", e.Size, len(v)-entryHeaderSize)
		}
	})
}
