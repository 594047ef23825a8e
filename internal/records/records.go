// Package records reads Chasqui's committed records (schema chasqui) from a
// PostgreSQL database: central's primary, for central's ReadService, or the
// site replica, for the edge's reads. One place holds the SQL and the page
// token format, so both answer alike.
package records

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/validate"
)

// Page sizes.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// ErrNotFound: no observation with that id.
var ErrNotFound = errors.New("records: not found")

// ErrBadToken: a page token this package did not make.
var ErrBadToken = errors.New("records: malformed page token")

// Querier is what reads need: *pgx.Conn, *pgxpool.Pool and pgx.Tx have it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Record is one observation with its files and configurations.
type Record struct {
	Observation *opsv1.Observation
	Files       []*opsv1.RawDataFile
	Configs     []*opsv1.InstrumentConfig
}

// Key is a position in list order: (start_time, id).
type Key struct {
	Start time.Time
	ID    uuid.UUID
}

// KeyOf is the list-order key of o (zero ID when o's id is not a UUID).
func KeyOf(o *opsv1.Observation) Key {
	id, _ := uuid.Parse(o.GetId())
	return Key{Start: o.GetStartTime().AsTime().Truncate(time.Microsecond), ID: id}
}

// Less orders keys as lists do.
func (k Key) Less(o Key) bool {
	if !k.Start.Equal(o.Start) {
		return k.Start.Before(o.Start)
	}
	return strings.Compare(k.ID.String(), o.ID.String()) < 0
}

// Token encodes k as an opaque page token.
func (k Key) Token() string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%d|%s", k.Start.UnixMicro(), k.ID))
}

// ParseToken decodes a page token ("" gives nil: the first page).
func ParseToken(tok string) (*Key, error) {
	if tok == "" {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return nil, ErrBadToken
	}
	us, id, ok := strings.Cut(string(raw), "|")
	if !ok {
		return nil, ErrBadToken
	}
	n, err := strconv.ParseInt(us, 10, 64)
	if err != nil {
		return nil, ErrBadToken
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return nil, ErrBadToken
	}
	return &Key{Start: time.UnixMicro(n).UTC(), ID: u}, nil
}

// Filter selects observations. Zero fields select everything.
type Filter struct {
	Instrument string
	ObsUnit    string
	Status     opsv1.ObservationStatus
	// StartAfter is inclusive, StartBefore exclusive.
	StartAfter, StartBefore time.Time
	// After is the last key of the previous page.
	After *Key
	// IDs, when not empty, restricts the list to these observations.
	IDs []uuid.UUID
	// Exclude are ids left out (the edge reads those itself, merged with
	// its buffered writes).
	Exclude []uuid.UUID
	// Limit is the most observations returned. Default DefaultPageSize.
	Limit int
}

// Matches tells whether o passes the filter's predicates (not After, Exclude
// or Limit): the edge applies it to records changed by buffered writes.
func (f Filter) Matches(o *opsv1.Observation) bool {
	st := o.GetStartTime().AsTime()
	switch {
	case f.Instrument != "" && o.GetInstrument() != f.Instrument,
		f.ObsUnit != "" && o.GetObsUnit() != f.ObsUnit,
		f.Status != opsv1.ObservationStatus_OBSERVATION_STATUS_UNSPECIFIED && o.GetStatus() != f.Status,
		!f.StartAfter.IsZero() && st.Before(f.StartAfter),
		!f.StartBefore.IsZero() && !st.Before(f.StartBefore):
		return false
	}
	return true
}

// PageSize clamps a requested page size.
func PageSize(n int32) int {
	switch {
	case n <= 0:
		return DefaultPageSize
	case n > MaxPageSize:
		return MaxPageSize
	}
	return int(n)
}

const obsColumns = `id, instrument, source, obs_unit, status, start_time, end_time, attributes`

// Get reads one observation with its files and configurations.
func Get(ctx context.Context, q Querier, id uuid.UUID) (*Record, error) {
	recs, err := GetMany(ctx, q, []uuid.UUID{id})
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, ErrNotFound
	}
	return recs[0], nil
}

// GetMany reads the observations of ids that exist (in list order), with
// their files and configurations.
func GetMany(ctx context.Context, q Querier, ids []uuid.UUID) ([]*Record, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	obs, err := queryObservations(ctx, q,
		`SELECT `+obsColumns+` FROM chasqui.observations WHERE id = ANY($1) ORDER BY start_time, id`, ids)
	if err != nil {
		return nil, err
	}
	return withChildren(ctx, q, obs)
}

// List reads a page of observations matching f, in list order, with their
// files and configurations.
func List(ctx context.Context, q Querier, f Filter) ([]*Record, error) {
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Instrument != "" {
		where = append(where, "instrument = "+arg(f.Instrument))
	}
	if f.ObsUnit != "" {
		where = append(where, "obs_unit = "+arg(f.ObsUnit))
	}
	if f.Status != opsv1.ObservationStatus_OBSERVATION_STATUS_UNSPECIFIED {
		where = append(where, "status = "+arg(StatusText(f.Status)))
	}
	if !f.StartAfter.IsZero() {
		where = append(where, "start_time >= "+arg(f.StartAfter))
	}
	if !f.StartBefore.IsZero() {
		where = append(where, "start_time < "+arg(f.StartBefore))
	}
	if f.After != nil {
		where = append(where, fmt.Sprintf("(start_time, id) > (%s, %s)", arg(f.After.Start), arg(f.After.ID)))
	}
	if len(f.IDs) > 0 {
		where = append(where, "id = ANY("+arg(f.IDs)+")")
	}
	if len(f.Exclude) > 0 {
		where = append(where, "id <> ALL("+arg(f.Exclude)+")")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultPageSize
	}
	sql := `SELECT ` + obsColumns + ` FROM chasqui.observations`
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY start_time, id LIMIT " + arg(limit)
	obs, err := queryObservations(ctx, q, sql, args...)
	if err != nil {
		return nil, err
	}
	return withChildren(ctx, q, obs)
}

func queryObservations(ctx context.Context, q Querier, sql string, args ...any) ([]*opsv1.Observation, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("records: observations: %w", err)
	}
	var out []*opsv1.Observation
	for rows.Next() {
		var (
			id     uuid.UUID
			o      opsv1.Observation
			status string
			start  time.Time
			end    *time.Time
			attrs  []byte
		)
		if err := rows.Scan(&id, &o.Instrument, &o.Source, &o.ObsUnit, &status, &start, &end, &attrs); err != nil {
			rows.Close()
			return nil, fmt.Errorf("records: observations: %w", err)
		}
		o.Id, o.Status, o.StartTime = id.String(), ParseStatus(status), timestamppb.New(start)
		if end != nil {
			o.EndTime = timestamppb.New(*end)
		}
		if o.Attributes, err = structOf(attrs); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, &o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("records: observations: %w", err)
	}
	return out, nil
}

// withChildren reads the files and configurations of obs (two queries for
// the whole page).
func withChildren(ctx context.Context, q Querier, obs []*opsv1.Observation) ([]*Record, error) {
	if len(obs) == 0 {
		return nil, nil
	}
	ids := make([]uuid.UUID, len(obs))
	byID := make(map[string]*Record, len(obs))
	out := make([]*Record, len(obs))
	for i, o := range obs {
		ids[i] = uuid.MustParse(o.GetId())
		out[i] = &Record{Observation: o}
		byID[o.GetId()] = out[i]
	}
	rows, err := q.Query(ctx, `SELECT id, observation_id, path, size_bytes, checksum, created_at
		FROM chasqui.raw_data_files WHERE observation_id = ANY($1) ORDER BY created_at, id`, ids)
	if err != nil {
		return nil, fmt.Errorf("records: files: %w", err)
	}
	for rows.Next() {
		var (
			id, obsID uuid.UUID
			f         opsv1.RawDataFile
			created   time.Time
		)
		if err := rows.Scan(&id, &obsID, &f.Path, &f.SizeBytes, &f.Checksum, &created); err != nil {
			rows.Close()
			return nil, fmt.Errorf("records: files: %w", err)
		}
		f.Id, f.ObservationId, f.CreatedAt = id.String(), obsID.String(), timestamppb.New(created)
		r := byID[f.ObservationId]
		r.Files = append(r.Files, &f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("records: files: %w", err)
	}
	rows, err = q.Query(ctx, `SELECT id, instrument, observation_id, recorded_at, config
		FROM chasqui.instrument_configs WHERE observation_id = ANY($1) ORDER BY recorded_at, id`, ids)
	if err != nil {
		return nil, fmt.Errorf("records: configs: %w", err)
	}
	for rows.Next() {
		var (
			id, obsID uuid.UUID
			c         opsv1.InstrumentConfig
			recorded  time.Time
			cfg       []byte
		)
		if err := rows.Scan(&id, &c.Instrument, &obsID, &recorded, &cfg); err != nil {
			rows.Close()
			return nil, fmt.Errorf("records: configs: %w", err)
		}
		c.Id, c.ObservationId, c.RecordedAt = id.String(), obsID.String(), timestamppb.New(recorded)
		if c.Config, err = structOf(cfg); err != nil {
			rows.Close()
			return nil, err
		}
		r := byID[c.ObservationId]
		r.Configs = append(r.Configs, &c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("records: configs: %w", err)
	}
	return out, nil
}

func structOf(raw []byte) (*structpb.Struct, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	s := &structpb.Struct{}
	if err := s.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("records: jsonb: %w", err)
	}
	if len(s.GetFields()) == 0 {
		return nil, nil
	}
	return s, nil
}

// StatusText is the status column's value for s ("RUNNING", ...).
func StatusText(s opsv1.ObservationStatus) string {
	return strings.TrimPrefix(s.String(), "OBSERVATION_STATUS_")
}

// ParseStatus is the inverse of StatusText.
func ParseStatus(s string) opsv1.ObservationStatus {
	return opsv1.ObservationStatus(opsv1.ObservationStatus_value["OBSERVATION_STATUS_"+s])
}

// ListRequest is a ListObservations request of either service (central's
// ReadService or the edge's EdgeService): both have these fields.
type ListRequest interface {
	GetInstrument() string
	GetObsUnit() string
	GetStatus() opsv1.ObservationStatus
	GetStartAfter() *timestamppb.Timestamp
	GetStartBefore() *timestamppb.Timestamp
	GetPageSize() int32
	GetPageToken() string
}

// FilterOf validates req and turns it into a Filter; a bad field gives a
// *validate.Error naming it.
func FilterOf(req ListRequest) (Filter, error) {
	var vs []validate.Violation
	bad := func(field, desc string) { vs = append(vs, validate.Violation{Field: field, Description: desc}) }
	f := Filter{Instrument: req.GetInstrument(), ObsUnit: req.GetObsUnit(), Status: req.GetStatus(), Limit: PageSize(req.GetPageSize())}
	if _, ok := opsv1.ObservationStatus_name[int32(f.Status)]; !ok {
		bad("status", "unknown status")
	}
	if ts := req.GetStartAfter(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			bad("start_after", "invalid timestamp")
		}
		f.StartAfter = ts.AsTime()
	}
	if ts := req.GetStartBefore(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			bad("start_before", "invalid timestamp")
		}
		f.StartBefore = ts.AsTime()
	}
	if req.GetPageSize() < 0 {
		bad("page_size", "must not be negative")
	}
	k, err := ParseToken(req.GetPageToken())
	if err != nil {
		bad("page_token", "not a token this service made")
	}
	f.After = k
	if len(vs) > 0 {
		return Filter{}, &validate.Error{Violations: vs}
	}
	return f, nil
}

// ParseID validates an observation id for field.
func ParseID(field, id string) (uuid.UUID, error) {
	u, err := uuid.Parse(id)
	if err != nil || id == "" {
		return uuid.Nil, &validate.Error{Violations: []validate.Violation{{Field: field, Description: "must be a UUID"}}}
	}
	return u, nil
}
