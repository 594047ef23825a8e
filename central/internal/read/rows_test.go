package read_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"

	"github.com/chasqui/chasqui/central/internal/catalog"
	"github.com/chasqui/chasqui/central/internal/read"
	"github.com/chasqui/chasqui/central/internal/store"
	"github.com/chasqui/chasqui/internal/fixture"
	"github.com/chasqui/chasqui/internal/pgtest"
)

// setupRows: fixture.OpsSchema, "ops.*" allowed, store and read on it.
func setupRows(t *testing.T) (*bundle, *pgxpool.Pool) {
	t.Helper()
	cfg, err := store.PoolConfig(pgtest.NewDatabase(t, template))
	require.NoError(t, err)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = pool.Exec(context.Background(), fixture.OpsSchema)
	require.NoError(t, err)
	allow, err := catalog.ParseAllowList([]string{"ops.*"})
	require.NoError(t, err)
	cat := catalog.New(pool, allow, catalog.Options{})
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	return &bundle{store: store.New(pool, store.Options{Catalog: cat}), svc: read.New(pool, cat, logger)}, pool
}

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	require.NoError(t, err)
	return s
}

// Every type family reads back equal to what was sent, in Row.values
// shapes: PostgreSQL parsed each value with its column's input function.
func TestRowsRoundTripEveryType(t *testing.T) {
	t.Parallel()
	b, _ := setupRows(t)
	ctx := context.Background()
	full := map[string]any{
		"id":     fixture.ID(),
		"t":      "tab\there \"quoted\" ñandú",
		"i":      42.0,
		"big":    "9007199254740993", // 2^53+1: a float64 would round it
		"num":    "12345.678901234567890123",
		"flag":   true,
		"at":     "2026-11-23T03:12:45.123456+00:00",
		"day":    "2026-11-23",
		"u":      "0193a5c2-7c1e-7cc3-9a55-4f1b2c3d4e5f",
		"doc":    map[string]any{"k": []any{1.0, "two", nil}, "nested": map[string]any{"ok": false}},
		"tags":   []any{"a", "b c", ""},
		"blob":   "AAEC/w==",
		"status": "running",
	}
	small := map[string]any{"id": fixture.ID(), "big": -12.0, "num": 1.5, "i": nil, "t": nil}
	// Every column null except the key.
	nulls := map[string]any{"id": fixture.ID(), "t": nil, "i": nil, "big": nil, "num": nil, "flag": nil, "at": nil,
		"day": nil, "u": nil, "doc": nil, "tags": nil, "blob": nil, "status": nil}
	b.commit(t, fixture.Tx(
		fixture.Row("ops.every_type", opsv1.RowOp_ROW_OP_INSERT, full),
		fixture.Row("ops.every_type", opsv1.RowOp_ROW_OP_INSERT, nulls),
	), fixture.Tx(fixture.Row("ops.every_type", opsv1.RowOp_ROW_OP_UPSERT, small)))

	for _, sent := range []map[string]any{full, nulls} {
		res, err := b.svc.ListRows(ctx, &centralv1.ListRowsRequest{Table: "ops.every_type",
			Keys: []*structpb.Struct{mustStruct(t, map[string]any{"id": sent["id"]})}})
		require.NoError(t, err)
		require.Len(t, res.GetRows(), 1)
		want := mustStruct(t, sent)
		require.True(t, proto.Equal(want, res.GetRows()[0]), "sent %v\nread %v", want, res.GetRows()[0])
	}
	res, err := b.svc.ListRows(ctx, &centralv1.ListRowsRequest{Table: "ops.every_type",
		Where: mustStruct(t, map[string]any{"big": -12.0})})
	require.NoError(t, err)
	require.Len(t, res.GetRows(), 1)
	got := res.GetRows()[0].AsMap()
	for k, v := range small {
		require.Equal(t, v, got[k], k)
	}
	// Filters in the shapes values travel in: big integers as strings.
	res, err = b.svc.ListRows(ctx, &centralv1.ListRowsRequest{Table: "ops.every_type",
		Where: mustStruct(t, map[string]any{"big": "9007199254740993", "status": "running"})})
	require.NoError(t, err)
	require.Len(t, res.GetRows(), 1)
	require.Equal(t, full["id"], res.GetRows()[0].AsMap()["id"])
}

func TestListRowsPagesInKeyOrder(t *testing.T) {
	t.Parallel()
	b, _ := setupRows(t)
	ctx := context.Background()
	var muts []*opsv1.Mutation
	var ids []string
	for i := range 7 {
		id := fixture.ID()
		ids = append(ids, id)
		status := "queued"
		if i%2 == 1 {
			status = "done"
		}
		muts = append(muts, fixture.Row("ops.unit", opsv1.RowOp_ROW_OP_INSERT, map[string]any{"id": id, "name": "u", "status": status}))
	}
	b.commit(t, fixture.Tx(muts...))
	var got []string
	token := ""
	pages := 0
	for {
		res, err := b.svc.ListRows(ctx, &centralv1.ListRowsRequest{Table: "ops.unit", PageSize: 3, PageToken: token})
		require.NoError(t, err)
		pages++
		for _, r := range res.GetRows() {
			got = append(got, r.GetFields()["id"].GetStringValue())
		}
		if token = res.GetNextPageToken(); token == "" {
			break
		}
	}
	require.Equal(t, 3, pages)
	require.Equal(t, ids, got) // UUIDv7s sort as created

	res, err := b.svc.ListRows(ctx, &centralv1.ListRowsRequest{Table: "ops.unit", Where: mustStruct(t, map[string]any{"status": "done"})})
	require.NoError(t, err)
	require.Len(t, res.GetRows(), 3)
	for _, r := range res.GetRows() {
		require.Equal(t, "done", r.GetFields()["status"].GetStringValue())
	}

	for _, tc := range []struct {
		req  *centralv1.ListRowsRequest
		code codes.Code
		want string
	}{
		{&centralv1.ListRowsRequest{Table: "other.secret"}, codes.PermissionDenied, "not allowed"},
		{&centralv1.ListRowsRequest{Table: "chasqui.observations"}, codes.PermissionDenied, "not allowed"},
		{&centralv1.ListRowsRequest{Table: "ops.nope"}, codes.NotFound, "does not exist"},
		{&centralv1.ListRowsRequest{Table: "ops.no_key"}, codes.FailedPrecondition, "no primary key"},
		{&centralv1.ListRowsRequest{Table: `ops.unit"; --`}, codes.InvalidArgument, "table"},
		{&centralv1.ListRowsRequest{Table: "ops.unit", Where: mustStruct(t, map[string]any{"nope": 1.0})}, codes.InvalidArgument, "where.nope"},
		{&centralv1.ListRowsRequest{Table: "ops.unit", PageToken: "garbage"}, codes.InvalidArgument, "page_token"},
		{&centralv1.ListRowsRequest{Table: "ops.unit", Keys: []*structpb.Struct{mustStruct(t, map[string]any{"name": "u"})}}, codes.InvalidArgument, "keys[0]"},
	} {
		_, err := b.svc.ListRows(ctx, tc.req)
		require.Equal(t, tc.code, status.Code(err), "%s: %v", tc.req.GetTable(), err)
		require.Contains(t, status.Convert(err).Message(), tc.want)
	}
}
