package deploytest

import (
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"go.yaml.in/yaml/v3"
)

// exportedMetrics are the series the services export (their names are
// a contract with the dashboards) plus Prometheus' own `up`. An alert on any other name
// would never fire.
var exportedMetrics = map[string]bool{
	"up": true,
	// edge
	"chasqui_queue_transactions":                       true,
	"chasqui_queue_bytes":                              true,
	"chasqui_queue_limit_bytes":                        true,
	"chasqui_queue_oldest_pending_age_seconds":         true,
	"chasqui_forwarder_up":                             true,
	"chasqui_forwarder_last_success_timestamp_seconds": true,
	"chasqui_forwarded_transactions_total":             true,
	"chasqui_dead_letters":                             true,
	"chasqui_dead_letters_total":                       true,
	"chasqui_central_commit_lsn":                       true,
	"chasqui_replica_replay_lsn":                       true,
	"chasqui_replica_lag_bytes":                        true,
	"chasqui_replica_lag_seconds":                      true,
	"chasqui_badger_disk_bytes":                        true,
	"chasqui_central_reachable":                        true,
	// central
	"chasqui_central_postgres_up":                  true,
	"chasqui_central_committed_transactions_total": true,
	"chasqui_central_rejected_transactions_total":  true,
}

// requiredAlerts are the conditions operators must be told of, each with the alert
// that covers it.
var requiredAlerts = map[string]string{
	"queue older than 5 minutes":      "ChasquiQueueOldestPendingTooOld",
	"queue above 80% of its limit":    "ChasquiQueueNearlyFull",
	"forwarder failing for 5 minutes": "ChasquiForwarderFailing",
	"forwarder stopped for 5 minutes": "ChasquiForwarderStalled",
	"central unreachable while idle":  "ChasquiCentralUnreachable",
	"any new dead letter":             "ChasquiDeadLetter",
	"replica lag above 5 minutes":     "ChasquiReplicaLagHigh",
	"central cannot reach PostgreSQL": "ChasquiCentralPostgresDown",
}

const edgeLabels = `{job="chasqui-edge", instance="edge:7481"}`
const centralLabels = `{job="chasqui-central", instance="central:7480"}`

// scenarios give every alert series (one sample a minute from t=0, in
// promqltest's `load` notation) on which it must fire at t=10m, and series
// of a healthy service on which it must stay quiet. Every rule in
// alerts.yml needs one, so a new rule comes with its proof.
var scenarios = map[string]struct{ firing, quiet string }{
	"ChasquiQueueOldestPendingTooOld": {
		firing: `chasqui_queue_oldest_pending_age_seconds` + edgeLabels + ` 0+60x10`,
		quiet:  `chasqui_queue_oldest_pending_age_seconds` + edgeLabels + ` 0+1x10`,
	},
	"ChasquiQueueNearlyFull": {
		firing: `chasqui_queue_bytes` + edgeLabels + ` 0+90x10
			chasqui_queue_limit_bytes` + edgeLabels + ` 1000x10`,
		quiet: `chasqui_queue_bytes` + edgeLabels + ` 0+50x10
			chasqui_queue_limit_bytes` + edgeLabels + ` 1000x10`,
	},
	"ChasquiForwarderFailing": {
		firing: `chasqui_forwarder_up` + edgeLabels + ` 1 1 0x8`,
		quiet:  `chasqui_forwarder_up` + edgeLabels + ` 1x10`,
	},
	"ChasquiCentralUnreachable": {
		// The probe fails from t=2m on; nothing waits in the queue.
		firing: `chasqui_central_reachable` + edgeLabels + ` 1 1 0x8
			chasqui_queue_transactions` + edgeLabels + ` 0x10`,
		quiet: `chasqui_central_reachable` + edgeLabels + ` 1x10`,
	},
	"ChasquiForwarderStalled": {
		// Work waits and the last success was at t=0.
		firing: `chasqui_queue_transactions` + edgeLabels + ` 5+5x10
			chasqui_forwarder_last_success_timestamp_seconds` + edgeLabels + ` 0x10`,
		// Commits keep succeeding (the timestamp follows the clock).
		quiet: `chasqui_queue_transactions` + edgeLabels + ` 5x10
			chasqui_forwarder_last_success_timestamp_seconds` + edgeLabels + ` 0+60x10`,
	},
	"ChasquiDeadLetter": {
		firing: `chasqui_dead_letters_total` + edgeLabels + ` 0 0 0 0 0 0 0 0 1 1 1`,
		quiet:  `chasqui_dead_letters_total` + edgeLabels + ` 3x10`,
	},
	"ChasquiDeadLettersWaiting": {
		firing: `chasqui_dead_letters` + edgeLabels + ` 1x10`,
		quiet:  `chasqui_dead_letters` + edgeLabels + ` 0x10`,
	},
	"ChasquiReplicaLagHigh": {
		firing: `chasqui_replica_lag_seconds` + edgeLabels + ` 0+60x10`,
		quiet:  `chasqui_replica_lag_seconds` + edgeLabels + ` 0x10`,
	},
	"ChasquiEdgeDown": {
		firing: `up` + edgeLabels + ` 1 0x9`,
		quiet:  `up` + edgeLabels + ` 1x10`,
	},
	"ChasquiCentralPostgresDown": {
		firing: `chasqui_central_postgres_up` + centralLabels + ` 1 1 1 0x7`,
		quiet:  `chasqui_central_postgres_up` + centralLabels + ` 1x10`,
	},
	"ChasquiCentralDown": {
		firing: `up` + centralLabels + ` 1 0x9`,
		quiet:  `up` + centralLabels + ` 1x10`,
	},
}

func promqlParser() parser.Parser { return parser.NewParser(parser.Options{}) }

// loadRules parses alerts.yml exactly as Prometheus and `promtool check
// rules` do: strict fields, every expression, label and annotation
// template validated.
func loadRules(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	groups, errs := rulefmt.ParseFile(repoPath("deploy/prometheus/alerts.yml"), false, model.UTF8Validation, promqlParser(), logger)
	for _, err := range errs {
		t.Error(err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	return groups
}

func alertRules(t *testing.T) map[string]rulefmt.Rule {
	t.Helper()
	rules := map[string]rulefmt.Rule{}
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if _, dup := rules[r.Alert]; dup {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			rules[r.Alert] = r
		}
	}
	return rules
}

func TestAlertRulesParseAndCoverIssue(t *testing.T) {
	t.Parallel()
	rules := alertRules(t)
	for cond, name := range requiredAlerts {
		if _, ok := rules[name]; !ok {
			t.Errorf("no alert %s for %q", name, cond)
		}
	}
	if r := rules["ChasquiForwarderFailing"]; time.Duration(r.For) != 5*time.Minute {
		t.Errorf("ChasquiForwarderFailing: for %v, want 5m (failing for 5 minutes)", time.Duration(r.For))
	}
	if r := rules["ChasquiCentralUnreachable"]; time.Duration(r.For) != 5*time.Minute || r.Labels["severity"] != "warning" {
		t.Errorf("ChasquiCentralUnreachable: for %v, severity %q; want 5m, warning (records are safe, act today)",
			time.Duration(r.For), r.Labels["severity"])
	}
	for name, r := range rules {
		switch r.Labels["severity"] {
		case "critical", "warning":
		default:
			t.Errorf("%s: severity %q, want critical or warning", name, r.Labels["severity"])
		}
		for _, a := range []string{"summary", "description"} {
			if len(strings.TrimSpace(r.Annotations[a])) < 20 {
				t.Errorf("%s: annotation %q missing or too short to guide an operator", name, a)
			}
		}
		expr, err := promqlParser().ParseExpr(r.Expr)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok && !exportedMetrics[vs.Name] {
				t.Errorf("%s: metric %q is not exported by the services", name, vs.Name)
			}
			return nil
		})
	}
}

// TestAlertExpressionsFire evaluates each alert's expression with
// Prometheus' engine on series like the services export: it must return a
// sample for the broken state and nothing for the healthy one. (The `for`
// clause is Prometheus' business; the expression is ours.)
func TestAlertExpressionsFire(t *testing.T) {
	t.Parallel()
	rules := alertRules(t)
	for name := range rules {
		if _, ok := scenarios[name]; !ok {
			t.Errorf("alert %s has no scenario in this test", name)
		}
	}
	engine := promqltest.NewTestEngine(t, false, 0, 100000)
	at := time.Unix(0, 0).Add(10 * time.Minute)
	eval := func(t *testing.T, load, expr string) promql.Vector {
		t.Helper()
		storage := promqltest.LoadedStorage(t, "load 1m\n"+indent(load))
		t.Cleanup(func() { _ = storage.Close() })
		return instantQuery(t, engine, storage, expr, at)
	}
	for name, sc := range scenarios {
		r, ok := rules[name]
		if !ok {
			t.Errorf("scenario for %s, which alerts.yml does not define", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			if v := eval(t, sc.firing, r.Expr); len(v) == 0 {
				t.Errorf("does not fire on\n%s", sc.firing)
			} else if v[0].Metric.Get("instance") == "" {
				t.Errorf("fires without the instance label (%v): the summary names it", v[0].Metric)
			}
			if v := eval(t, sc.quiet, r.Expr); len(v) != 0 {
				t.Errorf("fires on healthy series %v\n%s", v, sc.quiet)
			}
		})
	}
}

func indent(load string) string {
	var b strings.Builder
	for _, l := range strings.Split(load, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			b.WriteString("  " + l + "\n")
		}
	}
	return b.String()
}

// TestPrometheusConfig checks prometheus.yml loads the rules and scrapes
// the compose services on their HTTP ports under the job names the rules
// use. (Prometheus' config package would pull every service-discovery
// client; the fields checked here are plain YAML.)
func TestPrometheusConfig(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(repoPath("deploy/prometheus/prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.RuleFiles) != 1 || cfg.RuleFiles[0] != "/etc/prometheus/alerts.yml" {
		t.Errorf("rule_files = %v, want [/etc/prometheus/alerts.yml] (where compose mounts alerts.yml)", cfg.RuleFiles)
	}
	jobs := map[string][]string{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			jobs[sc.JobName] = append(jobs[sc.JobName], st.Targets...)
		}
	}
	project := loadCompose(t)
	for job, svc := range map[string]string{"chasqui-central": "central", "chasqui-edge": "edge"} {
		s, ok := project.Services[svc]
		if !ok {
			t.Fatalf("compose has no service %s", svc)
		}
		want := svc + ":" + port(t, envValue(s.Environment, "CHASQUI_HTTP_ADDR"))
		if len(jobs[job]) != 1 || jobs[job][0] != want {
			t.Errorf("job %s targets %v, want [%s] (service %s, CHASQUI_HTTP_ADDR)", job, jobs[job], want, svc)
		}
	}
	// The `up{job=...}` alerts must name real jobs.
	for name, r := range alertRules(t) {
		expr, err := promqlParser().ParseExpr(r.Expr)
		if err != nil {
			continue // reported by TestAlertRulesParseAndCoverIssue
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				for _, m := range vs.LabelMatchers {
					if m.Name == "job" {
						if _, ok := jobs[m.Value]; !ok {
							t.Errorf("%s: job %q is not scraped by prometheus.yml", name, m.Value)
						}
					}
				}
			}
			return nil
		})
	}
}
