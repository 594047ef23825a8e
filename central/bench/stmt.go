package main

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"

	"github.com/chasqui/chasqui/central/internal/store"
)

// statements measures the parts of a generic commit alone, one
// transaction per batch, to place the gap to COPY: the row insert through
// jsonb_populate_recordset (the store's statement), the same through
// json_populate_recordset, and the exactly-once bookkeeping (one
// applied_transactions row per transaction) with nothing else.
func statements(ctx context.Context, dbs *databases) error {
	pool, m, err := dbs.sitePool(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	reqs := rowBatchesOf("site-1")
	jsonOf := func(req *centralv1.CommitRequest) string {
		b := []byte{'['}
		for i, tx := range req.GetTransactions() {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, store.JSON(tx.GetMutations()[0].GetRow().GetValues())...)
		}
		return string(append(b, ']'))
	}
	insert := func(fn, typ string) func(*centralv1.CommitRequest) (int, error) {
		const cols = "attributes, edge_id, id, instrument, obs_unit, source, start_time, status, tx_id"
		sql := "INSERT INTO site.observations (" + cols + ") SELECT " + cols + " FROM " + fn +
			"(NULL::site.observations, $1::" + typ + ")"
		return func(req *centralv1.CommitRequest) (int, error) {
			err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, sql, jsonOf(req))
				return err
			})
			return len(req.GetTransactions()), err
		}
	}
	for _, v := range []struct{ name, fn, typ string }{
		{"stmt_jsonb_recordset", "jsonb_populate_recordset", "jsonb"},
		{"stmt_json_recordset", "json_populate_recordset", "json"},
	} {
		if _, err := pool.Exec(ctx, `TRUNCATE site.observations`); err != nil {
			return err
		}
		d, rows, err := commitAll(m, v.name, insert(v.fn, v.typ), reqs)
		if err != nil {
			return err
		}
		report(v.name+"_rows_per_s", rows, d)
	}

	edge := fmt.Sprintf("bench-%d", rand.Uint64())
	d, rows, err := commitAll(m, "stmt_bookkeeping", func(req *centralv1.CommitRequest) (int, error) {
		n := len(req.GetTransactions())
		seqs, ids := make([]int64, n), make([]pgtype.UUID, n)
		outcomes, empty := make([]string, n), make([]string, n)
		for i, tx := range req.GetTransactions() {
			seqs[i] = int64(req.GetFirstSeq()) + int64(i)
			ids[i] = pgtype.UUID{Bytes: uuid.MustParse(tx.GetId()), Valid: true}
			outcomes[i] = "applied"
		}
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO chasqui.applied_transactions (edge_id, seq, tx_id, epoch, outcome, reason, sqlstate)
SELECT $1, u.seq, u.tx_id, 'e1', u.outcome, u.reason, u.sqlstate
FROM unnest($2::bigint[], $3::uuid[], $4::text[], $5::text[], $6::text[]) AS u(seq, tx_id, outcome, reason, sqlstate)`,
				edge, seqs, ids, outcomes, empty, empty)
			return err
		})
		return n, err
	}, reqs)
	if err != nil {
		return err
	}
	report("stmt_bookkeeping_rows_per_s", rows, d)
	return nil
}
