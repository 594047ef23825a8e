package queue

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/rows"
)

// Pending overlays of rows (opsv1.Row, docs/design.md "Edge reads"): a
// row mutation is written, beside its entry, under
// r/<table>\x00<key>\x00<seq><index>, <key> being the row's canonical
// primary key (rows.Key) as Options.RowKey gives it at accept time. One
// prefix scan finds a row's pending writes, another a table's. A row
// accepted while RowKey cannot key it (the schema of its table is not
// learned yet) goes under the empty key, r/<table>\x00\x00…: a table's
// unkeyed writes are one contiguous range that the reader keys at read
// time, with the schema it has then. A canonical key is a JSON array, never
// empty and never holding a NUL byte (JSON escapes it), and a table name
// is a plain identifier, so the separators cannot be forged. The keys join
// the transaction's os/<seq> list: they leave with its other overlays.

// RowOverlay is one pending mutation of a row.
type RowOverlay struct {
	Overlay
	// Key is the row's canonical primary key as Options.RowKey gave it
	// when the row was accepted; "" when it could not.
	Key string
	// index orders the mutations of one transaction.
	index uint16
}

// rowOverlayKey is the key of mutation j of transaction seq, a row, keyed
// with rowKey (Options.RowKey); nil
// when the row names no valid table (it is refused downstream, and no
// read can name its table).
func rowOverlayKey(rowKey func(*opsv1.Row) (string, bool), r *opsv1.Row, seq uint64, j int) []byte {
	if _, err := rows.ParseTable(r.GetTable()); err != nil {
		return nil
	}
	key := ""
	if rowKey != nil {
		if k, ok := rowKey(r); ok && k != "" && !strings.ContainsRune(k, 0) {
			key = k
		}
	}
	k := rowPrefix(r.GetTable(), &key)
	k = binary.BigEndian.AppendUint64(k, seq)
	return binary.BigEndian.AppendUint16(k, uint16(j))
}

// rowPrefix is the scan prefix of table's overlays, or of one key's when
// key is not nil.
func rowPrefix(table string, key *string) []byte {
	k := make([]byte, 0, len(prefixRowOverlay)+len(table)+2+32)
	k = append(append(append(k, prefixRowOverlay...), table...), 0)
	if key != nil {
		k = append(append(k, *key...), 0)
	}
	return k
}

// RowOverlays returns the pending mutations of the row of table whose
// canonical key is key, and the table's writes accepted unkeyed (the
// caller keeps those of them that are this row's), in seq order.
func (rs *Reads) RowOverlays(table, key string) ([]RowOverlay, error) {
	unkeyed := ""
	prefixes := [][]byte{rowPrefix(table, &unkeyed)}
	if key != "" {
		prefixes = append(prefixes, rowPrefix(table, &key))
	}
	return rs.scanRowOverlays(table, prefixes)
}

// TableOverlays returns every pending row mutation of table, in seq order.
func (rs *Reads) TableOverlays(table string) ([]RowOverlay, error) {
	return rs.scanRowOverlays(table, [][]byte{rowPrefix(table, nil)})
}

func (rs *Reads) scanRowOverlays(table string, prefixes [][]byte) ([]RowOverlay, error) {
	if err := rs.ix.catchUp(rs.snapshot().lastSeq); err != nil {
		return nil, err
	}
	committed := rs.snapshot().committed
	tp := rowPrefix(table, nil)
	var out []RowOverlay
	err := rs.db.View(func(txn *badger.Txn) error {
		for _, prefix := range prefixes {
			it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: 64, Prefix: prefix})
			for it.Rewind(); it.Valid(); it.Next() {
				k := it.Item().Key()
				rest := k[len(tp):]
				if len(rest) < 11 || rest[len(rest)-11] != 0 || bytes.IndexByte(rest[:len(rest)-11], 0) >= 0 {
					continue
				}
				m := &opsv1.Mutation{}
				if err := it.Item().Value(func(v []byte) error { return proto.Unmarshal(v, m) }); err != nil {
					it.Close()
					return fmt.Errorf("queue: row overlay %q: %w", k, err)
				}
				seq := binary.BigEndian.Uint64(rest[len(rest)-10:])
				out = append(out, RowOverlay{
					Overlay: Overlay{Seq: seq, Committed: seq <= committed, Mutation: m},
					Key:     string(rest[:len(rest)-11]),
					index:   binary.BigEndian.Uint16(rest[len(rest)-2:]),
				})
			}
			it.Close()
		}
		return nil
	})
	slices.SortStableFunc(out, func(a, b RowOverlay) int {
		if a.Seq != b.Seq {
			return cmp.Compare(a.Seq, b.Seq)
		}
		return cmp.Compare(a.index, b.index)
	})
	return out, err
}
