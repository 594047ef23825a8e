package validate_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/validate"
)

func v7() string { return uuid.Must(uuid.NewV7()).String() }

var t0 = time.Date(2026, 11, 23, 3, 12, 45, 0, time.UTC)

func obsMutation() *opsv1.Mutation {
	attrs, _ := structpb.NewStruct(map[string]any{"band": "low", "pwv_mm": 0.42})
	return &opsv1.Mutation{Kind: &opsv1.Mutation_Observation{Observation: &opsv1.Observation{
		Id: v7(), Instrument: "CHAI", Source: "Orion-KL", ObsUnit: "ou-1",
		Status:     opsv1.ObservationStatus_OBSERVATION_STATUS_RUNNING,
		StartTime:  timestamppb.New(t0),
		Attributes: attrs,
	}}}
}

func submit() *edgev1.SubmitRequest {
	return &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{
		{Id: v7(), Mutations: []*opsv1.Mutation{obsMutation()}},
		{Id: v7(), Mutations: []*opsv1.Mutation{
			{Kind: &opsv1.Mutation_ObservationUpdate{ObservationUpdate: &opsv1.ObservationUpdate{Id: v7(), EndTime: timestamppb.New(t0.Add(time.Hour))}}},
			{Kind: &opsv1.Mutation_InstrumentConfig{InstrumentConfig: &opsv1.InstrumentConfig{Instrument: "CHAI", RecordedAt: timestamppb.New(t0)}}},
			{Kind: &opsv1.Mutation_RawDataFile{RawDataFile: &opsv1.RawDataFile{ObservationId: v7(), Path: "/data/a.fits", SizeBytes: 10, Checksum: "sha256:00"}}},
		}},
	}}
}

func commit() *centralv1.CommitRequest {
	req := &centralv1.CommitRequest{EdgeId: "site-1", Epoch: "e1", FirstSeq: 7}
	for i, tx := range submit().GetTransactions() {
		tx.EdgeId, tx.Epoch, tx.Seq, tx.AcceptedAt = "site-1", "e1", 7+uint64(i), timestamppb.New(t0)
		for _, m := range tx.GetMutations() {
			switch k := m.GetKind().(type) {
			case *opsv1.Mutation_InstrumentConfig:
				k.InstrumentConfig.Id = v7()
			case *opsv1.Mutation_RawDataFile:
				k.RawDataFile.Id = v7()
			}
		}
		req.Transactions = append(req.Transactions, tx)
	}
	return req
}

func obs(req interface{ GetTransactions() []*opsv1.Transaction }) *opsv1.Observation {
	return req.GetTransactions()[0].GetMutations()[0].GetObservation()
}

func file(req interface{ GetTransactions() []*opsv1.Transaction }) *opsv1.RawDataFile {
	return req.GetTransactions()[1].GetMutations()[2].GetRawDataFile()
}

func TestValidateSubmit(t *testing.T) {
	t.Parallel()
	deep := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	cur := deep
	for range validate.MaxStructDepth + 1 {
		next := &structpb.Struct{Fields: map[string]*structpb.Value{}}
		cur.Fields["x"] = structpb.NewStructValue(next)
		cur = next
	}
	tests := []struct {
		name   string
		mutate func(r *edgev1.SubmitRequest)
		field  string // first violation's field; "" means valid
		desc   string // substring of its description
	}{
		{"valid", func(*edgev1.SubmitRequest) {}, "", ""},
		{"no transactions", func(r *edgev1.SubmitRequest) { r.Transactions = nil }, "transactions", "at least one"},
		{"edge id set", func(r *edgev1.SubmitRequest) { r.Transactions[1].EdgeId = "x" }, "transactions[1].edge_id", "edge sets it"},
		{"epoch set", func(r *edgev1.SubmitRequest) { r.Transactions[0].Epoch = "x" }, "transactions[0].epoch", "edge sets it"},
		{"seq set", func(r *edgev1.SubmitRequest) { r.Transactions[0].Seq = 3 }, "transactions[0].seq", "edge sets it"},
		{"accepted_at set", func(r *edgev1.SubmitRequest) { r.Transactions[0].AcceptedAt = timestamppb.Now() }, "transactions[0].accepted_at", "edge sets it"},
		{"tx id missing", func(r *edgev1.SubmitRequest) { r.Transactions[0].Id = "" }, "transactions[0].id", "required"},
		{"tx id v4", func(r *edgev1.SubmitRequest) { r.Transactions[0].Id = uuid.NewString() }, "transactions[0].id", "UUIDv7"},
		{"tx id garbage", func(r *edgev1.SubmitRequest) { r.Transactions[0].Id = "nope" }, "transactions[0].id", "canonical"},
		{"tx id braces", func(r *edgev1.SubmitRequest) { r.Transactions[0].Id = "{" + v7() + "}" }, "transactions[0].id", "canonical"},
		{"tx id uppercase", func(r *edgev1.SubmitRequest) { r.Transactions[0].Id = strings.ToUpper(v7()) }, "transactions[0].id", "canonical"},
		{"tx id without dashes", func(r *edgev1.SubmitRequest) { r.Transactions[0].Id = strings.ReplaceAll(v7(), "-", "") }, "transactions[0].id", "canonical"},
		{"tx id urn", func(r *edgev1.SubmitRequest) { r.Transactions[0].Id = "urn:uuid:" + v7() }, "transactions[0].id", "canonical"},
		{"duplicate tx id", func(r *edgev1.SubmitRequest) { r.Transactions[1].Id = r.Transactions[0].Id }, "transactions[1].id", "transactions[0]"},
		{"no mutations", func(r *edgev1.SubmitRequest) { r.Transactions[0].Mutations = nil }, "transactions[0].mutations", "at least one"},
		{"empty mutation", func(r *edgev1.SubmitRequest) { r.Transactions[0].Mutations[0] = &opsv1.Mutation{} }, "transactions[0].mutations[0]", "no record"},
		{"record id empty ok", func(r *edgev1.SubmitRequest) { obs(r).Id = "" }, "", ""},
		{"record id v4", func(r *edgev1.SubmitRequest) { obs(r).Id = uuid.NewString() }, "transactions[0].mutations[0].observation.id", "UUIDv7"},
		{"instrument missing", func(r *edgev1.SubmitRequest) { obs(r).Instrument = "" }, "transactions[0].mutations[0].observation.instrument", "required"},
		{"instrument too long", func(r *edgev1.SubmitRequest) { obs(r).Instrument = strings.Repeat("x", 300) }, "transactions[0].mutations[0].observation.instrument", "at most"},
		{"instrument NUL", func(r *edgev1.SubmitRequest) { obs(r).Instrument = "a\x00" }, "transactions[0].mutations[0].observation.instrument", "NUL"},
		{"status unspecified", func(r *edgev1.SubmitRequest) { obs(r).Status = 0 }, "transactions[0].mutations[0].observation.status", "required"},
		{"status unknown", func(r *edgev1.SubmitRequest) { obs(r).Status = 99 }, "transactions[0].mutations[0].observation.status", "unknown"},
		{"start missing", func(r *edgev1.SubmitRequest) { obs(r).StartTime = nil }, "transactions[0].mutations[0].observation.start_time", "required"},
		{"start invalid", func(r *edgev1.SubmitRequest) { obs(r).StartTime = &timestamppb.Timestamp{Seconds: 1 << 40} }, "transactions[0].mutations[0].observation.start_time", "invalid"},
		{"end before start", func(r *edgev1.SubmitRequest) { obs(r).EndTime = timestamppb.New(t0.Add(-time.Second)) }, "transactions[0].mutations[0].observation.end_time", "before start_time"},
		{"end equal start ok", func(r *edgev1.SubmitRequest) { obs(r).EndTime = timestamppb.New(t0) }, "", ""},
		{"attributes too deep", func(r *edgev1.SubmitRequest) { obs(r).Attributes = deep }, "transactions[0].mutations[0].observation.attributes", "deeper"},
		{"attributes too big", func(r *edgev1.SubmitRequest) {
			obs(r).Attributes = &structpb.Struct{Fields: map[string]*structpb.Value{"x": structpb.NewStringValue(strings.Repeat("y", validate.MaxStructBytes))}}
		}, "transactions[0].mutations[0].observation.attributes", "bytes"},
		{"attributes NaN", func(r *edgev1.SubmitRequest) {
			obs(r).Attributes = &structpb.Struct{Fields: map[string]*structpb.Value{"x": structpb.NewNumberValue(nanValue())}}
		}, "transactions[0].mutations[0].observation.attributes", "non-finite"},
		{"update id missing", func(r *edgev1.SubmitRequest) {
			r.Transactions[1].Mutations[0].GetObservationUpdate().Id = ""
		}, "transactions[1].mutations[0].observation_update.id", "required"},
		{"update status unspecified", func(r *edgev1.SubmitRequest) {
			s := opsv1.ObservationStatus_OBSERVATION_STATUS_UNSPECIFIED
			r.Transactions[1].Mutations[0].GetObservationUpdate().Status = &s
		}, "transactions[1].mutations[0].observation_update.status", "required"},
		{"config recorded_at missing", func(r *edgev1.SubmitRequest) {
			r.Transactions[1].Mutations[1].GetInstrumentConfig().RecordedAt = nil
		}, "transactions[1].mutations[1].instrument_config.recorded_at", "required"},
		{"config bad observation ref", func(r *edgev1.SubmitRequest) {
			r.Transactions[1].Mutations[1].GetInstrumentConfig().ObservationId = "x"
		}, "transactions[1].mutations[1].instrument_config.observation_id", "canonical"},
		{"file observation missing", func(r *edgev1.SubmitRequest) { file(r).ObservationId = "" }, "transactions[1].mutations[2].raw_data_file.observation_id", "required"},
		{"file path missing", func(r *edgev1.SubmitRequest) { file(r).Path = "" }, "transactions[1].mutations[2].raw_data_file.path", "required"},
		{"file negative size", func(r *edgev1.SubmitRequest) { file(r).SizeBytes = -1 }, "transactions[1].mutations[2].raw_data_file.size_bytes", "negative"},
		{"file bad checksum", func(r *edgev1.SubmitRequest) { file(r).Checksum = "abc" }, "transactions[1].mutations[2].raw_data_file.checksum", "algorithm:hex"},
		{"too many mutations", func(r *edgev1.SubmitRequest) {
			for range validate.MaxMutations {
				r.Transactions[0].Mutations = append(r.Transactions[0].Mutations, obsMutation())
			}
		}, "transactions[0].mutations", "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := submit()
			tt.mutate(req)
			err := validate.ValidateSubmit(req)
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			st := validate.Status(err)
			require.Equal(t, codes.InvalidArgument, st.Code())
			require.True(t, strings.HasPrefix(st.Message(), tt.field+": "), "message %q", st.Message())
			var br *errdetails.BadRequest
			for _, d := range st.Details() {
				if b, ok := d.(*errdetails.BadRequest); ok {
					br = b
				}
			}
			require.NotNil(t, br, "BadRequest detail")
			require.Equal(t, tt.field, br.GetFieldViolations()[0].GetField())
			require.Contains(t, br.GetFieldViolations()[0].GetDescription(), tt.desc)
		})
	}
}

func nanValue() float64 {
	var zero float64
	return zero / zero
}

func TestValidateCommit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(r *centralv1.CommitRequest)
		field  string
		desc   string
	}{
		{"valid", func(*centralv1.CommitRequest) {}, "", ""},
		{"edge id missing", func(r *centralv1.CommitRequest) { r.EdgeId = "" }, "edge_id", "required"},
		{"epoch missing", func(r *centralv1.CommitRequest) { r.Epoch = "" }, "epoch", "required"},
		{"first seq zero", func(r *centralv1.CommitRequest) { r.FirstSeq = 0 }, "first_seq", "at least 1"},
		{"first seq huge", func(r *centralv1.CommitRequest) { r.FirstSeq = 1 << 63 }, "first_seq", "2^63"},
		{"no transactions", func(r *centralv1.CommitRequest) { r.Transactions = nil }, "transactions", "at least one"},
		{"tx other edge", func(r *centralv1.CommitRequest) { r.Transactions[1].EdgeId = "site-2" }, "transactions[1].edge_id", "site-1"},
		{"tx other epoch", func(r *centralv1.CommitRequest) { r.Transactions[0].Epoch = "e0" }, "transactions[0].epoch", "e1"},
		{"seq gap inside", func(r *centralv1.CommitRequest) { r.Transactions[1].Seq = 9 }, "transactions[1].seq", "want first_seq+1 = 8"},
		{"accepted_at missing", func(r *centralv1.CommitRequest) { r.Transactions[0].AcceptedAt = nil }, "transactions[0].accepted_at", "required"},
		{"record id missing", func(r *centralv1.CommitRequest) { obs(r).Id = "" }, "transactions[0].mutations[0].observation.id", "required"},
		{"file id missing", func(r *centralv1.CommitRequest) { file(r).Id = "" }, "transactions[1].mutations[2].raw_data_file.id", "required"},
		{"end before start", func(r *centralv1.CommitRequest) { obs(r).EndTime = timestamppb.New(t0.Add(-time.Hour)) }, "transactions[0].mutations[0].observation.end_time", "before start_time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := commit()
			tt.mutate(req)
			err := validate.ValidateCommit(req)
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			var ve *validate.Error
			require.ErrorAs(t, err, &ve)
			require.Equal(t, tt.field, ve.Violations[0].Field, "violations: %v", ve.Violations)
			require.Contains(t, ve.Violations[0].Description, tt.desc)
		})
	}
}

func TestViolationsAreBounded(t *testing.T) {
	t.Parallel()
	req := &edgev1.SubmitRequest{}
	for range 100 {
		req.Transactions = append(req.Transactions, &opsv1.Transaction{})
	}
	var ve *validate.Error
	require.ErrorAs(t, validate.ValidateSubmit(req), &ve)
	require.LessOrEqual(t, len(ve.Violations), 20)
	require.Contains(t, ve.Error(), "more)")
}

func FuzzValidateSubmit(f *testing.F) {
	for _, r := range []*edgev1.SubmitRequest{submit(), {}, {Transactions: []*opsv1.Transaction{{}}}} {
		b, err := proto.Marshal(r)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req edgev1.SubmitRequest
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		if err := validate.ValidateSubmit(&req); err != nil {
			if st := validate.Status(err); st.Code() != codes.InvalidArgument {
				t.Fatalf("code %v", st.Code())
			}
		}
		var creq centralv1.CommitRequest
		if proto.Unmarshal(data, &creq) == nil {
			_ = validate.ValidateCommit(&creq)
		}
	})
}

func rowMutation(table string, op opsv1.RowOp, values map[string]any) *opsv1.Mutation {
	s, err := structpb.NewStruct(values)
	if err != nil {
		panic(err)
	}
	return &opsv1.Mutation{Kind: &opsv1.Mutation_Row{Row: &opsv1.Row{Table: table, Op: op, Values: s}}}
}

func TestValidateRowShape(t *testing.T) {
	t.Parallel()
	ok := map[string]any{"id": v7(), "name": "x", "n": "9007199254740993", "tags": []any{"a"}, "doc": map[string]any{"k": 1.0}, "gone": nil}
	tests := []struct {
		name  string
		mut   *opsv1.Mutation
		field string
		desc  string
	}{
		{"valid", rowMutation("ops.unit", opsv1.RowOp_ROW_OP_INSERT, ok), "", ""},
		{"delete by key", rowMutation("ops.unit", opsv1.RowOp_ROW_OP_DELETE, map[string]any{"id": v7()}), "", ""},
		{"row nil", &opsv1.Mutation{Kind: &opsv1.Mutation_Row{}}, ".row", "required"},
		{"table missing", rowMutation("", opsv1.RowOp_ROW_OP_INSERT, ok), ".row.table", "required"},
		{"table unqualified", rowMutation("unit", opsv1.RowOp_ROW_OP_INSERT, ok), ".row.table", "schema.table"},
		{"table hostile", rowMutation(`ops.unit";drop table x;--`, opsv1.RowOp_ROW_OP_INSERT, ok), ".row.table", `holds '"'`},
		{"table upper case", rowMutation("ops.Unit", opsv1.RowOp_ROW_OP_INSERT, ok), ".row.table", `holds 'U'`},
		{"op missing", rowMutation("ops.unit", opsv1.RowOp_ROW_OP_UNSPECIFIED, ok), ".row.op", "required"},
		{"op unknown", rowMutation("ops.unit", opsv1.RowOp(42), ok), ".row.op", "unknown value 42"},
		{"values missing", rowMutation("ops.unit", opsv1.RowOp_ROW_OP_UPDATE, map[string]any{}), ".row.values", "required"},
		{"column hostile", rowMutation("ops.unit", opsv1.RowOp_ROW_OP_INSERT, map[string]any{"id) values (1); --": 1.0}), ".row.values", "column name"},
		{"nul in value", rowMutation("ops.unit", opsv1.RowOp_ROW_OP_INSERT, map[string]any{"name": "a\x00b"}), ".row.values", "NUL"},
		{"too large", rowMutation("ops.unit", opsv1.RowOp_ROW_OP_INSERT, map[string]any{"blob": strings.Repeat("A", validate.MaxRowBytes)}), ".row.values", "MaxRowBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{{Id: v7(), Mutations: []*opsv1.Mutation{tt.mut}}}}
			err := validate.ValidateSubmit(req)
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			var ve *validate.Error
			require.ErrorAs(t, err, &ve)
			require.Equal(t, "transactions[0].mutations[0]"+tt.field, ve.Violations[0].Field, "violations: %v", ve.Violations)
			require.Contains(t, ve.Violations[0].Description, tt.desc)
		})
	}
}
