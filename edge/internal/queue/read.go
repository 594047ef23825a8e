package queue

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// entryReader is the forwarder's read of the queue: entries in seq order,
// with corrupt ones quarantined on the way.
type entryReader struct{ *core }

// Read returns the entries with seq >= from in seq order: at most maxCount,
// and at most maxBytes of payload (but at least one entry when one exists).
// Committed entries still retained are returned too. A seq whose payload was
// pruned gives ErrPruned. Only durable (acknowledged) entries are returned:
// central must never hold a seq the edge could lose in a crash.
//
// A corrupt entry is logged, quarantined (x/<seq> keeps the bytes as found)
// and replaced in place by a tombstone transaction, so the forwarder is never
// stuck on it and the sequence stays gap-free (see tombstone).
func (q *Queue) Read(from uint64, maxCount, maxBytes int) ([]Entry, error) {
	return q.rd.read(from, maxCount, maxBytes)
}

func (er *entryReader) read(from uint64, maxCount, maxBytes int) ([]Entry, error) {
	m := er.snapshot()
	if from == 0 {
		from = 1
	}
	if from < m.head {
		return nil, fmt.Errorf("%w: seq %d (payloads held from %d)", ErrPruned, from, m.head)
	}
	if from > m.lastSeq || maxCount <= 0 {
		return nil, nil
	}
	out, bads, err := er.scan(from, m.lastSeq, maxCount, maxBytes)
	if err != nil {
		return nil, fmt.Errorf("queue: read from %d: %w", from, err)
	}
	if len(out) == 0 || out[0].Seq != from {
		// The entry is gone: pruned meanwhile, or lost.
		if h := er.snapshot().head; from < h {
			return nil, fmt.Errorf("%w: seq %d (payloads held from %d)", ErrPruned, from, h)
		}
		return nil, fmt.Errorf("queue: seq %d missing from the store (head %d, last %d)", from, m.head, m.lastSeq)
	}
	for _, b := range bads {
		e, err := er.quarantine(out[b.i].Seq, b.raw, b.err)
		if err != nil {
			return nil, err
		}
		out[b.i] = e
	}
	return out, nil
}

// corruptRead is an entry scan found corrupt: its place in the result and
// its bytes as found, for the quarantine.
type corruptRead struct {
	i   int
	raw []byte
	err error
}

// scan reads the entries from seq from on, gap-free and no further than
// last, within maxCount and maxBytes (at least one entry when one exists).
// A corrupt entry is an empty Entry in its place, listed in bads.
func (er *entryReader) scan(from, last uint64, maxCount, maxBytes int) (out []Entry, bads []corruptRead, err error) {
	err = er.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{
			PrefetchValues: true,
			PrefetchSize:   min(maxCount, 256),
			Prefix:         prefixQueue,
		})
		defer it.Close()
		size, expect := 0, from
		for it.Seek(seqKey(prefixQueue, from)); it.Valid(); it.Next() {
			item := it.Item()
			seq := binary.BigEndian.Uint64(item.Key()[len(prefixQueue):])
			if seq > last {
				break
			}
			if seq != expect {
				break
			}
			// Decoded in place: the decoded transaction copies what it
			// keeps; only a corrupt entry's bytes are copied, for the
			// quarantine.
			var e Entry
			err := item.Value(func(v []byte) error {
				var derr error
				if e, _, derr = decodeEntry(seq, v, er.opts.EdgeID, er.epoch); derr != nil {
					bads = append(bads, corruptRead{i: len(out), raw: bytes.Clone(v), err: derr})
					e = Entry{Seq: seq}
				}
				return nil
			})
			if err != nil {
				return err
			}
			if len(out) > 0 && size+e.Size > maxBytes {
				break
			}
			out = append(out, e)
			size += e.Size
			expect++
			if len(out) >= maxCount || size >= maxBytes {
				break
			}
		}
		return nil
	})
	return out, bads, err
}

// quarantine keeps a corrupt entry's bytes under x/<seq> and puts a
// tombstone transaction in its place.
func (er *entryReader) quarantine(seq uint64, raw []byte, cause error) (Entry, error) {
	er.log.Error("corrupt queue entry quarantined; a tombstone takes its seq", "seq", seq, "err", cause)
	if err := er.waitForSpace("quarantine"); err != nil {
		return Entry{}, err
	}
	er.lockWrite()
	defer er.unlockWrite()
	m := er.snapshot()
	b := er.newBatch(&m)
	defer b.discard()

	// Another Read may have replaced it already.
	item, err := b.txn.Get(seqKey(prefixQueue, seq))
	if err != nil {
		return Entry{}, fmt.Errorf("queue: quarantine seq %d: %w", seq, err)
	}
	cur, err := item.ValueCopy(nil)
	if err != nil {
		return Entry{}, err
	}
	if e, _, derr := decodeEntry(seq, cur, er.opts.EdgeID, er.epoch); derr == nil {
		return e, nil
	}

	h, herr := decodeHeader(raw)
	if herr != nil {
		// The header is gone too: take the accept time of now and keep the
		// byte counters continuous from the previous entry.
		h = entryHeader{acceptedAt: er.opts.Now()}
		if prev, err := readHeader(b.txn, seq-1); err == nil {
			h.cum = prev.cum
		}
	}
	tx, err := er.tombstone(seq, h.acceptedAt)
	if err != nil {
		return Entry{}, err
	}
	payload, err := proto.Marshal(tx)
	if err != nil {
		return Entry{}, err
	}
	qv := make([]byte, 0, len(raw)+len(cause.Error())+1)
	qv = append(append(append(qv, cause.Error()...), 0), raw...)
	qe := badger.NewEntry(seqKey(prefixQuarantine, seq), qv)
	ne := badger.NewEntry(seqKey(prefixQueue, seq), encodeEntry(h, payload))
	if err := b.reserve(qe, ne); err != nil {
		return Entry{}, err
	}
	if err := b.txn.SetEntry(qe); err != nil {
		return Entry{}, err
	}
	if err := b.txn.SetEntry(ne); err != nil {
		return Entry{}, err
	}
	if err := b.commit(); err != nil {
		return Entry{}, fmt.Errorf("queue: quarantine seq %d: %w", seq, err)
	}
	return Entry{Seq: seq, Tx: tx, Size: len(payload)}, nil
}

// tombstone is what takes a corrupt entry's seq: a transaction central is
// certain to reject for its data (an update of an observation with a fresh
// id, which cannot exist), so the seq is consumed in order, the rest flow on,
// and the operator finds it in the dead letters (next to the quarantined
// bytes, x/<seq>).
func (er *entryReader) tombstone(seq uint64, acceptedAt time.Time) (*opsv1.Transaction, error) {
	txID, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	obsID, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	failed := opsv1.ObservationStatus_OBSERVATION_STATUS_FAILED
	return &opsv1.Transaction{
		Id: txID.String(),
		Mutations: []*opsv1.Mutation{{Kind: &opsv1.Mutation_ObservationUpdate{
			ObservationUpdate: &opsv1.ObservationUpdate{Id: obsID.String(), Status: &failed},
		}}},
		AcceptedAt: timestamppb.New(acceptedAt),
		EdgeId:     er.opts.EdgeID,
		Epoch:      er.epoch,
		Seq:        seq,
	}, nil
}
