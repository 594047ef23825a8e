package queue

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// A queue entry's value: a fixed header, then the marshalled transaction.
// The header carries what the queue needs without unmarshalling the payload:
// the cumulative payload bytes through this seq (byte counters stay exact
// however commits and prunes cut the sequence) and the accept time.
const (
	entryVersion    = 1
	entryHeaderSize = 1 + 8 + 8
)

type entryHeader struct {
	cum        uint64
	acceptedAt time.Time
}

func encodeEntry(h entryHeader, payload []byte) []byte {
	v := make([]byte, entryHeaderSize, entryHeaderSize+len(payload))
	v[0] = entryVersion
	binary.BigEndian.PutUint64(v[1:], h.cum)
	binary.BigEndian.PutUint64(v[9:], uint64(h.acceptedAt.UnixNano()))
	return append(v, payload...)
}

func decodeHeader(v []byte) (entryHeader, error) {
	if len(v) < entryHeaderSize || v[0] != entryVersion {
		return entryHeader{}, fmt.Errorf("%w: header of %d bytes, version %d", errCorrupt, len(v), firstByte(v))
	}
	return entryHeader{
		cum:        binary.BigEndian.Uint64(v[1:]),
		acceptedAt: time.Unix(0, int64(binary.BigEndian.Uint64(v[9:]))).UTC(),
	}, nil
}

func firstByte(v []byte) int {
	if len(v) == 0 {
		return -1
	}
	return int(v[0])
}

// decodeEntry is THE decoder of stored queue entries: every read of an
// entry's payload goes through it, so a corrupt entry is caught (and
// quarantined by the caller) in one place. It checks what the queue relies
// on: the header, that the payload unmarshals, and that the stored seq,
// edge id and epoch are the ones the key and store say.
func decodeEntry(seq uint64, v []byte, edgeID, epoch string) (Entry, entryHeader, error) {
	h, err := decodeHeader(v)
	if err != nil {
		return Entry{}, h, err
	}
	payload := v[entryHeaderSize:]
	tx := &opsv1.Transaction{}
	if err := proto.Unmarshal(payload, tx); err != nil {
		return Entry{}, h, fmt.Errorf("%w: seq %d: %v", errCorrupt, seq, err)
	}
	if tx.GetSeq() != seq || tx.GetEdgeId() != edgeID || tx.GetEpoch() != epoch || tx.GetId() == "" {
		return Entry{}, h, fmt.Errorf("%w: seq %d holds seq %d, edge %q, epoch %q, id %q",
			errCorrupt, seq, tx.GetSeq(), tx.GetEdgeId(), tx.GetEpoch(), tx.GetId())
	}
	return Entry{Seq: seq, Tx: tx, Size: len(payload)}, h, nil
}

func readHeader(txn *badger.Txn, seq uint64) (entryHeader, error) {
	item, err := txn.Get(seqKey(prefixQueue, seq))
	if err != nil {
		return entryHeader{}, err
	}
	var h entryHeader
	err = item.Value(func(v []byte) error {
		var err error
		h, err = decodeHeader(v)
		return err
	})
	return h, err
}

// txState is what the edge knows about one transaction, under t/<id>: the
// first answer (seq, accept time, record ids) and how far it has come.
type txState struct {
	Seq         uint64   `json:"seq"`
	State       int32    `json:"state"` // edgev1.TransactionState
	AcceptedAt  int64    `json:"acc"`   // unix ns
	RecordIDs   []string `json:"rids,omitempty"`
	CommittedAt int64    `json:"com,omitempty"`
	LSN         uint64   `json:"lsn,omitempty"`
	LSNText     string   `json:"lsnt,omitempty"`
	Reason      string   `json:"reason,omitempty"`
	SQLState    string   `json:"sqlstate,omitempty"`
	VisibleAt   int64    `json:"vis,omitempty"`
}

func getState(txn *badger.Txn, id string) (txState, bool, error) {
	var st txState
	item, err := txn.Get(idKey(prefixTx, id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return st, false, nil
	}
	if err != nil {
		return st, false, err
	}
	err = item.Value(func(v []byte) error { return json.Unmarshal(v, &st) })
	if err != nil {
		return st, false, fmt.Errorf("queue: tx state %s: %w", id, err)
	}
	return st, true, nil
}

// stateEntry builds the Badger entry of a state; ttl > 0 lets Badger drop
// it after the retention (only once the transaction is settled).
func stateEntry(id string, st txState, ttl time.Duration) (*badger.Entry, error) {
	// By hand (appendStateJSON: encoding/json's bytes at a fraction of
	// the cost), by encoding/json when a string needs escaping.
	v, ok := appendStateJSON(make([]byte, 0, 192), st)
	if !ok {
		var err error
		if v, err = json.Marshal(st); err != nil {
			return nil, err
		}
	}
	e := badger.NewEntry(idKey(prefixTx, id), v)
	if ttl > 0 {
		e = e.WithTTL(ttl)
	}
	return e, nil
}

func (st txState) ack(id string, duplicate bool) *edgev1.SubmitResult {
	return &edgev1.SubmitResult{
		TransactionId: id,
		Seq:           st.Seq,
		AcceptedAt:    timestamppb.New(time.Unix(0, st.AcceptedAt)),
		RecordIds:     st.RecordIDs,
		Duplicate:     duplicate,
		State:         edgev1.TransactionState(st.State),
	}
}

func (st txState) status(id string) *edgev1.TransactionStatus {
	s := &edgev1.TransactionStatus{
		TransactionId:  id,
		Seq:            st.Seq,
		State:          edgev1.TransactionState(st.State),
		AcceptedAt:     timestamppb.New(time.Unix(0, st.AcceptedAt)),
		CommitLsn:      st.LSNText,
		CommitLsnValue: st.LSN,
		RejectReason:   st.Reason,
		Sqlstate:       st.SQLState,
	}
	if st.CommittedAt != 0 {
		s.CommittedAt = timestamppb.New(time.Unix(0, st.CommittedAt))
	}
	if st.VisibleAt != 0 {
		s.VisibleAt = timestamppb.New(time.Unix(0, st.VisibleAt))
	}
	return s
}

// statFS is the free space (for unprivileged users) of dir's file system.
func statFS(dir string) (uint64, error) {
	var s syscall.Statfs_t
	if err := syscall.Statfs(dir, &s); err != nil {
		return 0, err
	}
	return s.Bavail * uint64(s.Bsize), nil
}

// appendStateJSON appends st as encoding/json marshals txState, or
// reports false when a string needs escaping.
func appendStateJSON(b []byte, st txState) ([]byte, bool) {
	b = strconv.AppendUint(append(b, `{"seq":`...), st.Seq, 10)
	b = strconv.AppendInt(append(b, `,"state":`...), int64(st.State), 10)
	b = strconv.AppendInt(append(b, `,"acc":`...), st.AcceptedAt, 10)
	ok := true
	str := func(name, v string) {
		if v == "" {
			return
		}
		b = append(append(append(b, `,"`...), name...), `":`...)
		b, ok = appendJSONString(b, v, ok)
	}
	if len(st.RecordIDs) > 0 {
		b = append(b, `,"rids":[`...)
		for i, id := range st.RecordIDs {
			if i > 0 {
				b = append(b, ',')
			}
			b, ok = appendJSONString(b, id, ok)
		}
		b = append(b, ']')
	}
	if st.CommittedAt != 0 {
		b = strconv.AppendInt(append(b, `,"com":`...), st.CommittedAt, 10)
	}
	if st.LSN != 0 {
		b = strconv.AppendUint(append(b, `,"lsn":`...), st.LSN, 10)
	}
	str("lsnt", st.LSNText)
	str("reason", st.Reason)
	str("sqlstate", st.SQLState)
	if st.VisibleAt != 0 {
		b = strconv.AppendInt(append(b, `,"vis":`...), st.VisibleAt, 10)
	}
	return append(b, '}'), ok
}

// appendJSONString quotes s when encoding/json would write it unescaped
// (printable ASCII other than the quote, backslash and <, >, &).
func appendJSONString(b []byte, s string, ok bool) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			ok = false
		}
	}
	return append(append(append(b, '"'), s...), '"'), ok
}
