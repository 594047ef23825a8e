package reads_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/chasqui/chasqui/edge/internal/centralproc"
	"github.com/chasqui/chasqui/edge/internal/reads"
	"github.com/chasqui/chasqui/edge/internal/schema"
	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/pgtest"
	"github.com/chasqui/chasqui/internal/rows"
	"github.com/chasqui/chasqui/internal/validate"
)

var unitTable = &opsv1.TableSchema{
	Name:       "ops.unit",
	PrimaryKey: []string{"id"},
	Columns: []*opsv1.ColumnSchema{
		{Name: "id", Type: "bigint", Kind: opsv1.ValueKind_VALUE_KIND_INTEGER},
		{Name: "name", Type: "text", Kind: opsv1.ValueKind_VALUE_KIND_STRING, Nullable: true},
		{Name: "status", Type: "text", Kind: opsv1.ValueKind_VALUE_KIND_STRING, Nullable: true},
	},
}

// rowBuffer stands in for the queue's row overlays.
type rowBuffer struct {
	mu  sync.Mutex
	seq uint64
	ps  []reads.PendingRow
}

// add buffers a row write; keyed false keeps it as the queue keeps a row
// accepted before the schema was known.
func (b *rowBuffer) add(t *testing.T, keyed, committed bool, op opsv1.RowOp, values map[string]any) {
	t.Helper()
	s, err := structpb.NewStruct(values)
	require.NoError(t, err)
	key := ""
	if keyed {
		key, err = rows.Key([]string{"id"}, s)
		require.NoError(t, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	b.ps = append(b.ps, reads.PendingRow{Key: key, Pending: reads.Pending{Seq: b.seq, Committed: committed,
		Mutation: &opsv1.Mutation{Kind: &opsv1.Mutation_Row{Row: &opsv1.Row{Table: "ops.unit", Op: op, Values: s}}}}})
}

func (b *rowBuffer) RowOverlays(table, key string) ([]reads.PendingRow, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []reads.PendingRow
	for _, p := range b.ps {
		if p.Mutation.GetRow().GetTable() == table && (p.Key == key || p.Key == "") {
			out = append(out, p)
		}
	}
	return out, nil
}

func (b *rowBuffer) TableOverlays(table string) ([]reads.PendingRow, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []reads.PendingRow
	for _, p := range b.ps {
		if p.Mutation.GetRow().GetTable() == table {
			out = append(out, p)
		}
	}
	return out, nil
}

type rowsBundle struct {
	primary, replica *pgtest.Cluster
	pool             *pgxpool.Pool
	buf              *rowBuffer
	read             centralv1.ReadServiceClient // nil without central
	stopCentral      func()
}

// setupRows: a primary holding ops.unit with rows 1..5 and 10 (status a
// for odd ids, b for even), a streaming replica that replayed them, a row
// buffer and, withCentral, the real central on the primary allowing
// ops.unit.
func setupRows(t *testing.T, withCentral ...bool) *rowsBundle {
	t.Helper()
	ctx := context.Background()
	b := &rowsBundle{buf: &rowBuffer{}}
	b.primary = pgtest.StartCluster(t, pgtest.Options{Name: "rows-primary"})
	require.NoError(t, b.primary.CreateDatabase(ctx, "ops"))
	p, err := pgxpool.New(ctx, b.primary.URL("ops"))
	require.NoError(t, err)
	defer p.Close()
	_, err = p.Exec(ctx, `CREATE SCHEMA ops;
		CREATE TABLE ops.unit (id bigint PRIMARY KEY, name text, status text);
		INSERT INTO ops.unit SELECT i, 'u' || i, CASE WHEN i % 2 = 1 THEN 'a' ELSE 'b' END
			FROM unnest(ARRAY[1, 2, 3, 4, 5, 10]) AS i`)
	require.NoError(t, err)
	var lsn string
	require.NoError(t, p.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn))
	b.replica = b.primary.StartReplica(t, pgtest.ReplicaOptions{})
	b.pool, err = pgxpool.New(ctx, b.replica.URL("ops"))
	require.NoError(t, err)
	t.Cleanup(b.pool.Close)
	require.Eventually(t, func() bool {
		var ok bool
		err := b.pool.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&ok)
		return err == nil && ok
	}, 60*time.Second, 10*time.Millisecond)
	if len(withCentral) > 0 && withCentral[0] {
		central := centralproc.StartT(t, centralproc.Options{DatabaseURL: b.primary.URL("ops"), Args: []string{"--allow-tables", "ops.unit"}})
		b.stopCentral = func() { require.NoError(t, central.Stop()) }
		conn, err := grpc.NewClient(central.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		b.read = centralv1.NewReadServiceClient(conn)
	}
	return b
}

func (b *rowsBundle) reader(t *testing.T, withReplica bool) *reads.Reader {
	t.Helper()
	cfg := reads.Config{Buffer: &buffer{}, Rows: b.buf, Tables: schema.New(&opsv1.Schema{Tables: []*opsv1.TableSchema{unitTable}}),
		Timeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if withReplica {
		cfg.Replica = b.pool
	}
	if b.read != nil {
		cfg.Central = b.read
	}
	r, err := reads.New(cfg)
	require.NoError(t, err)
	return r
}

func key(t *testing.T, id any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(map[string]any{"id": id})
	require.NoError(t, err)
	return s
}

const (
	ins    = opsv1.RowOp_ROW_OP_INSERT
	upsert = opsv1.RowOp_ROW_OP_UPSERT
	update = opsv1.RowOp_ROW_OP_UPDATE
	del    = opsv1.RowOp_ROW_OP_DELETE
)

// TestGetRowMergesBufferedWritesOverReplica: an UPDATE merges column by
// column over the replica's row, an INSERT shows a row only buffered (also
// one kept unkeyed), an UPSERT merges over it, a DELETE hides a row, an
// UPDATE of no row shows nothing; with the replica down the buffer alone
// answers, flagged.
func TestGetRowMergesBufferedWritesOverReplica(t *testing.T) {
	t.Parallel()
	b := setupRows(t)
	ctx := context.Background()
	get := func(r *reads.Reader, id any) (*edgev1.GetRowResponse, error) {
		return r.GetRow(ctx, &edgev1.GetRowRequest{Table: "ops.unit", Key: key(t, id)})
	}
	r := b.reader(t, true)

	res, err := get(r, 1)
	require.NoError(t, err)
	require.False(t, res.GetBufferOnly())
	require.Equal(t, visible, res.GetRow().GetSource())
	require.Equal(t, map[string]any{"id": 1.0, "name": "u1", "status": "a"}, res.GetRow().GetValues().AsMap())

	b.buf.add(t, true, false, update, map[string]any{"id": "1", "status": "done"})
	b.buf.add(t, false, false, ins, map[string]any{"id": 100.0, "name": "new"})
	b.buf.add(t, true, true, upsert, map[string]any{"id": 100.0, "status": "x"})
	b.buf.add(t, true, true, del, map[string]any{"id": 2.0})
	b.buf.add(t, true, false, update, map[string]any{"id": 999.0, "name": "nobody"})

	res, err = get(r, "1")
	require.NoError(t, err)
	require.Equal(t, buffered, res.GetRow().GetSource())
	require.Equal(t, map[string]any{"id": 1.0, "name": "u1", "status": "done"}, res.GetRow().GetValues().AsMap(),
		"the update's columns over the replica's row")
	res, err = get(r, 100)
	require.NoError(t, err)
	require.Equal(t, buffered, res.GetRow().GetSource(), "the least advanced of its writes")
	require.Equal(t, map[string]any{"id": 100.0, "name": "new", "status": "x"}, res.GetRow().GetValues().AsMap())
	_, err = get(r, 2)
	require.ErrorIs(t, err, reads.ErrNotFound, "a buffered delete hides the row")
	_, err = get(r, 999)
	require.ErrorIs(t, err, reads.ErrNotFound)

	require.NoError(t, b.replica.Stop())
	res, err = get(b.reader(t, true), 100)
	require.NoError(t, err)
	require.True(t, res.GetBufferOnly())
	require.Equal(t, "x", res.GetRow().GetValues().AsMap()["status"])
	_, err = get(b.reader(t, true), 3)
	require.ErrorIs(t, err, reads.ErrNotFound, "only committed: unknown with nothing to read")
}

// TestListRowsMergesAndPages: pages of two in key order (numeric: 10
// after 7), buffered inserts between committed rows, a deleted row gone, an
// updated one filtered by its new value, and tokens that resume after
// the last row whatever is buffered meanwhile.
func TestListRowsMergesAndPages(t *testing.T) {
	t.Parallel()
	b := setupRows(t)
	ctx := context.Background()
	r := b.reader(t, true)
	b.buf.add(t, true, false, ins, map[string]any{"id": 6.0, "name": "u6", "status": "b"})
	b.buf.add(t, false, false, ins, map[string]any{"id": 7.0, "name": "u7", "status": "a"})
	b.buf.add(t, true, true, del, map[string]any{"id": 4.0})
	b.buf.add(t, true, false, update, map[string]any{"id": 5.0, "status": "b"})
	b.buf.add(t, true, false, ins, map[string]any{"id": 11.0, "name": "u11", "status": "b"})

	list := func(where map[string]any, size int) ([]any, []edgev1.RecordSource) {
		t.Helper()
		var w *structpb.Struct
		if where != nil {
			var err error
			w, err = structpb.NewStruct(where)
			require.NoError(t, err)
		}
		var ids []any
		var srcs []edgev1.RecordSource
		tok := ""
		for range 20 {
			res, err := r.ListRows(ctx, &edgev1.ListRowsRequest{Table: "ops.unit", Where: w, PageSize: int32(size), PageToken: tok})
			require.NoError(t, err)
			require.False(t, res.GetBufferOnly())
			require.LessOrEqual(t, len(res.GetRows()), size)
			for _, row := range res.GetRows() {
				ids = append(ids, row.GetValues().AsMap()["id"])
				srcs = append(srcs, row.GetSource())
			}
			if tok = res.GetNextPageToken(); tok == "" {
				return ids, srcs
			}
		}
		t.Fatal("no last page")
		return nil, nil
	}
	ids, srcs := list(nil, 2)
	require.Equal(t, []any{1.0, 2.0, 3.0, 5.0, 6.0, 7.0, 10.0, 11.0}, ids)
	require.Equal(t, []edgev1.RecordSource{visible, visible, visible, buffered, buffered, buffered, visible, buffered}, srcs)
	ids, _ = list(map[string]any{"status": "b"}, 2)
	require.Equal(t, []any{2.0, 5.0, 6.0, 10.0, 11.0}, ids, "5 by its buffered status; 4 deleted")
	ids, _ = list(map[string]any{"status": "b"}, 1000)
	require.Equal(t, []any{2.0, 5.0, 6.0, 10.0, 11.0}, ids)

	// A page token stays valid while the buffer changes under it.
	res, err := r.ListRows(ctx, &edgev1.ListRowsRequest{Table: "ops.unit", PageSize: 3})
	require.NoError(t, err)
	b.buf.add(t, true, false, ins, map[string]any{"id": 0.0, "name": "before the page"})
	res, err = r.ListRows(ctx, &edgev1.ListRowsRequest{Table: "ops.unit", PageSize: 3, PageToken: res.GetNextPageToken()})
	require.NoError(t, err)
	require.Equal(t, 5.0, res.GetRows()[0].GetValues().AsMap()["id"])

	// A write the queue keyed under a key its values no longer hold (the
	// table's key changed since) is left out, and the replica still read.
	b.buf.mu.Lock()
	b.buf.seq++
	b.buf.ps = append(b.buf.ps, reads.PendingRow{Key: `["99"]`, Pending: reads.Pending{Seq: b.buf.seq, Mutation: &opsv1.Mutation{
		Kind: &opsv1.Mutation_Row{Row: &opsv1.Row{Table: "ops.unit", Op: update, Values: &structpb.Struct{
			Fields: map[string]*structpb.Value{"name": structpb.NewStringValue("keyless")}}}}}}})
	b.buf.mu.Unlock()
	res, err = r.ListRows(ctx, &edgev1.ListRowsRequest{Table: "ops.unit"})
	require.NoError(t, err)
	require.False(t, res.GetBufferOnly(), "one odd buffered write does not cost the replica's rows")
	require.Len(t, res.GetRows(), 9)

	// The replica down and no central: the buffer alone, flagged.
	require.NoError(t, b.replica.Stop())
	res, err = b.reader(t, true).ListRows(ctx, &edgev1.ListRowsRequest{Table: "ops.unit"})
	require.NoError(t, err)
	require.True(t, res.GetBufferOnly())
	var got []any
	for _, row := range res.GetRows() {
		got = append(got, row.GetValues().AsMap()["id"])
	}
	require.Equal(t, []any{0.0, 6.0, 7.0, 11.0}, got, "rows only buffered; updates of unread rows show nothing")
}

// TestRowReadsRefuseBadRequests: a table the edge never learned, a
// hostile name, a key column that is not the key, an unknown where column
// and a forged token are INVALID_ARGUMENT naming the field.
func TestRowReadsRefuseBadRequests(t *testing.T) {
	t.Parallel()
	r, err := reads.New(reads.Config{Buffer: &buffer{}, Rows: &rowBuffer{},
		Tables: schema.New(&opsv1.Schema{Tables: []*opsv1.TableSchema{unitTable}}), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	ctx := context.Background()
	field := func(err error) string {
		t.Helper()
		var ve *validate.Error
		require.ErrorAs(t, err, &ve)
		return ve.Violations[0].Field + ": " + ve.Violations[0].Description
	}
	_, err = r.GetRow(ctx, &edgev1.GetRowRequest{Table: "ops.nope", Key: key(t, 1)})
	require.Contains(t, field(err), "table: ops.nope is not a table the edge learned")
	_, err = r.ListRows(ctx, &edgev1.ListRowsRequest{Table: `ops.unit"; DROP TABLE ops.unit; --`})
	require.Contains(t, field(err), "table: ")
	k, _ := structpb.NewStruct(map[string]any{"id": 1.0, "name": "x"})
	_, err = r.GetRow(ctx, &edgev1.GetRowRequest{Table: "ops.unit", Key: k})
	require.Contains(t, field(err), "key.name: is not a primary key column")
	_, err = r.GetRow(ctx, &edgev1.GetRowRequest{Table: "ops.unit", Key: &structpb.Struct{}})
	require.Contains(t, field(err), `key: key column "id" is missing`)
	w, _ := structpb.NewStruct(map[string]any{"colour": "red"})
	_, err = r.ListRows(ctx, &edgev1.ListRowsRequest{Table: "ops.unit", Where: w})
	require.Contains(t, field(err), "where.colour: table ops.unit has no such column")
	_, err = r.ListRows(ctx, &edgev1.ListRowsRequest{Table: "ops.unit", PageToken: "forged!"})
	require.Contains(t, field(err), "page_token: malformed")
}

// TestRowReadsFallBackToCentral: with the site replica down, the committed
// row comes from central's ReadService.ListRows (COMMITTED, not buffer
// only) with buffered writes merged over it, and pages continue across
// the fallback with the same token; with central down too, the buffer
// alone answers, flagged.
func TestRowReadsFallBackToCentral(t *testing.T) {
	t.Parallel()
	b := setupRows(t, true)
	ctx := context.Background()
	r := b.reader(t, true)
	b.buf.add(t, true, false, update, map[string]any{"id": 3.0, "name": "renamed"})
	b.buf.add(t, true, false, ins, map[string]any{"id": 6.0, "name": "u6", "status": "b"})

	first, err := r.ListRows(ctx, &edgev1.ListRowsRequest{Table: "ops.unit", PageSize: 2})
	require.NoError(t, err)
	require.Equal(t, visible, first.GetRows()[0].GetSource())
	require.NotEmpty(t, first.GetNextPageToken())

	require.NoError(t, b.replica.Stop())
	res, err := r.GetRow(ctx, &edgev1.GetRowRequest{Table: "ops.unit", Key: key(t, 3)})
	require.NoError(t, err)
	require.False(t, res.GetBufferOnly())
	require.Equal(t, buffered, res.GetRow().GetSource())
	require.Equal(t, map[string]any{"id": 3.0, "name": "renamed", "status": "a"}, res.GetRow().GetValues().AsMap())
	res, err = r.GetRow(ctx, &edgev1.GetRowRequest{Table: "ops.unit", Key: key(t, 10)})
	require.NoError(t, err)
	require.Equal(t, committed, res.GetRow().GetSource())
	require.Equal(t, "u10", res.GetRow().GetValues().AsMap()["name"])

	var ids []any
	tok := first.GetNextPageToken()
	for tok != "" {
		l, err := r.ListRows(ctx, &edgev1.ListRowsRequest{Table: "ops.unit", PageSize: 2, PageToken: tok})
		require.NoError(t, err)
		require.False(t, l.GetBufferOnly())
		for _, row := range l.GetRows() {
			ids = append(ids, row.GetValues().AsMap()["id"])
		}
		tok = l.GetNextPageToken()
	}
	require.Equal(t, []any{3.0, 4.0, 5.0, 6.0, 10.0}, ids, "central's pages continue the replica's")

	b.stopCentral()
	res, err = r.GetRow(ctx, &edgev1.GetRowRequest{Table: "ops.unit", Key: key(t, 6)})
	require.NoError(t, err)
	require.True(t, res.GetBufferOnly())
	_, err = r.GetRow(ctx, &edgev1.GetRowRequest{Table: "ops.unit", Key: key(t, 10)})
	require.ErrorIs(t, err, reads.ErrNotFound)
}
