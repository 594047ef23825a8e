package api_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/chasqui/chasqui/edge/internal/api"
	"github.com/chasqui/chasqui/edge/internal/queue"
	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/fixture"
	"github.com/chasqui/chasqui/internal/grpcserver"
	"github.com/chasqui/chasqui/internal/validate"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeForwarder struct{}

func (fakeForwarder) State() string           { return "forwarding" }
func (fakeForwarder) LastError() string       { return "" }
func (fakeForwarder) LastCommitAt() time.Time { return time.Unix(1700000000, 0) }
func (fakeForwarder) CentralLSN() string      { return "0/16B3748" }

type bundle struct {
	q     *queue.Queue
	edge  edgev1.EdgeServiceClient
	admin edgev1.AdminServiceClient
}

func setup(t *testing.T, mod func(*queue.Options)) *bundle {
	t.Helper()
	return setupWith(t, mod, api.Options{})
}

func setupWith(t *testing.T, mod func(*queue.Options), o api.Options) *bundle {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	opts := queue.Options{Dir: t.TempDir(), EdgeID: "edge-api", Logger: logger}
	if mod != nil {
		mod(&opts)
	}
	q, err := queue.Open(opts)
	require.NoError(t, err)
	srv := grpcserver.New(grpcserver.Options{Logger: logger})
	api.Register(srv.Server, q, fakeForwarder{}, logger, o)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis, time.Second) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, conn.Close())
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, q.Close())
	})
	return &bundle{q: q, edge: edgev1.NewEdgeServiceClient(conn), admin: edgev1.NewAdminServiceClient(conn)}
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// obsTx is transaction id holding one observation whose id the edge fills in.
func obsTx(id string) *opsv1.Transaction {
	tx := fixture.Tx(fixture.Observation(""))
	tx.Id = id
	return tx
}

func requireCode(t *testing.T, err error, code codes.Code) *status.Status {
	t.Helper()
	st, ok := status.FromError(err)
	require.True(t, ok, "not a status: %v", err)
	require.Equal(t, code, st.Code(), st.Message())
	return st
}

func requireField(t *testing.T, err error, field string) {
	t.Helper()
	st := requireCode(t, err, codes.InvalidArgument)
	require.Contains(t, st.Message(), field)
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	require.Contains(t, fields, field)
}

func TestSubmitAndGetTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	id := newID()
	resp, err := b.edge.Submit(ctx, &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{obsTx(id), obsTx(newID())}})
	require.NoError(t, err)
	require.Len(t, resp.GetResults(), 2)
	r := resp.GetResults()[0]
	require.Equal(t, id, r.GetTransactionId())
	require.Equal(t, uint64(1), r.GetSeq())
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED, r.GetState())
	require.Len(t, r.GetRecordIds(), 1)
	require.NotEmpty(t, r.GetRecordIds()[0])

	again, err := b.edge.Submit(ctx, &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{obsTx(id)}})
	require.NoError(t, err)
	require.True(t, again.GetResults()[0].GetDuplicate())
	require.Equal(t, r.GetRecordIds(), again.GetResults()[0].GetRecordIds())
	require.Equal(t, uint64(2), b.q.LastSeq())

	gt, err := b.edge.GetTransaction(ctx, &edgev1.GetTransactionRequest{TransactionId: id})
	require.NoError(t, err)
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED, gt.GetTransaction().GetState())

	// Central commits it: COMMITTED with the LSN.
	require.NoError(t, b.q.ApplyCommit(queue.CommitResult{ThroughSeq: 1, LSN: 0x16B3748, LSNText: "0/16B3748",
		Results: []*centralv1.TransactionResult{{TransactionId: id, Seq: 1, Outcome: centralv1.Outcome_OUTCOME_APPLIED}}}))
	gt, err = b.edge.GetTransaction(ctx, &edgev1.GetTransactionRequest{TransactionId: id})
	require.NoError(t, err)
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_COMMITTED, gt.GetTransaction().GetState())
	require.Equal(t, "0/16B3748", gt.GetTransaction().GetCommitLsn())
	require.NotNil(t, gt.GetTransaction().GetCommittedAt())

	_, err = b.edge.GetTransaction(ctx, &edgev1.GetTransactionRequest{TransactionId: newID()})
	requireCode(t, err, codes.NotFound)
	_, err = b.edge.GetTransaction(ctx, &edgev1.GetTransactionRequest{})
	requireField(t, err, "transaction_id")

	_, err = b.edge.GetObservation(ctx, &edgev1.GetObservationRequest{Id: newID()})
	requireCode(t, err, codes.NotFound)
}

func TestBadInputNamesFieldAndStoresNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	_, err := b.edge.Submit(ctx, &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{obsTx(newID())}})
	require.NoError(t, err)

	cases := map[string]func() *opsv1.Transaction{
		"transactions[1].id": func() *opsv1.Transaction { return obsTx("") },
		"transactions[1].seq": func() *opsv1.Transaction {
			tx := obsTx(newID())
			tx.Seq = 7
			return tx
		},
		"transactions[1].edge_id": func() *opsv1.Transaction {
			tx := obsTx(newID())
			tx.EdgeId = "me"
			return tx
		},
		"transactions[1].mutations": func() *opsv1.Transaction { return &opsv1.Transaction{Id: newID()} },
	}
	for field, bad := range cases {
		// One good and one bad transaction: the call fails whole.
		_, err := b.edge.Submit(ctx, &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{obsTx(newID()), bad()}})
		requireField(t, err, field)
	}
	id := newID()
	_, err = b.edge.Submit(ctx, &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{obsTx(id), obsTx(id)}})
	requireField(t, err, "transactions[1].id")
	_, err = b.edge.Submit(ctx, &edgev1.SubmitRequest{})
	requireCode(t, err, codes.InvalidArgument)

	require.Equal(t, uint64(1), b.q.LastSeq(), "queue unchanged")
	st, err := b.q.Stats()
	require.NoError(t, err)
	require.Equal(t, uint64(1), st.Count)
}

func TestQueueFullIsResourceExhausted(t *testing.T) {
	t.Parallel()
	var free uint64 = 1 << 40
	b := setup(t, func(o *queue.Options) {
		o.MaxQueueBytes = 300
		o.StatFS = func(string) (uint64, error) { return free, nil }
	})
	ctx := context.Background()
	var err error
	for range 20 {
		if _, err = b.edge.Submit(ctx, &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{obsTx(newID())}}); err != nil {
			break
		}
	}
	st := requireCode(t, err, codes.ResourceExhausted)
	require.NotContains(t, st.Message(), "limit", "no internal numbers to the client")
}

func TestAdminStatusAndDeadLetters(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	var ids []string
	for range 3 {
		id := newID()
		ids = append(ids, id)
		_, err := b.edge.Submit(ctx, &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{obsTx(id)}})
		require.NoError(t, err)
	}
	require.NoError(t, b.q.ApplyCommit(queue.CommitResult{ThroughSeq: 2, LSN: 10, LSNText: "0/A", Results: []*centralv1.TransactionResult{
		{TransactionId: ids[0], Seq: 1, Outcome: centralv1.Outcome_OUTCOME_APPLIED},
		{TransactionId: ids[1], Seq: 2, Outcome: centralv1.Outcome_OUTCOME_REJECTED, Reason: "check violation", Sqlstate: "23514"},
	}}))

	s, err := b.admin.GetStatus(ctx, &edgev1.GetStatusRequest{})
	require.NoError(t, err)
	require.Equal(t, "edge-api", s.GetEdgeId())
	require.Equal(t, b.q.Epoch(), s.GetEpoch())
	require.Equal(t, uint64(1), s.GetQueueCount())
	require.Positive(t, s.GetQueueBytes())
	require.Equal(t, uint64(1<<30), s.GetQueueLimitBytes())
	require.Equal(t, uint64(3), s.GetLastAcceptedSeq())
	require.Equal(t, uint64(2), s.GetCommittedThroughSeq())
	require.Equal(t, uint64(1), s.GetDeadLetters())
	require.NotNil(t, s.GetOldestPendingAcceptedAt())
	require.Equal(t, "forwarding", s.GetForwarderState())
	require.Equal(t, "0/16B3748", s.GetCentralLsn())
	require.Positive(t, s.GetDiskFreeBytes())

	gt, err := b.edge.GetTransaction(ctx, &edgev1.GetTransactionRequest{TransactionId: ids[1]})
	require.NoError(t, err)
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_REJECTED, gt.GetTransaction().GetState())
	require.Equal(t, "check violation", gt.GetTransaction().GetRejectReason())

	list, err := b.admin.ListDeadLetters(ctx, &edgev1.ListDeadLettersRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetDeadLetters(), 1)
	require.Equal(t, ids[1], list.GetDeadLetters()[0].GetTransaction().GetId())
	_, err = b.admin.ListDeadLetters(ctx, &edgev1.ListDeadLettersRequest{PageSize: -1})
	requireField(t, err, "page_size")

	dl, err := b.admin.GetDeadLetter(ctx, &edgev1.GetDeadLetterRequest{TransactionId: ids[1]})
	require.NoError(t, err)
	require.Equal(t, "23514", dl.GetDeadLetter().GetSqlstate())

	// Edited with another id, or with edge-only fields: refused, field named.
	edited := obsTx(newID())
	_, err = b.admin.RetryDeadLetter(ctx, &edgev1.RetryDeadLetterRequest{TransactionId: ids[1], Edited: edited})
	requireField(t, err, "edited.id")
	edited = dl.GetDeadLetter().GetTransaction() // carries edge_id, seq...: the edge sets those
	_, err = b.admin.RetryDeadLetter(ctx, &edgev1.RetryDeadLetterRequest{TransactionId: ids[1], Edited: edited})
	requireField(t, err, "edited.edge_id")

	rr, err := b.admin.RetryDeadLetter(ctx, &edgev1.RetryDeadLetterRequest{TransactionId: ids[1]})
	require.NoError(t, err)
	require.Equal(t, uint64(4), rr.GetResult().GetSeq())
	_, err = b.admin.GetDeadLetter(ctx, &edgev1.GetDeadLetterRequest{TransactionId: ids[1]})
	requireCode(t, err, codes.NotFound)
	_, err = b.admin.DiscardDeadLetter(ctx, &edgev1.DiscardDeadLetterRequest{TransactionId: ids[1]})
	requireCode(t, err, codes.NotFound)
}

// sizedTx is an observation transaction of exactly n marshalled bytes
// (n well above a few hundred KiB), built of attributes each central
// accepts.
func sizedTx(t *testing.T, n int) *opsv1.Transaction {
	t.Helper()
	tx := obsTx(newID())
	blob := func(k int) *structpb.Struct {
		s, err := structpb.NewStruct(map[string]any{"blob": strings.Repeat("x", k)})
		require.NoError(t, err)
		return s
	}
	const step = 60 << 10
	for proto.Size(tx)+step+2048 < n {
		m := obsTx("").GetMutations()[0]
		m.GetObservation().Attributes = blob(step)
		tx.Mutations = append(tx.Mutations, m)
	}
	last := obsTx("").GetMutations()[0]
	tx.Mutations = append(tx.Mutations, last)
	for k := max(0, n-proto.Size(tx)-64); ; k++ {
		last.GetObservation().Attributes = blob(k)
		if size := proto.Size(tx); size >= n {
			require.Equal(t, n, size, "cannot build a transaction of exactly %d bytes", n)
			return tx
		}
	}
}

// A transaction above validate.MaxTransactionBytes is refused at Submit
// with INVALID_ARGUMENT naming the limit, and nothing is stored; one at the
// limit is accepted and, stamped by the edge, still fits a Commit batch of
// one under central's receive limit.
func TestSubmitOversizedTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()

	_, err := b.edge.Submit(ctx, &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{
		obsTx(newID()), sizedTx(t, validate.MaxTransactionBytes+1)}})
	requireField(t, err, "transactions[1]")
	require.Contains(t, status.Convert(err).Message(), "MaxTransactionBytes")
	require.Contains(t, status.Convert(err).Message(), strconv.Itoa(validate.MaxTransactionBytes))
	require.Zero(t, b.q.LastSeq(), "nothing stored")

	_, err = b.edge.Submit(ctx, &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{sizedTx(t, validate.MaxTransactionBytes)}})
	require.NoError(t, err)
	entries, err := b.q.Read(1, 1, 1)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	req := &centralv1.CommitRequest{
		EdgeId: b.q.EdgeID(), Epoch: b.q.Epoch(), FirstSeq: 1<<63 - 2,
		Transactions: []*opsv1.Transaction{entries[0].Tx},
	}
	require.Less(t, proto.Size(req), validate.DefaultMaxMessageBytes)
}
