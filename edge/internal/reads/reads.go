// Package reads answers the edge's read-your-writes calls (docs/design.md,
// "Guarantees" 8): observations as committed — from the site replica, or from
// central's ReadService when the replica is not there or down — merged with
// the writes still in the edge's buffer (a pending overlay per observation,
// applied in sequence order), so a caller always sees its own latest write,
// even with the WAN down. Rows of any table (GetRow, ListRows; rows.go)
// are read the same way, keyed by their table's primary key. Each answer
// says per record whether it is
// buffered, committed or visible in the replica, and whether the committed
// state could be read at all (buffer_only).
package reads

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/retry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"

	"github.com/chasqui/chasqui/internal/records"
	"github.com/chasqui/chasqui/internal/rows"
)

// ErrNotFound: no such observation, committed or buffered.
var ErrNotFound = errors.New("reads: observation not found")

// Pending is one buffered mutation touching an observation: its insert, an
// update, or one of its files or configurations.
type Pending struct {
	// Seq orders the mutations (the edge's sequence number).
	Seq uint64
	// Committed: central acknowledged it, the replica has not replayed it.
	// Otherwise it is only in the edge's buffer.
	Committed bool
	Mutation  *opsv1.Mutation
}

// Buffer is what reads need of the edge's store (the queue).
type Buffer interface {
	// Overlays returns the pending mutations of observation id, in seq order.
	Overlays(obsID string) ([]Pending, error)
	// OverlaidObservations returns the ids of the observations that have
	// pending mutations, with for each whether its insert is among them.
	OverlaidObservations() (map[string]bool, error)
}

// Config configures a Reader. The zero value of each field means its default.
type Config struct {
	// Buffer holds the pending writes. Required.
	Buffer Buffer
	// Replica is the site replica (a pool on --replica-url); nil: none.
	Replica records.Querier
	// ReplicaUp tells whether the replica is worth asking (the watcher's
	// state). Nil: always ask.
	ReplicaUp func() bool
	// Central is central's ReadService (over the forwarder's link); nil: none.
	Central centralv1.ReadServiceClient
	// Timeout bounds one read of the replica or of central, so a dead link
	// costs a read this long at most before it falls back. Default 2s.
	Timeout time.Duration
	// Rows holds the pending row writes; nil: GetRow and ListRows answer
	// ErrRowsOff.
	Rows RowBuffer
	// Tables is the schema learned from central: the key columns of each
	// table. Nil: GetRow and ListRows answer ErrRowsOff.
	Tables Tables
	// Logger receives fallbacks. Required.
	Logger *slog.Logger
}

// Reader answers GetObservation and ListObservations.
type Reader struct {
	cfg Config
	log *slog.Logger
}

// New returns a Reader.
func New(cfg Config) (*Reader, error) {
	if cfg.Buffer == nil || cfg.Logger == nil {
		return nil, errors.New("reads: Buffer and Logger are required")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	return &Reader{cfg: cfg, log: cfg.Logger.With("component", "reads")}, nil
}

// backend is where committed records are read.
type backend interface {
	name() string
	source() edgev1.RecordSource
	get(ctx context.Context, id uuid.UUID) (*records.Record, error)
	// list returns up to f.Limit records and whether more may follow.
	list(ctx context.Context, f records.Filter) ([]*records.Record, bool, error)
	// listRows returns up to q.Limit rows of t and whether more may follow.
	listRows(ctx context.Context, t *opsv1.TableSchema, q rows.Query) ([]*structpb.Struct, bool, error)
}

func (r *Reader) backends() []backend {
	var bs []backend
	if r.cfg.Replica != nil && (r.cfg.ReplicaUp == nil || r.cfg.ReplicaUp()) {
		bs = append(bs, replicaBackend{r.cfg.Replica})
	}
	if r.cfg.Central != nil {
		bs = append(bs, centralBackend{r.cfg.Central})
	}
	return bs
}

// each calls f on the backends in order until one answers; false when none
// could (buffer only).
func (r *Reader) each(ctx context.Context, f func(context.Context, backend) error) (backend, error) {
	for _, b := range r.backends() {
		cctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		err := f(cctx, b)
		cancel()
		if err == nil || errors.Is(err, ErrNotFound) {
			return b, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r.log.WarnContext(ctx, "read fell back", "from", b.name(), "err", err)
	}
	return nil, nil
}

// GetObservation reads observation id merged with its pending writes.
func (r *Reader) GetObservation(ctx context.Context, id string) (*edgev1.GetObservationResponse, error) {
	uid, err := records.ParseID("id", id)
	if err != nil {
		return nil, err
	}
	id = uid.String()
	// Pending writes first: one that becomes visible (and leaves the
	// buffer) after this is in the replica when it is read next.
	ov, err := r.cfg.Buffer.Overlays(id)
	if err != nil {
		return nil, err
	}
	var base *records.Record
	b, err := r.each(ctx, func(ctx context.Context, b backend) (err error) {
		base, err = b.get(ctx, uid)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	src := sourceOf(b)
	v := merge(base, src, ov)
	if v == nil {
		return nil, ErrNotFound
	}
	return &edgev1.GetObservationResponse{Observation: v, BufferOnly: b == nil}, nil
}

// ListObservations lists one page merged with pending writes: committed
// rows of observations without pending writes, and observations with
// pending writes as they will be once those commit, filtered after the merge.
func (r *Reader) ListObservations(ctx context.Context, req *edgev1.ListObservationsRequest) (*edgev1.ListObservationsResponse, error) {
	f, err := records.FilterOf(req)
	if err != nil {
		return nil, err
	}
	limit := f.Limit
	ovs, needBase, err := r.pendingObservations()
	if err != nil {
		return nil, err
	}

	var (
		rows  []*records.Record
		more  bool
		bases = map[string]*records.Record{}
	)
	b, err := r.each(ctx, func(ctx context.Context, b backend) error {
		clear(bases)
		for chunk := range slices.Chunk(needBase, records.MaxPageSize) {
			got, _, err := b.list(ctx, records.Filter{IDs: chunk, Limit: len(chunk)})
			if err != nil {
				return err
			}
			for _, g := range got {
				bases[g.Observation.GetId()] = g
			}
		}
		var err error
		rows, more, err = b.list(ctx, f)
		return err
	})
	if err != nil {
		return nil, err
	}
	src := sourceOf(b)

	all := mergeObservations(rows, src, ovs, bases, f)
	out := &edgev1.ListObservationsResponse{BufferOnly: b == nil}
	if more && len(rows) > 0 {
		// Committed rows past the last one read are unknown: nothing past
		// it can be in this page.
		last := records.KeyOf(rows[len(rows)-1].Observation)
		cut := len(all)
		for cut > 0 && last.Less(records.KeyOf(all[cut-1].GetObservation())) {
			cut--
		}
		all = all[:cut]
		out.NextPageToken = last.Token()
	}
	if len(all) > limit {
		all = all[:limit]
		out.NextPageToken = records.KeyOf(all[limit-1].GetObservation()).Token()
	}
	out.Observations = all
	return out, nil
}

// pendingObservations groups the pending writes by observation id, and lists,
// in order, the ids whose committed row the merge starts from (all but those
// first written by an insert).
func (r *Reader) pendingObservations() (map[string][]Pending, []uuid.UUID, error) {
	overlaid, err := r.cfg.Buffer.OverlaidObservations()
	if err != nil {
		return nil, nil, err
	}
	ovs := make(map[string][]Pending, len(overlaid))
	var needBase []uuid.UUID
	for id, inserted := range overlaid {
		if ovs[id], err = r.cfg.Buffer.Overlays(id); err != nil {
			return nil, nil, err
		}
		if !inserted {
			if u, err := uuid.Parse(id); err == nil {
				needBase = append(needBase, u)
			}
		}
	}
	slices.SortFunc(needBase, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })
	return ovs, needBase, nil
}

// mergeObservations is the page before cutting: committed rows without
// pending writes, and observations with pending writes as they will be once
// those commit, filtered by f, in key order.
func mergeObservations(rows []*records.Record, src edgev1.RecordSource, ovs map[string][]Pending,
	bases map[string]*records.Record, f records.Filter) []*edgev1.ObservationView {
	var all []*edgev1.ObservationView
	for _, row := range rows {
		if _, ok := ovs[row.Observation.GetId()]; ok {
			continue // merged below, with its pending writes
		}
		all = append(all, &edgev1.ObservationView{Observation: row.Observation, Source: src, Files: row.Files, Configs: row.Configs})
	}
	for id, ov := range ovs {
		v := merge(bases[id], src, ov)
		if v == nil || !f.Matches(v.GetObservation()) {
			continue
		}
		if f.After != nil && !f.After.Less(records.KeyOf(v.GetObservation())) {
			continue
		}
		all = append(all, v)
	}
	slices.SortFunc(all, func(a, b *edgev1.ObservationView) int {
		ka, kb := records.KeyOf(a.GetObservation()), records.KeyOf(b.GetObservation())
		switch {
		case ka.Less(kb):
			return -1
		case kb.Less(ka):
			return 1
		}
		return 0
	})
	return all
}

// merge applies pending writes in seq order on the committed record base
// (nil when none was read). Nil when the observation exists in neither.
func merge(base *records.Record, src edgev1.RecordSource, ov []Pending) *edgev1.ObservationView {
	v := &edgev1.ObservationView{Source: src}
	if base != nil {
		v.Observation, v.Files, v.Configs = base.Observation, base.Files, base.Configs
	}
	for _, p := range ov {
		switch m := p.Mutation.GetKind().(type) {
		case *opsv1.Mutation_Observation:
			v.Observation = proto.Clone(m.Observation).(*opsv1.Observation)
		case *opsv1.Mutation_ObservationUpdate:
			if v.Observation == nil {
				continue // its insert is neither committed (read) nor buffered
			}
			o := proto.Clone(v.Observation).(*opsv1.Observation)
			u := m.ObservationUpdate
			if u.Status != nil {
				o.Status = u.GetStatus()
			}
			if u.GetEndTime() != nil {
				o.EndTime = u.GetEndTime()
			}
			if len(u.GetAttributes().GetFields()) > 0 {
				if o.Attributes == nil {
					o.Attributes = &structpb.Struct{Fields: map[string]*structpb.Value{}}
				}
				for k, val := range u.GetAttributes().GetFields() {
					o.Attributes.Fields[k] = val
				}
			}
			v.Observation = o
		case *opsv1.Mutation_RawDataFile:
			v.Files = upsert(v.Files, m.RawDataFile)
		case *opsv1.Mutation_InstrumentConfig:
			v.Configs = upsert(v.Configs, m.InstrumentConfig)
		default:
			continue
		}
		v.Source = lower(v.Source, p.Committed)
	}
	if v.Observation == nil {
		return nil
	}
	return v
}

type identified interface{ GetId() string }

func upsert[T identified](list []T, x T) []T {
	for i, e := range list {
		if e.GetId() == x.GetId() {
			out := slices.Clone(list)
			out[i] = x
			return out
		}
	}
	return append(slices.Clone(list), x)
}

// lower is the least advanced of s and a pending write's state.
func lower(s edgev1.RecordSource, committed bool) edgev1.RecordSource {
	p := edgev1.RecordSource_RECORD_SOURCE_BUFFERED
	if committed {
		p = edgev1.RecordSource_RECORD_SOURCE_COMMITTED
	}
	if s == edgev1.RecordSource_RECORD_SOURCE_UNSPECIFIED || p < s {
		return p
	}
	return s
}

type replicaBackend struct{ db records.Querier }

func (replicaBackend) name() string                { return "replica" }
func (replicaBackend) source() edgev1.RecordSource { return edgev1.RecordSource_RECORD_SOURCE_VISIBLE }

func (b replicaBackend) get(ctx context.Context, id uuid.UUID) (*records.Record, error) {
	r, err := records.Get(ctx, b.db, id)
	if errors.Is(err, records.ErrNotFound) {
		return nil, ErrNotFound
	}
	return r, err
}

func (b replicaBackend) list(ctx context.Context, f records.Filter) ([]*records.Record, bool, error) {
	limit := f.Limit
	f.Limit++
	rs, err := records.List(ctx, b.db, f)
	if err != nil {
		return nil, false, err
	}
	if len(rs) > limit {
		return rs[:limit], true, nil
	}
	return rs, false, nil
}

type centralBackend struct{ c centralv1.ReadServiceClient }

func (centralBackend) name() string { return "central" }
func (centralBackend) source() edgev1.RecordSource {
	return edgev1.RecordSource_RECORD_SOURCE_COMMITTED
}

// failFast: a read waits for no link and is not retried by the client's
// retry interceptor (WithMax counts all attempts); the caller falls back to
// the buffer instead, at once.
var failFast = []grpc.CallOption{grpc.WaitForReady(false), retry.WithMax(1)}

func (b centralBackend) get(ctx context.Context, id uuid.UUID) (*records.Record, error) {
	res, err := b.c.GetObservation(ctx, &centralv1.GetObservationRequest{Id: id.String()}, failFast...)
	if status.Code(err) == codes.NotFound {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("central GetObservation: %w", err)
	}
	o := res.GetObservation()
	return &records.Record{Observation: o.GetObservation(), Files: o.GetFiles(), Configs: o.GetConfigs()}, nil
}

func (b centralBackend) list(ctx context.Context, f records.Filter) ([]*records.Record, bool, error) {
	req := &centralv1.ListObservationsRequest{
		Instrument: f.Instrument, ObsUnit: f.ObsUnit, Status: f.Status,
		PageSize: int32(min(f.Limit, records.MaxPageSize)),
	}
	if !f.StartAfter.IsZero() {
		req.StartAfter = timestamppb.New(f.StartAfter)
	}
	if !f.StartBefore.IsZero() {
		req.StartBefore = timestamppb.New(f.StartBefore)
	}
	if f.After != nil {
		req.PageToken = f.After.Token()
	}
	for _, id := range f.IDs {
		req.Ids = append(req.Ids, id.String())
	}
	res, err := b.c.ListObservations(ctx, req, failFast...)
	if err != nil {
		return nil, false, fmt.Errorf("central ListObservations: %w", err)
	}
	out := make([]*records.Record, len(res.GetObservations()))
	for i, o := range res.GetObservations() {
		out[i] = &records.Record{Observation: o.GetObservation(), Files: o.GetFiles(), Configs: o.GetConfigs()}
	}
	return out, res.GetNextPageToken() != "", nil
}

// sourceOf is where what backend b answered comes from; unspecified when
// no backend could be read (the answer is the buffer's alone).
func sourceOf(b backend) edgev1.RecordSource {
	if b == nil {
		return edgev1.RecordSource_RECORD_SOURCE_UNSPECIFIED
	}
	return b.source()
}
