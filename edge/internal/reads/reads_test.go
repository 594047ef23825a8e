package reads_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"

	"github.com/chasqui/chasqui/edge/internal/centralproc"
	"github.com/chasqui/chasqui/edge/internal/reads"
	"github.com/chasqui/chasqui/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	centralproc.Cleanup()
	os.Exit(code)
}

var (
	t0        = time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	running   = opsv1.ObservationStatus_OBSERVATION_STATUS_RUNNING
	completed = opsv1.ObservationStatus_OBSERVATION_STATUS_COMPLETED
	visible   = edgev1.RecordSource_RECORD_SOURCE_VISIBLE
	committed = edgev1.RecordSource_RECORD_SOURCE_COMMITTED
	buffered  = edgev1.RecordSource_RECORD_SOURCE_BUFFERED
)

func id() string { return uuid.Must(uuid.NewV7()).String() }

func obs(oid string, minutes int) *opsv1.Mutation {
	return &opsv1.Mutation{Kind: &opsv1.Mutation_Observation{Observation: &opsv1.Observation{
		Id: oid, Instrument: "CHAI", Source: "Orion-KL", ObsUnit: "ou-1", Status: running,
		StartTime: timestamppb.New(t0.Add(time.Duration(minutes) * time.Minute)),
	}}}
}

func finish(oid string) *opsv1.Mutation {
	st := completed
	attrs, _ := structpb.NewStruct(map[string]any{"quality": "good"})
	return &opsv1.Mutation{Kind: &opsv1.Mutation_ObservationUpdate{ObservationUpdate: &opsv1.ObservationUpdate{
		Id: oid, Status: &st, EndTime: timestamppb.New(t0.Add(time.Hour)), Attributes: attrs,
	}}}
}

func file(oid string) *opsv1.Mutation {
	return &opsv1.Mutation{Kind: &opsv1.Mutation_RawDataFile{RawDataFile: &opsv1.RawDataFile{
		Id: id(), ObservationId: oid, Path: "/data/" + oid + ".fits", SizeBytes: 7, CreatedAt: timestamppb.New(t0),
	}}}
}

// buffer stands in for the queue's overlays.
type buffer struct {
	mu  sync.Mutex
	seq uint64
	ps  map[string][]reads.Pending
}

func (b *buffer) add(obsID string, committed bool, m *opsv1.Mutation) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ps == nil {
		b.ps = map[string][]reads.Pending{}
	}
	b.seq++
	b.ps[obsID] = append(b.ps[obsID], reads.Pending{Seq: b.seq, Committed: committed, Mutation: m})
}

func (b *buffer) drop(obsID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.ps, obsID)
}

func (b *buffer) Overlays(obsID string) ([]reads.Pending, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]reads.Pending(nil), b.ps[obsID]...), nil
}

func (b *buffer) OverlaidObservations() (map[string]bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]bool{}
	for oid, ps := range b.ps {
		out[oid] = false
		for _, p := range ps {
			if p.Mutation.GetObservation() != nil {
				out[oid] = true
			}
		}
	}
	return out, nil
}

type bundle struct {
	primary, replica *pgtest.Cluster
	ingest           centralv1.IngestServiceClient
	read             centralv1.ReadServiceClient
	stopCentral      func()
	replicaPool      *pgxpool.Pool
	buf              *buffer
	seq              uint64
}

// setup: a primary with the real central (its binary) on it, a streaming replica, and
// a buffer.
func setup(t *testing.T) *bundle {
	t.Helper()
	ctx := context.Background()
	b := &bundle{buf: &buffer{}}
	b.primary = pgtest.StartCluster(t, pgtest.Options{Name: "primary"})
	require.NoError(t, b.primary.CreateDatabase(ctx, "chasqui"))
	central := centralproc.StartT(t, centralproc.Options{DatabaseURL: b.primary.URL("chasqui")})
	b.stopCentral = func() { require.NoError(t, central.Stop()) }
	conn, err := grpc.NewClient(central.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	b.ingest, b.read = centralv1.NewIngestServiceClient(conn), centralv1.NewReadServiceClient(conn)

	b.replica = b.primary.StartReplica(t, pgtest.ReplicaOptions{})
	b.replicaPool, err = pgxpool.New(ctx, b.replica.URL("chasqui"))
	require.NoError(t, err)
	t.Cleanup(b.replicaPool.Close)
	return b
}

func (b *bundle) reader(t *testing.T, withReplica, withCentral bool) *reads.Reader {
	t.Helper()
	cfg := reads.Config{Buffer: b.buf, Timeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if withReplica {
		cfg.Replica = b.replicaPool
	}
	if withCentral {
		cfg.Central = b.read
	}
	r, err := reads.New(cfg)
	require.NoError(t, err)
	return r
}

// commit applies a transaction through central and waits until the replica
// has replayed it.
func (b *bundle) commit(t *testing.T, muts ...*opsv1.Mutation) {
	t.Helper()
	ctx := context.Background()
	b.seq++
	res, err := b.ingest.Commit(ctx, &centralv1.CommitRequest{EdgeId: "site-1", Epoch: "e1", FirstSeq: b.seq,
		Transactions: []*opsv1.Transaction{{Id: id(), Mutations: muts, EdgeId: "site-1", Epoch: "e1", Seq: b.seq, AcceptedAt: timestamppb.New(t0)}}})
	require.NoError(t, err)
	require.Equal(t, centralv1.Outcome_OUTCOME_APPLIED, res.GetResults()[0].GetOutcome(), res.GetResults()[0].GetReason())
	require.Eventually(t, func() bool {
		var ok bool
		err := b.replicaPool.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", res.GetCommitLsn()).Scan(&ok)
		return err == nil && ok
	}, 30*time.Second, 5*time.Millisecond)
}

func TestGetMergesBufferedWritesOverReplicaAndCentral(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	// Committed and replayed: visible.
	a := id()
	b.commit(t, obs(a, 0), file(a))
	res, err := b.reader(t, true, true).GetObservation(ctx, a)
	require.NoError(t, err)
	require.False(t, res.GetBufferOnly())
	require.Equal(t, visible, res.GetObservation().GetSource())
	require.Len(t, res.GetObservation().GetFiles(), 1)

	// A buffered finish on top of the replica row: COMPLETED, buffered.
	b.buf.add(a, false, finish(a))
	b.buf.add(a, false, file(a))
	res, err = b.reader(t, true, true).GetObservation(ctx, a)
	require.NoError(t, err)
	o := res.GetObservation()
	require.Equal(t, completed, o.GetObservation().GetStatus())
	require.Equal(t, "good", o.GetObservation().GetAttributes().GetFields()["quality"].GetStringValue())
	require.Equal(t, buffered, o.GetSource())
	require.Len(t, o.GetFiles(), 2)

	// Only in the buffer, with no backend at all: buffer only.
	c := id()
	b.buf.add(c, false, obs(c, 5))
	b.buf.add(c, false, finish(c))
	res, err = b.reader(t, false, false).GetObservation(ctx, c)
	require.NoError(t, err)
	require.True(t, res.GetBufferOnly())
	require.Equal(t, completed, res.GetObservation().GetObservation().GetStatus())
	require.Equal(t, buffered, res.GetObservation().GetSource())

	// Replica down: read through to central (committed), not flagged.
	require.NoError(t, b.replica.Stop())
	b.buf.drop(a)
	res, err = b.reader(t, true, true).GetObservation(ctx, a)
	require.NoError(t, err)
	require.False(t, res.GetBufferOnly())
	require.Equal(t, committed, res.GetObservation().GetSource())
	require.Equal(t, running, res.GetObservation().GetObservation().GetStatus())

	// Central down too: the buffer alone, flagged; a record only committed
	// is then not found.
	b.stopCentral()
	res, err = b.reader(t, true, true).GetObservation(ctx, c)
	require.NoError(t, err)
	require.True(t, res.GetBufferOnly())
	require.Equal(t, completed, res.GetObservation().GetObservation().GetStatus())
	_, err = b.reader(t, true, true).GetObservation(ctx, a)
	require.ErrorIs(t, err, reads.ErrNotFound)
}

func TestListMergesAndPages(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	// 6 committed observations at minutes 0, 2, ..., 10; buffered ones at
	// 1, 3, 11; a buffered finish of the one at minute 4.
	var committedIDs []string
	for i := range 6 {
		oid := id()
		committedIDs = append(committedIDs, oid)
		b.commit(t, obs(oid, 2*i))
	}
	var bufIDs []string
	for _, m := range []int{1, 3, 11} {
		oid := id()
		bufIDs = append(bufIDs, oid)
		b.buf.add(oid, m == 1, obs(oid, m))
	}
	b.buf.add(committedIDs[2], false, finish(committedIDs[2]))
	want := []string{committedIDs[0], bufIDs[0], committedIDs[1], bufIDs[1], committedIDs[2], committedIDs[3], committedIDs[4], committedIDs[5], bufIDs[2]}

	for _, tc := range []struct {
		name             string
		replica, central bool
	}{{"replica", true, false}, {"central", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			r := b.reader(t, tc.replica, tc.central)
			var got []string
			sources := map[string]edgev1.RecordSource{}
			tok := ""
			for page := 0; ; page++ {
				require.Less(t, page, 10)
				res, err := r.ListObservations(ctx, &edgev1.ListObservationsRequest{PageSize: 2, PageToken: tok})
				require.NoError(t, err)
				require.False(t, res.GetBufferOnly())
				require.LessOrEqual(t, len(res.GetObservations()), 2)
				for _, v := range res.GetObservations() {
					got = append(got, v.GetObservation().GetId())
					sources[v.GetObservation().GetId()] = v.GetSource()
				}
				if tok = res.GetNextPageToken(); tok == "" {
					break
				}
			}
			require.Equal(t, want, got)
			base := visible
			if !tc.replica {
				base = committed
			}
			require.Equal(t, base, sources[committedIDs[0]])
			require.Equal(t, committed, sources[bufIDs[0]])
			require.Equal(t, buffered, sources[bufIDs[1]])
			require.Equal(t, buffered, sources[committedIDs[2]])

			// The filter applies after the merge: the buffered finish makes
			// committedIDs[2] COMPLETED.
			res, err := r.ListObservations(ctx, &edgev1.ListObservationsRequest{Status: completed})
			require.NoError(t, err)
			require.Len(t, res.GetObservations(), 1)
			require.Equal(t, committedIDs[2], res.GetObservations()[0].GetObservation().GetId())
			res, err = r.ListObservations(ctx, &edgev1.ListObservationsRequest{Status: running, PageSize: 100})
			require.NoError(t, err)
			require.Len(t, res.GetObservations(), 8)
		})
	}

	// Nothing reachable: the buffered ones only, flagged.
	res, err := b.reader(t, false, false).ListObservations(ctx, &edgev1.ListObservationsRequest{})
	require.NoError(t, err)
	require.True(t, res.GetBufferOnly())
	require.Len(t, res.GetObservations(), 3)
}
