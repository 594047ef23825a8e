package server

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	centralv1 "github.com/chasqui/chasqui/gen/chasqui/central/v1"

	"github.com/chasqui/chasqui/central/internal/store"
	"github.com/chasqui/chasqui/internal/metrics"
)

// centralMetrics are central's own series (the RPC series come from the
// go-grpc-middleware provider):
//
//	chasqui_central_postgres_up                    1 while PostgreSQL answers the health ping, else 0
//	chasqui_central_committed_transactions_total   transactions applied (duplicates of earlier commits not counted again)
//	chasqui_central_rejected_transactions_total    transactions PostgreSQL refused for their data (dead letters at the edge)
//	chasqui_central_gap_waiting                    Commit calls waiting now for a predecessor
//	chasqui_central_gap_retries_total{cause}       retries of waiting calls: woken (the cursor moved) or polled (no listener)
//	chasqui_central_gap_refused_total              calls refused ABORTED: nothing in flight filled their gap in time
//	chasqui_central_cursor_listener_up             1 while the LISTEN connection for cursor moves runs, else 0
type centralMetrics struct {
	committed prometheus.Counter
	rejected  prometheus.Counter
}

func newCentralMetrics(reg prometheus.Registerer, postgresUp func() bool, waits func() store.WaitStats) *centralMetrics {
	m := &centralMetrics{
		committed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "central", Name: "committed_transactions_total",
			Help: "Transactions committed to PostgreSQL (a resent duplicate is not counted again).",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metrics.Namespace, Subsystem: "central", Name: "rejected_transactions_total",
			Help: "Transactions PostgreSQL rejected for their data (constraint, foreign key, check).",
		}),
	}
	up := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metrics.Namespace, Subsystem: "central", Name: "postgres_up",
		Help: "1 while PostgreSQL answers central's health ping, else 0.",
	}, func() float64 { return metrics.Bool(postgresUp()) })
	opts := func(name, help string, labels prometheus.Labels) prometheus.Opts {
		return prometheus.Opts{Namespace: metrics.Namespace, Subsystem: "central", Name: name, Help: help, ConstLabels: labels}
	}
	retries := "Retries of Commit calls waiting for a predecessor: woken when the cursor moved, or polled while no listener runs."
	reg.MustRegister(m.committed, m.rejected, up,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("gap_waiting", "Commit calls waiting now for a predecessor to commit.", nil)),
			func() float64 { return float64(waits().Waiting) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts(opts("gap_retries_total", retries, prometheus.Labels{"cause": "woken"})),
			func() float64 { return float64(waits().Woken) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts(opts("gap_retries_total", retries, prometheus.Labels{"cause": "polled"})),
			func() float64 { return float64(waits().Polled) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts(opts("gap_refused_total", "Commit calls refused ABORTED: nothing in flight filled their gap within the gap wait.", nil)),
			func() float64 { return float64(waits().Refused) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("cursor_listener_up", "1 while central LISTENs for other centrals' cursor moves, else 0.", nil)),
			func() float64 { return metrics.Bool(waits().Listening) }),
	)
	return m
}

// countOutcomes counts the outcomes of successful Commit calls from their
// responses, so the service code stays free of metrics.
func (m *centralMetrics) countOutcomes(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if r, ok := resp.(*centralv1.CommitResponse); ok && err == nil {
		for _, t := range r.GetResults() {
			if t.GetDuplicate() {
				continue
			}
			switch t.GetOutcome() {
			case centralv1.Outcome_OUTCOME_APPLIED:
				m.committed.Inc()
			case centralv1.Outcome_OUTCOME_REJECTED:
				m.rejected.Inc()
			}
		}
	}
	return resp, err
}
