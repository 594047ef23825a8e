// Package schema owns what the edge knows of the tables it may take rows
// for: the schema learned from central (IngestService.GetSchema), kept
// durably in a file of the data directory, and the check of a row against
// it before the edge acknowledges the row. The check names the bad field by
// proto path ("transactions[0].mutations[1].row.values.size: ...") as
// internal/validate does, so the API answers INVALID_ARGUMENT with
// BadRequest details.
//
// While no schema was ever learned (first start with the link to central
// down), Check looks at the row's shape only: central then refuses a wrong
// row and it becomes a dead letter with PostgreSQL's reason.
package schema

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// FileName is the file of the data directory that holds the learned schema
// (an edgev1.GetSchemaResponse: the schema and when it was learned).
// Badger leaves files it does not know alone.
const FileName = "chasqui-schema.binpb"

// Table is one table of the learned schema with the lookups Check needs.
// It is immutable: callers must not modify it or its TableSchema.
type Table struct {
	*opsv1.TableSchema
	columns map[string]*opsv1.ColumnSchema
	key     map[string]bool
	// required are the columns an INSERT or UPSERT must give: not
	// nullable, no default, not generated.
	required []string
}

// Column is the column called name, or nil.
func (t *Table) Column(name string) *opsv1.ColumnSchema { return t.columns[name] }

// IsKey tells whether column name is part of the primary key.
func (t *Table) IsKey(name string) bool { return t.key[name] }

// snapshot is one learned schema; replaced whole, never modified.
type snapshot struct {
	schema    *opsv1.Schema
	learnedAt time.Time
	tables    map[string]*Table
}

// Cache holds the learned schema. It is safe for concurrent use: readers
// see one snapshot, replaced whole by Set.
type Cache struct {
	path string
	cur  atomic.Pointer[snapshot]
	// mu orders writers, so the file and the snapshot agree.
	mu sync.Mutex
	// onUnknown, when set (by a Learner), is called when Check refuses a
	// table or column the schema does not hold: a migration may have
	// added it since the schema was learned.
	onUnknown atomic.Pointer[func()]
}

// Open loads the schema kept in dir (none yet: an empty cache). dir ""
// keeps the schema in memory only (tests, benchmarks).
func Open(dir string) (*Cache, error) {
	c := &Cache{}
	if dir == "" {
		return c, nil
	}
	c.path = filepath.Join(dir, FileName)
	b, err := os.ReadFile(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("schema: read %s: %w", c.path, err)
	}
	var saved edgev1.GetSchemaResponse
	if err := proto.Unmarshal(b, &saved); err != nil {
		return nil, fmt.Errorf("schema: %s is corrupt (delete it: the edge learns the schema again from central): %w", c.path, err)
	}
	if saved.GetSchema() != nil {
		c.cur.Store(newSnapshot(saved.GetSchema(), saved.GetLearnedAt().AsTime()))
	}
	return c, nil
}

// New is an in-memory cache holding s (nil: never learned), for tests and
// benchmarks.
func New(s *opsv1.Schema) *Cache {
	c := &Cache{}
	if s != nil {
		c.cur.Store(newSnapshot(s, time.Now()))
	}
	return c
}

func newSnapshot(s *opsv1.Schema, learnedAt time.Time) *snapshot {
	sn := &snapshot{schema: s, learnedAt: learnedAt, tables: make(map[string]*Table, len(s.GetTables()))}
	for _, ts := range s.GetTables() {
		t := &Table{
			TableSchema: ts,
			columns:     make(map[string]*opsv1.ColumnSchema, len(ts.GetColumns())),
			key:         make(map[string]bool, len(ts.GetPrimaryKey())),
		}
		for _, col := range ts.GetColumns() {
			t.columns[col.GetName()] = col
			if !col.GetNullable() && !col.GetHasDefault() && !col.GetGenerated() {
				t.required = append(t.required, col.GetName())
			}
		}
		for _, k := range ts.GetPrimaryKey() {
			t.key[k] = true
		}
		sn.tables[ts.GetName()] = t
	}
	return sn
}

// Known tells whether a schema was ever learned.
func (c *Cache) Known() bool { return c.cur.Load() != nil }

// Schema is the learned schema and when it was learned or last confirmed;
// nil when never learned. The caller must not modify it.
func (c *Cache) Schema() (*opsv1.Schema, time.Time) {
	sn := c.cur.Load()
	if sn == nil {
		return nil, time.Time{}
	}
	return sn.schema, sn.learnedAt
}

// Version is the learned schema's version, "" when never learned.
func (c *Cache) Version() string {
	if sn := c.cur.Load(); sn != nil {
		return sn.schema.GetVersion()
	}
	return ""
}

// Table looks a table up by its schema-qualified name. ok is false when no
// schema was learned or it holds no such table.
func (c *Cache) Table(name string) (t *Table, ok bool) {
	sn := c.cur.Load()
	if sn == nil {
		return nil, false
	}
	t, ok = sn.tables[name]
	return t, ok
}

// Set keeps s as the learned schema, learned at learnedAt: on disk first
// (so what Check uses survives a restart), then in memory.
func (c *Cache) Set(s *opsv1.Schema, learnedAt time.Time) error {
	if s == nil {
		return errors.New("schema: Set of a nil schema")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.save(s, learnedAt); err != nil {
		return err
	}
	c.cur.Store(newSnapshot(s, learnedAt))
	return nil
}

// Confirm records that central said the schema held is current, at at.
func (c *Cache) Confirm(at time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	sn := c.cur.Load()
	if sn == nil {
		return errors.New("schema: Confirm without a learned schema")
	}
	if err := c.save(sn.schema, at); err != nil {
		return err
	}
	c.cur.Store(&snapshot{schema: sn.schema, learnedAt: at, tables: sn.tables})
	return nil
}

// save writes the file atomically and durably: temp file, fsync, rename,
// fsync of the directory (without it, a crash could leave the rename
// undone or the file empty).
func (c *Cache) save(s *opsv1.Schema, learnedAt time.Time) error {
	if c.path == "" {
		return nil
	}
	b, err := proto.Marshal(&edgev1.GetSchemaResponse{Schema: s, LearnedAt: timestamppb.New(learnedAt)})
	if err != nil {
		return fmt.Errorf("schema: marshal: %w", err)
	}
	dir := filepath.Dir(c.path)
	f, err := os.CreateTemp(dir, "."+FileName+".tmp*")
	if err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }() // gone after the rename
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, c.path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("schema: write %s: %w", c.path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
