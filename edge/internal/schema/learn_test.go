package schema

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// schemaServer answers GetSchema as central does, from a schema the test
// sets; fail makes it answer UNAVAILABLE.
type schemaServer struct {
	centralv1.UnimplementedIngestServiceServer
	mu     sync.Mutex
	schema *opsv1.Schema
	fail   bool
	calls  []*centralv1.GetSchemaRequest
}

func (s *schemaServer) GetSchema(_ context.Context, req *centralv1.GetSchemaRequest) (*centralv1.GetSchemaResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, proto.CloneOf(req))
	if s.fail {
		return nil, status.Error(codes.Unavailable, "central is starting")
	}
	if req.GetKnownVersion() == s.schema.GetVersion() {
		return &centralv1.GetSchemaResponse{Schema: &opsv1.Schema{Version: s.schema.GetVersion()}, Unchanged: true}, nil
	}
	return &centralv1.GetSchemaResponse{Schema: s.schema}, nil
}

func (s *schemaServer) set(sc *opsv1.Schema, fail bool) {
	s.mu.Lock()
	s.schema, s.fail = sc, fail
	s.mu.Unlock()
}

func (s *schemaServer) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

func (s *schemaServer) lastCall() *centralv1.GetSchemaRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[len(s.calls)-1]
}

// serve serves s on addr until the returned stop is called.
func serve(t *testing.T, s *schemaServer, addr string) (string, func()) {
	t.Helper()
	var lis net.Listener
	require.Eventually(t, func() bool { // the port of a stopped server may linger a moment
		var err error
		lis, err = net.Listen("tcp", addr)
		return err == nil
	}, 30*time.Second, 50*time.Millisecond)
	srv := grpc.NewServer()
	centralv1.RegisterIngestServiceServer(srv, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			srv.Stop()
			<-done
		})
	}
	t.Cleanup(stop)
	return lis.Addr().String(), stop
}

type learnBundle struct {
	conn  *grpc.ClientConn
	srv   *schemaServer
	addr  string
	stop  func()
	cache *Cache
	dir   string
	l     *Learner
}

func setupLearner(t *testing.T, srv *schemaServer) *learnBundle {
	t.Helper()
	b := &learnBundle{srv: srv, dir: t.TempDir()}
	b.addr, b.stop = serve(t, b.srv, "127.0.0.1:0")
	conn, err := grpc.NewClient(b.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	b.conn = conn
	b.cache, err = Open(b.dir)
	require.NoError(t, err)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	b.l, err = NewLearner(LearnerConfig{EdgeID: "edge-1", MinRefreshInterval: 50 * time.Millisecond, FetchTimeout: 5 * time.Second},
		b.cache, conn, conn, logger)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return b
}

func withColumn(s *opsv1.Schema, version string) *opsv1.Schema {
	s = proto.CloneOf(s)
	s.Version = version
	t := s.Tables[1]
	t.Columns = append(t.Columns, &opsv1.ColumnSchema{Name: "checksum", Type: "text", Kind: opsv1.ValueKind_VALUE_KIND_STRING, Nullable: true})
	return s
}

const deadline = 60 * time.Second

func TestLearnerLearnsAtStartAndKeepsIt(t *testing.T) {
	t.Parallel()
	b := setupLearner(t, &schemaServer{schema: testSchema()})
	require.Eventually(t, b.cache.Known, deadline, 20*time.Millisecond)
	require.Equal(t, "edge-1", b.srv.lastCall().GetEdgeId())
	require.Empty(t, b.srv.lastCall().GetKnownVersion())

	again, err := Open(b.dir)
	require.NoError(t, err)
	s, _ := again.Schema()
	require.True(t, proto.Equal(testSchema(), s), "the learned schema is on disk")
}

func TestLearnerRefreshesWhenTheEdgeRefusesAnUnknownColumn(t *testing.T) {
	t.Parallel()
	b := setupLearner(t, &schemaServer{schema: testSchema()})
	require.Eventually(t, b.cache.Known, deadline, 20*time.Millisecond)
	_, learned := b.cache.Schema()

	// A migration adds a column; nothing tells the edge but the row that uses it.
	b.srv.set(withColumn(testSchema(), "v2"), false)
	r := row(t, "ops.raw_data_package", update, map[string]any{"site": "cl", "seq": 1.0, "checksum": "sha256:00"})
	require.ErrorContains(t, b.cache.Check(r), "no column")
	require.Eventually(t, func() bool { return b.cache.Version() == "v2" }, deadline, 20*time.Millisecond)
	require.NoError(t, b.cache.Check(r))
	require.Equal(t, "v1", b.srv.lastCall().GetKnownVersion())

	// Unchanged: only learned_at moves.
	calls := b.srv.callCount()
	b.l.Refresh()
	require.Eventually(t, func() bool { return b.srv.callCount() > calls }, deadline, 20*time.Millisecond)
	require.Eventually(t, func() bool { _, at := b.cache.Schema(); return at.After(learned) }, deadline, 20*time.Millisecond)
	require.Equal(t, "v2", b.cache.Version())
}

func TestLearnerRefreshesOnReconnection(t *testing.T) {
	t.Parallel()
	b := setupLearner(t, &schemaServer{schema: testSchema()})
	require.Eventually(t, b.cache.Known, deadline, 20*time.Millisecond)

	// Central restarts after a migration; the edge learns it once the link is back.
	b.stop()
	srv2 := &schemaServer{schema: withColumn(testSchema(), "v2")}
	serve(t, srv2, b.addr)
	require.Eventually(t, func() bool {
		// A link left idle reconnects on a call: the forwarder's commits
		// and probes make them in the edge.
		b.conn.Connect()
		return b.cache.Version() == "v2"
	}, deadline, 20*time.Millisecond)
	require.Equal(t, "v1", srv2.lastCall().GetKnownVersion())
}

func TestLearnerRetriesAfterFailures(t *testing.T) {
	t.Parallel()
	srv := &schemaServer{schema: testSchema(), fail: true}
	b := setupLearner(t, srv)
	require.Eventually(t, func() bool { return srv.callCount() >= 2 }, deadline, 20*time.Millisecond)
	require.False(t, b.cache.Known())
	srv.set(testSchema(), false)
	require.Eventually(t, b.cache.Known, deadline, 20*time.Millisecond)
}

func TestStaleSchema(t *testing.T) {
	t.Parallel()
	for _, code := range []string{"42P01", "42703", "42501"} {
		require.True(t, StaleSchema(code), code)
	}
	for _, code := range []string{"", "23505", "22P02", "23503"} {
		require.False(t, StaleSchema(code), code)
	}
}
