// Package catalog owns what central knows of the tables edges may write
// rows to: the allow-list, and each allowed table's columns, types, key and
// foreign keys as PostgreSQL's catalog describes them. It reads the catalog
// at start and again, at most once per DefaultRefreshInterval, when a batch
// names a table or column it does not know (a migration ran).
package catalog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/rows"
)

// DefaultRefreshInterval bounds how often a batch naming an unknown table
// or column makes central re-read the catalog: a migration is seen within
// it, and a stream of bad rows cannot turn into a stream of catalog scans.
const DefaultRefreshInterval = 5 * time.Second

// forbiddenSchemas are never writable, whatever the allow-list says:
// PostgreSQL's own catalogs, and chasqui's bookkeeping (its records are
// written by the built-in mutations, under central's own rules).
var forbiddenSchemas = []string{"pg_catalog", "information_schema", "chasqui"}

// Forbidden tells whether no row may ever be written to schema.
func Forbidden(schema string) bool {
	return slices.Contains(forbiddenSchemas, schema) || strings.HasPrefix(schema, "pg_")
}

// AllowList is the set of tables edges may write: whole schemas
// ("schema.*") and single tables ("schema.table").
type AllowList struct {
	schemas []string
	tables  []string
}

// ParseAllowList reads entries "schema.table" or "schema.*". An entry in a
// forbidden schema is an error, so that a mistaken configuration is seen
// at start rather than as rejections.
func ParseAllowList(entries []string) (AllowList, error) {
	var a AllowList
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		schema, name, ok := strings.Cut(e, ".")
		if !ok {
			return AllowList{}, fmt.Errorf("allowed table %q: want schema.table or schema.*", e)
		}
		if err := rows.CheckIdentifier(schema); err != nil {
			return AllowList{}, fmt.Errorf("allowed table %q: schema %w", e, err)
		}
		if Forbidden(schema) {
			return AllowList{}, fmt.Errorf("allowed table %q: schema %q is never writable", e, schema)
		}
		if name == "*" {
			a.schemas = append(a.schemas, schema)
			continue
		}
		if _, err := rows.ParseTable(e); err != nil {
			return AllowList{}, fmt.Errorf("allowed table %q: %w", e, err)
		}
		a.tables = append(a.tables, e)
	}
	return a, nil
}

// Allows tells whether t is on the list (and not forbidden).
func (a AllowList) Allows(t rows.Table) bool {
	if Forbidden(t.Schema) {
		return false
	}
	return slices.Contains(a.schemas, t.Schema) || slices.Contains(a.tables, t.String())
}

// Empty tells whether no table is allowed.
func (a AllowList) Empty() bool { return len(a.schemas) == 0 && len(a.tables) == 0 }

// Column is one column of an allowed table.
type Column struct {
	Name string
	// Bytea: values travel as base64 and are decoded in SQL.
	Bytea bool
	// Int8 or Numeric: read back as a string when a JSON number (a
	// float64 at the other end) would not hold the value exactly.
	Int8, Numeric bool
	// Generated: GENERATED ALWAYS (identity or expression); rows must not set it.
	Generated bool
}

// Table is an allowed table.
type Table struct {
	Name rows.Table
	// Columns by name.
	Columns map[string]*Column
	// Key is the primary key's columns in key order.
	Key []string
	// Refused is why no row may be written (no key, a key only a
	// sequence can fill); empty when rows are welcome.
	Refused string
	// Schema is the table as GetSchema answers it.
	Schema *opsv1.TableSchema
}

// Snapshot is the catalog as read once. It is never modified.
type Snapshot struct {
	Tables map[string]*Table // by "schema.table"
	Schema *opsv1.Schema
}

// Table returns an allowed table by name, or nil.
func (s *Snapshot) Table(name string) *Table {
	if s == nil {
		return nil
	}
	return s.Tables[name]
}

// Querier is what the catalog reads with (a *pgxpool.Pool).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ParseEdgeTables reads per-edge restrictions, each "edge=entry,entry"
// with entries as ParseAllowList takes them; several may be joined with
// ";". An edge named here may write only the tables both its entry and
// the allow-list allow; an edge not named, every allowed table.
func ParseEdgeTables(specs []string) (map[string]AllowList, error) {
	out := map[string]AllowList{}
	for _, spec := range specs {
		for _, part := range strings.Split(spec, ";") {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			edge, list, ok := strings.Cut(part, "=")
			if edge = strings.TrimSpace(edge); !ok || edge == "" {
				return nil, fmt.Errorf("edge tables %q: want edge=schema.table,schema.*", part)
			}
			a, err := ParseAllowList(strings.Split(list, ","))
			if err != nil {
				return nil, fmt.Errorf("edge tables of %q: %w", edge, err)
			}
			prev := out[edge]
			out[edge] = AllowList{schemas: append(prev.schemas, a.schemas...), tables: append(prev.tables, a.tables...)}
		}
	}
	return out, nil
}

// Catalog holds the current Snapshot and refreshes it.
type Catalog struct {
	db       Querier
	allow    AllowList
	perEdge  map[string]AllowList
	interval time.Duration
	now      func() time.Time

	cur atomic.Pointer[Snapshot]
	mu  sync.Mutex // serializes reads of the catalog
	// lastRead is when the catalog was last read (under mu).
	lastRead time.Time
}

// Options configure a Catalog.
type Options struct {
	// RefreshInterval: see DefaultRefreshInterval (the default).
	RefreshInterval time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// PerEdge restricts named edges to some of the allowed tables
	// (ParseEdgeTables). Default: none, every edge may write every
	// allowed table.
	PerEdge map[string]AllowList
}

// New returns a catalog of the tables allow names, read from db on first
// use (Load, Refresh or Current).
func New(db Querier, allow AllowList, opts Options) *Catalog {
	if opts.RefreshInterval == 0 {
		opts.RefreshInterval = DefaultRefreshInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Catalog{db: db, allow: allow, perEdge: opts.PerEdge, interval: opts.RefreshInterval, now: opts.Now}
}

// Allow is the allow-list.
func (c *Catalog) Allow() AllowList { return c.allow }

// AllowsEdge tells whether edgeID may write t: the allow-list allows it,
// and so does the edge's restriction when it has one.
func (c *Catalog) AllowsEdge(edgeID string, t rows.Table) bool {
	if !c.allow.Allows(t) {
		return false
	}
	r, ok := c.perEdge[edgeID]
	return !ok || r.Allows(t)
}

// SchemaFor is snap's schema as edgeID may write it: without the tables
// its restriction leaves out, versioned accordingly.
func (c *Catalog) SchemaFor(snap *Snapshot, edgeID string) *opsv1.Schema {
	r, ok := c.perEdge[edgeID]
	if !ok {
		return snap.Schema
	}
	out := &opsv1.Schema{ReadAt: snap.Schema.GetReadAt()}
	for _, t := range snap.Schema.GetTables() {
		if name, err := rows.ParseTable(t.GetName()); err == nil && r.Allows(name) {
			out.Tables = append(out.Tables, t)
		}
	}
	out.Version = digest(out)
	return out
}

// Current returns the snapshot, reading the catalog if it never was.
func (c *Catalog) Current(ctx context.Context) (*Snapshot, error) {
	if s := c.cur.Load(); s != nil {
		return s, nil
	}
	return c.Load(ctx)
}

// Load reads the catalog now.
func (c *Catalog) Load(ctx context.Context) (*Snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loadLocked(ctx)
}

// Refresh re-reads the catalog unless it was read less than the refresh
// interval ago; it returns the current snapshot either way.
func (c *Catalog) Refresh(ctx context.Context) (*Snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.cur.Load(); s != nil && c.now().Sub(c.lastRead) < c.interval {
		return s, nil
	}
	return c.loadLocked(ctx)
}

func (c *Catalog) loadLocked(ctx context.Context) (*Snapshot, error) {
	s, err := read(ctx, c.db, c.allow, c.now())
	if err != nil {
		return nil, err
	}
	c.lastRead = c.now()
	c.cur.Store(s)
	return s, nil
}

// Which tables: relkind r (ordinary) and p (partitioned) of the allowed
// schemas and names, never of a forbidden schema.
const tablesSQL = `
SELECT c.oid, n.nspname, c.relname
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND (n.nspname = ANY($1::text[]) OR n.nspname || '.' || c.relname = ANY($2::text[]))
  AND n.nspname <> ALL($3::text[]) AND n.nspname NOT LIKE 'pg\_%'`

// Columns with their base type (through domains) and, for arrays, the
// element's; typcategory and the type's oid give the value's shape.
const columnsSQL = `
SELECT a.attrelid, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
       NOT a.attnotnull, a.atthasdef OR a.attidentity <> '', a.attgenerated <> '' OR a.attidentity = 'a',
       bt.typcategory = 'A', COALESCE(et.oid, bt.oid), COALESCE(et.typcategory, bt.typcategory),
       COALESCE(ARRAY(SELECT e.enumlabel::text FROM pg_catalog.pg_enum e
                      WHERE e.enumtypid = COALESCE(et.oid, bt.oid) ORDER BY e.enumsortorder), '{}')
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_catalog.pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum`

// Primary keys (p) and foreign keys (f), columns in key order.
const constraintsSQL = `
SELECT k.conrelid, k.contype::text, k.conname,
       ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY AS u(n, o)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.o),
       COALESCE((SELECT n.nspname || '.' || c.relname FROM pg_catalog.pg_class c
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = k.confrelid), ''),
       COALESCE(ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY AS u(n, o)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.o), '{}')
FROM pg_catalog.pg_constraint k
WHERE k.conrelid = ANY($1::oid[]) AND k.contype IN ('p', 'f')
ORDER BY k.conrelid, k.conname`

// Type oids with a shape of their own (pg_type.h).
const (
	oidBool    = 16
	oidBytea   = 17
	oidInt8    = 20
	oidInt2    = 21
	oidInt4    = 23
	oidJSON    = 114
	oidNumeric = 1700
	oidJSONB   = 3802
)

func read(ctx context.Context, db Querier, allow AllowList, now time.Time) (*Snapshot, error) {
	snap := &Snapshot{Tables: map[string]*Table{}}
	byOID := map[uint32]*Table{}
	var oids []uint32
	if !allow.Empty() {
		rs, err := db.Query(ctx, tablesSQL, allow.schemas, allow.tables, forbiddenSchemas)
		if err != nil {
			return nil, fmt.Errorf("read catalog: tables: %w", err)
		}
		var oid uint32
		var schema, name string
		if _, err := pgx.ForEachRow(rs, []any{&oid, &schema, &name}, func() error {
			t := &Table{Name: rows.Table{Schema: schema, Name: name}, Columns: map[string]*Column{},
				Schema: &opsv1.TableSchema{Name: schema + "." + name}}
			byOID[oid] = t
			oids = append(oids, oid)
			return nil
		}); err != nil {
			return nil, fmt.Errorf("read catalog: tables: %w", err)
		}
	}
	if len(oids) > 0 {
		if err := readColumns(ctx, db, oids, byOID); err != nil {
			return nil, err
		}
		if err := readConstraints(ctx, db, oids, byOID); err != nil {
			return nil, err
		}
	}
	schema := &opsv1.Schema{}
	for _, t := range byOID {
		t.Refused = refusal(t)
		t.Schema.RefusedReason = t.Refused
		snap.Tables[t.Name.String()] = t
		schema.Tables = append(schema.Tables, t.Schema)
	}
	sort.Slice(schema.Tables, func(i, j int) bool { return schema.Tables[i].GetName() < schema.Tables[j].GetName() })
	schema.Version = digest(schema)
	schema.ReadAt = timestamppb.New(now)
	snap.Schema = schema
	return snap, nil
}

func readColumns(ctx context.Context, db Querier, oids []uint32, byOID map[uint32]*Table) error {
	rs, err := db.Query(ctx, columnsSQL, oids)
	if err != nil {
		return fmt.Errorf("read catalog: columns: %w", err)
	}
	var (
		rel, elemOID                      uint32
		name, typ, category               string
		nullable, hasDef, generated, arry bool
		labels                            []string
	)
	_, err = pgx.ForEachRow(rs, []any{&rel, &name, &typ, &nullable, &hasDef, &generated, &arry, &elemOID, &category, &labels}, func() error {
		t := byOID[rel]
		if t == nil {
			return nil
		}
		cs := &opsv1.ColumnSchema{Name: name, Type: typ, Array: arry, Nullable: nullable, HasDefault: hasDef, Generated: generated}
		cs.Kind = kindOf(elemOID, category)
		if cs.Kind == opsv1.ValueKind_VALUE_KIND_ENUM {
			cs.EnumLabels = slices.Clone(labels)
		}
		t.Schema.Columns = append(t.Schema.Columns, cs)
		t.Columns[name] = &Column{
			Name:      name,
			Bytea:     !arry && elemOID == oidBytea,
			Int8:      !arry && elemOID == oidInt8,
			Numeric:   !arry && elemOID == oidNumeric,
			Generated: generated,
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read catalog: columns: %w", err)
	}
	return nil
}

func readConstraints(ctx context.Context, db Querier, oids []uint32, byOID map[uint32]*Table) error {
	rs, err := db.Query(ctx, constraintsSQL, oids)
	if err != nil {
		return fmt.Errorf("read catalog: keys: %w", err)
	}
	var (
		rel                 uint32
		typ, name, refTable string
		columns, refColumns []string
	)
	_, err = pgx.ForEachRow(rs, []any{&rel, &typ, &name, &columns, &refTable, &refColumns}, func() error {
		t := byOID[rel]
		if t == nil {
			return nil
		}
		switch typ {
		case "p":
			t.Key = slices.Clone(columns)
			t.Schema.PrimaryKey = t.Key
		case "f":
			t.Schema.ForeignKeys = append(t.Schema.ForeignKeys, &opsv1.ForeignKey{
				Name: name, Columns: slices.Clone(columns), ReferencesTable: refTable, ReferencesColumns: slices.Clone(refColumns),
			})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read catalog: keys: %w", err)
	}
	return nil
}

// kindOf maps a type (an array's element type) to the shape of its value.
func kindOf(oid uint32, category string) opsv1.ValueKind {
	switch oid {
	case oidInt2, oidInt4, oidInt8:
		return opsv1.ValueKind_VALUE_KIND_INTEGER
	case oidBool:
		return opsv1.ValueKind_VALUE_KIND_BOOL
	case oidBytea:
		return opsv1.ValueKind_VALUE_KIND_BYTES
	case oidJSON, oidJSONB:
		return opsv1.ValueKind_VALUE_KIND_JSON
	}
	switch category {
	case "N":
		return opsv1.ValueKind_VALUE_KIND_NUMBER
	case "B":
		return opsv1.ValueKind_VALUE_KIND_BOOL
	case "E":
		return opsv1.ValueKind_VALUE_KIND_ENUM
	}
	return opsv1.ValueKind_VALUE_KIND_STRING
}

// refusal says why a table cannot take rows, or "".
func refusal(t *Table) string {
	if len(t.Key) == 0 {
		return "table has no primary key: a retried insert could not be deduplicated"
	}
	for _, k := range t.Key {
		for _, c := range t.Schema.GetColumns() {
			if c.GetName() == k && c.GetGenerated() {
				return fmt.Sprintf("primary key column %q is generated (GENERATED ALWAYS): only a sequence or expression can fill it, "+
					"so a retried insert could not be deduplicated; use a key the caller chooses (UUIDv7 or natural)", k)
			}
		}
	}
	return ""
}

// digest is the schema's version: it changes whenever a table, column,
// type or key does.
func digest(s *opsv1.Schema) string {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&opsv1.Schema{Tables: s.GetTables()})
	if err != nil {
		// Marshalling a Schema built here cannot fail; a constant version
		// would hide changes, so make it unique.
		return "unversioned-" + time.Now().String()
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// ErrNotAllowed: the table is not on the allow-list (or in a forbidden schema).
var ErrNotAllowed = errors.New("table not allowed")
