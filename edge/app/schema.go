package app

import (
	"github.com/chasqui/chasqui/edge/internal/schema"
	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"
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
