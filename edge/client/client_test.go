package client_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/chasqui/chasqui/edge/client"
	"github.com/chasqui/chasqui/edge/internal/api"
	"github.com/chasqui/chasqui/edge/internal/queue"
	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/grpcserver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var logger = slog.New(slog.NewTextHandler(io.Discard, nil))

// edge is an in-process edge (queue + API) whose gRPC server can be
// stopped and started again on the same address.
type edge struct {
	q         *queue.Queue
	exhausted atomic.Int64 // RESOURCE_EXHAUSTED answers given
	addr      string
	cancel    context.CancelFunc
	done      chan error
}

func startEdge(t *testing.T, mod ...func(*queue.Options)) *edge {
	t.Helper()
	opts := queue.Options{Dir: t.TempDir(), EdgeID: "edge-client", Logger: logger}
	for _, m := range mod {
		m(&opts)
	}
	q, err := queue.Open(opts)
	require.NoError(t, err)
	e := &edge{q: q}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	e.addr = lis.Addr().String()
	e.serve(lis)
	t.Cleanup(func() {
		e.stop()
		require.NoError(t, q.Close())
	})
	return e
}

func (e *edge) serve(lis net.Listener) {
	count := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		resp, err := h(ctx, req)
		if status.Code(err) == codes.ResourceExhausted {
			e.exhausted.Add(1)
		}
		return resp, err
	}
	srv := grpcserver.New(grpcserver.Options{Logger: logger, Unary: []grpc.UnaryServerInterceptor{count}})
	api.Register(srv.Server, e.q, nil, logger)
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan error, 1)
	go func() { e.done <- srv.Serve(ctx, lis, time.Second) }()
}

func (e *edge) stop() {
	if e.cancel != nil {
		e.cancel()
		<-e.done
		e.cancel = nil
	}
}

func dial(t *testing.T, addr string) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), addr, client.WithLogger(logger))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

func TestTypedHelpers(t *testing.T) {
	t.Parallel()
	e := startEdge(t)
	c := dial(t, e.addr)
	ctx := context.Background()

	obs := &opsv1.Observation{Instrument: "CHAI", Source: "Orion-KL", ObsUnit: "u1"}
	r, err := c.StartObservation(ctx, obs)
	require.NoError(t, err)
	require.NotEmpty(t, obs.GetId(), "record id generated client-side")
	require.Equal(t, []string{obs.GetId()}, r.GetRecordIds())
	require.Equal(t, uint64(1), r.GetSeq())

	attrs, err := structpb.NewStruct(map[string]any{"tau": 0.05})
	require.NoError(t, err)
	_, err = c.RecordConfig(ctx, &opsv1.InstrumentConfig{Instrument: "CHAI", ObservationId: obs.GetId(), Config: attrs})
	require.NoError(t, err)
	_, err = c.RegisterRawFile(ctx, &opsv1.RawDataFile{ObservationId: obs.GetId(), Path: "/data/chai/0001.fits",
		SizeBytes: 1 << 20, Checksum: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"})
	require.NoError(t, err)
	fin, err := c.FinishObservation(ctx, &opsv1.ObservationUpdate{Id: obs.GetId(), Attributes: attrs})
	require.NoError(t, err)
	require.Equal(t, uint64(4), fin.GetSeq())

	st, err := c.GetTransaction(ctx, fin.GetTransactionId())
	require.NoError(t, err)
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED, st.GetState())

	// Several transactions in one call, one resubmitted: its first answer.
	tx := client.Tx(&opsv1.Mutation{Kind: &opsv1.Mutation_Observation{Observation: &opsv1.Observation{
		Instrument: "CHAI", Status: opsv1.ObservationStatus_OBSERVATION_STATUS_COMPLETED,
		StartTime: timestamppb.Now(), EndTime: timestamppb.Now(),
	}}})
	res, err := c.Submit(ctx, tx)
	require.NoError(t, err)
	res2, err := c.Submit(ctx, tx, client.Tx(&opsv1.Mutation{Kind: &opsv1.Mutation_RawDataFile{RawDataFile: &opsv1.RawDataFile{
		ObservationId: obs.GetId(), Path: "/data/chai/0002.fits",
	}}}))
	require.NoError(t, err)
	require.True(t, res2[0].GetDuplicate())
	require.Equal(t, res[0].GetSeq(), res2[0].GetSeq())

	// Bad input is not retried: INVALID_ARGUMENT at once.
	_, err = c.RegisterRawFile(ctx, &opsv1.RawDataFile{Path: "/x"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	_, err = c.GetTransaction(ctx, client.NewID())
	require.Equal(t, codes.NotFound, status.Code(err))
	require.Equal(t, uint64(6), e.q.LastSeq())
}

// TestRidesThroughOneSecondOutage stops the edge's gRPC server while calls
// run and starts a new one on the same address a second later: no caller
// sees an error, and nothing is stored twice.
func TestRidesThroughOneSecondOutage(t *testing.T) {
	t.Parallel()
	e := startEdge(t)
	c := dial(t, e.addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var acked atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				_, err := c.StartObservation(context.Background(), &opsv1.Observation{Instrument: "CHAI"})
				if err != nil {
					errs <- err
					return
				}
				acked.Add(1)
			}
		})
	}
	require.Eventually(t, func() bool { return acked.Load() > 50 }, 10*time.Second, 5*time.Millisecond, "calls acknowledged before the outage")

	e.stop()
	down := time.Now()
	before := acked.Load()
	time.Sleep(time.Second) // the outage itself
	lis, err := net.Listen("tcp", e.addr)
	require.NoError(t, err)
	e.serve(lis)
	require.GreaterOrEqual(t, time.Since(down), time.Second)
	require.Eventually(t, func() bool { return acked.Load() > before+50 }, 10*time.Second, 5*time.Millisecond, "calls acknowledged after the outage")
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("caller saw an error during a 1 s outage: %v", err)
	}
	// Every acknowledged call stored once: seqs are gap-free and as many
	// as the acks (retries after a lost answer are answered as duplicates).
	require.Equal(t, uint64(acked.Load()), e.q.LastSeq())
}

// TestRetriesFullQueue: a full queue answers RESOURCE_EXHAUSTED; the client
// retries it with backoff, and once space is freed the call succeeds
// without the caller seeing an error.
func TestRetriesFullQueue(t *testing.T) {
	t.Parallel()
	e := startEdge(t, func(o *queue.Options) { o.MaxQueueBytes = 1000 })
	c := dial(t, e.addr)
	ctx := context.Background()
	for {
		res, err := e.q.Submit(ctx, []*opsv1.Transaction{client.Tx(&opsv1.Mutation{Kind: &opsv1.Mutation_Observation{
			Observation: &opsv1.Observation{Instrument: "CHAI"},
		}})})
		if err != nil {
			require.ErrorIs(t, err, queue.ErrQueueFull)
			break
		}
		require.Len(t, res, 1)
	}
	full := e.q.LastSeq()

	done := make(chan error, 1)
	go func() {
		_, err := c.StartObservation(ctx, &opsv1.Observation{Instrument: "CHAI"})
		done <- err
	}()
	// Once the edge has refused the call, central "commits" the backlog and
	// the pruner frees it.
	require.Eventually(t, func() bool { return e.exhausted.Load() >= 1 }, 10*time.Second, 5*time.Millisecond, "the edge refused a call with RESOURCE_EXHAUSTED")
	es, err := e.q.Read(1, 1000, 1<<20)
	require.NoError(t, err)
	res := queue.CommitResult{ThroughSeq: full, CommittedAt: time.Now().Add(-48 * time.Hour)}
	for _, e := range es {
		res.Results = append(res.Results, &centralv1.TransactionResult{
			TransactionId: e.Tx.GetId(), Seq: e.Seq, Outcome: centralv1.Outcome_OUTCOME_APPLIED})
	}
	require.NoError(t, e.q.ApplyCommit(res))
	_, err = e.q.Prune(ctx)
	require.NoError(t, err)
	require.NoError(t, <-done)
	require.Equal(t, full+1, e.q.LastSeq())
	require.Len(t, es, int(full))
}
