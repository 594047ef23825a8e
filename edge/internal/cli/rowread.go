package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// The read side of rows: get-row and list-rows, answered by the edge from
// its buffer merged over the site replica (or central).

// cliValue reads a value given on the command line: JSON when it parses
// (42, "42", true, null, ["a"]), else the text itself, so a UUID or a
// name needs no quotes.
func cliValue(s string) *structpb.Value {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err == nil {
		if pv, err := structpb.NewValue(v); err == nil {
			return pv
		}
	}
	return structpb.NewStringValue(s)
}

// tableSchema is the edge's learned schema of table (nil when it knows none).
func (c *command) tableSchema(ctx context.Context, e edgev1.EdgeServiceClient, table string) (*opsv1.TableSchema, error) {
	resp, err := e.GetSchema(ctx, &edgev1.GetSchemaRequest{})
	if err != nil {
		return nil, err
	}
	for _, t := range resp.GetSchema().GetTables() {
		if t.GetName() == table {
			return t, nil
		}
	}
	return nil, nil
}

func (c *command) getRow(ctx context.Context, args []string) error {
	if len(args) != 2 {
		return usageError("get-row takes a table and a key: get-row TABLE KEY (KEY a JSON object of the key columns, or a value for a one-column key)")
	}
	table, keyArg := args[0], args[1]
	e, err := c.edge()
	if err != nil {
		return err
	}
	key := &structpb.Struct{}
	if strings.HasPrefix(strings.TrimSpace(keyArg), "{") {
		if err := key.UnmarshalJSON([]byte(keyArg)); err != nil {
			return usageError("KEY %s: not a JSON object: %v", keyArg, err)
		}
	} else {
		t, err := c.tableSchema(ctx, e, table)
		if err != nil {
			return err
		}
		switch {
		case t == nil:
			return usageError("the edge knows no table %s ('chasqui schema' lists them); give KEY as a JSON object", table)
		case len(t.GetPrimaryKey()) != 1:
			return usageError("%s has a key of %d columns (%s): give KEY as a JSON object", table,
				len(t.GetPrimaryKey()), strings.Join(t.GetPrimaryKey(), ", "))
		}
		key.Fields = map[string]*structpb.Value{t.GetPrimaryKey()[0]: cliValue(keyArg)}
	}
	r, err := e.GetRow(ctx, &edgev1.GetRowRequest{Table: table, Key: key})
	if err != nil {
		return err
	}
	if c.o.json {
		return c.printJSON(r)
	}
	return c.printRows(ctx, e, table, []*edgev1.RowView{r.GetRow()}, r.GetBufferOnly(), "")
}

// whereFlag collects --where COLUMN=VALUE.
type whereFlag struct{ s *structpb.Struct }

func (w *whereFlag) String() string { return "" }

func (w *whereFlag) Set(s string) error {
	col, val, ok := strings.Cut(s, "=")
	if !ok || col == "" {
		return fmt.Errorf("want COLUMN=VALUE, got %q", s)
	}
	if w.s == nil {
		w.s = &structpb.Struct{Fields: map[string]*structpb.Value{}}
	}
	w.s.Fields[col] = cliValue(val)
	return nil
}

func (c *command) listRows(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("list-rows", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var where whereFlag
	fs.Var(&where, "where", "COLUMN=VALUE: only rows equal on it (repeatable; VALUE as JSON, or text)")
	size := fs.Int("page-size", 0, "rows per page (the edge's default 100, at most 1000)")
	token := fs.String("page-token", "", "next_page_token of the previous page")
	var table string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		table, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return usageError("list-rows: %v", err)
	}
	if table == "" && fs.NArg() > 0 {
		table = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return usageError("list-rows takes one table, then flags: list-rows TABLE [--where COLUMN=VALUE]...")
	}
	if table == "" {
		return usageError("list-rows needs a table: list-rows TABLE [--where COLUMN=VALUE]...")
	}
	e, err := c.edge()
	if err != nil {
		return err
	}
	r, err := e.ListRows(ctx, &edgev1.ListRowsRequest{Table: table, Where: where.s, PageSize: int32(*size), PageToken: *token})
	if err != nil {
		return err
	}
	if c.o.json {
		return c.printJSON(r)
	}
	return c.printRows(ctx, e, table, r.GetRows(), r.GetBufferOnly(), r.GetNextPageToken())
}

// printRows prints rows as a table: the schema's columns in their order
// (those no row holds left out), then the source of each row.
func (c *command) printRows(ctx context.Context, e edgev1.EdgeServiceClient, table string, rs []*edgev1.RowView, bufferOnly bool, next string) error {
	held := map[string]bool{}
	for _, r := range rs {
		for col := range r.GetValues().GetFields() {
			held[col] = true
		}
	}
	var cols []string
	if t, err := c.tableSchema(ctx, e, table); err == nil && t != nil {
		for _, col := range t.GetColumns() {
			if held[col.GetName()] {
				cols = append(cols, col.GetName())
				delete(held, col.GetName())
			}
		}
	}
	for _, col := range slices.Sorted(maps.Keys(held)) {
		cols = append(cols, col)
	}
	lines := make([][]string, 0, len(rs))
	for _, r := range rs {
		line := make([]string, 0, len(cols)+1)
		for _, col := range cols {
			v, ok := r.GetValues().GetFields()[col]
			switch {
			case !ok:
				line = append(line, "-") // a row only buffered: a column its writes did not set
			case v.GetStringValue() != "" || v.GetKind() == nil:
				line = append(line, v.GetStringValue())
			default:
				b, err := v.MarshalJSON()
				if err != nil {
					return err
				}
				line = append(line, compactJSON(b))
			}
		}
		lines = append(lines, append(line, strings.TrimPrefix(r.GetSource().String(), "RECORD_SOURCE_")))
	}
	if err := c.table(strings.ToUpper(strings.Join(append(cols, "source"), "\t")), lines); err != nil {
		return err
	}
	if bufferOnly {
		fmt.Fprintln(c.env.Stdout, "(buffer only: neither the site replica nor central could be read; rows only committed are not shown)")
	}
	if next != "" {
		fmt.Fprintln(c.env.Stdout, "next page: --page-token", next)
	}
	return nil
}
