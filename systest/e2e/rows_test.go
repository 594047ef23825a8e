package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// Rows of the user's own tables (the ops schema of examples/ops-schema.sql)
// through the real edge, central and PostgreSQL.

// The "done when": a row of a user's own table, sent with grpcurl
// (examples/submit-row.json, as the README shows) to a running edge while
// central is down, is in that table once central is up, with its LSN
// reported. The edge never learned the schema before the call: it accepts
// after a shape check. Without grpcurl on PATH the Go client sends the same
// JSON body.
func TestRowSubmittedWhileCentralDownLands(t *testing.T) {
	t.Parallel()
	s := NewStack(t, StackOptions{CentralDown: true})
	body, err := os.ReadFile(repoFile(t, "examples/submit-row.json"))
	require.NoError(t, err)
	var req edgev1.SubmitRequest
	require.NoError(t, protojson.Unmarshal(body, &req))
	txID := req.GetTransactions()[0].GetId()
	unitID := req.GetTransactions()[0].GetMutations()[0].GetRow().GetValues().GetFields()["id"].GetStringValue()
	pkgID := req.GetTransactions()[0].GetMutations()[1].GetRow().GetValues().GetFields()["id"].GetStringValue()
	require.NotEmpty(t, unitID)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	schema, err := s.Client.GetSchema(ctx, &edgev1.GetSchemaRequest{})
	require.NoError(t, err)
	require.Nil(t, schema.GetSchema(), "central never reached: the edge knows no schema")

	res := submitJSON(t, s, body)
	require.Equal(t, txID, res.GetTransactionId())
	require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED, txState(t, s, txID), "central is down: buffered")

	require.NoError(t, s.Central.Start())
	st := waitCommitted(t, s, txID)
	require.Equal(t, res.GetSeq(), st.GetSeq())
	require.NotZero(t, st.GetCommitLsnValue(), "the commit LSN is reported")
	// The LSN is a real position of this server's WAL, at or past the commit
	// that wrote the rows (the commit of central's outcome row for the tx).
	var lsnOK bool
	require.NoError(t, s.DB.QueryRow(ctx, `SELECT $1::pg_lsn <= pg_current_wal_insert_lsn()
		AND EXISTS (SELECT 1 FROM chasqui.applied_transactions WHERE tx_id = $2 AND outcome = 'applied')`,
		st.GetCommitLsn(), txID).Scan(&lsnOK))
	require.True(t, lsnOK, "LSN %s within the WAL and the tx recorded as applied", st.GetCommitLsn())

	// Every value as sent, parsed by PostgreSQL's input functions.
	var name, status, pwv, params, tags, started string
	require.NoError(t, s.DB.QueryRow(ctx, `SELECT name, status::text, pwv_mm::text, parameters->>'source',
			array_to_string(tags, ','), to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
		FROM ops.observation_unit WHERE id = $1`, unitID).Scan(&name, &status, &pwv, &params, &tags, &started))
	require.Equal(t, []string{"ou-2026-11-23-007", "RUNNING", "0.420", "Orion-KL", "science,band-low", "2026-11-23T03:12:45Z"},
		[]string{name, status, pwv, params, tags, started})
	var size int64
	var unitOf string
	require.NoError(t, s.DB.QueryRow(ctx, `SELECT size_bytes, unit_id::text FROM ops.raw_data_package WHERE id = $1`,
		pkgID).Scan(&size, &unitOf))
	require.Equal(t, int64(734003200), size)
	require.Equal(t, unitID, unitOf)

	// Once connected the edge learned the schema from central.
	Eventually(t, commitTimeout, "the edge learns the schema", func() bool {
		return schemaHas(t, s, UnitTable, "pwv_mm")
	})
}

// submitJSON sends a SubmitRequest in protojson, with grpcurl when it is
// installed (the README's line), else with the Go client, and returns the
// one result.
func submitJSON(t *testing.T, s *Stack, body []byte) *edgev1.SubmitResult {
	t.Helper()
	var resp edgev1.SubmitResponse
	if path, err := exec.LookPath("grpcurl"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, path, "-plaintext", "-d", "@", s.Edge.Addr(), "chasqui.edge.v1.EdgeService/Submit")
		cmd.Stdin = bytes.NewReader(body)
		out, err := cmd.Output()
		require.NoError(t, err, "grpcurl: %s", out)
		require.NoError(t, protojson.Unmarshal(out, &resp), "grpcurl's answer: %s", out)
	} else {
		t.Log("grpcurl is not installed: the Go client sends the same JSON body")
		var req edgev1.SubmitRequest
		require.NoError(t, protojson.Unmarshal(body, &req))
		resp.Results = submit(t, s, &req).GetResults()
	}
	require.Len(t, resp.GetResults(), 1)
	return resp.GetResults()[0]
}

// A migration adds a column while the edge runs: the edge refuses the
// column while its schema lacks it (INVALID_ARGUMENT naming the column,
// nothing stored), and accepts it after the refresh its reconnection
// brings; the value lands in the new column.
func TestRowMigrationAddsColumn(t *testing.T) {
	t.Parallel()
	s := NewStack(t, StackOptions{})
	Eventually(t, commitTimeout, "the edge learns the schema", func() bool { return schemaHas(t, s, UnitTable, "") })

	withSeeing := func(txID string) *edgev1.SubmitRequest {
		m := NewUnit(txID, newID(), "migration")
		m.GetRow().GetValues().GetFields()["seeing_arcsec"] = mustValue(t, "0.85")
		return tx(txID, m)
	}
	refused := newID()
	err := submitErr(s, withSeeing(refused))
	require.Equal(t, codes.InvalidArgument, status.Code(err), "unknown column: %v", err)
	require.Contains(t, err.Error(), "seeing_arcsec")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = s.Client.GetTransaction(ctx, &edgev1.GetTransactionRequest{TransactionId: refused})
	require.Equal(t, codes.NotFound, status.Code(err), "a refused transaction is not stored")

	_, err = s.DB.Exec(ctx, `ALTER TABLE ops.observation_unit ADD COLUMN seeing_arcsec numeric(4, 2)`)
	require.NoError(t, err)
	// The edge's link reconnects (as after any WAN cut); it asks central
	// for the schema again, and central reads its catalog again.
	s.Proxy.Down()
	s.Proxy.Up()
	Eventually(t, commitTimeout, "the edge learns the new column", func() bool {
		return schemaHas(t, s, UnitTable, "seeing_arcsec")
	})
	txID := newID()
	req := withSeeing(txID)
	unitID := req.GetTransactions()[0].GetMutations()[0].GetRow().GetValues().GetFields()["id"].GetStringValue()
	submit(t, s, req)
	waitCommitted(t, s, txID)
	var seeing string
	require.NoError(t, s.DB.QueryRow(ctx, `SELECT seeing_arcsec::text FROM ops.observation_unit WHERE id = $1`, unitID).Scan(&seeing))
	require.Equal(t, "0.85", seeing)
}

// A table dropped while rows of it are queued at the edge: those rows
// become dead letters with PostgreSQL's reason, and the queue moves on
// (what was queued after them commits). The edge then learns the table is
// gone and refuses new rows of it at once.
func TestRowTableDroppedWhileQueued(t *testing.T) {
	t.Parallel()
	s := NewStack(t, StackOptions{CentralDown: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := s.DB.Exec(ctx, `CREATE TABLE ops.scratch (id uuid PRIMARY KEY, note text NOT NULL)`)
	require.NoError(t, err)
	require.NoError(t, s.Central.Start())
	Eventually(t, commitTimeout, "the edge learns ops.scratch", func() bool { return schemaHas(t, s, "ops.scratch", "note") })

	s.Proxy.Down()
	scratch := func(txID string) *edgev1.SubmitRequest {
		return tx(txID, RowMutation("ops.scratch", opsv1.RowOp_ROW_OP_INSERT, map[string]any{"id": newID(), "note": "queued"}))
	}
	var dropped []string
	for range 3 {
		id := newID()
		dropped = append(dropped, id)
		submit(t, s, scratch(id))
	}
	after, unitID := newID(), newID()
	submit(t, s, tx(after, NewUnit(after, unitID, "after-drop")))
	_, err = s.DB.Exec(ctx, `DROP TABLE ops.scratch`)
	require.NoError(t, err)
	s.Proxy.Up()

	waitCommitted(t, s, after)
	require.Equal(t, 1, countRows(t, s, `SELECT count(*) FROM ops.observation_unit WHERE id = $1`, unitID))
	for _, id := range dropped {
		require.Equal(t, edgev1.TransactionState_TRANSACTION_STATE_REJECTED, txState(t, s, id))
		resp, err := s.Admin.GetDeadLetter(ctx, &edgev1.GetDeadLetterRequest{TransactionId: id})
		require.NoError(t, err, "tx %s is a dead letter", id)
		require.Contains(t, resp.GetDeadLetter().GetReason(), "scratch", "the reason names the table")
		require.Equal(t, "ops.scratch", resp.GetDeadLetter().GetTransaction().GetMutations()[0].GetRow().GetTable())
	}
	Eventually(t, commitTimeout, "the edge forgets the dropped table", func() bool {
		return !schemaHas(t, s, "ops.scratch", "")
	})
	err = submitErr(s, scratch(newID()))
	require.Equal(t, codes.InvalidArgument, status.Code(err), "a row of a dropped table: %v", err)
}

// schemaHas reports whether the edge's learned schema has table with column.
func schemaHas(t *testing.T, s *Stack, table, column string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := s.Client.GetSchema(ctx, &edgev1.GetSchemaRequest{})
	if err != nil {
		return false
	}
	for _, tb := range resp.GetSchema().GetTables() {
		if tb.GetName() == table {
			return column == "" || slices.ContainsFunc(tb.GetColumns(), func(c *opsv1.ColumnSchema) bool { return c.GetName() == column })
		}
	}
	return false
}

func mustValue(t *testing.T, v any) *structpb.Value {
	t.Helper()
	val, err := structpb.NewValue(v)
	require.NoError(t, err)
	return val
}

// submitErr submits req and returns the call's error.
func submitErr(s *Stack, req *edgev1.SubmitRequest) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := s.Client.Submit(ctx, req)
	return err
}

// tx is a Submit request of one transaction txID of muts.
func tx(txID string, muts ...*opsv1.Mutation) *edgev1.SubmitRequest {
	return &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{{Id: txID, Mutations: muts}}}
}

// Parent and child rows linked by a foreign key: in one transaction
// (parent first), across transactions that travel in one batch (the link
// down while both are queued) and across batches. A child queued before
// its parent is rejected (a foreign-key violation) and the parent after it
// still commits: nothing is reordered across the dependency.
func TestRowForeignKeyParentChild(t *testing.T) {
	t.Parallel()
	s := NewStack(t, StackOptions{})
	var pkgs []string
	pkg := func(txID, unitID string) *opsv1.Mutation {
		id := newID()
		pkgs = append(pkgs, id)
		return NewPackage(txID, id, unitID)
	}

	// One transaction, parent then child.
	one, u1 := newID(), newID()
	submit(t, s, tx(one, NewUnit(one, u1, "fk-one"), pkg(one, u1)))
	waitCommitted(t, s, one)

	// Across transactions in one batch: both queued while the link is down.
	s.Proxy.Down()
	parent, child, u2 := newID(), newID(), newID()
	submit(t, s, tx(parent, NewUnit(parent, u2, "fk-batch")))
	submit(t, s, tx(child, pkg(child, u2)))
	// The child before its parent, across transactions.
	early, late, u3 := newID(), newID(), newID()
	submit(t, s, tx(early, NewPackage(early, newID(), u3)))
	submit(t, s, tx(late, NewUnit(late, u3, "fk-late-parent")))
	s.Proxy.Up()
	waitCommitted(t, s, child)
	waitCommitted(t, s, late)
	Eventually(t, commitTimeout, "the orphan child is rejected", func() bool {
		return txState(t, s, early) == edgev1.TransactionState_TRANSACTION_STATE_REJECTED
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dl, err := s.Admin.GetDeadLetter(ctx, &edgev1.GetDeadLetterRequest{TransactionId: early})
	require.NoError(t, err)
	require.Equal(t, "23503", dl.GetDeadLetter().GetSqlstate(), "foreign_key_violation: %s", dl.GetDeadLetter().GetReason())

	// Across batches: the parent committed before the child is sent.
	parent2, child2, u4 := newID(), newID(), newID()
	submit(t, s, tx(parent2, NewUnit(parent2, u4, "fk-apart")))
	waitCommitted(t, s, parent2)
	submit(t, s, tx(child2, pkg(child2, u4)))
	waitCommitted(t, s, child2)

	require.Equal(t, len(pkgs), countRows(t, s, `SELECT count(*) FROM ops.raw_data_package WHERE id = ANY($1::uuid[])`, pkgs))
	require.Equal(t, 3, countRows(t, s, `SELECT count(*) FROM ops.raw_data_package p
		JOIN ops.observation_unit u ON u.id = p.unit_id WHERE u.id = ANY($1::uuid[])`, []string{u1, u2, u4, u3}),
		"every child beside its parent; the orphan's package is not there")
}

// The instrument simulator of `make run` writes rows of both ops tables:
// a unit per observation (with its first package, in one transaction),
// a package per file, the unit's final status when the observation ends.
func TestSimulatorWritesOpsRows(t *testing.T) {
	t.Parallel()
	s := NewStack(t, StackOptions{})
	dir, err := BuildBinaries()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, dir+"/chasqui-sim", "--edge-addr", s.Edge.Addr(),
		"--count", "2", "--interval", "200ms", "--obs-length", "1s", "--files", "2")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "chasqui-sim: %s", out)
	require.NotContains(t, string(out), "submit failed")

	Eventually(t, drainTimeout, "two finished units with their packages in PostgreSQL", func() bool {
		var units, finished, pkgs int
		err := s.DB.QueryRow(ctx, `SELECT (SELECT count(*) FROM ops.observation_unit),
			(SELECT count(*) FROM ops.observation_unit WHERE status IN ('COMPLETED', 'FAILED', 'ABORTED') AND ended_at IS NOT NULL),
			(SELECT count(*) FROM ops.raw_data_package)`).Scan(&units, &finished, &pkgs)
		return err == nil && units == 2 && finished == 2 && pkgs == 2*(1+2)
	})
	// Each unit is named as its observation's obs_unit.
	require.Equal(t, 2, countRows(t, s, `SELECT count(DISTINCT u.id) FROM ops.observation_unit u
		JOIN chasqui.observations o ON o.obs_unit = u.name AND o.instrument = u.instrument`))
	require.Empty(t, strings.TrimSpace(deadLetterIDs(t, s)), "nothing of the simulator's is a dead letter")
}

// deadLetterIDs lists the edge's dead letters' transaction ids, one a line.
func deadLetterIDs(t *testing.T, s *Stack) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dls, err := readDeadLetters(ctx, s.Admin)
	require.NoError(t, err)
	var b strings.Builder
	for id := range dls {
		b.WriteString(id + "\n")
	}
	return b.String()
}
