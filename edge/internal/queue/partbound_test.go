package queue

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// Every part of a group written in several Badger transactions must be
// consistent on its own: no entry beyond the counters committed with it.
// A part that held entry N+1 with counters saying N would, once a later
// part failed, answer the caller's retry "stored at N+1" and then give
// N+1 to the next new transaction, overwriting the acknowledged one. The
// part boundary falls wherever the Badger transaction fills, so this
// sweeps transaction shapes until boundaries have fallen inside many
// transactions' writes (between entry, overlays and change log).
func TestEveryPartHoldsOnlyWhatItsCountersSay(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var parts int
	var bad []string
	check := func(txn *badger.Txn, final bool) error {
		m, err := readMeta(txn)
		if err != nil {
			txn.Discard()
			return err
		}
		_, err = txn.Get(seqKey(prefixQueue, m.lastSeq+1))
		mu.Lock()
		parts++
		switch {
		case err == nil:
			bad = append(bad, "a part holds entry "+uintStr(m.lastSeq+1)+" beyond its counters' last seq "+uintStr(m.lastSeq))
		case !errors.Is(err, badger.ErrKeyNotFound):
			bad = append(bad, err.Error())
		}
		mu.Unlock()
		return txn.Commit()
	}
	q, _ := openDurableTest(t, func(o *Options) { o.hooks.commitPart = check })
	ctx := context.Background()
	for shape := range 12 {
		// 1-4 mutations of varying size: the boundary moves through the
		// transactions' writes from one shape to the next.
		txs := make([]*opsv1.Transaction, 7000)
		for i := range txs {
			tx := &opsv1.Transaction{Id: uuid.Must(uuid.NewV7()).String()}
			for range 1 + shape%4 {
				tx.Mutations = append(tx.Mutations, &opsv1.Mutation{Kind: &opsv1.Mutation_Observation{
					Observation: &opsv1.Observation{Instrument: "CHAI", Source: strings.Repeat("s", shape*7)},
				}})
			}
			txs[i] = tx
		}
		_, err := q.Submit(ctx, txs)
		require.NoError(t, err)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Greater(t, parts, 12, "no group was written in several parts")
	require.Empty(t, bad)
}

func uintStr(v uint64) string { return strconv.FormatUint(v, 10) }
