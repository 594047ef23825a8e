package reads

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"

	"github.com/chasqui/chasqui/edge/internal/schema"
	"github.com/chasqui/chasqui/internal/rows"
	"github.com/chasqui/chasqui/internal/validate"
)

// Rows of any table (opsv1.Row, docs/design.md "Edge reads"): the same
// merge as observations, keyed by the table's primary key. A row's
// buffered writes apply in seq order on the committed row: INSERT shows
// the row as written, UPSERT and UPDATE set the columns they carry (an
// UPDATE of a row neither committed nor buffered shows nothing), DELETE
// hides it. A row only buffered holds the columns its writes set.

// ErrRowsOff: the reader was built without a row buffer or schema.
var ErrRowsOff = errors.New("reads: row reads are not configured")

// PendingRow is one buffered mutation of a row.
type PendingRow struct {
	Pending
	// Key is the row's canonical key (rows.Key) as the queue kept it; ""
	// when the row was accepted before its table's schema was known: the
	// reader keys it with the schema it has now.
	Key string
}

// RowBuffer is what row reads need of the edge's store (the queue).
type RowBuffer interface {
	// RowOverlays returns the pending mutations of the row of table with
	// canonical key key, and the table's unkeyed ones, in seq order.
	RowOverlays(table, key string) ([]PendingRow, error)
	// TableOverlays returns the pending mutations of table, in seq order.
	TableOverlays(table string) ([]PendingRow, error)
}

// Tables is the schema the edge learned from central (*schema.Cache).
type Tables interface {
	Table(name string) (*schema.Table, bool)
}

func invalid(field, format string, args ...any) error {
	return &validate.Error{Violations: []validate.Violation{{Field: field, Description: fmt.Sprintf(format, args...)}}}
}

// table is the learned schema of the table a read names.
func (r *Reader) table(name string) (*opsv1.TableSchema, error) {
	if r.cfg.Rows == nil || r.cfg.Tables == nil {
		return nil, ErrRowsOff
	}
	if _, err := rows.ParseTable(name); err != nil {
		return nil, invalid("table", "%v", err)
	}
	t, ok := r.cfg.Tables.Table(name)
	if !ok {
		// Reads need the key columns; the schema learned from central
		// names them. Rows accepted before it was learned show once it is.
		return nil, invalid("table", "%s is not a table the edge learned from central (chasqui schema lists them)", name)
	}
	if len(t.GetPrimaryKey()) == 0 {
		return nil, invalid("table", "%s has no primary key", name)
	}
	return t.TableSchema, nil
}

// keyOf is the canonical key of a pending write of t ("" if it has none).
func keyOf(t *opsv1.TableSchema, p PendingRow) string {
	if p.Key != "" {
		return p.Key
	}
	k, err := rows.Key(t.GetPrimaryKey(), p.Mutation.GetRow().GetValues())
	if err != nil {
		return "" // it cannot be written either: central refuses it
	}
	return k
}

// GetRow reads the row of table with key, merged with its pending writes.
func (r *Reader) GetRow(ctx context.Context, req *edgev1.GetRowRequest) (*edgev1.GetRowResponse, error) {
	t, err := r.table(req.GetTable())
	if err != nil {
		return nil, err
	}
	for name := range req.GetKey().GetFields() {
		if !slices.Contains(t.GetPrimaryKey(), name) {
			return nil, invalid("key."+name, "is not a primary key column of %s (%v)", t.GetName(), t.GetPrimaryKey())
		}
	}
	key, err := rows.Key(t.GetPrimaryKey(), req.GetKey())
	if err != nil {
		return nil, invalid("key", "%v", err)
	}
	// Pending writes first, as for observations.
	all, err := r.cfg.Rows.RowOverlays(t.GetName(), key)
	if err != nil {
		return nil, err
	}
	var ps []PendingRow
	for _, p := range all {
		if keyOf(t, p) == key {
			ps = append(ps, p)
		}
	}
	var base *structpb.Struct
	b, err := r.each(ctx, func(ctx context.Context, b backend) error {
		got, _, err := b.listRows(ctx, t, rows.Query{Keys: []*structpb.Struct{req.GetKey()}, Limit: 1})
		base = nil
		if len(got) > 0 {
			base = got[0]
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	src := sourceOf(b)
	v, src := mergeRow(t, base, src, ps)
	if v == nil {
		return nil, fmt.Errorf("row %s of %s: %w", key, t.GetName(), ErrNotFound)
	}
	return &edgev1.GetRowResponse{Row: &edgev1.RowView{Table: t.GetName(), Values: v, Source: src}, BufferOnly: b == nil}, nil
}

// ListRows lists one page of a table in primary key order, merged with
// pending writes: committed rows without pending writes, and rows with
// pending writes as they will be once those commit, filtered after the
// merge. The page token is the last row's key (rows.PageToken), so it
// stays valid whatever commits in between.
func (r *Reader) ListRows(ctx context.Context, req *edgev1.ListRowsRequest) (*edgev1.ListRowsResponse, error) {
	t, err := r.table(req.GetTable())
	if err != nil {
		return nil, err
	}
	q, err := rowsQuery(t, req)
	if err != nil {
		return nil, err
	}
	limit := q.Limit

	all, err := r.cfg.Rows.TableOverlays(t.GetName())
	if err != nil {
		return nil, err
	}
	ovs, needBase := pendingByKey(t, all)

	var (
		committed []*structpb.Struct
		more      bool
		bases     = map[string]*structpb.Struct{}
	)
	b, err := r.each(ctx, func(ctx context.Context, b backend) error {
		clear(bases)
		for chunk := range slices.Chunk(needBase, rows.MaxPageSize) {
			got, _, err := b.listRows(ctx, t, rows.Query{Keys: chunk, Limit: len(chunk)})
			if err != nil {
				return err
			}
			for _, g := range got {
				if k, err := rows.Key(t.GetPrimaryKey(), g); err == nil {
					bases[k] = g
				}
			}
		}
		var err error
		committed, more, err = b.listRows(ctx, t, q)
		return err
	})
	if err != nil {
		return nil, err
	}
	src := sourceOf(b)

	out := mergePage(t, committed, src, ovs, bases, q)
	res := &edgev1.ListRowsResponse{BufferOnly: b == nil}
	if more && len(committed) > 0 {
		// Committed rows past the last one read are unknown: nothing past
		// it can be in this page.
		last := committed[len(committed)-1]
		cut := len(out)
		for cut > 0 && compareKeys(t, out[cut-1].GetValues(), last) > 0 {
			cut--
		}
		out = out[:cut]
		res.NextPageToken = rows.PageToken(rows.KeyOf(t, last))
	}
	if len(out) > limit {
		out = out[:limit]
		res.NextPageToken = rows.PageToken(rows.KeyOf(t, out[limit-1].GetValues()))
	}
	res.Rows = out
	return res, nil
}

// rowsQuery is the committed-rows query of a ListRows request, its page size
// bounded.
func rowsQuery(t *opsv1.TableSchema, req *edgev1.ListRowsRequest) (rows.Query, error) {
	limit := int(req.GetPageSize())
	switch {
	case limit < 0:
		return rows.Query{}, invalid("page_size", "must not be negative")
	case limit == 0:
		limit = rows.DefaultPageSize
	case limit > rows.MaxPageSize:
		limit = rows.MaxPageSize
	}
	q := rows.Query{Where: req.GetWhere(), Limit: limit}
	if req.GetPageToken() != "" {
		var err error
		if q.After, err = rows.ParsePageToken(req.GetPageToken()); err != nil {
			return rows.Query{}, invalid("page_token", "malformed")
		}
	}
	if err := rows.CheckQuery(t, q); err != nil {
		if errors.Is(err, rows.ErrBadToken) {
			return rows.Query{}, invalid("page_token", "malformed")
		}
		return rows.Query{}, invalid("where", "%v", err)
	}
	return q, nil
}

// pendingByKey groups a table's pending writes by row key, in queue order,
// and lists the keys whose committed row the merge starts from (all but
// those first written by an insert).
func pendingByKey(t *opsv1.TableSchema, all []PendingRow) (map[string][]PendingRow, []*structpb.Struct) {
	ovs := map[string][]PendingRow{}
	var needBase []*structpb.Struct
	for _, p := range all {
		k := keyOf(t, p)
		if k == "" {
			continue
		}
		if _, seen := ovs[k]; !seen && p.Mutation.GetRow().GetOp() != opsv1.RowOp_ROW_OP_INSERT {
			if kv := rows.KeyOf(t, p.Mutation.GetRow().GetValues()); kv != nil {
				needBase = append(needBase, kv) // nil: keyed under a key the schema no longer has
			}
		}
		ovs[k] = append(ovs[k], p)
	}
	return ovs, needBase
}

// mergePage is the page's rows before cutting: committed rows without pending
// writes, and rows with pending writes as they will be once those commit,
// filtered by q, in key order.
func mergePage(t *opsv1.TableSchema, committed []*structpb.Struct, src edgev1.RecordSource,
	ovs map[string][]PendingRow, bases map[string]*structpb.Struct, q rows.Query) []*edgev1.RowView {
	var out []*edgev1.RowView
	for _, row := range committed {
		if k, err := rows.Key(t.GetPrimaryKey(), row); err == nil && ovs[k] != nil {
			continue // merged below, with its pending writes
		}
		out = append(out, &edgev1.RowView{Table: t.GetName(), Values: row, Source: src})
	}
	for k, ps := range ovs {
		v, s := mergeRow(t, bases[k], src, ps)
		if v == nil || !matches(v, q.Where) {
			continue
		}
		if q.After != nil && compareKeys(t, v, q.After) <= 0 {
			continue
		}
		out = append(out, &edgev1.RowView{Table: t.GetName(), Values: v, Source: s})
	}
	slices.SortFunc(out, func(a, b *edgev1.RowView) int { return compareKeys(t, a.GetValues(), b.GetValues()) })
	return out
}

// mergeRow applies pending writes in seq order on the committed row base
// (nil when none was read). Nil when the row exists in neither.
func mergeRow(t *opsv1.TableSchema, base *structpb.Struct, src edgev1.RecordSource, ps []PendingRow) (*structpb.Struct, edgev1.RecordSource) {
	v := base
	for _, p := range ps {
		row := p.Mutation.GetRow()
		switch row.GetOp() {
		case opsv1.RowOp_ROW_OP_INSERT:
			v = proto.Clone(row.GetValues()).(*structpb.Struct)
		case opsv1.RowOp_ROW_OP_UPSERT, opsv1.RowOp_ROW_OP_UPDATE:
			if v == nil {
				if row.GetOp() == opsv1.RowOp_ROW_OP_UPDATE {
					continue // its row is neither committed (read) nor buffered
				}
				v = &structpb.Struct{Fields: map[string]*structpb.Value{}}
			} else {
				v = proto.Clone(v).(*structpb.Struct)
			}
			for c, val := range row.GetValues().GetFields() {
				if _, had := v.Fields[c]; had && slices.Contains(t.GetPrimaryKey(), c) {
					continue // equal, perhaps in another shape (1 or "1"): keep the row's
				}
				v.Fields[c] = val
			}
		case opsv1.RowOp_ROW_OP_DELETE:
			v = nil
		default:
			continue
		}
		src = lower(src, p.Committed)
	}
	return v, src
}

// matches tells whether row is equal to where on each column. A column
// a buffered-only row does not hold (its default, not known here) matches
// nothing.
func matches(row, where *structpb.Struct) bool {
	for c, w := range where.GetFields() {
		v, ok := row.GetFields()[c]
		if !ok || !sameValue(v, w) {
			return false
		}
	}
	return true
}

// sameValue compares values as their columns would: 1 and "1" are one
// number; lists and objects must be equal.
func sameValue(a, b *structpb.Value) bool {
	_, an := a.GetKind().(*structpb.Value_NullValue)
	_, bn := b.GetKind().(*structpb.Value_NullValue)
	if an || bn {
		return an && bn
	}
	one := func(v *structpb.Value) (string, bool) {
		k, err := rows.Key([]string{"v"}, &structpb.Struct{Fields: map[string]*structpb.Value{"v": v}})
		return k, err == nil
	}
	ka, oka := one(a)
	kb, okb := one(b)
	if oka && okb {
		return ka == kb
	}
	return proto.Equal(a, b)
}

// compareKeys orders rows of t by primary key as PostgreSQL does for the
// usual key types: numbers numerically, bytea by its bytes, booleans
// false first, text and uuids by their bytes (the C collation; a text key
// under another collation may order differently here than in the
// replica, see docs/design.md "Edge reads").
func compareKeys(t *opsv1.TableSchema, a, b *structpb.Struct) int {
	for _, c := range t.GetPrimaryKey() {
		var kind opsv1.ValueKind
		for _, col := range t.GetColumns() {
			if col.GetName() == c {
				kind = col.GetKind()
			}
		}
		if d := compareValue(kind, a.GetFields()[c], b.GetFields()[c]); d != 0 {
			return d
		}
	}
	return 0
}

func compareValue(kind opsv1.ValueKind, a, b *structpb.Value) int {
	switch kind {
	case opsv1.ValueKind_VALUE_KIND_INTEGER, opsv1.ValueKind_VALUE_KIND_NUMBER:
		ra, oka := ratOf(a)
		rb, okb := ratOf(b)
		if oka && okb {
			return ra.Cmp(rb)
		}
	case opsv1.ValueKind_VALUE_KIND_BYTES:
		ba, erra := base64.StdEncoding.DecodeString(a.GetStringValue())
		bb, errb := base64.StdEncoding.DecodeString(b.GetStringValue())
		if erra == nil && errb == nil {
			return slices.Compare(ba, bb)
		}
	case opsv1.ValueKind_VALUE_KIND_BOOL:
		switch {
		case a.GetBoolValue() == b.GetBoolValue():
			return 0
		case b.GetBoolValue():
			return -1
		}
		return 1
	}
	sa, sb := textOf(a), textOf(b)
	switch {
	case sa < sb:
		return -1
	case sa > sb:
		return 1
	}
	return 0
}

func ratOf(v *structpb.Value) (*big.Rat, bool) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_NumberValue:
		r := new(big.Rat)
		if r.SetFloat64(k.NumberValue) == nil {
			return nil, false
		}
		return r, true
	case *structpb.Value_StringValue:
		return new(big.Rat).SetString(k.StringValue)
	}
	return nil, false
}

func textOf(v *structpb.Value) string {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue
	case *structpb.Value_NumberValue:
		return strconv.FormatFloat(k.NumberValue, 'g', -1, 64)
	case *structpb.Value_BoolValue:
		return strconv.FormatBool(k.BoolValue)
	}
	return ""
}

func (b replicaBackend) listRows(ctx context.Context, t *opsv1.TableSchema, q rows.Query) ([]*structpb.Struct, bool, error) {
	return rows.Select(ctx, b.db, t, q)
}

func (b centralBackend) listRows(ctx context.Context, t *opsv1.TableSchema, q rows.Query) ([]*structpb.Struct, bool, error) {
	req := &centralv1.ListRowsRequest{Table: t.GetName(), Where: q.Where, Keys: q.Keys, PageSize: int32(min(q.Limit, rows.MaxPageSize))}
	if q.After != nil {
		req.PageToken = rows.PageToken(q.After)
	}
	res, err := b.c.ListRows(ctx, req, failFast...)
	if err != nil {
		if status.Code(err) == codes.NotFound {
			// Central does not allow the table (any more): no committed rows.
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("central ListRows: %w", err)
	}
	return res.GetRows(), res.GetNextPageToken() != "", nil
}
