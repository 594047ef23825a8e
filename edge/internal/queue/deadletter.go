package queue

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/protobuf/proto"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// MaxDeadLetterPage bounds one ListDeadLetters page.
const MaxDeadLetterPage = 1000

func getDeadLetter(txn *badger.Txn, id string) (*edgev1.DeadLetter, error) {
	item, err := txn.Get(idKey(prefixDead, id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: dead letter %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	dl := &edgev1.DeadLetter{}
	err = item.Value(func(v []byte) error { return proto.Unmarshal(v, dl) })
	if err != nil {
		return nil, fmt.Errorf("queue: dead letter %s: %w", id, err)
	}
	return dl, nil
}

// ListDeadLetters lists dead letters in transaction id order (UUIDv7: about
// accept order), after the id after ("" from the start). next is the token
// of the next page, "" at the end. limit <= 0 means 100.
func (q *Queue) ListDeadLetters(after string, limit int) ([]*edgev1.DeadLetter, string, error) {
	return q.com.listDeadLetters(after, limit)
}

func (cm *committer) listDeadLetters(after string, limit int) (dls []*edgev1.DeadLetter, next string, err error) {
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, MaxDeadLetterPage)
	err = cm.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, PrefetchSize: min(limit, 100), Prefix: prefixDead})
		defer it.Close()
		for it.Seek(idKey(prefixDead, after)); it.Valid(); it.Next() {
			item := it.Item()
			id := string(item.Key()[len(prefixDead):])
			if id == after {
				continue
			}
			if len(dls) == limit {
				next = dls[len(dls)-1].GetTransaction().GetId()
				if next == "" {
					next = id
				}
				return nil
			}
			dl := &edgev1.DeadLetter{}
			if err := item.Value(func(v []byte) error { return proto.Unmarshal(v, dl) }); err != nil {
				cm.log.Error("unreadable dead letter skipped", "tx", id, "err", err)
				continue
			}
			if dl.Transaction == nil {
				dl.Transaction = &opsv1.Transaction{Id: id}
			}
			dls = append(dls, dl)
		}
		return nil
	})
	return dls, next, err
}

// GetDeadLetter returns one dead letter (ErrNotFound when there is none).
func (q *Queue) GetDeadLetter(id string) (*edgev1.DeadLetter, error) { return q.com.deadLetter(id) }

func (cm *committer) deadLetter(id string) (*edgev1.DeadLetter, error) {
	var dl *edgev1.DeadLetter
	err := cm.db.View(func(txn *badger.Txn) error {
		var err error
		dl, err = getDeadLetter(txn, id)
		return err
	})
	return dl, err
}

// RetryDeadLetter re-enqueues a dead letter under a new seq, with the same
// transaction id: as it was, or replaced by edited (whose id must be the
// same). The dead letter is removed in the same write.
func (q *Queue) RetryDeadLetter(ctx context.Context, id string, edited *opsv1.Transaction) (*edgev1.SubmitResult, error) {
	r := &submitReq{retry: &retryOp{id: id, edited: edited}, done: make(chan submitResp, 1)}
	r.estimate() // so the appender counts it when it cuts groups
	acks, err := q.app.do(ctx, r)
	if err != nil {
		return nil, err
	}
	return acks[0], nil
}

// DiscardDeadLetter drops a dead letter. The transaction's state stays
// REJECTED (and so its id known) for TxRetention.
func (q *Queue) DiscardDeadLetter(id string) error { return q.com.discardDeadLetter(id) }

func (cm *committer) discardDeadLetter(id string) error {
	cm.lockWrite()
	defer cm.unlockWrite()
	m := cm.snapshot()
	b := cm.newBatch(&m)
	defer b.discard()
	if _, err := getDeadLetter(b.txn, id); err != nil {
		return err
	}
	if err := b.txn.Delete(idKey(prefixDead, id)); err != nil {
		return err
	}
	st, found, err := getState(b.txn, id)
	if err != nil {
		return err
	}
	if found {
		e, err := stateEntry(id, st, cm.opts.TxRetention)
		if err != nil {
			return err
		}
		if err := b.txn.SetEntry(e); err != nil {
			return err
		}
	}
	if m.dead > 0 {
		m.dead--
	}
	if err := b.commit(); err != nil {
		return fmt.Errorf("queue: discard dead letter: %w", err)
	}
	cm.setMeta(m)
	return nil
}
