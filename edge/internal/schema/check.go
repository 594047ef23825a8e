package schema

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/validate"
)

// maxViolations keeps one error (and its BadRequest detail) small, as
// internal/validate does.
const maxViolations = 20

// CheckSubmit checks every row of txs against the learned schema (nothing
// when none was learned). Run it after validate.ValidateSubmit, which
// checks each row's shape (plain identifiers, an op, values present).
// Fields are named "transactions[i].mutations[j].row...". The error is a
// *validate.Error (validate.Status answers INVALID_ARGUMENT).
func (c *Cache) CheckSubmit(txs []*opsv1.Transaction) error {
	return c.CheckSubmitSkipping(txs, nil)
}

// CheckSubmitSkipping is CheckSubmit passing over the transactions skip
// says yes to (nil: none).
func (c *Cache) CheckSubmitSkipping(txs []*opsv1.Transaction, skip func(*opsv1.Transaction) bool) error {
	sn := c.cur.Load()
	if sn == nil {
		return nil
	}
	ck := checker{inSubmit: true}
	for i, tx := range txs {
		if skip != nil && skip(tx) {
			continue
		}
		for j, m := range tx.GetMutations() {
			if r := m.GetRow(); r != nil && len(ck.vs) < maxViolations {
				ck.tx, ck.mut = i, j
				sn.check(&ck, r)
			}
		}
	}
	sn.afterCheck(c, &ck)
	return ck.err()
}

// Check checks one row against the learned schema (nothing when none was
// learned). Fields are named relative to the row ("table", "values.size").
func (c *Cache) Check(r *opsv1.Row) error {
	sn := c.cur.Load()
	if sn == nil {
		return nil
	}
	var ck checker
	sn.check(&ck, r)
	sn.afterCheck(c, &ck)
	return ck.err()
}

// afterCheck asks for the schema again when the check refused a name it
// does not know.
func (sn *snapshot) afterCheck(c *Cache, ck *checker) {
	if !ck.unknown {
		return
	}
	if f := c.onUnknown.Load(); f != nil {
		(*f)()
	}
}

type checker struct {
	// inSubmit names fields from the request down
	// ("transactions[tx].mutations[mut].row."), else from the row.
	inSubmit bool
	tx, mut  int
	vs       []validate.Violation
	// unknown: a table or column the schema does not hold was refused.
	unknown bool
}

func (c *checker) add(field, format string, args ...any) {
	if len(c.vs) >= maxViolations {
		return
	}
	if c.inSubmit {
		// Built here, not per row: most rows are fine.
		field = "transactions[" + strconv.Itoa(c.tx) + "].mutations[" + strconv.Itoa(c.mut) + "].row." + field
	}
	c.vs = append(c.vs, validate.Violation{Field: field, Description: fmt.Sprintf(format, args...)})
}

func (c *checker) err() error {
	if len(c.vs) == 0 {
		return nil
	}
	return &validate.Error{Violations: c.vs}
}

func (sn *snapshot) check(ck *checker, r *opsv1.Row) {
	t, ok := sn.tables[r.GetTable()]
	if !ok {
		ck.unknown = true
		ck.add("table", "%q is not a table central allows this edge to write (schema version %s; `chasqui schema` lists them)",
			clip(r.GetTable()), clip(sn.schema.GetVersion()))
		return
	}
	if reason := t.GetRefusedReason(); reason != "" {
		ck.add("table", "%s cannot take rows: %s", t.GetName(), reason)
		return
	}
	fields := r.GetValues().GetFields()
	op := r.GetOp()
	keys := 0
	for _, k := range t.GetPrimaryKey() {
		v, ok := fields[k]
		switch {
		case !ok:
			ck.add("values."+k, "is required: part of %s's primary key", t.GetName())
		case isNull(v):
			keys++
			ck.add("values."+k, "must not be null: part of %s's primary key", t.GetName())
		default:
			keys++
		}
	}
	if op == opsv1.RowOp_ROW_OP_INSERT || op == opsv1.RowOp_ROW_OP_UPSERT {
		for _, name := range t.required {
			if _, ok := fields[name]; !ok && !t.key[name] {
				ck.add("values."+name, "is required: NOT NULL without a default (an %s carries the whole row)", opName(op))
			}
		}
	}
	// Map order first (no allocation); when that finds something, again in
	// name order, so that the first violation named does not depend on
	// map order.
	n := len(ck.vs)
	for name, v := range fields {
		checkColumn(ck, t, op, name, v)
	}
	if len(ck.vs) > n {
		ck.vs = ck.vs[:n]
		for _, name := range sortedKeys(fields) {
			checkColumn(ck, t, op, name, fields[name])
		}
	}
	if op == opsv1.RowOp_ROW_OP_UPDATE && len(fields) == keys {
		ck.add("values", "an UPDATE needs at least one column besides the primary key (%s)", strings.Join(t.GetPrimaryKey(), ", "))
	}
}

func checkColumn(ck *checker, t *Table, op opsv1.RowOp, name string, v *structpb.Value) {
	col, ok := t.columns[name]
	if !ok {
		ck.unknown = true
		ck.add("values."+clip(name), "%s has no column %q", t.GetName(), clip(name))
		return
	}
	if op == opsv1.RowOp_ROW_OP_DELETE && !t.key[name] {
		ck.add("values."+name, "a DELETE carries the primary key only (%s)", strings.Join(t.GetPrimaryKey(), ", "))
		return
	}
	if col.GetGenerated() {
		ck.add("values."+name, "is a generated column: PostgreSQL computes it, a row must not set it")
		return
	}
	if isNull(v) {
		if !col.GetNullable() && !t.key[name] {
			ck.add("values."+name, "must not be null: the column is NOT NULL")
		}
		return
	}
	if desc := checkValue(col, v); desc != "" {
		ck.add("values."+name, "%s", desc)
	}
}

// sortedKeys: most rows have a handful of columns, so sorting costs little
// next to the violations' stability it buys.
func sortedKeys(m map[string]*structpb.Value) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func opName(op opsv1.RowOp) string { return strings.TrimPrefix(op.String(), "ROW_OP_") }

func isNull(v *structpb.Value) bool {
	_, null := v.GetKind().(*structpb.Value_NullValue)
	return null || v.GetKind() == nil
}

// checkValue says what is wrong with a non-null value of col, "" if
// nothing. It checks the shape ValueKind promises; PostgreSQL's input
// function of the column has the last word (a string "2026-13-45" for a
// date passes here and is refused by central).
func checkValue(col *opsv1.ColumnSchema, v *structpb.Value) string {
	if !col.GetArray() {
		return checkScalar(col, v)
	}
	l, ok := v.GetKind().(*structpb.Value_ListValue)
	if !ok {
		return fmt.Sprintf("want a list (%s), got %s", col.GetType(), kindOf(v))
	}
	return checkElements(col, l.ListValue, 0)
}

// checkElements checks an array's elements; nested lists are the rows of a
// multi-dimensional array, and elements may be null.
func checkElements(col *opsv1.ColumnSchema, l *structpb.ListValue, depth int) string {
	if depth > validate.MaxStructDepth {
		return fmt.Sprintf("array nested deeper than %d levels", validate.MaxStructDepth)
	}
	for i, e := range l.GetValues() {
		var desc string
		switch k := e.GetKind().(type) {
		case *structpb.Value_NullValue:
			continue
		case *structpb.Value_ListValue:
			if col.GetKind() == opsv1.ValueKind_VALUE_KIND_JSON {
				continue
			}
			desc = checkElements(col, k.ListValue, depth+1)
		default:
			desc = checkScalar(col, e)
		}
		if desc != "" {
			return fmt.Sprintf("element %d: %s", i, desc)
		}
	}
	return ""
}

func checkScalar(col *opsv1.ColumnSchema, v *structpb.Value) string {
	typ := col.GetType()
	if col.GetArray() {
		typ = strings.TrimSuffix(typ, "[]")
	}
	switch col.GetKind() {
	case opsv1.ValueKind_VALUE_KIND_STRING:
		if _, ok := v.GetKind().(*structpb.Value_StringValue); !ok {
			return fmt.Sprintf("want a string (%s), got %s", typ, kindOf(v))
		}
	case opsv1.ValueKind_VALUE_KIND_INTEGER:
		switch k := v.GetKind().(type) {
		case *structpb.Value_NumberValue:
			if f := k.NumberValue; f != math.Trunc(f) || math.IsInf(f, 0) {
				return fmt.Sprintf("want an integer (%s), got %v", typ, f)
			}
		case *structpb.Value_StringValue:
			if !isDigits(k.StringValue) {
				return fmt.Sprintf("want an integer (%s): a number or a string of decimal digits, got %q", typ, clip(k.StringValue))
			}
		default:
			return fmt.Sprintf("want an integer (%s), got %s", typ, kindOf(v))
		}
	case opsv1.ValueKind_VALUE_KIND_NUMBER:
		switch k := v.GetKind().(type) {
		case *structpb.Value_NumberValue:
		case *structpb.Value_StringValue:
			if !isNumeric(k.StringValue) {
				return fmt.Sprintf("want a number (%s): a number or a string holding one, got %q", typ, clip(k.StringValue))
			}
		default:
			return fmt.Sprintf("want a number (%s), got %s", typ, kindOf(v))
		}
	case opsv1.ValueKind_VALUE_KIND_BOOL:
		if _, ok := v.GetKind().(*structpb.Value_BoolValue); !ok {
			return fmt.Sprintf("want true or false (%s), got %s", typ, kindOf(v))
		}
	case opsv1.ValueKind_VALUE_KIND_JSON:
		// Any JSON value; validate checked it is storable.
	case opsv1.ValueKind_VALUE_KIND_BYTES:
		s, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok {
			return fmt.Sprintf("want a base64 string (%s), got %s", typ, kindOf(v))
		}
		if _, err := base64.StdEncoding.DecodeString(s.StringValue); err != nil {
			return fmt.Sprintf("want standard base64 (%s): %v", typ, err)
		}
	case opsv1.ValueKind_VALUE_KIND_ENUM:
		s, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok {
			return fmt.Sprintf("want one of the labels of %s, got %s", typ, kindOf(v))
		}
		if !slices.Contains(col.GetEnumLabels(), s.StringValue) {
			return fmt.Sprintf("%q is not a label of %s (%s)", clip(s.StringValue), typ, clip(strings.Join(col.GetEnumLabels(), ", ")))
		}
	default:
		// A kind this edge does not know (a newer central): PostgreSQL checks it.
	}
	return ""
}

// isDigits: an optional sign and decimal digits, as int8's input takes them.
func isDigits(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isNumeric: a decimal number with an optional exponent (beyond float64's
// range too: numeric is exact), or a special value (NaN, Infinity).
func isNumeric(s string) bool {
	if strings.ContainsAny(s, "xXpP_") { // hex floats and digit separators: PostgreSQL takes neither
		return false
	}
	_, err := strconv.ParseFloat(s, 64)
	var ne *strconv.NumError
	return err == nil || errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange)
}

func kindOf(v *structpb.Value) string {
	switch v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return "a string"
	case *structpb.Value_NumberValue:
		return "a number"
	case *structpb.Value_BoolValue:
		return "a bool"
	case *structpb.Value_ListValue:
		return "a list"
	case *structpb.Value_StructValue:
		return "an object"
	default:
		return "null"
	}
}

// clip shortens a client-supplied string quoted in a message.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "..."
}
