package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"

	"github.com/chasqui/chasqui/central/internal/catalog"
	"github.com/chasqui/chasqui/internal/rows"
)

// SQLSTATEs answered for rows central refuses before PostgreSQL sees
// them, PostgreSQL's own codes for the same refusals.
const (
	sqlstateUndefinedTable  = "42P01"
	sqlstateUndefinedColumn = "42703"
	sqlstateNotAllowed      = "42501" // insufficient_privilege
	sqlstateNotSupported    = "0A000" // feature_not_supported
	sqlstateKeyMissing      = "23502" // not_null_violation
	sqlstateGenerated       = "428C9" // generated_always
)

// rowRejection is why central refuses a transaction's rows before
// applying anything.
type rowRejection struct{ reason, code string }

// checkRows finds, per transaction of req, the first row central refuses:
// a table not allowed, unknown or refused, an unknown or generated column,
// a missing key column. A name it does not know makes it re-read the
// catalog (rate-limited) first: a migration may have added it.
func (s *Store) checkRows(ctx context.Context, req *centralv1.CommitRequest) (*catalog.Snapshot, map[int]rowRejection, error) {
	if req.GetWithdrawReason() != "" || !hasRows(req) {
		return nil, nil, nil
	}
	if s.opts.Catalog == nil {
		rej := map[int]rowRejection{}
		for i, tx := range req.GetTransactions() {
			for _, m := range tx.GetMutations() {
				if r := m.GetRow(); r != nil {
					rej[i] = rowRejection{fmt.Sprintf("table %s is not allowed: central allows no tables (--allow-tables is empty)", r.GetTable()), sqlstateNotAllowed}
					break
				}
			}
		}
		return nil, rej, nil
	}
	snap, err := s.opts.Catalog.Current(ctx)
	if err != nil {
		return nil, nil, translate("read catalog", err)
	}
	allows := func(t rows.Table) bool { return s.opts.Catalog.AllowsEdge(req.GetEdgeId(), t) }
	rej, unknown := checkAgainst(snap, allows, req)
	if unknown {
		if snap, err = s.opts.Catalog.Refresh(ctx); err != nil {
			return nil, nil, translate("read catalog", err)
		}
		rej, _ = checkAgainst(snap, allows, req)
	}
	return snap, rej, nil
}

func hasRows(req *centralv1.CommitRequest) bool {
	for _, tx := range req.GetTransactions() {
		for _, m := range tx.GetMutations() {
			if m.GetRow() != nil {
				return true
			}
		}
	}
	return false
}

// checkAgainst checks req's rows against snap; unknown reports a name the
// catalog may have learnt since.
func checkAgainst(snap *catalog.Snapshot, allows func(rows.Table) bool, req *centralv1.CommitRequest) (map[int]rowRejection, bool) {
	rej := map[int]rowRejection{}
	unknown := false
	for i, tx := range req.GetTransactions() {
		for j, m := range tx.GetMutations() {
			r := m.GetRow()
			if r == nil {
				continue
			}
			why, code, unk := checkRow(snap, allows, r)
			unknown = unknown || unk
			if why != "" {
				rej[i] = rowRejection{fmt.Sprintf("mutations[%d].row: %s", j, why), code}
				break
			}
		}
	}
	return rej, unknown
}

func checkRow(snap *catalog.Snapshot, allows func(rows.Table) bool, r *opsv1.Row) (why, code string, unknown bool) {
	name, err := rows.ParseTable(r.GetTable())
	if err != nil {
		// Validation refuses it first; never reached.
		return err.Error(), sqlstateNotAllowed, false
	}
	if !allows(name) {
		return fmt.Sprintf("table %s is not allowed for this edge (central's allow-list)", name), sqlstateNotAllowed, false
	}
	t := snap.Table(name.String())
	if t == nil {
		return fmt.Sprintf("table %s does not exist", name), sqlstateUndefinedTable, true
	}
	if t.Refused != "" {
		return fmt.Sprintf("table %s cannot take rows: %s", name, t.Refused), sqlstateNotSupported, false
	}
	for c := range r.GetValues().GetFields() {
		col := t.Columns[c]
		if col == nil {
			return fmt.Sprintf("column %q of table %s does not exist", c, name), sqlstateUndefinedColumn, true
		}
		if col.Generated && !slices.Contains(t.Key, c) {
			return fmt.Sprintf("column %q of table %s is generated: rows must not set it", c, name), sqlstateGenerated, false
		}
	}
	if _, err := rows.Key(t.Key, r.GetValues()); err != nil {
		return fmt.Sprintf("table %s: %s", name, err), sqlstateKeyMissing, false
	}
	if r.GetOp() == opsv1.RowOp_ROW_OP_UPDATE && len(r.GetValues().GetFields()) == len(t.Key) {
		return fmt.Sprintf("table %s: an UPDATE must set at least one column beside the key", name), sqlstateKeyMissing, false
	}
	return "", "", false
}

// rowRun is a run of consecutive row mutations of one table, op and
// column set: one statement. The built-in records run as rows of
// chasqui's tables too, with a few expressions of their own (overrides).
type rowRun struct {
	table *catalog.Table
	// what names the table in require_keys' message.
	what string
	op   opsv1.RowOp
	cols []string // sorted
	sig  string   // table, op and columns: the run's identity
	keys []string // key of each row, in order, as the message names it
	seen map[string]bool
	json []byte // the rows' values as one JSON array
	// sel overrides a column's value in INSERT (an expression over r);
	// set overrides a column's SET in UPDATE (over dst and src); extraSet
	// are SET items beside the columns.
	sel, set map[string]string
	extraSet []string
}

// rowSig is a row's run identity and its sorted columns.
func rowSig(r *opsv1.Row) (string, []string) {
	cols := make([]string, 0, len(r.GetValues().GetFields()))
	for c := range r.GetValues().GetFields() {
		cols = append(cols, c)
	}
	slices.Sort(cols)
	return r.GetTable() + "\x00" + r.GetOp().String() + "\x00" + strings.Join(cols, ","), cols
}

func newRowRun(t *catalog.Table, op opsv1.RowOp, cols []string, sig string) *rowRun {
	return &rowRun{table: t, what: t.Name.String(), op: op, cols: cols, sig: sig, seen: map[string]bool{}, json: []byte{'['}}
}

// sameShape tells whether r has the run's table, op and columns, the
// identity rowSig spells, without building it.
func (b *rowRun) sameShape(t *catalog.Table, r *opsv1.Row) bool {
	if b == nil || b.table != t || b.op != r.GetOp() || len(r.GetValues().GetFields()) != len(b.cols) {
		return false
	}
	for _, c := range b.cols {
		if _, ok := r.GetValues().GetFields()[c]; !ok {
			return false
		}
	}
	return true
}

// fits tells whether a row can join the run: same table, op and columns,
// and a key not in it yet (ON CONFLICT DO UPDATE and UPDATE ... FROM
// apply only one source row per target row; a repeat goes to the next
// statement, after this one).
func (b *rowRun) fits(sig, key string) bool {
	return b != nil && b.sig == sig && !b.seen[key]
}

// add appends a row whose values appendValues writes as a JSON object.
func (b *rowRun) add(key string, appendValues func([]byte) []byte) {
	b.keys = append(b.keys, key)
	b.seen[key] = true
	if len(b.json) > 1 {
		b.json = append(b.json, ',')
	}
	b.json = appendValues(b.json)
}

// statement builds the run's SQL. PostgreSQL converts every value with
// the column's own input function through jsonb_populate_record(set);
// only bytea, which travels as base64, is decoded explicitly. Identifiers
// come from the catalog and are quoted; values are only parameters. The
// ordinal is aliased "Ord": upper case, so no column a row names (plain
// lower-case identifiers) meets it.
func (b *rowRun) statement() statement {
	tbl := pgx.Identifier{b.table.Name.Schema, b.table.Name.Name}.Sanitize()
	s := &rowSQL{run: b, tbl: tbl, args: []any{string(append(b.json, ']'))}}
	s.selectList()
	var sql string
	switch b.op {
	case opsv1.RowOp_ROW_OP_INSERT, opsv1.RowOp_ROW_OP_UPSERT:
		sql = s.insert()
	case opsv1.RowOp_ROW_OP_UPDATE:
		sql = s.update()
	case opsv1.RowOp_ROW_OP_DELETE:
		sql = s.delete()
	}
	return statement{sql, s.args}
}

// rowSQL builds the statement of one run: its parameters ($1 is the run's
// rows as a JSON array), the quoted columns and what selects each.
type rowSQL struct {
	run    *rowRun
	tbl    string
	args   []any
	quoted []string // the run's columns, quoted
	sel    []string // the select-list item of each column
	bytea  []string // columns decoded from base64 in SQL
}

func (s *rowSQL) param(v any) string {
	s.args = append(s.args, v)
	return "$" + strconv.Itoa(len(s.args))
}

func (s *rowSQL) selectList() {
	b := s.run
	s.sel = make([]string, len(b.cols))
	s.quoted = make([]string, len(b.cols))
	for i, c := range b.cols {
		s.quoted[i] = pgx.Identifier{c}.Sanitize()
		switch col := b.table.Columns[c]; {
		case b.sel[c] != "":
			s.sel[i] = b.sel[c] + " AS " + s.quoted[i]
		case col != nil && col.Bytea:
			s.bytea = append(s.bytea, c)
			s.sel[i] = "decode(e.v->>" + quoteLiteral(c) + ", 'base64') AS " + s.quoted[i]
		default:
			s.sel[i] = "r." + s.quoted[i]
		}
	}
}

// source is the run's rows, numbered in order (e.n), each populated as a
// row of the table so that every column's input function parses it.
func (s *rowSQL) source() string {
	src := "jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(v, n) CROSS JOIN LATERAL jsonb_populate_record(NULL::" + s.tbl + ", e.v"
	if len(s.bytea) > 0 {
		return src + " - " + s.param(s.bytea) + "::text[]) AS r"
	}
	return src + ") AS r"
}

func (s *rowSQL) insert() string {
	b := s.run
	var sql string
	if len(s.bytea) == 0 {
		// The common case in one function call: PostgreSQL's
		// recordset returns the array's rows in array order, and a
		// plain INSERT ... SELECT from it inserts them in that order.
		sql = "INSERT INTO " + s.tbl + " (" + strings.Join(s.quoted, ", ") + ") SELECT " + strings.Join(s.sel, ", ") +
			" FROM jsonb_populate_recordset(NULL::" + s.tbl + ", $1::jsonb) AS r"
	} else {
		sql = "INSERT INTO " + s.tbl + " (" + strings.Join(s.quoted, ", ") + ") SELECT " + strings.Join(s.sel, ", ") +
			" FROM " + s.source() + " ORDER BY e.n"
	}
	if b.op != opsv1.RowOp_ROW_OP_UPSERT {
		return sql
	}
	var keyQ, set []string
	for _, k := range b.table.Key {
		keyQ = append(keyQ, pgx.Identifier{k}.Sanitize())
	}
	for i, c := range b.cols {
		if !slices.Contains(b.table.Key, c) {
			set = append(set, s.quoted[i]+" = EXCLUDED."+s.quoted[i])
		}
	}
	sql += " ON CONFLICT (" + strings.Join(keyQ, ", ") + ")"
	if len(set) == 0 {
		return sql + " DO NOTHING"
	}
	return sql + " DO UPDATE SET " + strings.Join(set, ", ")
}

func (s *rowSQL) update() string {
	b := s.run
	var set []string
	for i, c := range b.cols {
		switch {
		case b.set[c] != "":
			set = append(set, s.quoted[i]+" = "+b.set[c])
		case !slices.Contains(b.table.Key, c):
			set = append(set, s.quoted[i]+" = src."+s.quoted[i])
		}
	}
	set = append(set, b.extraSet...)
	return "WITH src AS (SELECT e.n AS \"Ord\", " + strings.Join(s.sel, ", ") + " FROM " + s.source() + "), " +
		"done AS (UPDATE " + s.tbl + " AS dst SET " + strings.Join(set, ", ") + " FROM src WHERE " +
		s.keyEq() + " RETURNING src.\"Ord\") " + s.requireKeys()
}

func (s *rowSQL) delete() string {
	return "WITH src AS (SELECT e.n AS \"Ord\", " + strings.Join(s.sel, ", ") + " FROM " + s.source() + "), " +
		"done AS (DELETE FROM " + s.tbl + " AS dst USING src WHERE " + s.keyEq() +
		" RETURNING src.\"Ord\") " + s.requireKeys()
}

func (s *rowSQL) keyEq() string {
	var keyEq []string
	for _, k := range s.run.table.Key {
		q := pgx.Identifier{k}.Sanitize()
		keyEq = append(keyEq, "dst."+q+" = src."+q)
	}
	return strings.Join(keyEq, " AND ")
}

// requireKeys fails the statement (a data rejection) when a row it names
// was not there to update or delete.
func (s *rowSQL) requireKeys() string {
	return "SELECT chasqui.require_keys(" + s.param(s.run.what) + ", " + s.param(s.run.keys) + "::text[], ARRAY(SELECT \"Ord\" FROM done))"
}

// quoteLiteral quotes s as an SQL string literal (standard conforming
// strings, PostgreSQL's default since 9.1). Only catalog column names
// reach it.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
