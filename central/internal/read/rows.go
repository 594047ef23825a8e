package read

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"

	"github.com/chasqui/chasqui/central/internal/catalog"
	"github.com/chasqui/chasqui/central/internal/store"
	"github.com/chasqui/chasqui/internal/rows"
	"github.com/chasqui/chasqui/internal/validate"
)

// Page sizes of ListRows.
const (
	// DefaultRowsPageSize is ListRowsRequest.page_size when unset.
	DefaultRowsPageSize = 100
	// MaxRowsPageSize is the largest page_size.
	MaxRowsPageSize = 1000
)

// errTable is a table ListRows cannot read: not allowed (PERMISSION_DENIED),
// unknown (NOT_FOUND) or without a usable key (FAILED_PRECONDITION).
type errTable struct {
	code string // "denied", "unknown", "refused"
	msg  string
}

func (e *errTable) Error() string { return e.msg }

func invalid(field, format string, args ...any) error {
	return &validate.Error{Violations: []validate.Violation{{Field: field, Description: fmt.Sprintf(format, args...)}}}
}

// ListRows reads one page of an allowed table's rows in primary key order.
// Rows come back in the shapes Row.values uses, so that what an edge sent
// reads back equal: bytea as base64, bigints beyond 2^53 and numerics a
// float64 cannot hold exactly as strings, timestamptz in UTC.
func (s *Service) ListRows(ctx context.Context, req *centralv1.ListRowsRequest) (*centralv1.ListRowsResponse, error) {
	t, err := s.rowsTable(ctx, req.GetTable())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	limit := int(req.GetPageSize())
	switch {
	case limit < 0:
		return nil, s.toStatus(ctx, invalid("page_size", "is %d, must not be negative", limit))
	case limit == 0:
		limit = DefaultRowsPageSize
	case limit > MaxRowsPageSize:
		limit = MaxRowsPageSize
	}
	q, err := buildList(t, req, limit)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	rs, err := s.db.Query(ctx, q.sql, q.args...)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	var texts []string
	var text string
	if _, err := pgx.ForEachRow(rs, []any{&text}, func() error {
		texts = append(texts, text)
		return nil
	}); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &centralv1.ListRowsResponse{}
	for _, text := range texts[:min(len(texts), limit)] {
		st := &structpb.Struct{}
		if err := protojson.Unmarshal([]byte(text), st); err != nil {
			return nil, s.toStatus(ctx, fmt.Errorf("decoding a row of %s: %w", t.Name, err))
		}
		out.Rows = append(out.Rows, st)
	}
	if len(texts) > limit {
		last := out.Rows[limit-1]
		key := &structpb.Struct{Fields: map[string]*structpb.Value{}}
		for _, k := range t.Key {
			key.Fields[k] = last.GetFields()[k]
		}
		b, err := protojson.Marshal(key)
		if err != nil {
			return nil, s.toStatus(ctx, err)
		}
		out.NextPageToken = base64.RawURLEncoding.EncodeToString(b)
	}
	return out, nil
}

// rowsTable is the allowed table named, re-reading the catalog (rate
// limited) when it does not know it.
func (s *Service) rowsTable(ctx context.Context, name string) (*catalog.Table, error) {
	if name == "" {
		return nil, invalid("table", "is required (schema.table)")
	}
	tn, err := rows.ParseTable(name)
	if err != nil {
		return nil, invalid("table", "%s", err)
	}
	if s.catalog == nil || !s.catalog.Allow().Allows(tn) {
		return nil, &errTable{"denied", fmt.Sprintf("table %s is not allowed (not on central's allow-list)", tn)}
	}
	snap, err := s.catalog.Current(ctx)
	if err != nil {
		return nil, &store.UnavailableError{Op: "read catalog", Err: err}
	}
	t := snap.Table(tn.String())
	if t == nil {
		if snap, err = s.catalog.Refresh(ctx); err != nil {
			return nil, &store.UnavailableError{Op: "read catalog", Err: err}
		}
		if t = snap.Table(tn.String()); t == nil {
			return nil, &errTable{"unknown", fmt.Sprintf("table %s does not exist", tn)}
		}
	}
	if len(t.Key) == 0 {
		return nil, &errTable{"refused", fmt.Sprintf("table %s: %s", tn, t.Refused)}
	}
	return t, nil
}

type listQuery struct {
	sql  string
	args []any
}

// buildList writes the page's query. Identifiers come from the catalog
// and are quoted; filter values, keys and the page token are parameters,
// converted by each column's input function (jsonb_populate_record).
func buildList(t *catalog.Table, req *centralv1.ListRowsRequest, limit int) (listQuery, error) {
	tbl := pgx.Identifier{t.Name.Schema, t.Name.Name}.Sanitize()
	q := listQuery{}
	param := func(v any) string {
		q.args = append(q.args, v)
		return "$" + strconv.Itoa(len(q.args))
	}
	var from, where []string
	from = append(from, tbl+" AS t")

	if w := req.GetWhere(); len(w.GetFields()) > 0 {
		cols := sortedKeys(w)
		for _, c := range cols {
			col := t.Columns[c]
			if col == nil {
				return q, invalid("where."+c, "no such column in %s", t.Name)
			}
			if col.Bytea {
				return q, invalid("where."+c, "filtering on a bytea column is not supported")
			}
		}
		b, err := protojson.Marshal(w)
		if err != nil {
			return q, invalid("where", "%s", err)
		}
		from = append(from, "jsonb_populate_record(NULL::"+tbl+", "+param(string(b))+"::jsonb) AS w")
		for _, c := range cols {
			qc := pgx.Identifier{c}.Sanitize()
			if _, null := w.GetFields()[c].GetKind().(*structpb.Value_NullValue); null {
				where = append(where, "t."+qc+" IS NULL")
			} else {
				where = append(where, "t."+qc+" = w."+qc)
			}
		}
	}
	keyCols := make([]string, len(t.Key))
	for i, k := range t.Key {
		if t.Columns[k] != nil && t.Columns[k].Bytea {
			if len(req.GetKeys()) > 0 || req.GetPageToken() != "" {
				return q, invalid("table", "%s has a bytea key column: keys and paging are not supported", t.Name)
			}
		}
		keyCols[i] = pgx.Identifier{k}.Sanitize()
	}
	prefixed := func(alias string) string {
		out := make([]string, len(keyCols))
		for i, k := range keyCols {
			out[i] = alias + "." + k
		}
		return "(" + strings.Join(out, ", ") + ")"
	}
	if keys := req.GetKeys(); len(keys) > 0 {
		if len(keys) > limit {
			return q, invalid("keys", "%d keys, at most page_size (%d)", len(keys), limit)
		}
		arr, err := keysJSON(t, keys)
		if err != nil {
			return q, err
		}
		where = append(where, prefixed("t")+" IN (SELECT "+strings.Join(prefixedList("k", keyCols), ", ")+
			" FROM jsonb_populate_recordset(NULL::"+tbl+", "+param(string(arr))+"::jsonb) AS k)")
	}
	if tok := req.GetPageToken(); tok != "" {
		b, err := pageTokenKey(t, tok)
		if err != nil {
			return q, err
		}
		from = append(from, "jsonb_populate_record(NULL::"+tbl+", "+param(string(b))+"::jsonb) AS p")
		where = append(where, prefixed("t")+" > "+prefixed("p"))
	}
	sql := "SELECT (" + rowJSON(t) + ")::text FROM " + strings.Join(from, " CROSS JOIN ")
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY " + strings.Join(prefixedList("t", keyCols), ", ") + " LIMIT " + param(limit+1)
	q.sql = sql
	return q, nil
}

// keysJSON is keys as one JSON array, each checked to name exactly the key
// columns of t.
func keysJSON(t *catalog.Table, keys []*structpb.Struct) ([]byte, error) {
	var arr []byte
	arr = append(arr, '[')
	for i, k := range keys {
		if err := onlyKey(t, k); err != nil {
			return nil, invalid(fmt.Sprintf("keys[%d]", i), "%s", err)
		}
		b, err := protojson.Marshal(k)
		if err != nil {
			return nil, invalid(fmt.Sprintf("keys[%d]", i), "%s", err)
		}
		if i > 0 {
			arr = append(arr, ',')
		}
		arr = append(arr, b...)
	}
	arr = append(arr, ']')
	return arr, nil
}

// pageTokenKey is the JSON key of the last row of the previous page, from a
// token ListRows gave for t.
func pageTokenKey(t *catalog.Table, tok string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	st := &structpb.Struct{}
	if err == nil {
		err = protojson.Unmarshal(b, st)
	}
	if err == nil {
		err = onlyKey(t, st)
	}
	if err != nil {
		return nil, invalid("page_token", "not a token ListRows gave for %s", t.Name)
	}
	return b, nil
}

func prefixedList(alias string, cols []string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = alias + "." + c
	}
	return out
}

// onlyKey checks a key Struct: every key column, nothing else.
func onlyKey(t *catalog.Table, k *structpb.Struct) error {
	if _, err := rows.Key(t.Key, k); err != nil {
		return err
	}
	for c := range k.GetFields() {
		if !slices.Contains(t.Key, c) {
			return fmt.Errorf("column %q is not part of the primary key (%s)", c, strings.Join(t.Key, ", "))
		}
	}
	return nil
}

// maxExactInt is 2^53: integers beyond it do not survive a float64.
const maxExactInt = "9007199254740992"

// rowJSON is the row as a JSON object in Row.values shapes: to_jsonb,
// with bytea, bigint and numeric columns rewritten where to_jsonb's form
// would not read back as sent.
func rowJSON(t *catalog.Table) string {
	expr := "to_jsonb(t.*)" // t.*: a column may be named t
	for _, c := range sortedColumns(t) {
		qc := "t." + pgx.Identifier{c.Name}.Sanitize()
		lit := quoteLiteral(c.Name)
		switch {
		case c.Bytea:
			expr += " || jsonb_build_object(" + lit + ", translate(encode(" + qc + ", 'base64'), E'\\n', ''))"
		case c.Int8:
			expr += " || jsonb_build_object(" + lit + ", CASE WHEN abs(" + qc + ") > " + maxExactInt +
				" THEN to_jsonb(" + qc + "::text) ELSE to_jsonb(" + qc + ") END)"
		case c.Numeric:
			// A number when a float64 holds it exactly; else its text.
			expr += " || jsonb_build_object(" + lit + ", CASE WHEN " + qc + " IS NULL THEN 'null'::jsonb" +
				" WHEN " + qc + " <> 'NaN' AND abs(" + qc + ") <= " + maxExactInt + " AND " + qc + "::float8::numeric = " + qc +
				" THEN to_jsonb(" + qc + ") ELSE to_jsonb(" + qc + "::text) END)"
		}
	}
	return expr
}

func sortedColumns(t *catalog.Table) []*catalog.Column {
	cols := make([]*catalog.Column, 0, len(t.Columns))
	for _, c := range t.Columns {
		cols = append(cols, c)
	}
	slices.SortFunc(cols, func(a, b *catalog.Column) int { return strings.Compare(a.Name, b.Name) })
	return cols
}

func sortedKeys(s *structpb.Struct) []string {
	out := make([]string, 0, len(s.GetFields()))
	for k := range s.GetFields() {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// quoteLiteral quotes a catalog column name as an SQL string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
