package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// parseRows reads rows in protobuf JSON, one Row or a list of them, as one
// transaction: {"table": "ops.unit", "op": "ROW_OP_INSERT", "values": {...}}.
// ok is false when b is not rows at all.
func parseRows(b []byte) (_ *opsv1.Transaction, ok bool, _ error) {
	var raws []json.RawMessage
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '[' {
		if err := json.Unmarshal(t, &raws); err != nil {
			return nil, true, usageError("rows: %v", err)
		}
		if len(raws) == 0 {
			return nil, true, usageError("rows: the list is empty")
		}
	} else {
		raws = []json.RawMessage{b}
	}
	tx := &opsv1.Transaction{}
	for i, raw := range raws {
		r := &opsv1.Row{}
		if err := protojson.Unmarshal(raw, r); err != nil {
			if len(raws) == 1 {
				return nil, false, nil
			}
			return nil, true, usageError("rows[%d]: not a Row in protobuf JSON: %v", i, err)
		}
		tx.Mutations = append(tx.Mutations, &opsv1.Mutation{Kind: &opsv1.Mutation_Row{Row: r}})
	}
	return tx, true, nil
}

// schemaCmd lists the tables the edge knows, as it learned them from central.
func (c *command) schemaCmd(ctx context.Context, args []string) error {
	if len(args) > 1 {
		return usageError("schema takes at most one table name")
	}
	e, err := c.edge()
	if err != nil {
		return err
	}
	resp, err := e.GetSchema(ctx, &edgev1.GetSchemaRequest{})
	if err != nil {
		return err
	}
	s := resp.GetSchema()
	if len(args) == 1 && s != nil {
		s = proto.CloneOf(s)
		s.Tables = nil
		for _, t := range resp.GetSchema().GetTables() {
			if t.GetName() == args[0] {
				s.Tables = append(s.Tables, t)
			}
		}
		if len(s.Tables) == 0 {
			return status.Errorf(codes.NotFound, "table %s is not in the edge's schema (version %s)", args[0], s.GetVersion())
		}
		resp = &edgev1.GetSchemaResponse{Schema: s, LearnedAt: resp.GetLearnedAt()}
	}
	if c.o.json {
		return c.printJSON(resp)
	}
	if s == nil {
		fmt.Fprintln(c.env.Stdout, "The edge has not learned a schema from central yet: it accepts rows after a shape check,\n"+
			"and central refuses a wrong one (a dead letter with PostgreSQL's reason).")
		return nil
	}
	fmt.Fprintf(c.env.Stdout, "schema version %s, learned %s: %d tables\n", orDash(s.GetVersion()), ts(resp.GetLearnedAt()), len(s.GetTables()))
	for _, t := range s.GetTables() {
		fmt.Fprintf(c.env.Stdout, "\n%s  key (%s)\n", t.GetName(), strings.Join(t.GetPrimaryKey(), ", "))
		if r := t.GetRefusedReason(); r != "" {
			fmt.Fprintf(c.env.Stdout, "  refused: %s\n", r)
		}
		for _, fk := range t.GetForeignKeys() {
			fmt.Fprintf(c.env.Stdout, "  (%s) references %s (%s)\n", strings.Join(fk.GetColumns(), ", "),
				fk.GetReferencesTable(), strings.Join(fk.GetReferencesColumns(), ", "))
		}
		rows := make([][]string, 0, len(t.GetColumns()))
		for _, col := range t.GetColumns() {
			rows = append(rows, []string{"  " + col.GetName(), col.GetType(), columnNotes(t, col)})
		}
		if err := c.table("  COLUMN\tTYPE\tNOTES", rows); err != nil {
			return err
		}
	}
	return nil
}

func columnNotes(t *opsv1.TableSchema, col *opsv1.ColumnSchema) string {
	var n []string
	for _, k := range t.GetPrimaryKey() {
		if k == col.GetName() {
			n = append(n, "key")
		}
	}
	if !col.GetNullable() {
		n = append(n, "not null")
	}
	if col.GetHasDefault() {
		n = append(n, "default")
	}
	if col.GetGenerated() {
		n = append(n, "generated")
	}
	if labels := col.GetEnumLabels(); len(labels) > 0 {
		n = append(n, "one of "+strings.Join(labels, "|"))
	}
	return orDash(strings.Join(n, ", "))
}

// mutationSummary says what a dead letter's transaction writes, for the
// list: "INSERT ops.unit {"id":"..."}" for a lone row.
func mutationSummary(tx *opsv1.Transaction) string {
	ms := tx.GetMutations()
	if len(ms) == 0 {
		return "-"
	}
	s := oneMutation(ms[0])
	if len(ms) > 1 {
		s += fmt.Sprintf(" (+%d more)", len(ms)-1)
	}
	return s
}

func oneMutation(m *opsv1.Mutation) string {
	r := m.GetRow()
	if r == nil {
		return string(m.ProtoReflect().WhichOneof(m.ProtoReflect().Descriptor().Oneofs().ByName("kind")).Name())
	}
	vals, err := protojson.Marshal(r.GetValues())
	if err != nil {
		vals = []byte("?")
	}
	s := strings.TrimPrefix(r.GetOp().String(), "ROW_OP_") + " " + r.GetTable() + " " + compactJSON(vals)
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return s
}

func compactJSON(b []byte) string {
	var out bytes.Buffer
	if json.Compact(&out, b) != nil {
		return string(b)
	}
	return out.String()
}

// printDeadLetter shows a dead letter for a person: the reason, then each
// mutation (rows with table, op and values). --json prints it whole.
func (c *command) printDeadLetter(d *edgev1.DeadLetter) error {
	tx := d.GetTransaction()
	fmt.Fprintf(c.env.Stdout, "transaction  %s (seq %d)\nrejected     %s\nsqlstate     %s\nreason       %s\n",
		tx.GetId(), tx.GetSeq(), ts(d.GetRejectedAt()), orDash(d.GetSqlstate()), d.GetReason())
	for j, m := range tx.GetMutations() {
		r := m.GetRow()
		if r == nil {
			b, err := protojson.Marshal(m)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.env.Stdout, "\nmutations[%d]  %s\n", j, compactJSON(b))
			continue
		}
		fmt.Fprintf(c.env.Stdout, "\nmutations[%d]  %s %s\n", j, strings.TrimPrefix(r.GetOp().String(), "ROW_OP_"), r.GetTable())
		names := make([]string, 0, len(r.GetValues().GetFields()))
		for k := range r.GetValues().GetFields() {
			names = append(names, k)
		}
		sort.Strings(names)
		rows := make([][]string, 0, len(names))
		for _, k := range names {
			b, err := protojson.Marshal(r.GetValues().GetFields()[k])
			if err != nil {
				return err
			}
			rows = append(rows, []string{"  " + k, compactJSON(b)})
		}
		if err := c.table("  COLUMN\tVALUE", rows); err != nil {
			return err
		}
	}
	return nil
}

// edit is one --set or --unset of `deadletters retry`.
type edit struct {
	mutation int // -1: the transaction's only row
	column   string
	value    *structpb.Value // nil: remove the column
}

// edits collects --set [M:]COLUMN=VALUE and --unset [M:]COLUMN.
type edits struct {
	list  []edit
	unset bool
}

func (e *edits) String() string { return "" }

func (e *edits) Set(s string) error {
	ed := edit{mutation: -1}
	target := s
	if !e.unset {
		var val string
		var ok bool
		target, val, ok = strings.Cut(s, "=")
		if !ok {
			return errors.New("want [MUTATION:]COLUMN=VALUE")
		}
		// JSON when it parses (42, true, null, "text", [1,2], {"a":1});
		// otherwise the text itself, so --set name=u1 needs no quotes.
		var v any
		if err := json.Unmarshal([]byte(val), &v); err != nil {
			v = val
		}
		pv, err := structpb.NewValue(v)
		if err != nil {
			return err
		}
		ed.value = pv
	}
	if m, col, ok := strings.Cut(target, ":"); ok {
		n, err := strconv.Atoi(m)
		if err != nil || n < 0 {
			return fmt.Errorf("%q: the mutation index before ':' must be a number from 0", m)
		}
		ed.mutation, target = n, col
	}
	if target == "" {
		return errors.New("the column name is empty")
	}
	ed.column = target
	e.list = append(e.list, ed)
	return nil
}

// unsetFlag shares the list of an edits with --set, so edits apply in order.
type unsetFlag struct{ e *edits }

func (u unsetFlag) String() string { return "" }

func (u unsetFlag) Set(s string) error {
	u.e.unset = true
	defer func() { u.e.unset = false }()
	return u.e.Set(s)
}

// applyEdits returns the dead letter's transaction, ready to retry: the
// edge's own stamps cleared (it stamps the retry anew), each edit applied.
func applyEdits(tx *opsv1.Transaction, es []edit) (*opsv1.Transaction, error) {
	tx = proto.CloneOf(tx)
	tx.EdgeId, tx.Epoch, tx.Seq, tx.AcceptedAt = "", "", 0, nil
	var rowIdx []int
	for j, m := range tx.GetMutations() {
		if m.GetRow() != nil {
			rowIdx = append(rowIdx, j)
		}
	}
	for _, ed := range es {
		j := ed.mutation
		if j < 0 {
			if len(rowIdx) != 1 {
				return nil, usageError("the transaction has %d row mutations: name one as MUTATION:%s", len(rowIdx), ed.column)
			}
			j = rowIdx[0]
		}
		if j >= len(tx.GetMutations()) || tx.GetMutations()[j].GetRow() == nil {
			return nil, usageError("mutations[%d] is not a row of this transaction", j)
		}
		r := tx.GetMutations()[j].GetRow()
		if r.Values == nil {
			r.Values = &structpb.Struct{}
		}
		if r.Values.Fields == nil {
			r.Values.Fields = map[string]*structpb.Value{}
		}
		if ed.value == nil {
			if _, ok := r.Values.Fields[ed.column]; !ok {
				return nil, usageError("mutations[%d] has no column %q to unset", j, ed.column)
			}
			delete(r.Values.Fields, ed.column)
			continue
		}
		r.Values.Fields[ed.column] = ed.value
	}
	return tx, nil
}

// retryFlags are the flags of `deadletters retry`.
func retryFlags(fs *flag.FlagSet) (file *string, es *edits) {
	es = &edits{}
	file = fs.String("f", "", "edited transaction in protobuf JSON (same id); default: retry as it was")
	fs.Var(es, "set", "set a row's column before retrying: [MUTATION:]COLUMN=VALUE, VALUE as JSON or plain text (repeatable)")
	fs.Var(unsetFlag{es}, "unset", "remove a column from a row before retrying: [MUTATION:]COLUMN (repeatable)")
	return file, es
}
