package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// LoadConfig bounds a load run; it stops at whichever limit comes first.
type LoadConfig struct {
	// Writers is the number of concurrent writers. Default 4.
	Writers int
	// MaxTx bounds the transactions written in total (0: no bound).
	MaxTx int
	// Duration bounds the run (0: until stopped or MaxTx).
	Duration time.Duration
	// SubmitTimeout bounds one Submit call, the client's own retries
	// included. Default 10 s.
	SubmitTimeout time.Duration
	// Resubmits is how many times a writer resubmits the same transaction id
	// after a failed call before it moves on (the transaction then stays
	// uncertain). Default 5.
	Resubmits int
	// Pause between a writer's transactions (0: none).
	Pause time.Duration
	// EdgeID is recorded with each acknowledgement.
	EdgeID string
	// Instrument names the observations. Default "E2E".
	Instrument string
	// PoisonEvery makes every PoisonEvery-th transaction of each writer a
	// poison one (NewPoisonTx), recorded as such in the history, so the
	// rejection path runs under the faults too. 0: none.
	PoisonEvery int
	// Rows adds rows of the ops tables (rows.go) to the load: besides its
	// observation, each transaction writes units and packages of them,
	// parent and child in one transaction or across transactions, and
	// updates and upserts of units (RowLoad); every other poison
	// transaction is a package of a unit nobody wrote. The stack's
	// database must have the ops schema (every Stack's has).
	Rows bool
}

// LoadStats are a load run's figures.
type LoadStats struct {
	Written, Acked, FailedCalls int
	Elapsed                     time.Duration
	LatencyP50, LatencyP99      time.Duration
	LatencyMax                  time.Duration
}

func (s LoadStats) String() string {
	rate := 0.0
	if s.Elapsed > 0 {
		rate = float64(s.Acked) / s.Elapsed.Seconds()
	}
	return fmt.Sprintf("written=%d acked=%d failed_calls=%d in %s (%.0f acks/s) submit latency p50=%s p99=%s max=%s",
		s.Written, s.Acked, s.FailedCalls, s.Elapsed.Round(time.Millisecond), rate,
		s.LatencyP50, s.LatencyP99, s.LatencyMax)
}

// Load is a running load generator.
type Load struct {
	cfg     LoadConfig
	client  edgev1.EdgeServiceClient
	hist    *History
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started time.Time
	until   time.Time // no new transactions after this (zero: no bound)
	count   atomic.Int64
	drain   atomic.Bool

	mu      sync.Mutex
	lat     []time.Duration
	elapsed time.Duration
}

// StartLoad starts writers submitting single-observation transactions
// through client, recording into hist. Stop or Wait ends it.
func StartLoad(ctx context.Context, client edgev1.EdgeServiceClient, hist *History, cfg LoadConfig) *Load {
	if cfg.Writers == 0 {
		cfg.Writers = 4
	}
	if cfg.SubmitTimeout == 0 {
		cfg.SubmitTimeout = 10 * time.Second
	}
	if cfg.Resubmits == 0 {
		cfg.Resubmits = 5
	}
	if cfg.Instrument == "" {
		cfg.Instrument = "E2E"
	}
	ctx, cancel := context.WithCancel(ctx)
	l := &Load{cfg: cfg, client: client, hist: hist, cancel: cancel, started: time.Now()}
	if cfg.Duration > 0 {
		l.until = l.started.Add(cfg.Duration)
	}
	for w := range cfg.Writers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.writer(ctx, w)
		}()
	}
	return l
}

// Acked is the number of acknowledged transactions so far.
func (l *Load) Acked() int {
	_, a, _ := l.hist.Counts()
	return a
}

// Stop cancels the writers (calls in flight become uncertain) and waits.
func (l *Load) Stop() LoadStats {
	l.cancel()
	return l.Wait()
}

// Drain stops the writers from starting new transactions and waits until
// the calls in flight have their answers, so nothing stays uncertain
// because of the stop itself.
func (l *Load) Drain() LoadStats {
	l.drain.Store(true)
	return l.Wait()
}

// Wait waits until the writers are done (MaxTx or Duration reached); calls
// in flight finish first.
func (l *Load) Wait() LoadStats {
	l.wg.Wait()
	l.cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.elapsed == 0 {
		l.elapsed = time.Since(l.started)
	}
	return l.statsLocked()
}

func (l *Load) statsLocked() LoadStats {
	w, a, f := l.hist.Counts()
	s := LoadStats{Written: w, Acked: a, FailedCalls: f, Elapsed: l.elapsed}
	if len(l.lat) > 0 {
		lat := slices.Clone(l.lat)
		slices.Sort(lat)
		s.LatencyP50 = lat[len(lat)/2]
		s.LatencyP99 = lat[len(lat)*99/100]
		s.LatencyMax = lat[len(lat)-1]
	}
	return s
}

func (l *Load) writer(ctx context.Context, w int) {
	n := 0 // transactions this writer started
	var units RowLoad
	for ctx.Err() == nil && !l.drain.Load() && (l.until.IsZero() || time.Now().Before(l.until)) {
		if l.cfg.MaxTx > 0 && l.count.Add(1) > int64(l.cfg.MaxTx) {
			return
		}
		n++
		req, obsRows, rows := NewObservationTx(l.cfg.Instrument, fmt.Sprintf("writer-%d", w)), 1, 0
		id := req.Transactions[0].Id
		var acked func()
		if l.cfg.Rows {
			rows, acked = units.Add(req.Transactions[0], n, fmt.Sprintf("writer-%d", w))
		}
		if l.cfg.PoisonEvery > 0 && n%l.cfg.PoisonEvery == 0 {
			req, obsRows, rows, acked = NewPoisonTx(n/l.cfg.PoisonEvery), 0, 0, nil
			if l.cfg.Rows && (n/l.cfg.PoisonEvery)%2 == 1 {
				req = NewRowPoisonTx()
			}
			id = req.Transactions[0].Id
			l.hist.Poison(id)
		} else {
			l.hist.Written(id)
		}
		for attempt := 1; attempt <= 1+l.cfg.Resubmits && ctx.Err() == nil; attempt++ {
			cctx, cancel := context.WithTimeout(ctx, l.cfg.SubmitTimeout)
			t0 := time.Now()
			resp, err := l.client.Submit(cctx, req)
			d := time.Since(t0)
			cancel()
			if err == nil && len(resp.GetResults()) == 1 {
				res := resp.GetResults()[0]
				l.hist.Acked(Ack{TxID: id, EdgeID: l.cfg.EdgeID, Seq: res.GetSeq(), ObsRows: obsRows, Rows: rows})
				if acked != nil {
					acked()
				}
				l.mu.Lock()
				l.lat = append(l.lat, d)
				l.mu.Unlock()
				break
			}
			if err == nil {
				err = fmt.Errorf("submit answered %d results for 1 transaction", len(resp.GetResults()))
			}
			if ctx.Err() != nil {
				// Stopped by the test, not failed: the call stays uncertain.
				l.hist.Written(id)
				break
			}
			l.hist.Failed(id, err)
			// Client backoff between resubmissions of the same id.
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(200*attempt) * time.Millisecond):
			}
		}
		if l.cfg.Pause > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(l.cfg.Pause):
			}
		}
	}
}

// NewObservationTx builds a Submit request of one transaction inserting one
// RUNNING observation. The observation id is left empty for the edge to
// fill, so an edge that enqueued a transaction twice would show up as two
// rows with the same tx_id.
func NewObservationTx(instrument, obsUnit string) *edgev1.SubmitRequest {
	attrs, _ := structpb.NewStruct(map[string]any{"e2e": true})
	return &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{{
		Id: uuid.Must(uuid.NewV7()).String(),
		Mutations: []*opsv1.Mutation{{Kind: &opsv1.Mutation_Observation{Observation: &opsv1.Observation{
			Instrument: instrument,
			Source:     "Orion-KL",
			ObsUnit:    obsUnit,
			Status:     opsv1.ObservationStatus_OBSERVATION_STATUS_RUNNING,
			StartTime:  timestamppb.Now(),
			Attributes: attrs,
		}}}},
	}}}
}

// NewPoisonTx builds a Submit request of one transaction the edge accepts
// and PostgreSQL rejects for its data, so central dead-letters it: by kind,
// an update of an observation that does not exist (no_data_found) or a raw
// data file of one (a foreign-key violation).
func NewPoisonTx(kind int) *edgev1.SubmitRequest {
	tx := &opsv1.Transaction{Id: uuid.Must(uuid.NewV7()).String()}
	missing := uuid.Must(uuid.NewV7()).String() // an observation nobody wrote
	if kind%2 == 0 {
		st := opsv1.ObservationStatus_OBSERVATION_STATUS_COMPLETED
		tx.Mutations = []*opsv1.Mutation{{Kind: &opsv1.Mutation_ObservationUpdate{ObservationUpdate: &opsv1.ObservationUpdate{
			Id: missing, Status: &st, EndTime: timestamppb.Now(),
		}}}}
	} else {
		fileID := uuid.Must(uuid.NewV7()).String()
		tx.Mutations = []*opsv1.Mutation{{Kind: &opsv1.Mutation_RawDataFile{RawDataFile: &opsv1.RawDataFile{
			Id: fileID, ObservationId: missing, Path: "/data/e2e/" + fileID + ".fits", SizeBytes: 1024,
			Checksum: "sha256:9f86d081884c7d65",
		}}}}
	}
	return &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{tx}}
}

// RowLoad is one writer's rows of the ops tables. A transaction refers
// only to units of transactions already acknowledged (or its own): a unit
// of an uncertain transaction may never have been stored.
type RowLoad struct {
	unit string // the last acknowledged unit, "" before the first
}

// Add appends the rows of the writer's n-th transaction to tx and returns
// how many rows it writes and what to do once it is acknowledged. By n:
// a unit; a package of the last unit (across transactions); a unit and a
// package of it (parent before child in one transaction); an update of the
// last unit and an upsert of a new one.
func (u *RowLoad) Add(tx *opsv1.Transaction, n int, name string) (rows int, acked func()) {
	add := func(m ...*opsv1.Mutation) { tx.Mutations = append(tx.Mutations, m...) }
	fresh := uuid.Must(uuid.NewV7()).String()
	step := n % 4
	if u.unit == "" && (step == 2 || step == 0) {
		step = 3 // nothing to refer to yet
	}
	switch step {
	case 1:
		add(NewUnit(tx.Id, fresh, name))
		return 1, func() { u.unit = fresh }
	case 2:
		add(NewPackage(tx.Id, uuid.Must(uuid.NewV7()).String(), u.unit))
		return 1, nil
	case 3:
		add(NewUnit(tx.Id, fresh, name), NewPackage(tx.Id, uuid.Must(uuid.NewV7()).String(), fresh))
		return 2, func() { u.unit = fresh }
	default:
		add(FinishUnit(tx.Id, u.unit), UpsertUnit(tx.Id, fresh, name))
		return 2, func() { u.unit = fresh }
	}
}

// NewRowPoisonTx builds a Submit request of one transaction the edge
// accepts (its shape and columns are right) and PostgreSQL rejects: a raw
// data package of a unit nobody wrote (a foreign-key violation).
func NewRowPoisonTx() *edgev1.SubmitRequest {
	tx := &opsv1.Transaction{Id: uuid.Must(uuid.NewV7()).String()}
	tx.Mutations = []*opsv1.Mutation{NewPackage(tx.Id, uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String())}
	return &edgev1.SubmitRequest{Transactions: []*opsv1.Transaction{tx}}
}
