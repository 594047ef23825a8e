package store

import (
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/rows"
)

// One set-based statement per run of consecutive mutations of one kind.
const (
	insertObservations = `
INSERT INTO chasqui.observations (id, instrument, source, obs_unit, status, start_time, end_time, attributes, tx_id, edge_id)
SELECT u.id, u.instrument, u.source, u.obs_unit, u.status, u.start_time, u.end_time, u.attributes, u.tx_id, $10
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[], $8::jsonb[], $9::uuid[])
  AS u(id, instrument, source, obs_unit, status, start_time, end_time, attributes, tx_id)`

	// An UPDATE that touches no row is not a success: require_rows raises
	// P0002 naming the first missing id, which fails the statement.
	updateObservations = `
WITH u AS (
  SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::jsonb[]) AS u(id, status, end_time, attributes)
), upd AS (
  UPDATE chasqui.observations o
  SET status = COALESCE(u.status, o.status),
      end_time = COALESCE(u.end_time, o.end_time),
      attributes = o.attributes || u.attributes,
      updated_at = now()
  FROM u
  WHERE o.id = u.id
  RETURNING o.id
)
SELECT chasqui.require_rows('observation', $1::uuid[], ARRAY(SELECT id FROM upd))`

	insertInstrumentConfigs = `
INSERT INTO chasqui.instrument_configs (id, instrument, observation_id, recorded_at, config, tx_id, edge_id)
SELECT u.id, u.instrument, u.observation_id, u.recorded_at, u.config, u.tx_id, $7
FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::timestamptz[], $5::jsonb[], $6::uuid[])
  AS u(id, instrument, observation_id, recorded_at, config, tx_id)`

	insertRawDataFiles = `
INSERT INTO chasqui.raw_data_files (id, observation_id, path, size_bytes, checksum, created_at, tx_id, edge_id)
SELECT u.id, u.observation_id, u.path, u.size_bytes, u.checksum, COALESCE(u.created_at, now()), u.tx_id, $8
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bigint[], $5::text[], $6::timestamptz[], $7::uuid[])
  AS u(id, observation_id, path, size_bytes, checksum, created_at, tx_id)`

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

type kind int

const (
	kindNone kind = iota
	kindObservation
	kindUpdate
	kindConfig
	kindFile
)

func kindOf(m *opsv1.Mutation) kind {
	switch m.GetKind().(type) {
	case *opsv1.Mutation_Observation:
		return kindObservation
	case *opsv1.Mutation_ObservationUpdate:
		return kindUpdate
	case *opsv1.Mutation_InstrumentConfig:
		return kindConfig
	case *opsv1.Mutation_RawDataFile:
		return kindFile
	}
	return kindNone
}

// dataStatements turns the mutations of plan, in sequence order, into
// set-based statements: a run of consecutive mutations of one kind is one
// statement (for rows: of one table, op and column set). A run of updates
// is cut where an id repeats, since UPDATE ... FROM applies only one of
// several matching source rows; a run of rows where a key repeats, for
// the same reason (and ON CONFLICT DO UPDATE's).
func dataStatements(edgeID string, plan []*planned) []statement {
	var stmts []statement
	var b runBuilder
	var rr *rowRun
	flushRows := func() {
		if rr != nil {
			stmts = append(stmts, rr.statement())
			rr = nil
		}
	}
	for _, p := range plan {
		for _, m := range p.tx.GetMutations() {
			if r := m.GetRow(); r != nil {
				if s, ok := b.flush(edgeID); ok {
					stmts = append(stmts, s)
				}
				b.start(kindNone)
				t := p.snap.Table(r.GetTable())
				sig, cols := rowSig(r)
				key, _ := rows.Key(t.Key, r.GetValues()) // checkRows refused a row without its key
				if !rr.fits(sig, key) {
					flushRows()
					rr = &rowRun{table: t, op: r.GetOp(), cols: cols, sig: sig, seen: map[string]bool{}, json: []byte{'['}}
				}
				rr.add(key, r)
				continue
			}
			flushRows()
			k := kindOf(m)
			if k != b.kind || (k == kindUpdate && b.seen[m.GetObservationUpdate().GetId()]) {
				if s, ok := b.flush(edgeID); ok {
					stmts = append(stmts, s)
				}
				b.start(k)
			}
			b.add(p.id, m)
		}
	}
	flushRows()
	if s, ok := b.flush(edgeID); ok {
		stmts = append(stmts, s)
	}
	return stmts
}

// runBuilder accumulates one run's column arrays.
type runBuilder struct {
	kind kind
	n    int
	seen map[string]bool // update ids in the run

	ids, refs, txIDs, optRefs []pgtype.UUID
	texts1, texts2, texts3    []string
	optTexts                  []*string
	times                     []pgtype.Timestamptz
	optTimes                  []pgtype.Timestamptz
	jsons                     []string
	sizes                     []int64
}

func (b *runBuilder) start(k kind) {
	*b = runBuilder{kind: k}
	if k == kindUpdate {
		b.seen = map[string]bool{}
	}
}

func (b *runBuilder) add(txID uuid.UUID, m *opsv1.Mutation) {
	b.n++
	b.txIDs = append(b.txIDs, pgUUID(txID))
	switch b.kind {
	case kindObservation:
		o := m.GetObservation()
		b.ids = append(b.ids, pgUUID(parseUUID(o.GetId())))
		b.texts1 = append(b.texts1, o.GetInstrument())
		b.texts2 = append(b.texts2, o.GetSource())
		b.texts3 = append(b.texts3, o.GetObsUnit())
		s := statusText(o.GetStatus())
		b.optTexts = append(b.optTexts, &s)
		b.times = append(b.times, ts(o.GetStartTime()))
		b.optTimes = append(b.optTimes, ts(o.GetEndTime()))
		b.jsons = append(b.jsons, jsonOf(o.GetAttributes()))
	case kindUpdate:
		u := m.GetObservationUpdate()
		b.seen[u.GetId()] = true
		b.ids = append(b.ids, pgUUID(parseUUID(u.GetId())))
		var st *string
		if u.Status != nil {
			s := statusText(u.GetStatus())
			st = &s
		}
		b.optTexts = append(b.optTexts, st)
		b.optTimes = append(b.optTimes, ts(u.GetEndTime()))
		b.jsons = append(b.jsons, jsonOf(u.GetAttributes()))
	case kindConfig:
		c := m.GetInstrumentConfig()
		b.ids = append(b.ids, pgUUID(parseUUID(c.GetId())))
		b.texts1 = append(b.texts1, c.GetInstrument())
		var ref pgtype.UUID
		if c.GetObservationId() != "" {
			ref = pgtype.UUID{Bytes: parseUUID(c.GetObservationId()), Valid: true}
		}
		b.optRefs = append(b.optRefs, ref)
		b.times = append(b.times, ts(c.GetRecordedAt()))
		b.jsons = append(b.jsons, jsonOf(c.GetConfig()))
	case kindFile:
		f := m.GetRawDataFile()
		b.ids = append(b.ids, pgUUID(parseUUID(f.GetId())))
		b.refs = append(b.refs, pgUUID(parseUUID(f.GetObservationId())))
		b.texts1 = append(b.texts1, f.GetPath())
		b.sizes = append(b.sizes, f.GetSizeBytes())
		b.texts2 = append(b.texts2, f.GetChecksum())
		b.optTimes = append(b.optTimes, ts(f.GetCreatedAt()))
	}
}

func (b *runBuilder) flush(edgeID string) (statement, bool) {
	if b.n == 0 {
		return statement{}, false
	}
	switch b.kind {
	case kindObservation:
		return statement{insertObservations, []any{b.ids, b.texts1, b.texts2, b.texts3, b.optTexts, b.times, b.optTimes, b.jsons, b.txIDs, edgeID}}, true
	case kindUpdate:
		return statement{updateObservations, []any{b.ids, b.optTexts, b.optTimes, b.jsons}}, true
	case kindConfig:
		return statement{insertInstrumentConfigs, []any{b.ids, b.texts1, b.optRefs, b.times, b.jsons, b.txIDs, edgeID}}, true
	case kindFile:
		return statement{insertRawDataFiles, []any{b.ids, b.refs, b.texts1, b.sizes, b.texts2, b.optTimes, b.txIDs, edgeID}}, true
	}
	return statement{}, false
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

func ts(t *timestamppb.Timestamp) pgtype.Timestamptz {
	if t == nil {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: t.AsTime(), Valid: true}
}

func jsonOf(s *structpb.Struct) string { return JSON(s) }
