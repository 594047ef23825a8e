package app

import (
	"github.com/chasqui/chasqui/edge/internal/schema"
	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
	"github.com/chasqui/chasqui/internal/rows"
)

// openSchema loads the schema kept in the data directory and, with a link
// to central, prepares the learner that keeps it current over that link.
func (a *App) openSchema() error {
	c, err := schema.Open(a.cfg.DataDir)
	if err != nil {
		return err
	}
	a.schema = c
	if a.central == nil {
		return nil
	}
	a.learner, err = schema.NewLearner(schema.LearnerConfig{EdgeID: a.cfg.EdgeID}, c, a.central, a.central, a.log)
	return err
}

// refreshOnStale asks the learner for the schema again when central
// rejected a row for a table or column the edge's schema may not know.
func (a *App) refreshOnStale(results []*centralv1.TransactionResult) {
	if a.learner == nil {
		return
	}
	for _, r := range results {
		if r.GetOutcome() == centralv1.Outcome_OUTCOME_REJECTED && schema.StaleSchema(r.GetSqlstate()) {
			a.learner.Refresh()
			return
		}
	}
}

// rowKey keys a row's buffered writes for reads (queue.Options.RowKey): its
// canonical primary key under the learned schema. Not ok while the schema
// (or its table) is unknown: the queue then keeps the row unkeyed and
// reads key it with the schema they have (edge/internal/reads).
func (a *App) rowKey(r *opsv1.Row) (string, bool) {
	if a.schema == nil {
		return "", false // the queue opens first; no row is accepted before a.schema is set
	}
	t, ok := a.schema.Table(r.GetTable())
	if !ok || len(t.GetPrimaryKey()) == 0 {
		return "", false
	}
	k, err := rows.Key(t.GetPrimaryKey(), r.GetValues())
	return k, err == nil
}
