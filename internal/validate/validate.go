// Package validate owns the request rules edge and central share: what a
// well-formed transaction and record look like, before anything is stored.
// Every violation names its field by proto path
// ("transactions[2].mutations[0].observation.end_time: before start_time"),
// and Status turns the error into INVALID_ARGUMENT with google.rpc.BadRequest
// details.
package validate

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/rows"
)

// Limits. They bound what one request can make either service hold in
// memory or write in one PostgreSQL transaction.
const (
	// MaxTransactions is the most transactions one Submit or Commit carries.
	MaxTransactions = 5000
	// MaxMutations is the most mutations one transaction carries.
	MaxMutations = 1000
	// MaxNameLen bounds short strings (instrument, source, ids of edges...), in bytes.
	MaxNameLen = 256
	// MaxPathLen bounds a raw data file's path, in bytes.
	MaxPathLen = 4096
	// MaxStructBytes bounds one Struct payload (attributes, config), encoded.
	MaxStructBytes = 64 << 10
	// MaxStructDepth bounds the nesting of one Struct payload.
	MaxStructDepth = 32
	// MaxTraceContextEntries bounds a transaction's trace context.
	MaxTraceContextEntries = 8
	// MaxRowBytes bounds one row's values, encoded: a row is one tuple, and
	// its values (bytea included) travel in one Commit with the rest of
	// its transaction.
	MaxRowBytes = 1 << 20
	// MaxRowColumns is PostgreSQL's limit on the columns of a table: a row
	// naming more cannot be a row of any table.
	MaxRowColumns = 1600
	// MaxWithdrawReasonLen bounds a Commit's withdraw_reason, in bytes.
	MaxWithdrawReasonLen = 1024
	// maxViolations keeps an error (and its BadRequest detail) small.
	maxViolations = 20
)

// Message size limits, kept together because one is derived from the other.
const (
	// DefaultMaxMessageBytes is the largest gRPC message a service receives
	// and a client sends or receives (internal/grpcserver and
	// internal/grpcclient default to it; central's receive limit is the
	// one that matters: a Commit batch larger than it never arrives).
	DefaultMaxMessageBytes = 16 << 20
	// MaxTransactionBytes is the largest marshalled transaction the edge
	// accepts. The margin below DefaultMaxMessageBytes covers what the edge
	// adds before forwarding (edge_id, epoch, seq, accepted_at: a few
	// hundred bytes) and the Commit request's own fields, so a transaction
	// accepted at the edge always fits a Commit batch of one.
	MaxTransactionBytes = DefaultMaxMessageBytes - 1<<20
)

// Violation is one bad field.
type Violation struct {
	// Field is the proto path, e.g. "transactions[0].mutations[1].raw_data_file.path".
	Field string
	// Description says what is wrong with it.
	Description string
}

// Error is a request that breaks one or more rules. Its message starts with
// the first violation as "field.path: problem".
type Error struct {
	Violations []Violation
}

func (e *Error) Error() string {
	if len(e.Violations) == 0 {
		return "invalid request"
	}
	v := e.Violations[0]
	msg := v.Field + ": " + v.Description
	if n := len(e.Violations) - 1; n > 0 {
		msg += fmt.Sprintf(" (and %d more)", n)
	}
	return msg
}

// Status converts err to a gRPC status: INVALID_ARGUMENT whose message is
// err's and whose details hold a google.rpc.BadRequest with one field
// violation per Violation when err is (or wraps) an *Error.
func Status(err error) *status.Status {
	var ve *Error
	if !errors.As(err, &ve) {
		return status.New(codes.InvalidArgument, err.Error())
	}
	st := status.New(codes.InvalidArgument, ve.Error())
	br := &errdetails.BadRequest{}
	for _, v := range ve.Violations {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field: v.Field, Description: v.Description,
		})
	}
	if withDetails, err := st.WithDetails(br); err == nil {
		return withDetails
	}
	return st
}

// field is the path of a request field, joined into text only when a
// violation names it (validation runs on every transaction; most are fine).
type field struct{ prefix, leaf string }

func at(prefix, leaf string) field { return field{prefix, leaf} }

func (f field) String() string { return f.prefix + f.leaf }

// checker collects violations up to maxViolations.
type checker struct {
	vs []Violation
}

func (c *checker) add(field, format string, args ...any) {
	if len(c.vs) < maxViolations {
		c.vs = append(c.vs, Violation{Field: field, Description: fmt.Sprintf(format, args...)})
	}
}

func (c *checker) full() bool { return len(c.vs) >= maxViolations }

func (c *checker) err() error {
	if len(c.vs) == 0 {
		return nil
	}
	return &Error{Violations: c.vs}
}

// ValidateSubmit checks an instrument's Submit to the edge: the caller sets
// each transaction's id but leaves edge_id, epoch, seq and accepted_at to
// the edge; record ids may be empty (the edge fills them in).
func ValidateSubmit(req *edgev1.SubmitRequest) error {
	c := &checker{}
	txs := req.GetTransactions()
	checkCount(c, "transactions", len(txs))
	seen := make(map[string]int, len(txs))
	for i, tx := range txs {
		if c.full() {
			break
		}
		p := "transactions[" + strconv.Itoa(i) + "]"
		if tx.GetEdgeId() != "" {
			c.add(p+".edge_id", "must be left empty: the edge sets it")
		}
		if tx.GetEpoch() != "" {
			c.add(p+".epoch", "must be left empty: the edge sets it")
		}
		if tx.GetSeq() != 0 {
			c.add(p+".seq", "must be left unset: the edge sets it")
		}
		if tx.GetAcceptedAt() != nil {
			c.add(p+".accepted_at", "must be left unset: the edge sets it")
		}
		checkTransaction(c, p, tx, false)
		checkDuplicateID(c, p, tx.GetId(), i, seen)
		if n := proto.Size(tx); n > MaxTransactionBytes {
			c.add(p, "%d bytes marshalled, at most %d (MaxTransactionBytes) allowed per transaction", n, MaxTransactionBytes)
		}
	}
	return c.err()
}

// ValidateCommit checks an edge's Commit to central: every transaction is
// the edge's (edge_id and epoch equal the request's), numbered from
// first_seq without gaps, with every record id filled in.
func ValidateCommit(req *centralv1.CommitRequest) error {
	c := &checker{}
	checkName(c, at("", "edge_id"), req.GetEdgeId(), true)
	checkName(c, at("", "epoch"), req.GetEpoch(), true)
	txs := req.GetTransactions()
	if req.GetFirstSeq() == 0 {
		c.add("first_seq", "must be at least 1")
	} else if req.GetFirstSeq() > math.MaxInt64-uint64(len(txs)) {
		c.add("first_seq", "too large: sequence numbers must stay below 2^63")
	}
	checkCount(c, "transactions", len(txs))
	withdraw := req.GetWithdrawReason() != ""
	if withdraw {
		if len(txs) != 1 {
			c.add("withdraw_reason", "a withdrawal carries exactly one transaction, got %d", len(txs))
		}
		if n := len(req.GetWithdrawReason()); n > MaxWithdrawReasonLen {
			c.add("withdraw_reason", "%d bytes, at most %d allowed", n, MaxWithdrawReasonLen)
		}
	}
	seen := make(map[string]int, len(txs))
	for i, tx := range txs {
		if c.full() {
			break
		}
		p := "transactions[" + strconv.Itoa(i) + "]"
		if tx.GetEdgeId() != req.GetEdgeId() {
			c.add(p+".edge_id", "is %q, want the request's edge_id %q", clip(tx.GetEdgeId()), clip(req.GetEdgeId()))
		}
		if tx.GetEpoch() != req.GetEpoch() {
			c.add(p+".epoch", "is %q, want the request's epoch %q", clip(tx.GetEpoch()), clip(req.GetEpoch()))
		}
		if want := req.GetFirstSeq() + uint64(i); tx.GetSeq() != want {
			c.add(p+".seq", "is %d, want first_seq+%d = %d", tx.GetSeq(), i, want)
		}
		if tx.GetAcceptedAt() == nil {
			c.add(p+".accepted_at", "is required")
		} else {
			checkTime(c, at(p, ".accepted_at"), tx.GetAcceptedAt())
		}
		if withdraw {
			// Withdrawn: only its id and seq matter; its mutations are
			// what central refused, and are not applied.
			checkID(c, at(p, ".id"), tx.GetId(), true)
		} else {
			checkTransaction(c, p, tx, true)
		}
		checkDuplicateID(c, p, tx.GetId(), i, seen)
	}
	return c.err()
}

func checkCount(c *checker, name string, n int) {
	switch {
	case n == 0:
		c.add(name, "at least one transaction is required")
	case n > MaxTransactions:
		c.add(name, "%d transactions, at most %d allowed per request", n, MaxTransactions)
	}
}

func checkDuplicateID(c *checker, p, id string, i int, seen map[string]int) {
	if id == "" {
		return
	}
	if j, ok := seen[id]; ok {
		c.add(p+".id", "same transaction id as transactions[%d]", j)
		return
	}
	seen[id] = i
}

// checkTransaction holds the rules shared by Submit and Commit; requireIDs
// is set for Commit, where the edge has filled in every record id.
func checkTransaction(c *checker, p string, tx *opsv1.Transaction, requireIDs bool) {
	checkID(c, at(p, ".id"), tx.GetId(), true)
	muts := tx.GetMutations()
	switch {
	case len(muts) == 0:
		c.add(p+".mutations", "a transaction needs at least one mutation")
	case len(muts) > MaxMutations:
		c.add(p+".mutations", "%d mutations, at most %d allowed per transaction", len(muts), MaxMutations)
		return
	}
	if n := len(tx.GetTraceContext()); n > MaxTraceContextEntries {
		c.add(p+".trace_context", "%d entries, at most %d allowed", n, MaxTraceContextEntries)
	}
	for k, v := range tx.GetTraceContext() {
		if len(k) > MaxNameLen || len(v) > MaxNameLen*2 {
			c.add(p+".trace_context", "entry %q too long", clip(k))
			break
		}
	}
	for j, m := range muts {
		if c.full() {
			return
		}
		mp := p + ".mutations[" + strconv.Itoa(j) + "]"
		switch k := m.GetKind().(type) {
		case *opsv1.Mutation_Observation:
			checkObservation(c, mp+".observation", k.Observation, requireIDs)
		case *opsv1.Mutation_ObservationUpdate:
			checkObservationUpdate(c, mp+".observation_update", k.ObservationUpdate)
		case *opsv1.Mutation_InstrumentConfig:
			checkInstrumentConfig(c, mp+".instrument_config", k.InstrumentConfig, requireIDs)
		case *opsv1.Mutation_RawDataFile:
			checkRawDataFile(c, mp+".raw_data_file", k.RawDataFile, requireIDs)
		case *opsv1.Mutation_Row:
			checkRow(c, mp+".row", k.Row)
		default:
			c.add(mp, "no record set: one of observation, observation_update, instrument_config, raw_data_file, row is required")
		}
	}
}

func checkObservation(c *checker, p string, o *opsv1.Observation, requireID bool) {
	if o == nil {
		c.add(p, "is required")
		return
	}
	checkID(c, at(p, ".id"), o.GetId(), requireID)
	checkName(c, at(p, ".instrument"), o.GetInstrument(), true)
	checkName(c, at(p, ".source"), o.GetSource(), false)
	checkName(c, at(p, ".obs_unit"), o.GetObsUnit(), false)
	checkStatus(c, at(p, ".status"), o.GetStatus())
	start, end := o.GetStartTime(), o.GetEndTime()
	startOK := false
	if start == nil {
		c.add(p+".start_time", "is required")
	} else {
		startOK = checkTime(c, at(p, ".start_time"), start)
	}
	if end != nil && checkTime(c, at(p, ".end_time"), end) && startOK && end.AsTime().Before(start.AsTime()) {
		c.add(p+".end_time", "before start_time")
	}
	checkStruct(c, at(p, ".attributes"), o.GetAttributes())
}

func checkObservationUpdate(c *checker, p string, u *opsv1.ObservationUpdate) {
	if u == nil {
		c.add(p, "is required")
		return
	}
	// The id names the record to change: always required, even at Submit.
	checkRef(c, at(p, ".id"), u.GetId(), true)
	if u.Status != nil {
		checkStatus(c, at(p, ".status"), u.GetStatus())
	}
	if u.GetEndTime() != nil {
		checkTime(c, at(p, ".end_time"), u.GetEndTime())
	}
	checkStruct(c, at(p, ".attributes"), u.GetAttributes())
}

func checkInstrumentConfig(c *checker, p string, ic *opsv1.InstrumentConfig, requireID bool) {
	if ic == nil {
		c.add(p, "is required")
		return
	}
	checkID(c, at(p, ".id"), ic.GetId(), requireID)
	checkName(c, at(p, ".instrument"), ic.GetInstrument(), true)
	checkRef(c, at(p, ".observation_id"), ic.GetObservationId(), false)
	if ic.GetRecordedAt() == nil {
		c.add(p+".recorded_at", "is required")
	} else {
		checkTime(c, at(p, ".recorded_at"), ic.GetRecordedAt())
	}
	checkStruct(c, at(p, ".config"), ic.GetConfig())
}

func checkRawDataFile(c *checker, p string, f *opsv1.RawDataFile, requireID bool) {
	if f == nil {
		c.add(p, "is required")
		return
	}
	checkID(c, at(p, ".id"), f.GetId(), requireID)
	checkRef(c, at(p, ".observation_id"), f.GetObservationId(), true)
	switch path := f.GetPath(); {
	case path == "":
		c.add(p+".path", "is required")
	case len(path) > MaxPathLen:
		c.add(p+".path", "%d bytes, at most %d allowed", len(path), MaxPathLen)
	case strings.ContainsRune(path, 0):
		c.add(p+".path", "contains a NUL byte")
	}
	if f.GetSizeBytes() < 0 {
		c.add(p+".size_bytes", "is %d, must not be negative", f.GetSizeBytes())
	}
	if sum := f.GetChecksum(); sum != "" {
		if len(sum) > MaxNameLen {
			c.add(p+".checksum", "%d bytes, at most %d allowed", len(sum), MaxNameLen)
		} else if alg, hex, ok := strings.Cut(sum, ":"); !ok || alg == "" || hex == "" || strings.ContainsRune(sum, 0) {
			c.add(p+".checksum", "want the form \"algorithm:hex\", e.g. \"sha256:9f86d0...\"")
		}
	}
	if f.GetCreatedAt() != nil {
		checkTime(c, at(p, ".created_at"), f.GetCreatedAt())
	}
}

// checkRow checks a row's shape only: which tables and columns exist, and
// which values fit them, is the schema's business (the edge checks it when
// it knows the schema; central's PostgreSQL always does). Names must be
// plain identifiers so that no quoting question ever reaches SQL.
func checkRow(c *checker, p string, r *opsv1.Row) {
	if r == nil {
		c.add(p, "is required")
		return
	}
	if r.GetTable() == "" {
		c.add(p+".table", "is required (schema.table)")
	} else if _, err := rows.ParseTable(r.GetTable()); err != nil {
		c.add(p+".table", "%s", clipErr(err))
	}
	switch op := r.GetOp(); op {
	case opsv1.RowOp_ROW_OP_UNSPECIFIED:
		c.add(p+".op", "is required (INSERT, UPSERT, UPDATE or DELETE)")
	default:
		if _, ok := opsv1.RowOp_name[int32(op)]; !ok {
			c.add(p+".op", "unknown value %d", int32(op))
		}
	}
	vals := r.GetValues()
	if len(vals.GetFields()) == 0 {
		c.add(p+".values", "are required: at least the primary key's columns")
		return
	}
	if n := len(vals.GetFields()); n > MaxRowColumns {
		c.add(p+".values", "%d columns, at most %d allowed", n, MaxRowColumns)
		return
	}
	for name := range vals.GetFields() {
		if err := rows.CheckIdentifier(name); err != nil {
			c.add(p+".values", "column %s", clipErr(err))
			return
		}
	}
	if !structDepthOK(vals, 1) {
		c.add(p+".values", "nested deeper than %d levels", MaxStructDepth)
		return
	}
	if n := proto.Size(vals); n > MaxRowBytes {
		c.add(p+".values", "%d bytes encoded, at most %d (MaxRowBytes) allowed", n, MaxRowBytes)
		return
	}
	if !jsonStorable(vals) {
		// No PostgreSQL text or jsonb value can hold U+0000, and JSON has
		// no NaN or infinity.
		c.add(p+".values", "contain a NUL character or a non-finite number")
	}
}

// clipErr bounds an error message that quotes client input.
func clipErr(err error) string {
	s := err.Error()
	if len(s) <= 200 {
		return s
	}
	return s[:200] + "..."
}

// checkID checks a record's or transaction's own id: a UUIDv7 in canonical
// text form; empty only when !required.
func checkID(c *checker, f field, id string, required bool) {
	if id == "" {
		if required {
			c.add(f.String(), "is required (a UUIDv7)")
		}
		return
	}
	u, ok := parseUUID(c, f, id)
	if ok && u.Version() != 7 {
		c.add(f.String(), "is a version %d UUID; ids must be UUIDv7 (time-ordered, e.g. uuid.NewV7)", u.Version())
	}
}

// checkRef checks a reference to a record: any UUID in canonical text form.
func checkRef(c *checker, f field, id string, required bool) {
	if id == "" {
		if required {
			c.add(f.String(), "is required")
		}
		return
	}
	parseUUID(c, f, id)
}

func parseUUID(c *checker, f field, id string) (uuid.UUID, bool) {
	// uuid.Parse also takes braces, urn: prefixes and no dashes; insist on
	// the canonical form so the same id never travels in two spellings.
	u, err := uuid.Parse(id)
	if err != nil || !canonicalUUID(id) {
		c.add(f.String(), "%q is not a UUID in canonical form (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", clip(id))
		return u, false
	}
	if u.Variant() != uuid.RFC4122 {
		c.add(f.String(), "%q is not an RFC 9562 UUID (variant bits)", id)
		return u, false
	}
	return u, true
}

// canonicalUUID: 36 characters, dashes at 8, 13, 18 and 23, lowercase hex
// elsewhere (what uuid.UUID.String writes).
func canonicalUUID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch ch := id[i]; i {
		case 8, 13, 18, 23:
			if ch != '-' {
				return false
			}
		default:
			if (ch < '0' || ch > '9') && (ch < 'a' || ch > 'f') {
				return false
			}
		}
	}
	return true
}

func checkName(c *checker, f field, s string, required bool) {
	switch {
	case s == "":
		if required {
			c.add(f.String(), "is required")
		}
	case len(s) > MaxNameLen:
		c.add(f.String(), "%d bytes, at most %d allowed", len(s), MaxNameLen)
	case strings.ContainsRune(s, 0):
		c.add(f.String(), "contains a NUL byte")
	case !utf8.ValidString(s):
		c.add(f.String(), "is not valid UTF-8")
	}
}

func checkStatus(c *checker, f field, s opsv1.ObservationStatus) {
	if s == opsv1.ObservationStatus_OBSERVATION_STATUS_UNSPECIFIED {
		c.add(f.String(), "is required (RUNNING, COMPLETED, FAILED or ABORTED)")
		return
	}
	if _, ok := opsv1.ObservationStatus_name[int32(s)]; !ok {
		c.add(f.String(), "unknown value %d", int32(s))
	}
}

// checkTime: timestamppb's valid range (years 1 to 9999) lies inside
// PostgreSQL's timestamptz range (4713 BC to 294276 AD), so a valid
// Timestamp always fits the database.
func checkTime(c *checker, f field, ts *timestamppb.Timestamp) bool {
	if err := ts.CheckValid(); err != nil {
		c.add(f.String(), "invalid timestamp: %s", strings.TrimPrefix(err.Error(), "proto: "))
		return false
	}
	return true
}

func checkStruct(c *checker, f field, s *structpb.Struct) {
	if s == nil {
		return
	}
	if !structDepthOK(s, 1) {
		c.add(f.String(), "nested deeper than %d levels", MaxStructDepth)
		return
	}
	if n := proto.Size(s); n > MaxStructBytes {
		c.add(f.String(), "%d bytes encoded, at most %d allowed", n, MaxStructBytes)
		return
	}
	if !jsonStorable(s) {
		// PostgreSQL's jsonb cannot hold U+0000, and JSON has no NaN or infinity.
		c.add(f.String(), "contains a NUL character or a non-finite number")
	}
}

func structDepthOK(s *structpb.Struct, depth int) bool {
	if depth > MaxStructDepth {
		return false
	}
	for _, v := range s.GetFields() {
		if !valueDepthOK(v, depth) {
			return false
		}
	}
	return true
}

func valueDepthOK(v *structpb.Value, depth int) bool {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StructValue:
		return structDepthOK(k.StructValue, depth+1)
	case *structpb.Value_ListValue:
		if depth+1 > MaxStructDepth {
			return false
		}
		for _, e := range k.ListValue.GetValues() {
			if !valueDepthOK(e, depth+1) {
				return false
			}
		}
	}
	return true
}

func jsonStorable(s *structpb.Struct) bool {
	for k, v := range s.GetFields() {
		if strings.ContainsRune(k, 0) || !valueStorable(v) {
			return false
		}
	}
	return true
}

func valueStorable(v *structpb.Value) bool {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return !strings.ContainsRune(k.StringValue, 0)
	case *structpb.Value_NumberValue:
		return !math.IsNaN(k.NumberValue) && !math.IsInf(k.NumberValue, 0)
	case *structpb.Value_StructValue:
		return jsonStorable(k.StructValue)
	case *structpb.Value_ListValue:
		for _, e := range k.ListValue.GetValues() {
			if !valueStorable(e) {
				return false
			}
		}
	}
	return true
}

// clip shortens a client-supplied string quoted in a message.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "..."
}
