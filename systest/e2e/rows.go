package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/structpb"

	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/pgtest"
)

// Every stack's database holds, beside central's own schema, the user's
// operations database `make run` creates (examples/ops-schema.sql), and
// central is told it may write `ops.*`. The history check needs to see,
// inside PostgreSQL, which transaction wrote each row and in which order
// the rows were written: rowLogSQL gives both tables an e2e_tx column and
// a trigger that appends every row written to e2e.row_log, numbered in the
// order PostgreSQL wrote them (as any trigger of the user's could observe
// it).
const (
	// OpsAllow is the allow-list central gets: the ops schema.
	OpsAllow = "ops.*"
	// UnitTable and PackageTable are the two tables of the ops schema.
	UnitTable    = "ops.observation_unit"
	PackageTable = "ops.raw_data_package"
)

const rowLogSQL = `
ALTER TABLE ops.observation_unit ADD COLUMN e2e_tx uuid;
ALTER TABLE ops.raw_data_package ADD COLUMN e2e_tx uuid;
CREATE SCHEMA e2e;
CREATE TABLE e2e.row_log (
    n      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tbl    text NOT NULL,
    op     text NOT NULL,
    id     uuid NOT NULL,
    tx_id  uuid
);
CREATE FUNCTION e2e.log_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO e2e.row_log (tbl, op, id, tx_id) VALUES (TG_TABLE_NAME, TG_OP, OLD.id, NULL);
        RETURN OLD;
    END IF;
    INSERT INTO e2e.row_log (tbl, op, id, tx_id) VALUES (TG_TABLE_NAME, TG_OP, NEW.id, NEW.e2e_tx);
    RETURN NEW;
END
$$;
CREATE TRIGGER e2e_log AFTER INSERT OR UPDATE OR DELETE ON ops.observation_unit
    FOR EACH ROW EXECUTE FUNCTION e2e.log_row();
CREATE TRIGGER e2e_log AFTER INSERT OR UPDATE OR DELETE ON ops.raw_data_package
    FOR EACH ROW EXECUTE FUNCTION e2e.log_row();
`

// opsDB is the template of the shared cluster's databases: the ops schema
// and the row log; central runs its own migrations at start.
var opsDB = pgtest.Template{Name: "e2e_ops", Migrate: ApplyOpsSchema}

// ApplyOpsSchema applies examples/ops-schema.sql and the row log to the
// database at url.
func ApplyOpsSchema(ctx context.Context, url string) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	sql, err := os.ReadFile(filepath.Join(root, "examples", "ops-schema.sql"))
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, string(sql)); err != nil {
		return fmt.Errorf("examples/ops-schema.sql: %w", err)
	}
	if _, err := conn.Exec(ctx, rowLogSQL); err != nil {
		return fmt.Errorf("e2e row log: %w", err)
	}
	return nil
}

// repoRoot is the directory holding the central module.
func repoRoot() (string, error) {
	d, err := moduleDir("central")
	if err != nil {
		return "", err
	}
	return filepath.Dir(d), nil
}

// RowMutation is a mutation writing one row of table.
func RowMutation(table string, op opsv1.RowOp, values map[string]any) *opsv1.Mutation {
	v, err := structpb.NewStruct(values)
	if err != nil {
		panic(fmt.Sprintf("row values %v: %v", values, err)) // the test's own literal
	}
	return &opsv1.Mutation{Kind: &opsv1.Mutation_Row{Row: &opsv1.Row{Table: table, Op: op, Values: v}}}
}

// NewUnit is an INSERT of a RUNNING observation unit written by txID.
func NewUnit(txID, unitID, name string) *opsv1.Mutation {
	return RowMutation(UnitTable, opsv1.RowOp_ROW_OP_INSERT, map[string]any{
		"id": unitID, "name": name, "instrument": "E2E", "status": "RUNNING",
		"started_at": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano),
		"pwv_mm":     "0.420", "tags": []any{"e2e", "science"}, "parameters": map[string]any{"writer": name},
		"e2e_tx": txID,
	})
}

// NewPackage is an INSERT of a raw data package of unitID written by txID.
func NewPackage(txID, pkgID, unitID string) *opsv1.Mutation {
	return RowMutation(PackageTable, opsv1.RowOp_ROW_OP_INSERT, map[string]any{
		"id": pkgID, "unit_id": unitID, "path": "/data/e2e/" + pkgID + ".fits",
		"size_bytes": "9007199254740993", "checksum": "sha256:9f86d081884c7d65", "metadata": map[string]any{"scans": 1},
		"e2e_tx": txID,
	})
}

// FinishUnit is an UPDATE completing unitID, written by txID.
func FinishUnit(txID, unitID string) *opsv1.Mutation {
	return RowMutation(UnitTable, opsv1.RowOp_ROW_OP_UPDATE, map[string]any{
		"id": unitID, "status": "COMPLETED", "ended_at": time.Now().UTC().Format(time.RFC3339Nano), "e2e_tx": txID,
	})
}

// UpsertUnit is an UPSERT of unitID (an insert when it is new), written by txID.
func UpsertUnit(txID, unitID, name string) *opsv1.Mutation {
	m := NewUnit(txID, unitID, name)
	m.GetRow().Op = opsv1.RowOp_ROW_OP_UPSERT
	return m
}

// rowLogEntry is one row PostgreSQL wrote, in write order.
type rowLogEntry struct {
	n                int64
	table, op, rowID string
	txID             string // "" when the row carried none
	edgeID           string // of the applied transaction, "" when none
	seq              int64
	applied          bool // central recorded txID as applied
}

// readRowLog reads e2e.row_log in write order, each entry with the edge
// and seq of the applied transaction whose id it carries. ok is false when
// the database has no row log (a database not made by opsDB).
func readRowLog(ctx context.Context, db *pgxpool.Pool) (entries []rowLogEntry, ok bool, err error) {
	var exists bool
	if err := db.QueryRow(ctx, `SELECT to_regclass('e2e.row_log') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, false, fmt.Errorf("looking for e2e.row_log: %w", err)
	}
	if !exists {
		return nil, false, nil
	}
	rows, err := db.Query(ctx, `SELECT l.n, l.tbl, l.op, l.id::text, coalesce(l.tx_id::text, ''),
			coalesce(a.edge_id, ''), coalesce(a.seq, 0), a.tx_id IS NOT NULL
		FROM e2e.row_log l
		LEFT JOIN chasqui.applied_transactions a ON a.tx_id = l.tx_id AND a.outcome = 'applied'
		ORDER BY l.n`)
	if err != nil {
		return nil, true, fmt.Errorf("reading e2e.row_log: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e rowLogEntry
		if err := rows.Scan(&e.n, &e.table, &e.op, &e.rowID, &e.txID, &e.edgeID, &e.seq, &e.applied); err != nil {
			return nil, true, err
		}
		entries = append(entries, e)
	}
	return entries, true, rows.Err()
}

// checkRowLog adds the rows of the ops tables to r: per acknowledged valid
// transaction exactly Ack.Rows rows written (fewer: lost, more:
// duplicated); per edge, rows written in seq order; none written by a
// transaction no client wrote or central did not record as applied.
func checkRowLog(r *Report, entries []rowLogEntry, written map[string]bool, acks map[string]Ack, poison map[string]bool) {
	byTx := map[string]int{}
	lastSeq := map[string]int64{}
	for _, e := range entries {
		r.RowWrites++
		switch {
		case e.txID == "":
			r.Invented++
			r.problem("%s row %s written (%s) by no transaction of the load", e.table, e.rowID, e.op)
			continue
		case !written[e.txID]:
			r.Invented++
			r.problem("%s row %s written by tx %s that no client wrote", e.table, e.rowID, e.txID)
			continue
		case !e.applied:
			r.Invented++
			r.problem("%s row %s written by tx %s, which central has not recorded as applied", e.table, e.rowID, e.txID)
			continue
		}
		byTx[e.txID]++
		// Order: per edge, walking PostgreSQL's write order, seqs never
		// go back (one transaction's rows share a seq).
		if prev, ok := lastSeq[e.edgeID]; ok && e.seq < prev {
			r.OrderViolations++
			r.problem("edge %s: %s row %s of seq %d written after a row of seq %d", e.edgeID, e.table, e.rowID, e.seq, prev)
		}
		lastSeq[e.edgeID] = e.seq
	}
	for id, a := range acks {
		if poison[id] {
			continue // checkPoison: never applied
		}
		switch n := byTx[id]; {
		case n < a.Rows:
			r.Lost++
			r.problem("tx %s (seq %d): %d row(s) of the ops tables written, want %d", id, a.Seq, n, a.Rows)
		case n > a.Rows:
			r.Duplicated++
			r.problem("tx %s (seq %d): %d row(s) of the ops tables written, want %d", id, a.Seq, n, a.Rows)
		}
	}
}
