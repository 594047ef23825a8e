// Package rows holds what edge and central agree on about rows of any
// table (opsv1.Row): how a table is named, and how a row's primary key is
// written as one string. The edge groups a row's buffered writes under that
// string; two writes of the same row must give the same string whatever
// shape each caller gave the key's values (1 or "1", 1.0 or 1).
package rows

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"
)

// MaxIdentifierLen is PostgreSQL's NAMEDATALEN-1: longer names are
// truncated by PostgreSQL, so two different names could meet.
const MaxIdentifierLen = 63

// Table is a schema-qualified table name.
type Table struct {
	Schema string
	Name   string
}

// String is the name as Row.table spells it: "schema.name".
func (t Table) String() string { return t.Schema + "." + t.Name }

// ParseTable splits "schema.name". Both parts must be plain identifiers as
// PostgreSQL folds them (lower case letters, digits, _ and $, not starting
// with a digit or $): a name that would need quoting to mean what it says
// is refused, so that the allow-list, the catalog and the caller cannot
// disagree on which table is meant.
func ParseTable(s string) (Table, error) {
	schema, name, ok := strings.Cut(s, ".")
	if !ok {
		return Table{}, fmt.Errorf("table %q: want schema.table", s)
	}
	if err := CheckIdentifier(schema); err != nil {
		return Table{}, fmt.Errorf("table %q: schema: %w", s, err)
	}
	if err := CheckIdentifier(name); err != nil {
		return Table{}, fmt.Errorf("table %q: %w", s, err)
	}
	return Table{Schema: schema, Name: name}, nil
}

// CheckIdentifier refuses a table, schema or column name that is not a
// plain lower-case identifier of at most MaxIdentifierLen bytes.
func CheckIdentifier(s string) error {
	if s == "" {
		return fmt.Errorf("empty name")
	}
	if len(s) > MaxIdentifierLen {
		return fmt.Errorf("name %.20q… is longer than %d bytes", s, MaxIdentifierLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("name %q is not valid UTF-8", s)
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r == '_':
		case (r >= '0' && r <= '9') || r == '$':
			if i == 0 {
				return fmt.Errorf("name %q starts with %q", s, r)
			}
		default:
			return fmt.Errorf("name %q holds %q: only a-z, 0-9, _ and $ are allowed", s, r)
		}
	}
	return nil
}

// Key writes the values of the key columns (in key order) as one string:
// a JSON array of their canonical forms. A missing or null key column is
// an error naming it.
func Key(columns []string, values *structpb.Struct) (string, error) {
	parts := make([]any, len(columns))
	for i, c := range columns {
		v, ok := values.GetFields()[c]
		if !ok {
			return "", fmt.Errorf("key column %q is missing", c)
		}
		p, err := canonical(v)
		if err != nil {
			return "", fmt.Errorf("key column %q: %w", c, err)
		}
		parts[i] = p
	}
	b, err := json.Marshal(parts)
	if err != nil {
		return "", fmt.Errorf("key: %w", err)
	}
	return string(b), nil
}

// canonical is a key value's comparable form: an integral number and the
// string of its decimal digits are the same key (big integers travel as
// strings), so both become the string.
func canonical(v *structpb.Value) (any, error) {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return k.StringValue, nil
	case *structpb.Value_NumberValue:
		f := k.NumberValue
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("not a finite number")
		}
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return strconv.FormatInt(int64(f), 10), nil
		}
		return strconv.FormatFloat(f, 'g', -1, 64), nil
	case *structpb.Value_BoolValue:
		return strconv.FormatBool(k.BoolValue), nil
	case *structpb.Value_NullValue, nil:
		return nil, fmt.Errorf("is null")
	default:
		return nil, fmt.Errorf("is a list or object, not a key value")
	}
}
