package deploytest

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/util/teststorage"
)

const centralUnreachableAlert = "ChasquiCentralUnreachable"

// ChasquiCentralUnreachable on a real edge with nothing to send: a
// chasqui-edge child process whose central refuses every dial, its link
// probe every 100ms, no transaction ever submitted (so no Commit is ever
// tried and chasqui_forwarder_up stays 1). /metrics is scraped over HTTP
// and parsed with Prometheus' own parser, and the rule from alerts.yml is
// evaluated by Prometheus' rule group on those samples. The scrapes are
// taken moments apart but stamped a minute apart, as if Prometheus had
// scraped the same outage for six minutes: the rule must go pending, then
// fire once its `for` has passed, with the instance in its summary.
func TestCentralUnreachableAlertOnScrapedMetrics(t *testing.T) {
	t.Parallel()
	group, rule := findAlert(t, centralUnreachableAlert)
	expr, err := promqlParser().ParseExpr(rule.Expr)
	if err != nil {
		t.Fatalf("%s: %v", centralUnreachableAlert, err)
	}
	engine := promqltest.NewTestEngine(t, false, 0, 100000)
	e := startEdge(t, "edge-idle", t.TempDir(), "--central-probe-interval", "100ms")

	// Built as Prometheus' rule manager does (rules.Manager.LoadGroups):
	// group labels merged under the rule's.
	ar := rules.NewAlertingRule(rule.Alert, expr, time.Duration(rule.For), time.Duration(rule.KeepFiringFor),
		rules.FromMaps(group.Labels, rule.Labels), labels.FromMap(rule.Annotations),
		labels.EmptyLabels(), "", true, slog.New(slog.DiscardHandler))
	db := teststorage.New(t)
	rg, sent := ruleGroup(t, db, engine, group.Name, ar)
	hold := time.Duration(rule.For)
	first := time.Now()
	for i := 0; time.Duration(i)*time.Minute <= hold+time.Minute; i++ {
		sc := e.scrapeUntil(t, "failed probe in /metrics", func(s scrape) bool {
			v, ok := s.plain["chasqui_central_reachable"]
			return ok && v == 0
		})
		if q, up := sc.value(t, "chasqui_queue_transactions"), sc.value(t, "chasqui_forwarder_up"); q != 0 || up != 1 {
			t.Fatalf("scrape %d: queue %v, forwarder_up %v; want an idle edge (0 queued, up 1) that no other alert sees", i, q, up)
		}
		if _, ok := sc.plain["chasqui_central_last_reachable_timestamp_seconds"]; ok {
			t.Fatalf("scrape %d: central never answered, yet a last-reachable time is reported", i)
		}
		sc.at = first.Add(time.Duration(i) * time.Minute)
		sc.appendTo(t, db)
		v := instantQuery(t, engine, db, rule.Expr, sc.at)
		if len(v) != 1 || v[0].Metric.Get("instance") != e.httpAddr || v[0].Metric.Get("job") != edgeJob {
			t.Fatalf("scrape %d: %s returned %v, want one series of instance %s", i, rule.Expr, v, e.httpAddr)
		}
		rg.Eval(context.Background(), sc.at)
		if err := ar.LastError(); err != nil {
			t.Fatalf("rule evaluation: %v", err)
		}
		want := rules.StatePending
		if sc.at.Sub(first) >= hold {
			want = rules.StateFiring
		}
		if st := ar.State(); st != want {
			t.Errorf("scrape %d (%v after the first, for: %v): rule state %v, want %v", i, sc.at.Sub(first), hold, st, want)
		}
	}
	if len(*sent) == 0 {
		t.Fatal("no alert sent")
	}
	a := (*sent)[len(*sent)-1]
	if a.State != rules.StateFiring || a.Labels.Get("alertname") != centralUnreachableAlert ||
		a.Labels.Get("instance") != e.httpAddr || a.Labels.Get("severity") != "warning" {
		t.Errorf("sent alert %v %v, want firing %s (warning) for instance %s", a.State, a.Labels, centralUnreachableAlert, e.httpAddr)
	}
	summary := a.Annotations.Get("summary")
	if !strings.Contains(summary, e.httpAddr) || strings.Contains(summary, "error expanding") {
		t.Errorf("summary %q does not name the instance (or failed to expand)", summary)
	}
	if !strings.Contains(tail(e.logPath, 200), `"msg":"central unreachable: link probe failed"`) {
		t.Error("the edge log has no warning for its failed probes")
	}
}
