package rows

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// The read side, shared by the edge (on its site replica) and central
// (ReadService.ListRows), so both answer in the same shapes and page with
// the same tokens: rows in primary key order, each as column -> value in
// the shapes Row.values uses (bytea as base64, integers and exact
// numerics a float64 would not hold exactly as strings).

// Page sizes of ListRows.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// ErrBadToken: a page token that no ListRows gave.
var ErrBadToken = errors.New("rows: malformed page token")

// Query selects rows of one table.
type Query struct {
	// Where: column -> value, rows equal on each (a null value: IS NULL).
	Where *structpb.Struct
	// Keys: only rows with these primary keys (each a Struct of the key
	// columns); empty: any.
	Keys []*structpb.Struct
	// After: only rows whose key comes after this one (a page token's).
	After *structpb.Struct
	// Limit is the most rows returned.
	Limit int
}

// Querier runs a query (a pgx pool, connection or transaction).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// PageToken is the token of the page that ends at the row with key (a
// Struct of the key columns, as Select returns them).
func PageToken(key *structpb.Struct) string {
	b, err := protojson.Marshal(key)
	if err != nil {
		return "" // a Struct always marshals
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParsePageToken is the key a PageToken holds.
func ParsePageToken(tok string) (*structpb.Struct, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return nil, ErrBadToken
	}
	s := &structpb.Struct{}
	if err := protojson.Unmarshal(b, s); err != nil {
		return nil, ErrBadToken
	}
	return s, nil
}

// KeyOf is the Struct of t's key columns of row (nil when one is missing).
func KeyOf(t *opsv1.TableSchema, row *structpb.Struct) *structpb.Struct {
	k := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for _, c := range t.GetPrimaryKey() {
		v, ok := row.GetFields()[c]
		if !ok {
			return nil
		}
		k.Fields[c] = v
	}
	return k
}

// CheckQuery refuses a query naming a column t does not have, filtering on
// a column whose values cannot be compared (json, bytea[]), or a key or
// page token lacking a key column. The error names the field.
func CheckQuery(t *opsv1.TableSchema, q Query) error {
	for name, v := range q.Where.GetFields() {
		c := column(t, name)
		if c == nil {
			return fmt.Errorf("where.%s: table %s has no such column", name, t.GetName())
		}
		if c.GetType() == "json" || (c.GetKind() == opsv1.ValueKind_VALUE_KIND_BYTES && c.GetArray()) {
			return fmt.Errorf("where.%s: a %s column cannot be compared", name, c.GetType())
		}
		if _, ok := v.GetKind().(*structpb.Value_NullValue); !ok {
			if _, err := Key([]string{name}, q.Where); err != nil && c.GetKind() != opsv1.ValueKind_VALUE_KIND_JSON && !c.GetArray() {
				return fmt.Errorf("where.%s: %w", name, err)
			}
		}
	}
	for i, k := range q.Keys {
		if _, err := Key(t.GetPrimaryKey(), k); err != nil {
			return fmt.Errorf("keys[%d]: %w", i, err)
		}
	}
	if q.After != nil {
		if _, err := Key(t.GetPrimaryKey(), q.After); err != nil {
			return ErrBadToken
		}
	}
	return nil
}

func column(t *opsv1.TableSchema, name string) *opsv1.ColumnSchema {
	for _, c := range t.GetColumns() {
		if c.GetName() == name {
			return c
		}
	}
	return nil
}

// Select reads the rows of t that q selects, in primary key order: at most
// q.Limit of them, and whether more follow. Identifiers are quoted; values
// reach PostgreSQL only as one jsonb parameter each, parsed by the
// column's own input function (jsonb_populate_record), bytea from base64.
func Select(ctx context.Context, db Querier, t *opsv1.TableSchema, q Query) ([]*structpb.Struct, bool, error) {
	if err := CheckQuery(t, q); err != nil {
		return nil, false, err
	}
	tn, err := ParseTable(t.GetName())
	if err != nil {
		return nil, false, err
	}
	if len(t.GetPrimaryKey()) == 0 {
		return nil, false, fmt.Errorf("table %s has no primary key", t.GetName())
	}
	sql, args, limit := selectSQL(t, pgx.Identifier{tn.Schema, tn.Name}.Sanitize(), q)
	rs, err := db.Query(ctx, sql, args...)
	if err != nil {
		return nil, false, err
	}
	defer rs.Close()
	return collectPage(rs, t, limit)
}

// selectSQL is Select's statement on the quoted table tbl, its arguments, and
// the page size: the statement asks for one row more, to tell whether more
// follow.
func selectSQL(t *opsv1.TableSchema, tbl string, q Query) (sql string, args []any, limit int) {
	var conds []string
	param := func(s *structpb.Struct) string {
		b, _ := protojson.Marshal(s)
		args = append(args, string(b))
		return "$" + strconv.Itoa(len(args)) + "::jsonb"
	}
	// value is column c's value in the jsonb src, parsed as c's type.
	value := func(src string, c string) string {
		if col := column(t, c); col != nil && col.GetKind() == opsv1.ValueKind_VALUE_KIND_BYTES && !col.GetArray() {
			return "decode(" + src + "->>" + literal(c) + ", 'base64')"
		}
		return "(jsonb_populate_record(NULL::" + tbl + ", " + src + "))." + pgx.Identifier{c}.Sanitize()
	}
	if len(q.Where.GetFields()) > 0 {
		src := ""
		for _, c := range sortedNames(q.Where) {
			if _, null := q.Where.GetFields()[c].GetKind().(*structpb.Value_NullValue); null {
				conds = append(conds, "t."+pgx.Identifier{c}.Sanitize()+" IS NULL")
				continue
			}
			if src == "" {
				src = param(q.Where) // only when used: an unused parameter has no type
			}
			conds = append(conds, "t."+pgx.Identifier{c}.Sanitize()+" = "+value(src, c))
		}
	}
	keyCols := make([]string, len(t.GetPrimaryKey()))
	for i, c := range t.GetPrimaryKey() {
		keyCols[i] = "t." + pgx.Identifier{c}.Sanitize()
	}
	tuple := "(" + strings.Join(keyCols, ", ") + ")"
	if len(q.Keys) > 0 {
		list := &structpb.ListValue{}
		for _, k := range q.Keys {
			list.Values = append(list.Values, structpb.NewStructValue(k))
		}
		b, _ := protojson.Marshal(list)
		args = append(args, string(b))
		vals := make([]string, len(t.GetPrimaryKey()))
		for i, c := range t.GetPrimaryKey() {
			vals[i] = value("e.v", c)
		}
		conds = append(conds, tuple+" IN (SELECT "+strings.Join(vals, ", ")+
			" FROM jsonb_array_elements($"+strconv.Itoa(len(args))+"::jsonb) AS e(v))")
	}
	if q.After != nil {
		src := param(q.After)
		vals := make([]string, len(t.GetPrimaryKey()))
		for i, c := range t.GetPrimaryKey() {
			vals[i] = value(src, c)
		}
		conds = append(conds, tuple+" > ("+strings.Join(vals, ", ")+")")
	}
	limit = q.Limit
	if limit <= 0 {
		limit = DefaultPageSize
	}
	args = append(args, limit+1)
	sql = "SELECT to_jsonb(t)::text FROM " + tbl + " AS t"
	if len(conds) > 0 {
		sql += " WHERE " + strings.Join(conds, " AND ")
	}
	sql += " ORDER BY " + strings.Join(keyCols, ", ") + " LIMIT $" + strconv.Itoa(len(args))
	return sql, args, limit
}

// collectPage reads Select's rows: at most limit of them, and whether more
// follow.
func collectPage(rs pgx.Rows, t *opsv1.TableSchema, limit int) ([]*structpb.Struct, bool, error) {
	var out []*structpb.Struct
	for rs.Next() {
		var raw string
		if err := rs.Scan(&raw); err != nil {
			return nil, false, err
		}
		s, err := FromJSONB(t, []byte(raw))
		if err != nil {
			return nil, false, err
		}
		out = append(out, s)
	}
	if err := rs.Err(); err != nil {
		return nil, false, err
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// literal quotes a column name (CheckIdentifier's alphabet, or the
// catalog's) as an SQL string literal.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func sortedNames(s *structpb.Struct) []string {
	// Deterministic SQL text: the statement cache reuses it.
	return slices.Sorted(maps.Keys(s.GetFields()))
}

// FromJSONB turns a row as to_jsonb prints it into the shapes Row.values
// uses: bytea ("\x…" hex) as base64, and a number of a non-json column that
// a float64 would not hold exactly (beyond 2^53, or more digits than it
// has) as the string of its digits. timestamptz is as the session's
// TimeZone prints it: the edge's replica pool sets UTC, as central does.
func FromJSONB(t *opsv1.TableSchema, raw []byte) (*structpb.Struct, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("rows: row of %s: %w", t.GetName(), err)
	}
	out := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(m))}
	for name, v := range m {
		c := column(t, name)
		cv, err := fromJSON(c, v)
		if err != nil {
			return nil, fmt.Errorf("rows: %s.%s: %w", t.GetName(), name, err)
		}
		out.Fields[name] = cv
	}
	return out, nil
}

func fromJSON(c *opsv1.ColumnSchema, v any) (*structpb.Value, error) {
	jsonCol := c.GetKind() == opsv1.ValueKind_VALUE_KIND_JSON
	switch x := v.(type) {
	case nil:
		return structpb.NewNullValue(), nil
	case json.Number:
		f, err := x.Float64()
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, err
		}
		if jsonCol || exactFloat(string(x), f) {
			return structpb.NewNumberValue(f), nil
		}
		return structpb.NewStringValue(string(x)), nil
	case string:
		if c.GetKind() == opsv1.ValueKind_VALUE_KIND_BYTES && strings.HasPrefix(x, `\x`) {
			b, err := hex.DecodeString(x[2:])
			if err != nil {
				return nil, fmt.Errorf("bytea: %w", err)
			}
			return structpb.NewStringValue(base64.StdEncoding.EncodeToString(b)), nil
		}
		return structpb.NewStringValue(x), nil
	case bool:
		return structpb.NewBoolValue(x), nil
	case []any:
		l := &structpb.ListValue{Values: make([]*structpb.Value, len(x))}
		for i, e := range x {
			ev, err := fromJSON(c, e)
			if err != nil {
				return nil, err
			}
			l.Values[i] = ev
		}
		return structpb.NewListValue(l), nil
	case map[string]any:
		s := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(x))}
		for k, e := range x {
			ev, err := fromJSON(c, e)
			if err != nil {
				return nil, err
			}
			s.Fields[k] = ev
		}
		return structpb.NewStructValue(s), nil
	}
	return nil, fmt.Errorf("unexpected JSON value %T", v)
}

// exactFloat tells whether the number text is at most 2^53 in magnitude
// and the value of f's shortest decimal form, so a float64 at the other
// end holds it (1.10 is 1.1: equal values, as central's ListRows answers).
func exactFloat(text string, f float64) bool {
	if math.IsInf(f, 0) || math.IsNaN(f) || math.Abs(f) > 1<<53 {
		return false
	}
	r, ok := new(big.Rat).SetString(text)
	if !ok {
		return false
	}
	// The float's shortest decimal form, as PostgreSQL's float8 -> numeric.
	fr, ok := new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64))
	return ok && fr.Cmp(r) == 0
}
