package queue

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// diskUsage is the space the files under dir take on disk (allocated
// blocks: Badger's value-log files are sparse, their apparent size is
// twice their content).
func diskUsage(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		}
		return nil
	})
	require.NoError(t, err)
	return total
}

// flushMemtables makes Badger write its memtables to level-0 tables now
// (DropPrefix flushes them before dropping; it drops only a key written for
// the purpose). Badger counts discardable value-log bytes only when a
// compaction drops an old version, and compactions only see flushed tables.
func flushMemtables(t *testing.T, q *Queue) {
	t.Helper()
	prefix := []byte("gc-test-flush")
	require.NoError(t, q.db.Update(func(txn *badger.Txn) error { return txn.Set(prefix, []byte{1}) }))
	require.NoError(t, q.db.DropPrefix(prefix))
}

// Disk use falls after a backlog drains: payloads committed by central and
// pruned after their retention give their value-log space back through
// RunGC. Badger only learns which value-log bytes are garbage when
// compactions drop the old versions, so the test flushes the memtables into
// several level-0 tables (as a long backlog does on its own) and flattens
// the tree before RunGC; without Prune (or without RunGC) the space stays.
func TestDiskUseFallsAfterDrain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q, err := Open(Options{Dir: dir, EdgeID: "edge-gc", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		PayloadRetention: time.Nanosecond, OverlayRetention: time.Nanosecond})
	require.NoError(t, err)
	defer func() { require.NoError(t, q.Close()) }()
	ctx := context.Background()

	// About 2.3 value-log files (64 MiB each) of payloads and their read overlays, in six groups,
	// each flushed to a level-0 table of its own.
	blob := structpb.NewStringValue(strings.Repeat("x", 64<<10))
	const groups, per = 6, 200
	for range groups {
		txs := make([]*opsv1.Transaction, per)
		for i := range txs {
			txs[i] = &opsv1.Transaction{Id: uuid.Must(uuid.NewV7()).String(), Mutations: []*opsv1.Mutation{{
				Kind: &opsv1.Mutation_Observation{Observation: &opsv1.Observation{
					Instrument: "CHAI", Source: "Orion-KL", Status: opsv1.ObservationStatus_OBSERVATION_STATUS_RUNNING,
					Attributes: &structpb.Struct{Fields: map[string]*structpb.Value{"blob": blob}},
				}},
			}}}
		}
		_, err := q.Submit(ctx, txs)
		require.NoError(t, err)
		flushMemtables(t, q)
	}
	full := diskUsage(t, dir)
	require.Greater(t, full, int64(groups*per)<<16, "the backlog is on disk")

	// Central commits everything; the payloads are pruned after their
	// retention.
	for from := uint64(1); from <= q.LastSeq(); {
		es, err := q.Read(from, 500, 64<<20)
		require.NoError(t, err)
		res := CommitResult{ThroughSeq: es[len(es)-1].Seq, LSN: 1, LSNText: "0/1", CommittedAt: time.Now()}
		for _, e := range es {
			res.Results = append(res.Results, &centralv1.TransactionResult{
				TransactionId: e.Tx.GetId(), Seq: e.Seq, Outcome: centralv1.Outcome_OUTCOME_APPLIED,
			})
		}
		require.NoError(t, q.ApplyCommit(res))
		from = es[len(es)-1].Seq + 1
	}
	require.Equal(t, uint64(groups*per), q.CommittedThrough())
	pruned, err := q.Prune(ctx)
	require.NoError(t, err)
	require.Equal(t, groups*per, pruned)

	// Compactions see the tombstones next to the payloads' pointers and
	// count those value-log bytes as discardable; GC rewrites the files.
	flushMemtables(t, q)
	require.NoError(t, q.db.Flatten(1))
	require.NoError(t, q.RunGC())
	after := diskUsage(t, dir)
	t.Logf("disk use: %d MiB with the backlog, %d MiB after commit, prune and GC", full>>20, after>>20)
	require.Less(t, after, full/2, "value-log GC gave the drained backlog's space back")
}
