package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	"github.com/chasqui/chasqui/internal/pglsn"
)

// EdgeView is the edge's own account of a history's transactions, read
// after the drain, with what PostgreSQL's WAL says about their commits.
type EdgeView struct {
	// States by transaction id; an id the edge answers NOT_FOUND is absent.
	States map[string]*edgev1.TransactionStatus
	// DeadLetters holds every dead letter the edge lists, by transaction id.
	DeadLetters map[string]*edgev1.DeadLetter
	// WALEnd is pg_current_wal_insert_lsn() read after States: no commit
	// LSN the edge reports can lie past it.
	WALEnd uint64
	// CommitEnd is, per applied transaction id, the end of the commit
	// record of the PostgreSQL transaction that applied it: a replica
	// replayed that far shows the rows, so the edge's LSN must be at or past it.
	CommitEnd map[string]uint64
}

// CheckEdgeView adds the edge's view to r: each acknowledged valid
// transaction COMMITTED or VISIBLE under its seq, with an LSN at or past
// its commit and not past the end of the WAL; each acknowledged poison
// transaction REJECTED and in the dead letters; none still ACCEPTED, none
// unknown; no dead letter of a valid or unwritten transaction.
func CheckEdgeView(h *History, v EdgeView, r *Report) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r.EdgeChecked = true
	for id, a := range h.acks {
		st, ok := v.States[id]
		if !ok {
			r.EdgeMissing++
			r.problem("tx %s (seq %d) acknowledged but unknown to the edge", id, a.Seq)
			continue
		}
		if st.GetSeq() != a.Seq {
			r.SeqMismatches++
			r.problem("tx %s acknowledged as seq %d, the edge holds it as seq %d", id, a.Seq, st.GetSeq())
		}
		_, dead := v.DeadLetters[id]
		state := st.GetState()
		if state == edgev1.TransactionState_TRANSACTION_STATE_ACCEPTED {
			r.Stuck++
			r.problem("tx %s (seq %d) still ACCEPTED at the edge after the drain", id, a.Seq)
			continue
		}
		if h.poison[id] {
			if state == edgev1.TransactionState_TRANSACTION_STATE_REJECTED && dead {
				r.DeadLettered++
			} else {
				r.WrongState++
				r.problem("poison tx %s (seq %d) is %s at the edge, dead letter %t", id, a.Seq, state, dead)
			}
			continue
		}
		switch state {
		case edgev1.TransactionState_TRANSACTION_STATE_COMMITTED, edgev1.TransactionState_TRANSACTION_STATE_VISIBLE:
		default:
			r.WrongState++
			r.problem("valid tx %s (seq %d) is %s at the edge (reason %q)", id, a.Seq, state, st.GetRejectReason())
			continue
		}
		if dead {
			r.WrongState++
			r.problem("valid tx %s (seq %d) is %s and also a dead letter", id, a.Seq, state)
			continue
		}
		if !lsnOK(r, id, st, v) {
			r.BadLSN++
			continue
		}
		r.Committed++
	}
	for id := range v.DeadLetters {
		if !h.written[id] {
			r.Invented++
			r.problem("the edge holds dead letter %s that no client wrote", id)
		} else if !h.poison[id] {
			if _, acked := h.acks[id]; !acked { // acknowledged ones are counted above
				r.WrongState++
				r.problem("valid unacknowledged tx %s is a dead letter", id)
			}
		}
	}
}

// lsnOK checks a committed transaction's LSN against the WAL, noting a
// problem when it fails.
func lsnOK(r *Report, id string, st *edgev1.TransactionStatus, v EdgeView) bool {
	lsn := st.GetCommitLsnValue()
	end, found := v.CommitEnd[id]
	switch {
	case lsn == 0:
		r.problem("tx %s (seq %d) is %s without a commit LSN", id, st.GetSeq(), st.GetState())
	case lsn > v.WALEnd:
		r.problem("tx %s (seq %d): commit LSN %s lies past the end of the WAL %s", id, st.GetSeq(), fmtLSN(lsn), fmtLSN(v.WALEnd))
	case !found:
		r.problem("tx %s (seq %d): no commit record in the WAL applied it", id, st.GetSeq())
	case lsn < end:
		r.StaleLSN++
		r.problem("tx %s (seq %d): commit LSN %s lies before the end %s of the commit that applied it",
			id, st.GetSeq(), fmtLSN(lsn), fmtLSN(end))
	default:
		return true
	}
	return false
}

func fmtLSN(l uint64) string { return pglsn.Format(l) }

func readLSN(s string) (uint64, error) { return pglsn.Parse(s) }

// readStates asks the edge for each id's state, a few calls at a time;
// NOT_FOUND leaves the id out.
func readStates(ctx context.Context, c edgev1.EdgeServiceClient, ids []string) (map[string]*edgev1.TransactionStatus, error) {
	var mu sync.Mutex
	out := make(map[string]*edgev1.TransactionStatus, len(ids))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, id := range ids {
		g.Go(func() error {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			resp, err := c.GetTransaction(cctx, &edgev1.GetTransactionRequest{TransactionId: id})
			if status.Code(err) == codes.NotFound {
				return nil
			}
			if err != nil {
				return fmt.Errorf("GetTransaction %s: %w", id, err)
			}
			mu.Lock()
			out[id] = resp.GetTransaction()
			mu.Unlock()
			return nil
		})
	}
	return out, g.Wait()
}

// readDeadLetters lists every dead letter of the edge.
func readDeadLetters(ctx context.Context, admin edgev1.AdminServiceClient) (map[string]*edgev1.DeadLetter, error) {
	out := map[string]*edgev1.DeadLetter{}
	token := ""
	for {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := admin.ListDeadLetters(cctx, &edgev1.ListDeadLettersRequest{PageSize: 1000, PageToken: token})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("ListDeadLetters: %w", err)
		}
		for _, d := range resp.GetDeadLetters() {
			out[d.GetTransaction().GetId()] = d
		}
		if token = resp.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

// WALWatch keeps PostgreSQL's WAL from a point on (a physical replication
// slot that reserves it at once) so the checker can find the commit record
// of every transaction central applies afterwards, with pg_walinspect.
type WALWatch struct {
	slot  string
	start uint64
}

// StartWALWatch creates the slot and the pg_walinspect extension in db's
// database. Close drops the slot, which otherwise pins the WAL for good.
func StartWALWatch(ctx context.Context, db *pgxpool.Pool) (*WALWatch, error) {
	if _, err := db.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_walinspect`); err != nil {
		return nil, fmt.Errorf("e2e: the history check reads commit LSNs with pg_walinspect (PostgreSQL 15 or later): %w", err)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	w := &WALWatch{slot: "e2e_history_" + hex.EncodeToString(b)}
	var lsn string
	if err := db.QueryRow(ctx, `SELECT lsn::text FROM pg_create_physical_replication_slot($1, true)`, w.slot).Scan(&lsn); err != nil {
		return nil, fmt.Errorf("e2e: creating WAL slot %s: %w", w.slot, err)
	}
	var err error
	if w.start, err = readLSN(lsn); err != nil {
		return nil, err
	}
	return w, nil
}

// Close drops the slot.
func (w *WALWatch) Close(ctx context.Context, db *pgxpool.Pool) error {
	_, err := db.Exec(ctx, `SELECT pg_drop_replication_slot($1)`, w.slot)
	return err
}

// CommitEnds returns, for each transaction applied in chasqui.applied_transactions
// since the watch began, the end of the commit record of the PostgreSQL
// transaction that inserted its row, and the end of the WAL. Central may
// insert the row under a savepoint: the row's xmin is then a
// subtransaction, which the commit record lists.
func (w *WALWatch) CommitEnds(ctx context.Context, db *pgxpool.Pool) (ends map[string]uint64, walEnd uint64, err error) {
	var insert, flush string
	if err := db.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text, pg_current_wal_flush_lsn()::text`).Scan(&insert, &flush); err != nil {
		return nil, 0, fmt.Errorf("reading the WAL position: %w", err)
	}
	if walEnd, err = readLSN(insert); err != nil {
		return nil, 0, err
	}
	rows, err := db.Query(ctx, `SELECT xid::text, end_lsn::text, description
		FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)
		WHERE resource_manager = 'Transaction' AND record_type = 'COMMIT'`, fmtLSN(w.start), flush)
	if err != nil {
		return nil, 0, fmt.Errorf("reading commit records: %w", err)
	}
	commitEnd := map[string]uint64{} // xid or subxid -> end of the commit record
	for rows.Next() {
		var xid, end, desc string
		if err := rows.Scan(&xid, &end, &desc); err != nil {
			rows.Close()
			return nil, 0, err
		}
		e, err := readLSN(end)
		if err != nil {
			rows.Close()
			return nil, 0, err
		}
		commitEnd[xid] = e
		for _, sub := range subxacts(desc) {
			commitEnd[sub] = e
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("reading commit records: %w", err)
	}
	rows, err = db.Query(ctx, `SELECT tx_id::text, xmin::text FROM chasqui.applied_transactions WHERE outcome = 'applied'`)
	if err != nil {
		return nil, 0, fmt.Errorf("reading applied_transactions: %w", err)
	}
	defer rows.Close()
	ends = map[string]uint64{}
	for rows.Next() {
		var id, xmin string
		if err := rows.Scan(&id, &xmin); err != nil {
			return nil, 0, err
		}
		if e, ok := commitEnd[xmin]; ok {
			ends[id] = e
		}
	}
	return ends, walEnd, rows.Err()
}

// subxacts reads the subtransaction ids from a commit record's description
// ("<time>; subxacts: 901 902; ...").
func subxacts(desc string) []string {
	_, rest, ok := strings.Cut(desc, "subxacts:")
	if !ok {
		return nil
	}
	rest, _, _ = strings.Cut(rest, ";")
	return strings.Fields(rest)
}
