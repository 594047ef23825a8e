package e2e

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// History records what clients were told: every transaction written, the
// ones acknowledged (with the edge's sequence number from the Submit
// answer) and the ones whose every attempt ended in an error or timeout
// (uncertain: they may or may not have been stored). It also knows which
// transactions are poison: valid for the edge, refused by PostgreSQL for
// their data, so they must end dead-lettered and never applied. Safe for
// concurrent use.
type History struct {
	mu      sync.Mutex
	written map[string]bool
	poison  map[string]bool
	acks    map[string]Ack
	errs    map[string]string // last error per tx id, for uncertain ones
	nErrors int               // failed Submit calls, all attempts counted
}

// Ack is one acknowledged transaction.
type Ack struct {
	TxID   string
	EdgeID string
	Seq    uint64
	// ObsRows is the number of chasqui.observations rows the transaction
	// inserts (observation mutations), checked exactly.
	ObsRows int
	// Rows is the number of rows of the ops tables the transaction writes
	// (row mutations), checked exactly in e2e.row_log (rows.go).
	Rows int
}

// NewHistory returns an empty history.
func NewHistory() *History {
	return &History{written: map[string]bool{}, poison: map[string]bool{}, acks: map[string]Ack{}, errs: map[string]string{}}
}

// Poison records that txID is about to be submitted and that PostgreSQL
// will reject it for its data.
func (h *History) Poison(txID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.written[txID] = true
	h.poison[txID] = true
}

// Written records that txID is about to be submitted.
func (h *History) Written(txID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.written[txID] = true
}

// Acked records an acknowledgement. A second acknowledgement of the same id
// must carry the same seq (the edge answers a resubmission with the first
// answer); a different seq is kept as a problem for the checker.
func (h *History) Acked(a Ack) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.written[a.TxID] = true
	if prev, ok := h.acks[a.TxID]; ok && prev.Seq != a.Seq {
		h.errs[a.TxID] = fmt.Sprintf("acknowledged twice with different seqs %d and %d", prev.Seq, a.Seq)
		return
	}
	h.acks[a.TxID] = a
	delete(h.errs, a.TxID) // an earlier failed attempt is settled by this ack
}

// Failed records a failed Submit attempt of txID.
func (h *History) Failed(txID string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.written[txID] = true
	h.nErrors++
	if _, acked := h.acks[txID]; !acked {
		h.errs[txID] = err.Error()
	}
}

// Acks returns the acknowledged transactions in seq order.
func (h *History) Acks() []Ack {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Ack, 0, len(h.acks))
	for _, a := range h.acks {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

// Counts returns written, acknowledged and failed-call counts.
func (h *History) Counts() (written, acked, failedCalls int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.written), len(h.acks), h.nErrors
}

// AckedIDs returns the acknowledged transaction ids.
func (h *History) AckedIDs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := make([]string, 0, len(h.acks))
	for id := range h.acks {
		ids = append(ids, id)
	}
	return ids
}

// Report is what the history checker found.
type Report struct {
	Written         int // transactions the clients tried to write
	Acknowledged    int // ... of which the edge acknowledged
	FailedCalls     int // Submit calls that ended in an error (retries counted)
	Uncertain       int // written, never acknowledged (errors/timeouts)
	UncertainInDB   int // ... of which PostgreSQL holds anyway (stored, ack lost)
	AppliedRows     int // chasqui.applied_transactions rows with outcome applied
	DuplicateRows   int // rows with outcome duplicate (a tx id central saw under a second seq)
	Lost            int // acknowledged, neither applied nor (poison) rejected by central
	Duplicated      int // applied more than once (rows per tx id beyond the expected)
	Rejected        int // acknowledged valid transactions central rejected (the load's valid data)
	OrderViolations int // per-edge commit order differs from seq order
	SeqMismatches   int // applied under another seq than the Submit answer gave
	Invented        int // rows no client wrote
	Poison          int // acknowledged poison transactions
	PoisonApplied   int // poison transactions PostgreSQL holds as applied (acknowledged or not)
	RowWrites       int // rows of the ops tables PostgreSQL wrote (e2e.row_log), -1 without a row log

	// The edge's own view, filled by CheckEdgeView.
	EdgeChecked  bool
	Committed    int // acknowledged valid transactions COMMITTED or VISIBLE at the edge with a good LSN
	DeadLettered int // acknowledged poison REJECTED at the edge and in its dead letters
	Stuck        int // acknowledged, still ACCEPTED at the edge after the drain settled
	EdgeMissing  int // acknowledged, unknown to the edge
	BadLSN       int // commit LSN zero, past the end of the WAL or before the commit that applied it
	StaleLSN     int // ... of which before the commit that applied it
	WrongState   int // valid transactions rejected or dead-lettered, poison committed, stray dead letters
	Problems     []string
}

func (r *Report) problem(format string, args ...any) {
	if len(r.Problems) < 20 {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

// OK reports whether every guarantee checked holds.
func (r Report) OK() bool {
	return r.Lost == 0 && r.Duplicated == 0 && r.Rejected == 0 && r.OrderViolations == 0 &&
		r.SeqMismatches == 0 && r.Invented == 0 && r.PoisonApplied == 0 &&
		r.Stuck == 0 && r.EdgeMissing == 0 && r.BadLSN == 0 && r.WrongState == 0 && len(r.Problems) == 0
}

func (r Report) String() string {
	s := fmt.Sprintf("written=%d acknowledged=%d failed_calls=%d uncertain=%d (in_db=%d) applied_rows=%d "+
		"poison=%d lost=%d duplicated=%d rejected=%d order_violations=%d seq_mismatches=%d invented=%d "+
		"poison_applied=%d duplicate_outcome_rows=%d",
		r.Written, r.Acknowledged, r.FailedCalls, r.Uncertain, r.UncertainInDB, r.AppliedRows,
		r.Poison, r.Lost, r.Duplicated, r.Rejected, r.OrderViolations, r.SeqMismatches, r.Invented,
		r.PoisonApplied, r.DuplicateRows)
	if r.RowWrites >= 0 {
		s += fmt.Sprintf(" ops_row_writes=%d", r.RowWrites)
	}
	if r.EdgeChecked {
		s += fmt.Sprintf("; edge: committed=%d dead_lettered=%d stuck_accepted=%d missing=%d bad_lsn=%d (stale=%d) wrong_state=%d",
			r.Committed, r.DeadLettered, r.Stuck, r.EdgeMissing, r.BadLSN, r.StaleLSN, r.WrongState)
	}
	return s
}

// Assert logs the figures and fails t unless every guarantee holds.
func (r Report) Assert(t testing.TB) {
	t.Helper()
	t.Logf("history: %s", r)
	if !r.OK() {
		t.Errorf("history check failed: %s\n  %s", r, strings.Join(r.Problems, "\n  "))
	}
}

type appliedRow struct {
	txID, edgeID, outcome string
	seq, order            int64
}

// CheckHistory compares h with what PostgreSQL holds: every acknowledged
// transaction applied exactly once, under the seq its Submit answer gave;
// per edge, commit order (apply_order) equal to seq order; nothing in
// PostgreSQL that no client wrote. Where the database has the row log of
// the ops tables (rows.go), the same for the rows of those tables, in the
// order PostgreSQL wrote them.
func CheckHistory(ctx context.Context, db *pgxpool.Pool, h *History) (Report, error) {
	h.mu.Lock()
	written := make(map[string]bool, len(h.written))
	for k := range h.written {
		written[k] = true
	}
	acks := make(map[string]Ack, len(h.acks))
	for k, v := range h.acks {
		acks[k] = v
	}
	poison := make(map[string]bool, len(h.poison))
	for k := range h.poison {
		poison[k] = true
	}
	var r Report
	r.FailedCalls = h.nErrors
	for id, e := range h.errs {
		if _, ok := h.acks[id]; ok { // a conflicting second ack
			r.problem("tx %s: %s", id, e)
		}
	}
	h.mu.Unlock()
	r.Written, r.Acknowledged = len(written), len(acks)
	r.Uncertain = r.Written - r.Acknowledged

	rows, err := db.Query(ctx, `SELECT tx_id::text, edge_id, seq, outcome, apply_order
		FROM chasqui.applied_transactions ORDER BY edge_id, apply_order`)
	if err != nil {
		return r, fmt.Errorf("reading applied_transactions: %w", err)
	}
	var applied []appliedRow
	for rows.Next() {
		var a appliedRow
		if err := rows.Scan(&a.txID, &a.edgeID, &a.seq, &a.outcome, &a.order); err != nil {
			rows.Close()
			return r, err
		}
		applied = append(applied, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return r, err
	}
	obsByTx := map[string]int{}
	rows, err = db.Query(ctx, `SELECT tx_id::text, count(*) FROM chasqui.observations GROUP BY tx_id`)
	if err != nil {
		return r, fmt.Errorf("reading observations: %w", err)
	}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			rows.Close()
			return r, err
		}
		obsByTx[id] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return r, err
	}

	appliedByTx := map[string][]appliedRow{}
	lastSeq := map[string]int64{}
	for _, a := range applied {
		// Order: per edge, walking apply_order, seqs only grow.
		if prev, ok := lastSeq[a.edgeID]; ok && a.seq <= prev {
			r.OrderViolations++
			r.problem("edge %s: seq %d (tx %s) committed after seq %d", a.edgeID, a.seq, a.txID, prev)
		}
		lastSeq[a.edgeID] = a.seq
		switch a.outcome {
		case "applied":
			r.AppliedRows++
			appliedByTx[a.txID] = append(appliedByTx[a.txID], a)
		case "duplicate":
			r.DuplicateRows++
		}
		if !written[a.txID] {
			r.Invented++
			r.problem("applied_transactions holds tx %s (edge %s seq %d) that no client wrote", a.txID, a.edgeID, a.seq)
		}
	}
	for id, n := range obsByTx {
		if !written[id] {
			r.Invented++
			r.problem("observations hold %d row(s) of tx %s that no client wrote", n, id)
		}
	}
	for id, a := range acks {
		got := appliedByTx[id]
		if poison[id] {
			r.Poison++
			checkPoison(&r, a, got, applied)
			continue
		}
		switch {
		case len(got) == 0:
			if rejectedIn(applied, id) {
				r.Rejected++
				r.problem("tx %s (seq %d) rejected by central", id, a.Seq)
			} else {
				r.Lost++
				r.problem("tx %s (seq %d) acknowledged but not in PostgreSQL", id, a.Seq)
			}
			continue
		case len(got) > 1:
			r.Duplicated++
			r.problem("tx %s applied %d times", id, len(got))
		}
		if got[0].seq != int64(a.Seq) || (a.EdgeID != "" && got[0].edgeID != a.EdgeID) {
			r.SeqMismatches++
			r.problem("tx %s acknowledged as %s/%d, applied as %s/%d", id, a.EdgeID, a.Seq, got[0].edgeID, got[0].seq)
		}
		if n := obsByTx[id]; n != a.ObsRows {
			if n > a.ObsRows {
				r.Duplicated++
			} else {
				r.Lost++
			}
			r.problem("tx %s: %d observation row(s), want %d", id, n, a.ObsRows)
		}
	}
	entries, hasLog, err := readRowLog(ctx, db)
	if err != nil {
		return r, err
	}
	r.RowWrites = -1
	if hasLog {
		r.RowWrites = 0
		checkRowLog(&r, entries, written, acks, poison)
	}
	for id := range written {
		if _, ok := acks[id]; !ok && poison[id] && len(appliedByTx[id]) > 0 {
			r.PoisonApplied++
			r.problem("unacknowledged poison tx %s applied", id)
		}
		if _, ok := acks[id]; !ok && len(appliedByTx[id]) > 0 {
			r.UncertainInDB++
			if len(appliedByTx[id]) > 1 {
				r.Duplicated++
				r.problem("unacknowledged tx %s applied %d times", id, len(appliedByTx[id]))
			}
		}
	}
	return r, nil
}

// checkPoison: an acknowledged poison transaction is never applied and
// central recorded its rejection under the seq its Submit answer gave.
func checkPoison(r *Report, a Ack, got, applied []appliedRow) {
	if len(got) > 0 {
		r.PoisonApplied++
		r.problem("poison tx %s (seq %d) applied %d time(s)", a.TxID, a.Seq, len(got))
		return
	}
	i := slices.IndexFunc(applied, func(row appliedRow) bool { return row.txID == a.TxID && row.outcome == "rejected" })
	if i < 0 {
		r.Lost++
		r.problem("poison tx %s (seq %d) acknowledged but central has no outcome for it", a.TxID, a.Seq)
		return
	}
	if row := applied[i]; row.seq != int64(a.Seq) || (a.EdgeID != "" && row.edgeID != a.EdgeID) {
		r.SeqMismatches++
		r.problem("poison tx %s acknowledged as %s/%d, rejected as %s/%d", a.TxID, a.EdgeID, a.Seq, row.edgeID, row.seq)
	}
}

func rejectedIn(applied []appliedRow, id string) bool {
	return slices.ContainsFunc(applied, func(a appliedRow) bool { return a.txID == id && a.outcome == "rejected" })
}

// WaitApplied polls PostgreSQL until every id in ids has an applied row, or
// timeout passes; it returns how many were still missing.
func WaitApplied(ctx context.Context, db *pgxpool.Pool, ids []string, timeout time.Duration) (missing int, err error) {
	deadline := time.Now().Add(timeout)
	for {
		var n int
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = db.QueryRow(qctx, `SELECT count(DISTINCT tx_id) FROM chasqui.applied_transactions
			WHERE tx_id = ANY($1::uuid[]) AND outcome <> 'duplicate'`, ids).Scan(&n)
		cancel()
		if err == nil {
			missing = len(ids) - n
			if missing == 0 {
				return 0, nil
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				return len(ids), err
			}
			return missing, nil
		}
		select {
		case <-ctx.Done():
			return missing, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
