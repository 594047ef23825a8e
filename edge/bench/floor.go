package main

import (
	"github.com/chasqui/chasqui/internal/proccpu"

	"encoding/binary"
	"expvar"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// entryHeaderSize is the queue's per-entry header (version, cumulative
// bytes, accept time) in front of the marshalled transaction; unexported
// in edge/internal/queue (codec.go).
const entryHeaderSize = 1 + 8 + 8

// badgerCounters are Badger's own process-wide counters (expvar, metrics
// on by default): every key written by a Badger transaction and every
// user lookup, whatever the queue believes it writes.
type badgerCounters struct{ puts, gets, bytes int64 }

func readBadgerCounters() badgerCounters {
	get := func(name string) int64 {
		if v, ok := expvar.Get(name).(*expvar.Int); ok {
			return v.Value()
		}
		return 0
	}
	return badgerCounters{puts: get("badger_put_num_user"), gets: get("badger_get_num_user"), bytes: get("badger_write_bytes_user")}
}

func (c badgerCounters) sub(b badgerCounters) badgerCounters {
	return badgerCounters{puts: c.puts - b.puts, gets: c.gets - b.gets, bytes: c.bytes - b.bytes}
}

// openFloorDB opens a raw Badger in dir with the queue's options
// (edge/internal/queue/queue.go, copied: they are unexported there).
func openFloorDB(dir string) (*badger.DB, error) {
	return badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true).
		WithDetectConflicts(false).WithMemTableSize(16 << 20).WithNumMemtables(2).
		WithValueLogFileSize(64 << 20).WithValueThreshold(256).WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(16 << 20).WithNumCompactors(2).WithBaseTableSize(1 << 20).
		WithCompression(options.None))
}

// badgerFloor is what Badger itself does with the batched Submit's load
// and nothing else: one writer, one key per transaction with a value of
// valSize bytes (the queue's entry size), group keys per Badger
// transaction (the batched run's transactions per append group), one
// fsync'd commit per group, the queue's Badger options.
func badgerFloor(dir string, d time.Duration, valSize, group int) (result, error) {
	db, err := openFloorDB(dir)
	if err != nil {
		return result{}, err
	}
	defer db.Close()
	group = max(group, 1)
	val := make([]byte, valSize)
	var seq uint64
	start, cpu0 := time.Now(), proccpu.Self()
	for time.Since(start) < d {
		txn := db.NewTransaction(true)
		for range group {
			seq++
			key := binary.BigEndian.AppendUint64([]byte{'e'}, seq)
			if err := txn.Set(key, val); err != nil {
				txn.Discard()
				return result{}, err
			}
		}
		if err := txn.Commit(); err != nil {
			return result{}, err
		}
	}
	elapsed, cpu := time.Since(start), proccpu.Self()-cpu0
	n := max(int64(seq), 1)
	return result{rate: float64(n) / elapsed.Seconds(), cpuPerUnit: cpu / time.Duration(n), units: n, txPerGroup: float64(group)}, nil
}
