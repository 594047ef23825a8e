// Package store owns central's writes to PostgreSQL: it commits an edge's
// batches exactly once and in sequence order, one PostgreSQL transaction per
// call, set-based and pipelined, isolating the transactions PostgreSQL
// rejects for their data so the rest flow on.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/structpb"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"

	"github.com/chasqui/chasqui/central/internal/catalog"
	"github.com/chasqui/chasqui/internal/pglsn"
)

// Outcome of one transaction.
type Outcome int

const (
	// OutcomeUnknown: no outcome. Commit never answers it: a seq at or
	// below the cursor whose outcome was pruned is refused (ConflictError).
	OutcomeUnknown Outcome = iota
	OutcomeApplied
	OutcomeRejected
)

// TxResult is the answer for one transaction of a batch.
type TxResult struct {
	TxID     string
	Seq      uint64
	Outcome  Outcome
	Reason   string // why it was rejected
	SQLState string // PostgreSQL's code for the rejection
	// Duplicate: an earlier call applied (or rejected) it; this call did nothing.
	Duplicate bool
}

// Result is the answer for a batch.
type Result struct {
	// CommittedThroughSeq is the edge's cursor after the call.
	CommittedThroughSeq uint64
	// LSN is read after COMMIT on the same connection: at or past the end of
	// the commit record of the call's transaction (and of every earlier one).
	LSN LSN
	// Txs holds one result per request transaction, in request order.
	Txs []TxResult
}

// LSN is a PostgreSQL write-ahead log position.
type LSN uint64

// String is PostgreSQL's text form, e.g. "0/16B3748".
func (l LSN) String() string { return pglsn.Format(uint64(l)) }

// ParseLSN reads PostgreSQL's text form.
func ParseLSN(s string) (LSN, error) {
	v, err := pglsn.Parse(s)
	return LSN(v), err
}

// Cursor is where central stands for an edge.
type Cursor struct {
	Epoch   string // empty when the edge is unknown
	LastSeq uint64
}

// Options configure a Store.
type Options struct {
	// GapWait is how long a batch that starts past the cursor waits for its
	// predecessors (woken when the cursor moves, lock not held) before it
	// is refused with a GapError, unless a call on this Store that can
	// fill the gap is still in flight then. Default DefaultGapWait.
	GapWait time.Duration
	// GapPoll is how often a waiting batch re-reads the cursor while no
	// listener (Listen) runs. Default DefaultGapPoll.
	GapPoll time.Duration
	// Attempts bounds the tries of one call on serialization failures and
	// deadlocks. Default 5.
	Attempts int
	// Logger receives driver errors, which never reach clients. Default: discard.
	Logger *slog.Logger
	// Catalog knows the tables rows may be written to. Nil: none (every
	// row is rejected).
	Catalog *catalog.Catalog
}

// Store commits batches to PostgreSQL.
type Store struct {
	pool  *pgxpool.Pool
	opts  Options
	waits waits
	stats waitStats
	// listening: Listen has a connection LISTENing on CursorChannel.
	listening atomic.Bool
}

// New returns a Store on pool, whose sessions must run with
// synchronous_commit = on (see PoolConfig).
func New(pool *pgxpool.Pool, opts Options) *Store {
	if opts.GapWait == 0 {
		opts.GapWait = DefaultGapWait
	}
	if opts.GapPoll == 0 {
		opts.GapPoll = DefaultGapPoll
	}
	if opts.Attempts == 0 {
		opts.Attempts = 5
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Store{pool: pool, opts: opts}
}

// PoolConfig parses url into a pool configuration whose sessions run with
// synchronous_commit = on whatever the server's default: an ack must never
// precede the commit's flush to disk.
func PoolConfig(url string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message may quote the URL, password included.
		return nil, errors.New("database url: cannot parse (want postgres://user:password@host:port/db?options)")
	}
	cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	cfg.ConnConfig.RuntimeParams["application_name"] = "chasqui-central"
	// Rows read back (ReadService.ListRows) write timestamptz in UTC,
	// whatever the server's default: the same row reads the same.
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	return cfg, nil
}

// Ping checks that PostgreSQL answers.
func (s *Store) Ping(ctx context.Context) error {
	return translate("ping", s.pool.Ping(ctx))
}

// GetCursor returns the edge's cursor; an unknown edge has an empty epoch.
func (s *Store) GetCursor(ctx context.Context, edgeID string) (Cursor, error) {
	var c Cursor
	var last int64
	err := s.pool.QueryRow(ctx, `SELECT epoch, last_seq FROM chasqui.edge_cursors WHERE edge_id = $1`, edgeID).Scan(&c.Epoch, &last)
	if errors.Is(err, pgx.ErrNoRows) {
		return Cursor{}, nil
	}
	if err != nil {
		return Cursor{}, translate("get cursor", err)
	}
	c.LastSeq = uint64(last)
	return c, nil
}

// planned is a transaction of the batch to apply in this call.
type planned struct {
	idx int // in the request
	seq uint64
	id  uuid.UUID
	tx  *opsv1.Transaction
	// set for a transaction not to apply: rejected by bisection, or
	// already applied under another seq ("duplicate").
	outcome string
	reason  string
	code    string
	// snap is the catalog its rows were checked against.
	snap *catalog.Snapshot
}

// poisonError: PostgreSQL refused data in the pipelined batch; the call
// starts over and isolates the culprits, starting from this error's hint.
type poisonError struct{ pgErr *pgconn.PgError }

func (e *poisonError) Error() string { return "data rejected in batch: " + e.pgErr.Error() }

// maxHints bounds how often isolation follows the record id named by an
// error before it falls back to plain bisection: each hint costs a pass
// over the rest of the batch, bisection a logarithmic number of them.
const maxHints = 3

// errRetry: a serialization failure or deadlock; the call starts over.
type retryError struct{ err error }

func (e *retryError) Error() string { return "retryable: " + e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// Commit applies req (already validated) in one PostgreSQL transaction and
// answers per transaction. It returns *GapError, *ConflictError, an error
// wrapping ErrUnavailable, or the context's error.
func (s *Store) Commit(ctx context.Context, req *centralv1.CommitRequest) (*Result, error) {
	edgeID, first := req.GetEdgeId(), req.GetFirstSeq()
	sp := s.waits.enter(edgeID, first, first+uint64(len(req.GetTransactions()))-1)
	defer s.waits.leave(edgeID, sp)
	waitUntil := time.Now().Add(s.opts.GapWait)
	snap, rejected, err := s.checkRows(ctx, req)
	if err != nil {
		return nil, err
	}
	var isolate *poisonError
	lastLook := false
	for attempt := 1; ; attempt++ {
		moved, known := s.waits.snapshot(edgeID)
		res, err := s.attempt(ctx, req, snap, rejected, isolate)
		var gap *GapError
		var rerr *retryError
		var poison *poisonError
		switch {
		case err == nil:
			s.waits.advance(edgeID, res.CommittedThroughSeq)
			s.refreshAfterMissing(ctx, res)
			return res, nil
		case errors.As(err, &gap):
			// Wait for the predecessors without holding the cursor lock
			// or a connection: they need both.
			if err := s.awaitMove(ctx, edgeID, first, gap.Expected, moved, known, waitUntil); err != nil {
				if errors.Is(err, errWaitOver) && !lastLook {
					// One more read: without a listener, a move on
					// another central is seen only by reading.
					lastLook = true
					continue
				}
				if errors.Is(err, errWaitOver) {
					s.stats.refused.Add(1)
					return nil, gap
				}
				return nil, err
			}
		case errors.As(err, &poison):
			if isolate != nil {
				return nil, s.unavailable(ctx, "isolate", errors.New("data rejection outside the isolated statements"))
			}
			isolate = poison
		case errors.As(err, &rerr):
			if attempt >= s.opts.Attempts {
				return nil, s.unavailable(ctx, "commit", rerr.err)
			}
			s.opts.Logger.InfoContext(ctx, "retrying commit", "edge_id", req.GetEdgeId(), "attempt", attempt, "error", rerr.err)
			if !sleep(ctx, time.Duration(attempt)*10*time.Millisecond) {
				return nil, ctx.Err()
			}
		default:
			var ue *UnavailableError
			if errors.As(err, &ue) {
				s.opts.Logger.WarnContext(ctx, "commit failed", "edge_id", req.GetEdgeId(), "error", err)
			}
			return nil, err
		}
	}
}

// attempt runs one PostgreSQL transaction for the call on a connection it
// holds until the LSN is read: the LSN must come from the connection that
// committed, after its COMMIT.
func (s *Store) attempt(ctx context.Context, req *centralv1.CommitRequest, snap *catalog.Snapshot, rejected map[int]rowRejection, isolate *poisonError) (*Result, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, translate("acquire connection", err)
	}
	defer conn.Release()
	res, err := s.commitOnce(ctx, conn.Conn(), req, snap, rejected, isolate)
	if err != nil {
		return nil, err
	}
	// The flush LSN, not the insert LSN: after a synchronous COMMIT it is at
	// or past this call's commit record, and unlike the insert position it
	// never includes other sessions' WAL that is not on disk yet, which a
	// power cut would lose (an answered LSN the database no longer reaches).
	var lsn string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_flush_lsn()::text`).Scan(&lsn); err != nil {
		// Committed, but the answer is lost: the edge's retry gets the
		// stored outcomes as duplicates.
		return nil, translate("read lsn", err)
	}
	if res.LSN, err = ParseLSN(lsn); err != nil {
		return nil, translate("read lsn", err)
	}
	return res, nil
}

var errWaitOver = errors.New("gap wait over")

func (s *Store) unavailable(ctx context.Context, op string, err error) error {
	e := translate(op, err)
	s.opts.Logger.WarnContext(ctx, "commit failed", "op", op, "error", err)
	return e
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// storedRow is an applied_transactions row.
type storedRow struct {
	txID     uuid.UUID
	outcome  string
	reason   string
	sqlstate string
}

func (r storedRow) result(txID string, seq uint64) TxResult {
	res := TxResult{TxID: txID, Seq: seq, Reason: r.reason, SQLState: r.sqlstate, Duplicate: true}
	switch r.outcome {
	case "applied", "duplicate":
		res.Outcome = OutcomeApplied
		res.Reason = ""
	case "rejected":
		res.Outcome = OutcomeRejected
	}
	return res
}

// commitOnce runs one PostgreSQL transaction for the call. With isolate
// (the error of a previous attempt), the data statements run under
// savepoints to find the transactions PostgreSQL rejects.
func (s *Store) commitOnce(ctx context.Context, conn *pgx.Conn, req *centralv1.CommitRequest, snap *catalog.Snapshot, rejected map[int]rowRejection, isolate *poisonError) (*Result, error) {
	txs := req.GetTransactions()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, wrap("begin", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	ids := make([]uuid.UUID, len(txs))
	for i, t := range txs {
		ids[i] = parseUUID(t.GetId())
	}
	st, err := readCommitState(ctx, tx, req, ids)
	if err != nil {
		return nil, err
	}
	res, plan, err := planCommit(req, ids, st, snap, rejected)
	if err != nil {
		return nil, err
	}
	if len(plan) == 0 {
		// Nothing new: the answer is the stored outcomes.
		return res, wrap("commit", tx.Commit(ctx))
	}
	if err := s.applyPlan(ctx, tx, req, plan, isolate); err != nil {
		return nil, err
	}
	for _, p := range plan {
		if p.outcome == "duplicate" {
			continue
		}
		r := TxResult{TxID: p.tx.GetId(), Seq: p.seq, Outcome: OutcomeApplied}
		if p.outcome == "rejected" {
			r.Outcome, r.Reason, r.SQLState = OutcomeRejected, p.reason, p.code
		}
		res.Txs[p.idx] = r
	}
	return res, nil
}

// commitState is what PostgreSQL holds for a call, read under the lock of
// the edge's cursor.
type commitState struct {
	epoch  string // the cursor's
	cursor uint64 // the last seq applied
	// stored: the applied_transactions rows of the call's seqs.
	stored map[uint64]storedRow
	// appliedElsewhere: ids of the call applied under another seq or
	// edge, with why.
	appliedElsewhere map[uuid.UUID]string
}

// readCommitState locks the cursor (creating it for a new edge) and reads
// what this batch's seqs and ids already have, in one round trip. The
// reads after the lock see every commit that preceded it (read committed).
func readCommitState(ctx context.Context, tx pgx.Tx, req *centralv1.CommitRequest, ids []uuid.UUID) (*commitState, error) {
	edgeID, epoch, first := req.GetEdgeId(), req.GetEpoch(), req.GetFirstSeq()
	last := first + uint64(len(ids)) - 1
	pgIDs := make([]pgtype.UUID, len(ids))
	for i, id := range ids {
		pgIDs[i] = pgUUID(id)
	}
	st := &commitState{stored: map[uint64]storedRow{}, appliedElsewhere: map[uuid.UUID]string{}}
	var cursorSeq int64
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO chasqui.edge_cursors (edge_id, epoch) VALUES ($1, $2) ON CONFLICT (edge_id) DO NOTHING`, edgeID, epoch)
	b.Queue(`SELECT epoch, last_seq FROM chasqui.edge_cursors WHERE edge_id = $1 FOR UPDATE`, edgeID).
		QueryRow(func(row pgx.Row) error { return row.Scan(&st.epoch, &cursorSeq) })
	b.Queue(`SELECT seq, tx_id, outcome, reason, sqlstate FROM chasqui.applied_transactions WHERE edge_id = $1 AND seq BETWEEN $2 AND $3`,
		edgeID, int64(first), int64(last)).
		Query(func(rows pgx.Rows) error {
			var seq int64
			var r storedRow
			_, err := pgx.ForEachRow(rows, []any{&seq, &r.txID, &r.outcome, &r.reason, &r.sqlstate}, func() error {
				st.stored[uint64(seq)] = r
				return nil
			})
			return err
		})
	b.Queue(`SELECT tx_id, edge_id, seq FROM chasqui.applied_transactions WHERE tx_id = ANY($1) AND outcome = 'applied'`, pgIDs).
		Query(func(rows pgx.Rows) error {
			var id uuid.UUID
			var e string
			var seq int64
			_, err := pgx.ForEachRow(rows, []any{&id, &e, &seq}, func() error {
				if e != edgeID || uint64(seq) < first || uint64(seq) > last {
					st.appliedElsewhere[id] = fmt.Sprintf("already applied as seq %d of edge %q", seq, e)
				}
				return nil
			})
			return err
		})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, wrap("lock cursor", err)
	}
	st.cursor = uint64(cursorSeq)
	return st, nil
}

// planCommit answers the seqs central passed from what it stored, and
// plans the rest: applied, recorded as a duplicate, or rejected as
// withdrawn. A gap before the call, or a passed seq central cannot match
// to the request's transaction, is refused.
func planCommit(req *centralv1.CommitRequest, ids []uuid.UUID, st *commitState, snap *catalog.Snapshot, rejected map[int]rowRejection) (*Result, []*planned, error) {
	first, txs := req.GetFirstSeq(), req.GetTransactions()
	last := first + uint64(len(txs)) - 1
	cursor := st.cursor
	if first > cursor+1 {
		return nil, nil, &GapError{Expected: cursor + 1}
	}
	res := &Result{CommittedThroughSeq: max(cursor, last), Txs: make([]TxResult, len(txs))}
	var plan []*planned
	for i, t := range txs {
		seq := first + uint64(i)
		if seq <= cursor {
			row, ok := st.stored[seq]
			switch {
			case !ok:
				// Pruned: central cannot tell whether this is the
				// transaction it applied at seq. The same epoch proves
				// nothing: an edge restored from an old backup of its
				// store reuses, for new transactions, seqs central applied
				// after the backup. Answering "applied", or any outcome,
				// could acknowledge data never applied: refuse, and the
				// edge holds its queue for the operator.
				return nil, nil, &ConflictError{Seq: seq, RequestTxID: t.GetId(), Epoch: st.epoch, CursorSeq: cursor}
			case row.txID != ids[i]:
				return nil, nil, &ConflictError{Seq: seq, AppliedTxID: row.txID.String(), RequestTxID: t.GetId(), Epoch: st.epoch, CursorSeq: cursor}
			default:
				res.Txs[i] = row.result(t.GetId(), seq)
			}
			continue
		}
		p := &planned{idx: i, seq: seq, id: ids[i], tx: t, snap: snap}
		if why, ok := st.appliedElsewhere[ids[i]]; ok {
			p.outcome, p.reason = "duplicate", why
			res.Txs[i] = TxResult{TxID: t.GetId(), Seq: seq, Outcome: OutcomeApplied, Duplicate: true}
		} else if why := req.GetWithdrawReason(); why != "" {
			// Refused alone earlier (too large, invalid, not permitted):
			// recorded as rejected so the seq is consumed in order.
			p.outcome, p.reason = "rejected", "withdrawn by the edge: "+why
		} else if r, ok := rejected[i]; ok {
			// A row central may not or cannot write: refused before
			// PostgreSQL sees it, like a data rejection.
			p.outcome, p.reason, p.code = "rejected", r.reason, r.code
		}
		plan = append(plan, p)
	}
	return res, plan, nil
}

// applyPlan writes the plan, the bookkeeping and the cursor, and commits.
// With isolate the data statements run under savepoints first, marking
// the transactions PostgreSQL rejects; without, a data error fails the
// call with a poisonError for the retry that isolates.
func (s *Store) applyPlan(ctx context.Context, tx pgx.Tx, req *centralv1.CommitRequest, plan []*planned, isolate *poisonError) error {
	edgeID, epoch := req.GetEdgeId(), req.GetEpoch()
	last := req.GetFirstSeq() + uint64(len(req.GetTransactions())) - 1
	toApply := make([]*planned, 0, len(plan))
	for _, p := range plan {
		if p.outcome == "" {
			toApply = append(toApply, p)
		}
	}
	b := &pgx.Batch{}
	if isolate != nil {
		if err := s.isolate(ctx, tx, edgeID, toApply, isolate.pgErr); err != nil {
			return err
		}
	} else {
		queue(b, dataStatements(edgeID, toApply))
	}
	nData := b.Len()
	queueBookkeeping(b, edgeID, epoch, plan)
	b.Queue(updateCursor, edgeID, int64(last), epoch)
	// Delivered at COMMIT, to the other centrals' waiters (Listen).
	// PostgreSQL serializes the commits of notifying transactions (a lock
	// held through the commit), one per batch here.
	b.Queue(`SELECT pg_notify($1, $2)`, CursorChannel, notifyPayload(edgeID, last))
	if err := execBatch(ctx, tx, b); err != nil {
		var be *batchError
		if errors.As(err, &be) && be.index < nData {
			if c, pgErr := classify(be.err); c == classData {
				return &poisonError{pgErr: pgErr}
			}
		}
		return wrap("apply", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return wrap("commit", err)
	}
	return nil
}

func queueBookkeeping(b *pgx.Batch, edgeID, epoch string, plan []*planned) {
	n := len(plan)
	seqs, ids := make([]int64, n), make([]pgtype.UUID, n)
	outcomes, reasons, codes := make([]string, n), make([]string, n), make([]string, n)
	for i, p := range plan {
		seqs[i], ids[i] = int64(p.seq), pgUUID(p.id)
		outcomes[i], reasons[i], codes[i] = p.outcome, p.reason, p.code
		if p.outcome == "" {
			outcomes[i] = "applied"
		}
	}
	b.Queue(insertBookkeeping, edgeID, epoch, seqs, ids, outcomes, reasons, codes)
}

// isolate applies plan's good transactions in order and marks the ones
// PostgreSQL rejects. PostgreSQL's errors usually name the offending
// record's id (key details, failing row, require_keys' message): the
// transaction holding it is tried alone first, the ones before it
// together, then the rest. Without a usable hint, it bisects.
//
// first is the error of the failed pipelined attempt on the whole plan,
// which need not be repeated.
func (s *Store) isolate(ctx context.Context, tx pgx.Tx, edgeID string, plan []*planned, first *pgconn.PgError) error {
	for hints := 0; len(plan) > 0; hints++ {
		pgErr := first
		if hints > 0 {
			var err error
			if pgErr, err = tryApply(ctx, tx, edgeID, plan); err != nil || pgErr == nil {
				return err
			}
		}
		i := locate(pgErr, plan)
		if i < 0 || hints == maxHints {
			_, err := s.bisect(ctx, tx, edgeID, plan, true)
			return err
		}
		if _, err := s.bisect(ctx, tx, edgeID, plan[:i], false); err != nil {
			return err
		}
		if _, err := s.bisect(ctx, tx, edgeID, plan[i:i+1], false); err != nil {
			return err
		}
		plan = plan[i+1:]
	}
	return nil
}

// locate returns the index of the first transaction of plan owning or
// referencing a record id named in pgErr, or -1.
func locate(pgErr *pgconn.PgError, plan []*planned) int {
	named := map[uuid.UUID]bool{}
	for _, m := range uuidPattern.FindAllString(pgErr.Message+" "+pgErr.Detail, 8) {
		if u, err := uuid.Parse(m); err == nil {
			named[u] = true
		}
	}
	if len(named) == 0 {
		return -1
	}
	for i, p := range plan {
		for _, m := range p.tx.GetMutations() {
			for _, id := range recordIDs(m) {
				if named[parseUUID(id)] {
					return i
				}
			}
		}
	}
	return -1
}

var uuidPattern = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// recordIDs are the ids a mutation writes or references.
func recordIDs(m *opsv1.Mutation) []string {
	switch k := m.GetKind().(type) {
	case *opsv1.Mutation_Observation:
		return []string{k.Observation.GetId()}
	case *opsv1.Mutation_ObservationUpdate:
		return []string{k.ObservationUpdate.GetId()}
	case *opsv1.Mutation_InstrumentConfig:
		return []string{k.InstrumentConfig.GetId(), k.InstrumentConfig.GetObservationId()}
	case *opsv1.Mutation_RawDataFile:
		return []string{k.RawDataFile.GetId(), k.RawDataFile.GetObservationId()}
	case *opsv1.Mutation_Row:
		// Any string value may be a key PostgreSQL's error names.
		var ids []string
		for _, v := range k.Row.GetValues().GetFields() {
			if sv, ok := v.GetKind().(*structpb.Value_StringValue); ok && len(sv.StringValue) == 36 {
				ids = append(ids, sv.StringValue)
			}
		}
		return ids
	}
	return nil
}

// bisect applies plan's transactions in order under savepoints, marking
// those PostgreSQL rejects. knownBad: plan as a whole is known to fail,
// so it is split at once. One savepoint per step, never one per
// transaction: more than 64 subtransactions overflow PostgreSQL's cache.
// It reports whether it rejected anything.
func (s *Store) bisect(ctx context.Context, tx pgx.Tx, edgeID string, plan []*planned, knownBad bool) (bool, error) {
	if len(plan) == 0 {
		return false, nil
	}
	if !knownBad || len(plan) == 1 {
		pgErr, err := tryApply(ctx, tx, edgeID, plan)
		if err != nil {
			return false, err
		}
		if pgErr == nil {
			return false, nil
		}
		if len(plan) == 1 {
			plan[0].outcome, plan[0].reason, plan[0].code = "rejected", reason(pgErr), pgErr.Code
			s.opts.Logger.InfoContext(ctx, "transaction rejected", "edge_id", edgeID, "seq", plan[0].seq,
				"transaction_id", plan[0].tx.GetId(), "sqlstate", pgErr.Code, "reason", plan[0].reason)
			return true, nil
		}
	}
	mid := len(plan) / 2
	leftBad, err := s.bisect(ctx, tx, edgeID, plan[:mid], false)
	if err != nil {
		return false, err
	}
	// When the left half went through clean, the right half holds what
	// failed; otherwise the rejections on the left may have been its cause.
	rightBad, err := s.bisect(ctx, tx, edgeID, plan[mid:], !leftBad)
	return leftBad || rightBad, err
}

// tryApply runs plan's statements under one savepoint. A data rejection
// rolls the savepoint back and is returned as pgErr; any other failure is err.
func tryApply(ctx context.Context, tx pgx.Tx, edgeID string, plan []*planned) (*pgconn.PgError, error) {
	// The savepoint is set on its own: pgx prepares a batch's statements
	// before running any, and a statement PostgreSQL cannot even prepare
	// (a row's table dropped since the catalog was read) would abort the
	// transaction before a queued SAVEPOINT ran.
	if _, err := tx.Exec(ctx, "SAVEPOINT chasqui_bisect", pgx.QueryExecModeSimpleProtocol); err != nil {
		return nil, wrap("savepoint", err)
	}
	b := &pgx.Batch{}
	queue(b, dataStatements(edgeID, plan))
	b.Queue("RELEASE SAVEPOINT chasqui_bisect")
	err := execBatch(ctx, tx, b)
	if err == nil {
		return nil, nil
	}
	c, pgErr := classify(err)
	if c != classData {
		return nil, wrap("isolate", err)
	}
	// Simple protocol: the extended one would first prepare the
	// statements, which an aborted transaction refuses.
	if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT chasqui_bisect; RELEASE SAVEPOINT chasqui_bisect", pgx.QueryExecModeSimpleProtocol); err != nil {
		return nil, wrap("rollback to savepoint", err)
	}
	return pgErr, nil
}

// batchError says which queued statement failed.
type batchError struct {
	index int
	err   error
}

func (e *batchError) Error() string { return fmt.Sprintf("statement %d: %v", e.index, e.err) }
func (e *batchError) Unwrap() error { return e.err }

// execBatch sends b in one round trip and reads every result.
func execBatch(ctx context.Context, tx pgx.Tx, b *pgx.Batch) error {
	br := tx.SendBatch(ctx, b)
	for i := range b.Len() {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return &batchError{index: i, err: err}
		}
	}
	return br.Close()
}

// wrap classifies an error of a step of commitOnce.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if c, _ := classify(err); c == classRetry {
		return &retryError{err: err}
	}
	return translate(op, err)
}

// refreshAfterMissing re-reads the catalog (rate-limited) when PostgreSQL
// rejected a row for a table or column that is gone: a migration ran, and
// the schema edges learn must follow.
func (s *Store) refreshAfterMissing(ctx context.Context, res *Result) {
	if s.opts.Catalog == nil {
		return
	}
	for _, r := range res.Txs {
		if !r.Duplicate && (r.SQLState == sqlstateUndefinedTable || r.SQLState == sqlstateUndefinedColumn) {
			if _, err := s.opts.Catalog.Refresh(ctx); err != nil {
				s.opts.Logger.WarnContext(ctx, "re-reading the catalog", "error", err)
			}
			return
		}
	}
}
