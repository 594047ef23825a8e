package queue

import (
	"github.com/dgraph-io/badger/v4"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
)

// Reads is the read side of the queue (visible.go tells its records): the
// pending overlays reads merge over the replica, the visibility of
// committed transactions (Replayed), the change log WatchTransactions
// follows, and the state of each transaction.
type Reads struct{ *core }

// Reads is the read side: overlays and the change log.
func (q *Queue) Reads() *Reads { return q.reads }

// GetTransaction tells how far a transaction has come (ErrNotFound when the
// store does not know it, or no longer).
func (q *Queue) GetTransaction(id string) (*edgev1.TransactionStatus, error) {
	return q.reads.transaction(id)
}

func (rs *Reads) transaction(id string) (*edgev1.TransactionStatus, error) {
	var st txState
	err := rs.db.View(func(txn *badger.Txn) error {
		var found bool
		var err error
		st, found, err = getState(txn, id)
		if err == nil && !found {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return st.status(id), nil
}
