package queue

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/stretchr/testify/require"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/fixture"
)

// badgerSyncFails makes Badger's logger report a failed value-log fsync
// exactly as Badger does (value.go, valueLog.write): from inside the
// commit, before the write is reported done.
func badgerSyncFails(db *badger.DB) {
	db.Opts().Logger.Errorf("Error while curlf sync: %v\n", &os.PathError{Op: "msync", Path: "000001.vlog", Err: syscall.EIO})
}

// A value-log fsync that fails during an append group's commit: Badger
// reports the commit done, but the callers are not acknowledged
// (ErrSyncFailed), the forwarder is not given the group, and every later
// write (Submit, ApplyCommit) is refused until the store is
// reopened, after which writes are taken again.
func TestFailedValueLogSyncIsNotAcknowledged(t *testing.T) {
	t.Parallel()
	var failNext atomic.Bool
	var q *Queue
	opts := Options{Dir: t.TempDir(), EdgeID: "edge-sync", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		hooks: testHooks{commitGroup: func(_ *flight, txn *badger.Txn, done func(error)) {
			txn.CommitWith(func(err error) {
				if failNext.Load() {
					badgerSyncFails(q.db)
				}
				done(err)
			})
		}}}
	q, err := Open(opts)
	require.NoError(t, err)
	ctx := context.Background()

	_, err = q.Submit(ctx, fixture.ObservationTxs(3))
	require.NoError(t, err)
	es, err := q.Read(1, 10, 1<<20)
	require.NoError(t, err)
	require.Len(t, es, 3)

	failNext.Store(true)
	lost := fixture.ObservationTxs(2)
	acks, err := q.Submit(ctx, lost)
	require.ErrorIs(t, err, ErrSyncFailed, "a write resting on a failed fsync is not acknowledged")
	require.Empty(t, acks)
	require.Equal(t, uint64(3), q.LastSeq(), "the group is not counted as accepted")
	es, err = q.Read(4, 10, 1<<20)
	require.NoError(t, err)
	require.Empty(t, es, "the forwarder is not given what may not be on disk")

	failNext.Store(false)
	_, err = q.Submit(ctx, fixture.ObservationTxs(1))
	require.ErrorIs(t, err, ErrSyncFailed, "writes stay refused after a good fsync")
	_, err = q.Submit(ctx, lost)
	require.ErrorIs(t, err, ErrSyncFailed, "a retry is not answered as a duplicate")
	res := CommitResult{ThroughSeq: 3, LSN: 7, LSNText: "0/7", CommittedAt: time.Now()}
	for _, e := range es {
		res.Results = append(res.Results, &centralv1.TransactionResult{TransactionId: e.Tx.GetId(), Seq: e.Seq, Outcome: centralv1.Outcome_OUTCOME_APPLIED})
	}
	require.ErrorIs(t, q.ApplyCommit(res), ErrSyncFailed)

	// Reopened, the store holds what is on disk (here the fsync did
	// work, so the group is there) and takes writes again; the retry of
	// the unacknowledged group now gets its first answers.
	require.NoError(t, q.Close())
	q, err = Open(opts)
	require.NoError(t, err)
	defer func() { require.NoError(t, q.Close()) }()
	acks, err = q.Submit(ctx, lost)
	require.NoError(t, err)
	require.Len(t, acks, 2)
	require.True(t, acks[0].GetDuplicate() && acks[1].GetDuplicate())
	_, err = q.Submit(ctx, fixture.ObservationTxs(1))
	require.NoError(t, err)
	require.Equal(t, uint64(6), q.LastSeq())
}

// A failed fsync during the commit of an append group that records a
// commit answer fails ApplyCommit with ErrSyncFailed, although Badger
// committed it; so does one during a batch written the plain way.
func TestFailedValueLogSyncFailsApplyCommit(t *testing.T) {
	t.Parallel()
	var failNext atomic.Bool
	var q *Queue
	q, err := Open(Options{Dir: t.TempDir(), EdgeID: "edge-sync", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		hooks: testHooks{commitPart: func(txn *badger.Txn, _ bool) error {
			err := txn.Commit()
			if failNext.Load() {
				badgerSyncFails(q.db)
			}
			return err
		}, commitGroup: func(_ *flight, txn *badger.Txn, done func(error)) {
			err := txn.Commit()
			if failNext.Load() {
				badgerSyncFails(q.db)
			}
			done(err)
		}}})
	require.NoError(t, err)
	defer func() { require.NoError(t, q.Close()) }()
	_, err = q.Submit(context.Background(), []*opsv1.Transaction{fixture.ObservationTxs(1)[0]})
	require.NoError(t, err)
	es, err := q.Read(1, 10, 1<<20)
	require.NoError(t, err)
	failNext.Store(true)
	res := CommitResult{ThroughSeq: 1, LSN: 7, LSNText: "0/7", CommittedAt: time.Now(), Results: []*centralv1.TransactionResult{
		{TransactionId: es[0].Tx.GetId(), Seq: 1, Outcome: centralv1.Outcome_OUTCOME_APPLIED}}}
	require.ErrorIs(t, q.ApplyCommit(res), ErrSyncFailed)
	require.Zero(t, q.CommittedThrough(), "the commit mark does not move over a write that may not be on disk")
}

// The queue recognises Badger's failed value-log fsync by the message
// Badger logs: Badger's source must still log it that way.
func TestBadgerStillLogsValueLogSyncFailure(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/dgraph-io/badger/v4").Output()
	require.NoError(t, err, "go list the Badger module")
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "value.go"))
	require.NoError(t, err)
	require.Contains(t, string(src), `vlog.opt.Errorf("`+badgerVlogSyncError+` %v\n", err)`,
		"Badger no longer logs a failed value-log fsync as the queue expects (badgerVlogSyncError)")
}
