package store

import (
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/rows"
)

// Bookkeeping statements; the data itself goes through rowRun.
const (
	// ORDER BY makes the identity column (apply_order) follow seq.
	insertBookkeeping = `
INSERT INTO chasqui.applied_transactions (edge_id, seq, tx_id, epoch, outcome, reason, sqlstate)
SELECT $1, u.seq, u.tx_id, $2, u.outcome, u.reason, u.sqlstate
FROM unnest($3::bigint[], $4::uuid[], $5::text[], $6::text[], $7::text[]) AS u(seq, tx_id, outcome, reason, sqlstate)
ORDER BY u.seq`

	updateCursor = `UPDATE chasqui.edge_cursors SET last_seq = $2, epoch = $3, updated_at = now() WHERE edge_id = $1`
)

// statement is one queued query.
type statement struct {
	sql  string
	args []any
}

// dataStatements turns the mutations of plan, in sequence order, into
// set-based statements on the one apply path: every mutation is a row
// (the built-in records rows of chasqui's tables), and a run of
// consecutive rows of one table, op and column set is one statement. A
// run is cut where a key repeats, since UPDATE ... FROM and ON CONFLICT DO
// UPDATE apply only one source row per target row: the repeat goes to the
// next statement, so order holds as constraints and triggers see it.
func dataStatements(edgeID string, plan []*planned) []statement {
	var stmts []statement
	var rr *rowRun
	for _, p := range plan {
		for _, m := range p.tx.GetMutations() {
			var sig, key string
			var start func() *rowRun
			var values func([]byte) []byte
			if r := m.GetRow(); r != nil {
				t := p.snap.Table(r.GetTable())
				var cols []string
				if rr.sameShape(t, r) {
					// The common case, a run of like rows: building
					// and sorting each row's signature was a quarter of
					// central's CPU per generic row.
					sig, cols = rr.sig, rr.cols
				} else {
					sig, cols = rowSig(r)
				}
				key, _ = rows.Key(t.Key, r.GetValues()) // checkRows refused a row without its key
				start = func() *rowRun { return newRowRun(t, r.GetOp(), cols, sig) }
				values = func(b []byte) []byte { return appendStruct(b, r.GetValues()) }
			} else {
				var bi builtin
				bi, key, values = builtinRow(m, p.id, edgeID)
				sig, start = bi.sig, bi.start
			}
			if !rr.fits(sig, key) {
				if rr != nil {
					stmts = append(stmts, rr.statement())
				}
				rr = start()
			}
			rr.add(key, values)
		}
	}
	if rr != nil {
		stmts = append(stmts, rr.statement())
	}
	return stmts
}

func queue(b *pgx.Batch, stmts []statement) {
	for _, s := range stmts {
		b.Queue(s.sql, s.args...)
	}
}

// pgUUID: pgx encodes pgtype.UUID directly, while uuid.UUID goes through
// driver.Valuer and text, several times slower for large arrays.
func pgUUID(u uuid.UUID) pgtype.UUID { return pgtype.UUID{Bytes: u, Valid: true} }

// parseUUID parses an id the api layer already validated.
func parseUUID(s string) uuid.UUID {
	u, _ := uuid.Parse(s)
	return u
}

func statusText(s opsv1.ObservationStatus) string {
	return strings.TrimPrefix(s.String(), "OBSERVATION_STATUS_")
}
