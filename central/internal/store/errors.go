package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// ErrUnavailable is a transient failure: PostgreSQL unreachable, a lost
// connection, shutdown, or serialization failures that outlasted central's
// own retries. Nothing of the call was applied; the caller may retry.
var ErrUnavailable = errors.New("database unavailable")

// UnavailableError carries the cause of an ErrUnavailable for the log; it
// must not reach clients.
type UnavailableError struct {
	Op  string
	Err error
}

func (e *UnavailableError) Error() string { return e.Op + ": database unavailable: " + e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }
func (e *UnavailableError) Is(target error) bool {
	return target == ErrUnavailable
}

// GapError refuses a batch that starts past the cursor: the edge must send
// from Expected first.
type GapError struct {
	Expected uint64
}

func (e *GapError) Error() string {
	return fmt.Sprintf("sequence gap: expected seq %d", e.Expected)
}

// ConflictError refuses a seq at or below the cursor whose transaction id
// differs from the one central holds for it (a replaced or wiped edge
// store, or one restored from an old backup). AppliedTxID is empty when
// the stored outcome was pruned after the retention: central cannot
// compare the ids then, whatever the epoch, and never vouches for them.
type ConflictError struct {
	Seq         uint64
	AppliedTxID string
	RequestTxID string
	Epoch       string
	CursorSeq   uint64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("cursor conflict at seq %d: central holds transaction %q (epoch %q, cursor %d), request carries %q",
		e.Seq, e.AppliedTxID, e.Epoch, e.CursorSeq, e.RequestTxID)
}

// errClass is what central does about a PostgreSQL error.
type errClass int

const (
	// classUnavailable: anything not recognized below; the call fails as a whole.
	classUnavailable errClass = iota
	// classData: PostgreSQL refused the data (class 22, class 23,
	// P0002 raised by chasqui.require_rows or require_keys, or a row's
	// table or column gone); only the transaction holding it is rejected.
	classData
	// classRetry: serialization failure or deadlock; central retries the
	// whole transaction.
	classRetry
	// classCanceled: the caller gave up (context canceled or deadline).
	classCanceled
)

const (
	sqlstateSerialization = "40001"
	sqlstateDeadlock      = "40P01"
	sqlstateUnique        = "23505"
	sqlstateNoDataFound   = "P0002"
	// sqlstateDatatypeMismatch: e.g. a JSON object for an integer column.
	sqlstateDatatypeMismatch = "42804"
	// appliedTxIndex makes a transaction id applied at most once; another
	// central applying the same id concurrently trips it.
	appliedTxIndex = "applied_transactions_tx_id_applied"
)

// classify is the one place that reads pgx and PostgreSQL errors.
func classify(err error) (errClass, *pgconn.PgError) {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return classCanceled, nil
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return classUnavailable, nil
	}
	switch {
	case pgErr.Code == sqlstateSerialization || pgErr.Code == sqlstateDeadlock:
		return classRetry, pgErr
	case pgErr.Code == sqlstateUnique && pgErr.ConstraintName == appliedTxIndex:
		// Another central committed the same transaction id under another
		// seq meanwhile; the retry sees it and answers it as a duplicate.
		return classRetry, pgErr
	case strings.HasPrefix(pgErr.Code, "22"), strings.HasPrefix(pgErr.Code, "23"), pgErr.Code == sqlstateNoDataFound:
		return classData, pgErr
	case pgErr.Code == sqlstateUndefinedTable, pgErr.Code == sqlstateUndefinedColumn, pgErr.Code == sqlstateDatatypeMismatch:
		// A row's table or column dropped since the catalog was read, or
		// a value whose type the column cannot take: the row's fault.
		// Chasqui's own tables come with its migrations.
		return classData, pgErr
	}
	return classUnavailable, pgErr
}

// Unreachable tells whether err means PostgreSQL is out of reach rather
// than that it refused a query: no connection (refused, timed out), a
// connection lost or closed mid-call, or the server shutting down, out of
// resources or failing (SQLSTATE classes 08, 53, 57, 58). A retry may
// succeed. Services that read without the store's translation use it to
// tell UNAVAILABLE from a bug.
func Unreachable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:min(2, len(pgErr.Code))] {
		case "08", "53", "57", "58":
			return true
		}
		return false
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		pgconn.SafeToRetry(err) // nothing was sent: e.g. "conn closed"
}

// translate turns an error from pgx into a domain error for op: callers of
// the store see context errors, ErrUnavailable, or the typed errors above.
func translate(op string, err error) error {
	if err == nil {
		return nil
	}
	if c, _ := classify(err); c == classCanceled {
		return fmt.Errorf("%s: %w", op, err)
	}
	return &UnavailableError{Op: op, Err: err}
}

// reason is the rejection text stored and answered for a data error.
func reason(pgErr *pgconn.PgError) string {
	r := pgErr.Message
	if pgErr.Detail != "" {
		r += " (" + pgErr.Detail + ")"
	}
	return r
}
