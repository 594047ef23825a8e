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

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"

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

// Disk use falls after a backlog drains, with the edge's own settings
// (default retentions, value-log GC as Run runs it, no forced compaction):
// central commits the backlog, the site replica replays it (Replayed, as
// the replica watcher calls it), so the pruner deletes the payloads at once
// instead of after the day of PayloadRetention, and value-log GC gives
// their space back. Badger counts value-log bytes as garbage only when a
// compaction drops their key's old version, so the backlog is large enough
// to span several value-log files, and nothing is written after the drain:
// RunGC must make Badger count the garbage itself.
func TestDiskUseFallsAfterDrain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q, err := Open(Options{Dir: dir, EdgeID: "edge-gc", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	defer func() { require.NoError(t, q.Close()) }()
	ctx := context.Background()

	blob := structpb.NewStringValue(strings.Repeat("x", gcPayload))
	for range gcTxs / 1000 {
		txs := make([]*opsv1.Transaction, 1000)
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
	}
	full := diskUsage(t, dir)
	require.Greater(t, full, int64(gcTxs*gcPayload), "the backlog is on disk")
	require.GreaterOrEqual(t, len(vlogFiles(t, dir)), 2, "the backlog spans value-log files")

	var lsn uint64
	commitAll(t, q, 1, 1000, &lsn, time.Now())
	_, err = q.Replayed(lsn)
	require.NoError(t, err)
	pruned, err := q.Prune(ctx)
	require.NoError(t, err)
	require.Equal(t, gcTxs, pruned, "VISIBLE payloads go without waiting for their retention")
	require.NoError(t, q.RunGC())
	after := diskUsage(t, dir)
	t.Logf("disk use: %d MiB with the backlog, %d MiB after commit, replay, prune and GC", full>>20, after>>20)
	require.Len(t, vlogFiles(t, dir), 1, "every value-log file but the one Badger writes into is given back")
	require.Less(t, after, full*2/3, "disk use fell")
}

const gcTxs, gcPayload = 50_000, 1 << 10

func vlogFiles(t *testing.T, dir string) []string {
	t.Helper()
	fs, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	require.NoError(t, err)
	return fs
}
