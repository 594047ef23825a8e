package app_test

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/chasqui/chasqui/edge/app"
	"github.com/chasqui/chasqui/edge/internal/centralproc"
	"github.com/chasqui/chasqui/edge/internal/cli"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/pgtest"
)

// rowDeadline is generous: central re-reads its catalog at most every few
// seconds, and the edge asks for the schema at most every 5 s.
const rowDeadline = 90 * time.Second

// opsDatabase is a database central migrates, with a site's own tables:
// ops.unit is allowed, ops.secret exists but is not.
func opsDatabase(t *testing.T) (dbURL string, db *pgx.Conn) {
	t.Helper()
	dbURL = pgtest.NewDatabase(t, centralTemplate)
	ctx := context.Background()
	db, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close(context.Background()) })
	_, err = db.Exec(ctx, `
		CREATE SCHEMA ops;
		CREATE TABLE ops.unit (id uuid PRIMARY KEY, name text NOT NULL, size bigint);
		CREATE TABLE ops.secret (id uuid PRIMARY KEY, v text);`)
	require.NoError(t, err)
	return dbURL, db
}

var allowUnit = []string{"--allow-tables", "ops.unit"}

type rowClients struct {
	edge  edgev1.EdgeServiceClient
	admin edgev1.AdminServiceClient
}

func dialRows(t *testing.T, a *app.App) rowClients {
	t.Helper()
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return rowClients{edge: edgev1.NewEdgeServiceClient(conn), admin: edgev1.NewAdminServiceClient(conn)}
}

func rowTx(t *testing.T, table string, op opsv1.RowOp, values map[string]any) *opsv1.Transaction {
	t.Helper()
	v, err := structpb.NewStruct(values)
	require.NoError(t, err)
	return &opsv1.Transaction{Id: uuid.Must(uuid.NewV7()).String(), Mutations: []*opsv1.Mutation{{Kind: &opsv1.Mutation_Row{
		Row: &opsv1.Row{Table: table, Op: op, Values: v},
	}}}}
}

func (c rowClients) submit(tx *opsv1.Transaction) (*edgev1.SubmitResponse, error) {
	return c.edge.Submit(context.Background(), &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{tx}})
}

// requireRefused checks INVALID_ARGUMENT with a BadRequest naming field.
func requireRefused(t *testing.T, err error, field string) {
	t.Helper()
	st, ok := status.FromError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, codes.InvalidArgument, st.Code(), st.Message())
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	require.Contains(t, fields, field, st.Message())
}

func (c rowClients) waitSchema(t *testing.T, pred func(*opsv1.Schema) bool) {
	t.Helper()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		resp, err := c.edge.GetSchema(context.Background(), &edgev1.GetSchemaRequest{})
		require.NoError(ct, err)
		require.NotNil(ct, resp.GetSchema(), "schema not learned yet")
		require.True(ct, pred(resp.GetSchema()), "schema %v", resp.GetSchema())
	}, rowDeadline, 50*time.Millisecond)
}

func (c rowClients) waitState(t *testing.T, id string, want edgev1.TransactionState) *edgev1.TransactionStatus {
	t.Helper()
	var st *edgev1.TransactionStatus
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		r, err := c.edge.GetTransaction(context.Background(), &edgev1.GetTransactionRequest{TransactionId: id})
		require.NoError(ct, err)
		st = r.GetTransaction()
		require.Equal(ct, want, st.GetState())
	}, rowDeadline, 50*time.Millisecond)
	return st
}

func hasTable(name string) func(*opsv1.Schema) bool {
	return func(s *opsv1.Schema) bool {
		for _, tb := range s.GetTables() {
			if tb.GetName() == name {
				return true
			}
		}
		return false
	}
}

func hasColumn(table, col string) func(*opsv1.Schema) bool {
	return func(s *opsv1.Schema) bool {
		for _, tb := range s.GetTables() {
			for _, c := range tb.GetColumns() {
				if tb.GetName() == table && c.GetName() == col {
					return true
				}
			}
		}
		return false
	}
}

const (
	insertOp = opsv1.RowOp_ROW_OP_INSERT
)

// While the edge knows the schema it refuses bad rows at once, naming the
// field, and stores nothing; after a migration adds a column, the edge
// learns it (its own refusal asks for the schema again) and takes rows
// with it; the schema survives a restart with central down.
func TestRowsCheckedAgainstTheLearnedSchema(t *testing.T) {
	t.Parallel()
	dbURL, db := opsDatabase(t)
	central := centralproc.StartT(t, centralproc.Options{DatabaseURL: dbURL, Args: allowUnit})
	dir := t.TempDir()
	r := start(t, app.Config{EdgeID: "edge-rows", DataDir: dir, CentralAddr: central.GRPCAddr()})
	c := dialRows(t, r.a)
	c.waitSchema(t, hasTable("ops.unit"))

	id := uuid.Must(uuid.NewV7()).String()
	for field, tx := range map[string]*opsv1.Transaction{
		"transactions[0].mutations[0].row.table":         rowTx(t, "ops.nope", insertOp, map[string]any{"id": id}),
		"transactions[0].mutations[0].row.values.colour": rowTx(t, "ops.unit", insertOp, map[string]any{"id": id, "name": "u", "colour": "red"}),
		"transactions[0].mutations[0].row.values.size":   rowTx(t, "ops.unit", insertOp, map[string]any{"id": id, "name": "u", "size": "12kB"}),
		"transactions[0].mutations[0].row.values.name":   rowTx(t, "ops.unit", insertOp, map[string]any{"id": id}),
	} {
		_, err := c.submit(tx)
		requireRefused(t, err, field)
	}
	// Outside the allow-list: not in the schema central gives, so refused here.
	_, err := c.submit(rowTx(t, "ops.secret", insertOp, map[string]any{"id": id}))
	requireRefused(t, err, "transactions[0].mutations[0].row.table")
	// A hostile identifier never gets near SQL.
	_, err = c.submit(rowTx(t, `ops.unit"; DROP TABLE ops.unit; --`, insertOp, map[string]any{"id": id}))
	requireRefused(t, err, "transactions[0].mutations[0].row.table")
	_, err = c.submit(rowTx(t, "ops.unit", insertOp, map[string]any{"id": id, "name": "u", `size" = 1; --`: 1.0}))
	requireRefused(t, err, "transactions[0].mutations[0].row.values")
	st, err := c.admin.GetStatus(context.Background(), &edgev1.GetStatusRequest{})
	require.NoError(t, err)
	require.Zero(t, st.GetLastAcceptedSeq(), "nothing refused was stored")

	good := rowTx(t, "ops.unit", insertOp, map[string]any{"id": id, "name": "u1", "size": "9007199254740993"})
	_, err = c.submit(good)
	require.NoError(t, err)
	c.waitState(t, good.GetId(), edgev1.TransactionState_TRANSACTION_STATE_COMMITTED)
	var size int64
	require.NoError(t, db.QueryRow(context.Background(), `SELECT size FROM ops.unit WHERE id = $1`, id).Scan(&size))
	require.Equal(t, int64(9007199254740993), size)

	// A migration adds a column while the edge runs.
	_, err = db.Exec(context.Background(), `ALTER TABLE ops.unit ADD COLUMN note text`)
	require.NoError(t, err)
	id2 := uuid.Must(uuid.NewV7()).String()
	withNote := rowTx(t, "ops.unit", insertOp, map[string]any{"id": id2, "name": "u2", "note": "after the migration"})
	_, err = c.submit(withNote)
	requireRefused(t, err, "transactions[0].mutations[0].row.values.note") // the edge does not know it yet
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		_, err := c.submit(withNote) // a client retrying INVALID_ARGUMENT after the migration
		require.NoError(ct, err)
	}, rowDeadline, 200*time.Millisecond)
	c.waitState(t, withNote.GetId(), edgev1.TransactionState_TRANSACTION_STATE_COMMITTED)
	var note string
	require.NoError(t, db.QueryRow(context.Background(), `SELECT note FROM ops.unit WHERE id = $1`, id2).Scan(&note))
	require.Equal(t, "after the migration", note)

	// A migration drops a column the edge still knows: central rejects the
	// row (42703) and that rejection makes the edge learn the schema again.
	_, err = db.Exec(context.Background(), `ALTER TABLE ops.unit DROP COLUMN size`)
	require.NoError(t, err)
	withSize := rowTx(t, "ops.unit", insertOp, map[string]any{"id": uuid.Must(uuid.NewV7()).String(), "name": "u4", "size": 1.0})
	_, err = c.submit(withSize)
	require.NoError(t, err, "the edge's schema still has size")
	c.waitState(t, withSize.GetId(), edgev1.TransactionState_TRANSACTION_STATE_REJECTED)
	c.waitSchema(t, func(s *opsv1.Schema) bool {
		return hasColumn("ops.unit", "note")(s) && !hasColumn("ops.unit", "size")(s)
	})
	_, err = c.submit(withSize)
	require.NoError(t, err, "a resubmit gets the first answer")
	_, err = c.submit(rowTx(t, "ops.unit", insertOp, map[string]any{"id": uuid.Must(uuid.NewV7()).String(), "name": "u5", "size": 1.0}))
	requireRefused(t, err, "transactions[0].mutations[0].row.values.size")

	// Restart with central down: the schema is the one kept on disk.
	r.stop(t)()
	require.NoError(t, central.Stop())
	r2 := start(t, app.Config{EdgeID: "edge-rows", DataDir: dir, CentralAddr: central.GRPCAddr()})
	c2 := dialRows(t, r2.a)
	c2.waitSchema(t, hasColumn("ops.unit", "note"))
	_, err = c2.submit(rowTx(t, "ops.unit", insertOp, map[string]any{"id": id, "name": "u", "colour": "red"}))
	requireRefused(t, err, "transactions[0].mutations[0].row.values.colour")
	_, err = c2.submit(rowTx(t, "ops.unit", insertOp, map[string]any{"id": uuid.Must(uuid.NewV7()).String(), "name": "u3", "note": "n"}))
	require.NoError(t, err, "accepted with central down")

	out := runCLI(t, r2.a.GRPCAddr(), "schema")
	require.Contains(t, out, "ops.unit  key (id)")
	require.Regexp(t, `note\s+text`, out)
	require.NotContains(t, out, "ops.secret")
}

// Before the edge ever learned a schema it accepts rows after the shape
// check; central then refuses the wrong ones: dead letters with the
// reason, which an operator edits and retries, or discards.
func TestRowsBeforeTheSchemaIsLearnedBecomeDeadLetters(t *testing.T) {
	t.Parallel()
	dbURL, db := opsDatabase(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	centralAddr := l.Addr().String()
	require.NoError(t, l.Close())

	r := start(t, app.Config{EdgeID: "edge-rows-dl", DataDir: t.TempDir(), CentralAddr: centralAddr})
	c := dialRows(t, r.a)
	resp, err := c.edge.GetSchema(context.Background(), &edgev1.GetSchemaRequest{})
	require.NoError(t, err)
	require.Nil(t, resp.GetSchema(), "central never reached")

	id := uuid.Must(uuid.NewV7()).String()
	badColumn := rowTx(t, "ops.unit", insertOp, map[string]any{"id": id, "name": "u", "colour": "red"})
	notAllowed := rowTx(t, "ops.secret", insertOp, map[string]any{"id": id})
	for _, tx := range []*opsv1.Transaction{badColumn, notAllowed} {
		_, err := c.submit(tx)
		require.NoError(t, err, "accepted after the shape check")
	}
	// The shape check still holds.
	_, err = c.submit(rowTx(t, `ops.unit"--`, insertOp, map[string]any{"id": id}))
	requireRefused(t, err, "transactions[0].mutations[0].row.table")

	deadline := time.Now().Add(rowDeadline)
	var central *centralproc.Central
	for {
		central, err = centralproc.Start(context.Background(), centralproc.Options{GRPCAddr: centralAddr, DatabaseURL: dbURL, Args: allowUnit})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // poll interval while the port is taken
	}
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, central.Stop()) })

	c.waitState(t, badColumn.GetId(), edgev1.TransactionState_TRANSACTION_STATE_REJECTED)
	c.waitState(t, notAllowed.GetId(), edgev1.TransactionState_TRANSACTION_STATE_REJECTED)
	dl, err := c.admin.GetDeadLetter(context.Background(), &edgev1.GetDeadLetterRequest{TransactionId: badColumn.GetId()})
	require.NoError(t, err)
	require.Equal(t, "42703", dl.GetDeadLetter().GetSqlstate(), dl.GetDeadLetter().GetReason())
	require.Contains(t, dl.GetDeadLetter().GetReason(), "colour")
	c.waitSchema(t, hasTable("ops.unit"))

	out := runCLI(t, r.a.GRPCAddr(), "deadletters", "show", badColumn.GetId())
	require.Contains(t, out, "INSERT ops.unit")
	require.Regexp(t, `colour\s+"red"`, out)
	require.Contains(t, out, "42703")
	out = runCLI(t, r.a.GRPCAddr(), "deadletters", "list")
	require.Contains(t, out, "INSERT ops.secret")

	// Edit and retry: the row without the unknown column commits.
	runCLI(t, r.a.GRPCAddr(), "deadletters", "retry", badColumn.GetId(), "--unset", "colour", "--set", "size=7")
	c.waitState(t, badColumn.GetId(), edgev1.TransactionState_TRANSACTION_STATE_COMMITTED)
	var size int64
	require.NoError(t, db.QueryRow(context.Background(), `SELECT size FROM ops.unit WHERE id = $1`, id).Scan(&size))
	require.Equal(t, int64(7), size)

	// Central refuses the table outside its allow-list too; discard it.
	dl, err = c.admin.GetDeadLetter(context.Background(), &edgev1.GetDeadLetterRequest{TransactionId: notAllowed.GetId()})
	require.NoError(t, err)
	require.Contains(t, dl.GetDeadLetter().GetReason(), "not allowed")
	out = runCLI(t, r.a.GRPCAddr(), "deadletters", "show", notAllowed.GetId(), "--json") // to edit for retry -f
	// protojson varies its spacing from one build to another on purpose.
	require.Regexp(t, `"table":\s+"ops.secret"`, out)
	runCLI(t, r.a.GRPCAddr(), "deadletters", "discard", notAllowed.GetId())
	var n int
	require.NoError(t, db.QueryRow(context.Background(), `SELECT count(*) FROM ops.secret`).Scan(&n))
	require.Zero(t, n)
}

func runCLI(t *testing.T, addr string, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), append([]string{"--addr", addr}, args...), cli.Env{
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		LookupEnv: func(string) (string, bool) { return "", false },
	})
	require.Equal(t, cli.ExitOK, code, "chasqui %q: %s", args, errb.String())
	return out.String()
}
