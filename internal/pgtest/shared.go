package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Template is a database migrated once per test binary and cloned for every
// test that asks for it.
type Template struct {
	// Name identifies the template within a test binary: the first
	// NewDatabase call with a Name creates and migrates it, later calls
	// reuse it whatever their Migrate. Lower-case letters, digits and
	// underscores, at most 40 bytes, since it prefixes database names.
	Name string
	// Migrate brings the empty database at url to the schema tests expect.
	// It should close every connection it opens: PostgreSQL copies a
	// template only while nobody is connected to it. (Connections left
	// open are terminated once Migrate returns.)
	Migrate func(ctx context.Context, url string) error
}

var templateName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,39}$`)

// dbMarker starts the comment on every database NewDatabase creates,
// followed by the creation time in Unix seconds; sweepStale recognizes
// leftovers by it.
const dbMarker = "chasqui-pgtest "

// staleAge is how old a marked database on a DATABASE_URL server must be
// before a later run drops it; no test binary runs anywhere near that long.
const staleAge = 24 * time.Hour

// The shared server and its templates: the only package state besides the
// run directory, guarded by shared.mu.
var shared struct {
	mu        sync.Mutex
	started   bool
	srv       *server
	err       error // start error, repeated to every test that asks
	templates map[string]*templateEntry
}

// sqlstateObjectInUse is what CREATE DATABASE ... TEMPLATE reports while
// another session is connected to the template.
const sqlstateObjectInUse = "55006"

// cloneMu serializes CREATE DATABASE ... TEMPLATE within the binary.
var cloneMu sync.Mutex

// server is where templates and clones live: DATABASE_URL's server, or a
// cluster of our own.
type server struct {
	admin   *url.URL
	cluster *Cluster // nil for DATABASE_URL
	// suffix makes this binary's database names unique on a server other
	// runs use at the same time (go test ./... runs packages in parallel).
	suffix string
	// cloneStrategy is appended to CREATE DATABASE ... TEMPLATE. From
	// PostgreSQL 15 the default copies the template through the WAL, about
	// twice as slow for a small schema as the FILE_COPY of older servers.
	cloneStrategy string
	clones        atomic.Int64
}

type templateEntry struct {
	mu   sync.Mutex
	done bool
	db   string
	err  error
}

// Main runs the tests and then stops the shared cluster, or, with
// DATABASE_URL, drops this binary's templates; it returns the exit code for
// the caller to pass to os.Exit:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// Without Main the shared cluster still dies with the test binary
// (Pdeathsig) and the next run removes its directory, and templates left on
// a DATABASE_URL server are dropped by a run a day later.
func Main(m *testing.M) int {
	code := m.Run()
	if err := closeShared(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	removeRunDir()
	return code
}

func closeShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	srv := shared.srv
	templates := shared.templates
	shared.started, shared.srv, shared.err, shared.templates = false, nil, nil, nil
	if srv == nil {
		return nil
	}
	if srv.cluster != nil {
		return srv.cluster.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	for _, e := range templates {
		e.mu.Lock()
		if e.done && e.err == nil {
			errs = append(errs, srv.drop(ctx, e.db))
		}
		e.mu.Unlock()
	}
	return errors.Join(errs...)
}

// sharedServer starts the shared server on first use. A failure is kept and
// returned to every later caller, so each test that needs the server fails
// with the cause instead of retrying a slow start.
func sharedServer() (*server, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.started {
		shared.started = true
		shared.srv, shared.err = startServer()
		shared.templates = map[string]*templateEntry{}
	}
	return shared.srv, shared.err
}

func startServer() (*server, error) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	srv := &server{suffix: hex.EncodeToString(b[:])}
	if raw := os.Getenv("DATABASE_URL"); raw != "" {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			// Not the URL itself: it may hold a password.
			return nil, errors.New("pgtest: DATABASE_URL must be a postgres:// URL")
		}
		srv.admin = u
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := errors.Join(srv.sweepStale(ctx), srv.pickStrategy(ctx)); err != nil {
			return nil, fmt.Errorf("pgtest: DATABASE_URL server: %w", err)
		}
		return srv, nil
	}
	c, err := NewCluster(Options{Name: "shared"})
	if err != nil {
		return nil, err
	}
	srv.cluster = c
	srv.admin, _ = url.Parse(c.URL("postgres"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.pickStrategy(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("pgtest: shared cluster: %w", err), c.Close())
	}
	return srv, nil
}

func (s *server) pickStrategy(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.admin.String())
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	var version int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		return err
	}
	if version >= 150000 {
		s.cloneStrategy = " STRATEGY FILE_COPY"
	}
	return nil
}

// url names database db on the server, keeping DATABASE_URL's credentials
// and parameters.
func (s *server) url(db string) string {
	u := *s.admin
	u.Path, u.RawPath = "/"+db, ""
	return u.String()
}

// exec runs statements on the admin database in one connection.
func (s *server) exec(ctx context.Context, stmts ...string) error {
	conn, err := pgx.Connect(ctx, s.admin.String())
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	for _, stmt := range stmts {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

func (s *server) create(ctx context.Context, db, template string) error {
	stmt := "CREATE DATABASE " + pgx.Identifier{db}.Sanitize()
	if template != "" {
		stmt += " TEMPLATE " + pgx.Identifier{template}.Sanitize() + s.cloneStrategy
	}
	comment := fmt.Sprintf("COMMENT ON DATABASE %s IS '%s%d'", pgx.Identifier{db}.Sanitize(), dbMarker, time.Now().Unix())
	// Another session still connected to the template makes CREATE DATABASE
	// fail at once with object_in_use; the straggler is usually a pool
	// closing asynchronously, so wait a little and try again.
	for attempt := 1; ; attempt++ {
		err := s.exec(ctx, stmt, comment)
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != sqlstateObjectInUse || attempt == 10 {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
	}
}

func (s *server) drop(ctx context.Context, db string) error {
	return s.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
}

// sweepStale drops databases earlier runs left on a DATABASE_URL server:
// only those carrying our marker, and only when older than staleAge, so
// runs in progress elsewhere keep theirs.
func (s *server) sweepStale(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.admin.String())
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	rows, err := conn.Query(ctx, `
		SELECT d.datname, s.description
		FROM pg_database d
		JOIN pg_shdescription s ON s.objoid = d.oid AND s.classoid = 'pg_database'::regclass
		WHERE starts_with(s.description, $1)`, dbMarker)
	if err != nil {
		return err
	}
	type row struct{ name, desc string }
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		return x, r.Scan(&x.name, &x.desc)
	})
	if err != nil {
		return err
	}
	for _, x := range found {
		secs, err := strconv.ParseInt(strings.TrimPrefix(x.desc, dbMarker), 10, 64)
		if err != nil || time.Since(time.Unix(secs, 0)) < staleAge {
			continue
		}
		// Best effort: another run may be sweeping the same database.
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{x.name}.Sanitize()+" WITH (FORCE)")
	}
	return nil
}

// template returns the name of tmpl's migrated database, creating it on
// first use. Concurrent first users wait for one migration.
func (s *server) template(ctx context.Context, tmpl Template) (string, error) {
	shared.mu.Lock()
	e := shared.templates[tmpl.Name]
	if e == nil {
		e = &templateEntry{}
		shared.templates[tmpl.Name] = e
	}
	shared.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.done {
		e.db = tmpl.Name + "_" + s.suffix + "_tmpl"
		e.err = s.migrateTemplate(ctx, e.db, tmpl)
		e.done = true
	}
	return e.db, e.err
}

func (s *server) migrateTemplate(ctx context.Context, db string, tmpl Template) error {
	if err := s.create(ctx, db, ""); err != nil {
		return fmt.Errorf("creating template %s: %w", db, err)
	}
	if err := tmpl.Migrate(ctx, s.url(db)); err != nil {
		return errors.Join(fmt.Errorf("migrating template %s: %w", tmpl.Name, err), s.drop(ctx, db))
	}
	// From here on the template must stay idle: refuse new connections and
	// end any Migrate left behind. pg_terminate_backend only signals; create
	// retries while the terminated sessions are still on their way out.
	lit := pgx.Identifier{db}.Sanitize()
	err := s.exec(ctx,
		"ALTER DATABASE "+lit+" ALLOW_CONNECTIONS false",
		fmt.Sprintf("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s'", db))
	if err != nil {
		return fmt.Errorf("sealing template %s: %w", db, err)
	}
	return nil
}

// NewDatabase returns the URL of a new database, cloned from tmpl's template
// (created and migrated on first use), which only this test uses and which
// is dropped when the test ends. The server is DATABASE_URL's when set,
// else the shared cluster. Database names carry a random per-binary suffix
// so parallel test binaries sharing a DATABASE_URL server never touch each
// other's templates.
func NewDatabase(t testing.TB, tmpl Template) string {
	t.Helper()
	if !templateName.MatchString(tmpl.Name) || tmpl.Migrate == nil {
		t.Fatalf("pgtest: Template needs a Name matching %s and a Migrate func; got Name %q", templateName, tmpl.Name)
	}
	srv, err := sharedServer()
	if err != nil {
		t.Fatal(err)
	}
	// Migrations on a loaded 2-core machine can be slow; the test's own
	// context is not used because it is cancelled before cleanups run.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tdb, err := srv.template(ctx, tmpl)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	db := fmt.Sprintf("%s_%s_%d", tmpl.Name, srv.suffix, srv.clones.Add(1))
	cloneMu.Lock()
	err = srv.create(ctx, db, tdb)
	cloneMu.Unlock()
	if err != nil {
		t.Fatalf("pgtest: cloning %s: %v", tdb, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.drop(ctx, db); err != nil {
			t.Errorf("pgtest: dropping %s: %v", db, err)
		}
	})
	return srv.url(db)
}
