package deploytest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/util/teststorage"
)

// The queue-age alert on a real edge: chasqui-edge runs as a
// child process with central down, transactions are submitted through the
// chasqui CLI, /metrics is scraped over HTTP and parsed with Prometheus' own
// text parser, and the rule from alerts.yml is evaluated by Prometheus'
// engine and rule group on exactly those samples.
//
// An old backlog without waiting 5 minutes: chasqui-queue-seed creates the
// store through the edge's queue package with its clock (queue.Options.Now)
// set 10 minutes back, as if the edge had accepted those transactions then
// and been restarted since. The store keeps each accept time, so the real
// edge started on it computes the age itself; nothing here writes a metric
// value.

const (
	oldestPendingAlert = "ChasquiQueueOldestPendingTooOld"
	// seededAge is how long ago the old store's transactions were accepted:
	// twice the alert's 5-minute threshold.
	seededAge = 10 * time.Minute
	// submitRounds of roundSize transactions each, a scrape after each.
	submitRounds = 3
	roundSize    = 5
	edgeJob      = "chasqui-edge"
)

func TestEdgeQueueAgeAlertOnScrapedMetrics(t *testing.T) {
	t.Parallel()
	group, rule := findAlert(t, oldestPendingAlert)
	expr, err := promqlParser().ParseExpr(rule.Expr)
	if err != nil {
		t.Fatalf("%s: %v", oldestPendingAlert, err)
	}
	engine := promqltest.NewTestEngine(t, false, 0, 100000)
	for _, name := range []string{"chasqui-edge", "chasqui", "chasqui-queue-seed"} {
		if _, err := buildBinary(name); err != nil {
			t.Fatal(err)
		}
	}

	// newAlertingRule builds the rule as Prometheus' rule manager does
	// (rules.Manager.LoadGroups): group labels merged under the rule's.
	newAlertingRule := func() *rules.AlertingRule {
		return rules.NewAlertingRule(rule.Alert, expr, time.Duration(rule.For), time.Duration(rule.KeepFiringFor),
			rules.FromMaps(group.Labels, rule.Labels), labels.FromMap(rule.Annotations),
			labels.EmptyLabels(), "", true, slog.New(slog.DiscardHandler))
	}

	t.Run("young queue stays quiet", func(t *testing.T) {
		t.Parallel()
		e := startEdge(t, "edge-young", t.TempDir())
		scrapes := fillAndScrape(t, e, 0)
		for _, sc := range scrapes {
			if age := sc.value(t, "chasqui_queue_oldest_pending_age_seconds"); age >= 60 {
				t.Fatalf("young queue reports an oldest pending age of %.0f s", age)
			}
		}
		db := teststorage.New(t)
		ar := newAlertingRule()
		rg, sent := ruleGroup(t, db, engine, group.Name, ar)
		for _, sc := range scrapes {
			sc.appendTo(t, db)
			if v := instantQuery(t, engine, db, rule.Expr, sc.at); len(v) != 0 {
				t.Errorf("%s fires on a queue %.1f s old: %v", oldestPendingAlert, sc.value(t, "chasqui_queue_oldest_pending_age_seconds"), v)
			}
			rg.Eval(context.Background(), sc.at)
			if err := ar.LastError(); err != nil {
				t.Fatalf("rule evaluation: %v", err)
			}
		}
		if st := ar.State(); st != rules.StateInactive {
			t.Errorf("rule state %v after %d scrapes of a young queue, want inactive", st, len(scrapes))
		}
		if len(*sent) != 0 {
			t.Errorf("alerts sent for a young queue: %v", *sent)
		}
	})

	t.Run("old queue fires", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		seeded := seedOldStore(t, dir, "edge-old", time.Now().Add(-seededAge), 4)
		e := startEdge(t, "edge-old", dir)
		scrapes := fillAndScrape(t, e, seeded)
		for _, sc := range scrapes {
			age := sc.value(t, "chasqui_queue_oldest_pending_age_seconds")
			if age < seededAge.Seconds() || age > (seededAge+5*time.Minute).Seconds() {
				t.Fatalf("oldest pending age %.1f s, want the seeded %v (plus this test's run time)", age, seededAge)
			}
		}
		db := teststorage.New(t)
		ar := newAlertingRule()
		rg, sent := ruleGroup(t, db, engine, group.Name, ar)
		hold := time.Duration(rule.For)
		for i, sc := range scrapes {
			sc.appendTo(t, db)
			scraped := sc.value(t, "chasqui_queue_oldest_pending_age_seconds")
			v := instantQuery(t, engine, db, rule.Expr, sc.at)
			if len(v) != 1 {
				t.Fatalf("scrape %d: %s returned %v on a queue %.1f s old, want one firing series", i, rule.Expr, v, scraped)
			}
			if v[0].F != scraped || v[0].Metric.Get("instance") != e.httpAddr || v[0].Metric.Get("job") != edgeJob {
				t.Errorf("scrape %d: expression returned %v, want the scraped %v of instance %s", i, v[0], scraped, e.httpAddr)
			}
			rg.Eval(context.Background(), sc.at)
			if err := ar.LastError(); err != nil {
				t.Fatalf("rule evaluation: %v", err)
			}
			want := rules.StatePending
			if sc.at.Sub(scrapes[0].at) >= hold {
				want = rules.StateFiring
			}
			if st := ar.State(); st != want {
				t.Errorf("scrape %d (%v after the first, for: %v): rule state %v, want %v", i, sc.at.Sub(scrapes[0].at), hold, st, want)
			}
		}
		if hold > scrapes[len(scrapes)-1].at.Sub(scrapes[0].at) {
			t.Logf("%s has for: %v, longer than this test's scrapes span: checked pending only", oldestPendingAlert, hold)
			return
		}
		// What Alertmanager would receive: the firing alert with its labels
		// and annotations expanded from the scraped values.
		if len(*sent) == 0 {
			t.Fatal("no alert sent")
		}
		a := (*sent)[len(*sent)-1]
		if a.State != rules.StateFiring || a.Labels.Get("alertname") != oldestPendingAlert ||
			a.Labels.Get("instance") != e.httpAddr || a.Labels.Get("severity") != rule.Labels["severity"] {
			t.Errorf("sent alert %v %v, want firing %s for instance %s", a.State, a.Labels, oldestPendingAlert, e.httpAddr)
		}
		summary := a.Annotations.Get("summary")
		if !strings.Contains(summary, e.httpAddr) || strings.Contains(summary, "error expanding") {
			t.Errorf("summary %q does not name the instance (or failed to expand)", summary)
		}
		t.Logf("fired: %s", summary)
	})
}

// findAlert returns the alerting rule named name from alerts.yml, with its
// group.
func findAlert(t *testing.T, name string) (rulefmt.RuleGroup, rulefmt.Rule) {
	t.Helper()
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == name {
				return g, r
			}
		}
	}
	t.Fatalf("alerts.yml has no alert %s", name)
	return rulefmt.RuleGroup{}, rulefmt.Rule{}
}

// ruleGroup puts rule in a rule group evaluating on db, as Prometheus does
// (ALERTS series written back, notifications sent); the returned slice
// collects what would go to Alertmanager.
func ruleGroup(t *testing.T, db *teststorage.TestStorage, engine *promql.Engine, name string, rule rules.Rule) (*rules.Group, *[]*rules.Alert) {
	t.Helper()
	var sent []*rules.Alert
	g := rules.NewGroup(rules.GroupOptions{
		Name:     name,
		File:     repoPath("deploy/prometheus/alerts.yml"),
		Interval: time.Second,
		Rules:    []rules.Rule{rule},
		Opts: &rules.ManagerOptions{
			QueryFunc:  rules.EngineQueryFunc(engine, db),
			Appendable: db,
			Queryable:  db,
			Context:    context.Background(),
			Logger:     slog.New(slog.DiscardHandler),
			NotifyFunc: func(_ context.Context, _ string, alerts ...*rules.Alert) {
				sent = append(sent, alerts...)
			},
			Parser: promqlParser(),
		},
	})
	return g, &sent
}

func instantQuery(t *testing.T, engine *promql.Engine, db *teststorage.TestStorage, expr string, at time.Time) promql.Vector {
	t.Helper()
	q, err := engine.NewInstantQuery(context.Background(), db, nil, expr, at)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	defer q.Close()
	res := q.Exec(context.Background())
	if res.Err != nil {
		t.Fatalf("%s: %v", expr, res.Err)
	}
	v, err := res.Vector()
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// fillAndScrape scrapes e, then submits submitRounds rounds of transactions
// and scrapes after each: with central down, the queue depth (count and
// bytes) must grow with every round. start is the depth before the first
// round. It returns the scrapes, the first taken before any submission.
func fillAndScrape(t *testing.T, e *edgeProc, start int) []scrape {
	t.Helper()
	scrapes := []scrape{e.scrapeUntil(t, "initial depth", func(s scrape) bool {
		return s.value(t, "chasqui_queue_transactions") == float64(start)
	})}
	want := start
	for round := 1; round <= submitRounds; round++ {
		e.submit(t, roundSize)
		want += roundSize
		prev := scrapes[len(scrapes)-1]
		sc := e.scrapeUntil(t, fmt.Sprintf("round %d depth %d", round, want), func(s scrape) bool {
			return s.value(t, "chasqui_queue_transactions") == float64(want)
		})
		if b, pb := sc.value(t, "chasqui_queue_bytes"), prev.value(t, "chasqui_queue_bytes"); b <= pb {
			t.Fatalf("round %d: chasqui_queue_bytes %v after %v: the queue did not grow while central is down", round, b, pb)
		}
		scrapes = append(scrapes, sc)
	}
	return scrapes
}

// edgeProc is a chasqui-edge child process.
type edgeProc struct {
	id, grpcAddr, httpAddr, logPath string
}

// startEdge runs chasqui-edge on dataDir with its central address pointing
// at a loopback port nothing listens on: central is down, every dial is
// refused, and the forwarder backs off while the queue fills. extra flags
// follow the others. The process is stopped (SIGTERM, then SIGKILL) when t
// ends.
func startEdge(t *testing.T, id, dataDir string, extra ...string) *edgeProc {
	t.Helper()
	bin, err := buildBinary("chasqui-edge")
	if err != nil {
		t.Fatal(err)
	}
	e := &edgeProc{id: id, logPath: filepath.Join(t.TempDir(), "chasqui-edge.log")}
	logFile, err := os.Create(e.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	args := []string{
		"--edge-id", id, "--data-dir", dataDir, "--central-addr", refusedAddr(t),
		"--insecure", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		// The queue is a few KiB: do not depend on the test machine's free
		// disk space (the default reserve is 160 MiB).
		"--disk-reserve", "1048576", "--shutdown-timeout", "5s",
	}
	cmd := exec.Command(bin, append(args, extra...)...)
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("---- chasqui-edge %s log tail ----\n%s", id, tail(e.logPath, 40))
		}
	})

	// The bound addresses (ports from :0) are in the "edge ready" log line.
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if e.readReady() {
			return e
		}
		select {
		case <-exited:
			t.Fatalf("chasqui-edge exited before it was ready:\n%s", tail(e.logPath, 40))
		case <-deadline:
			t.Fatalf("chasqui-edge not ready after 60s:\n%s", tail(e.logPath, 40))
		case <-tick.C:
		}
	}
}

func (e *edgeProc) readReady() bool {
	b, err := os.ReadFile(e.logPath)
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Msg      string `json:"msg"`
			GRPCAddr string `json:"grpc_addr"`
			HTTPAddr string `json:"http_addr"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "edge ready" && line.GRPCAddr != "" && line.HTTPAddr != "" {
			e.grpcAddr, e.httpAddr = line.GRPCAddr, line.HTTPAddr
			return true
		}
	}
	return false
}

// refusedAddr is a loopback address nothing listens on (a port the kernel
// just handed out and that was closed again).
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// cleanEnv is this process's environment without CHASQUI_* and OTEL_*
// settings, which the binaries would take as configuration.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CHASQUI_") && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	return env
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// submitRequest is a SubmitRequest in protobuf JSON with n transactions,
// each starting an observation; the CLI and the seeder give them ids.
func submitRequest(n int) []byte {
	start := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	txs := make([]string, n)
	for i := range txs {
		txs[i] = fmt.Sprintf(`{"mutations":[{"observation":{"instrument":"CHAI","source":"Orion-KL","obsUnit":"ou-deploytest",`+
			`"status":"OBSERVATION_STATUS_RUNNING","startTime":%q,"attributes":{"band":"CHAI-low","i":%d}}}]}`, start, i)
	}
	return []byte(`{"transactions":[` + strings.Join(txs, ",") + `]}`)
}

// submit sends n transactions through the chasqui CLI and checks the edge
// acknowledged (stored) every one.
func (e *edgeProc) submit(t *testing.T, n int) {
	t.Helper()
	submitThrough(t, "chasqui", n, "--addr", e.grpcAddr, "--json", "--timeout", "30s", "submit", "-f", "-")
}

// submitThrough runs binary name with args, n transactions on its stdin
// (a SubmitRequest in protobuf JSON), and checks its answer.
func submitThrough(t *testing.T, name string, n int, args ...string) {
	t.Helper()
	bin, err := buildBinary(name)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv()
	cmd.Stdin = bytes.NewReader(submitRequest(n))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, stderr.Bytes())
	}
	checkSubmitted(t, name, out, n)
}

// seedOldStore creates an edge store in dir holding n transactions
// accepted at acceptedAt, and returns n.
func seedOldStore(t *testing.T, dir, edgeID string, acceptedAt time.Time, n int) int {
	t.Helper()
	submitThrough(t, "chasqui-queue-seed", n, "--data-dir", dir, "--edge-id", edgeID, "--accepted-at", acceptedAt.UTC().Format(time.RFC3339Nano))
	return n
}

// checkSubmitted reads a SubmitResponse in protobuf JSON: n results, each
// newly accepted.
func checkSubmitted(t *testing.T, what string, out []byte, n int) {
	t.Helper()
	var resp struct {
		Results []struct {
			Seq       string `json:"seq"`
			State     string `json:"state"`
			Duplicate bool   `json:"duplicate"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, out)
	}
	if len(resp.Results) != n {
		t.Fatalf("%s: %d results, want %d\n%s", what, len(resp.Results), n, out)
	}
	for _, r := range resp.Results {
		if r.Seq == "" || r.Duplicate || r.State != "TRANSACTION_STATE_ACCEPTED" {
			t.Fatalf("%s: result %+v, want a new accepted transaction\n%s", what, r, out)
		}
	}
}

// scrape is one scrape of the edge's /metrics: every sample with the
// target labels Prometheus adds (job, instance) and the scrape time, which
// is the samples' timestamp, as in Prometheus.
type scrape struct {
	at      time.Time
	samples []sample
	// plain holds the value of each series without labels of its own.
	plain map[string]float64
}

type sample struct {
	lset labels.Labels
	v    float64
}

func (s scrape) value(t *testing.T, name string) float64 {
	t.Helper()
	v, ok := s.plain[name]
	if !ok {
		t.Fatalf("scrape at %v has no series %s", s.at, name)
	}
	return v
}

// appendTo stores the scrape in db (one Prometheus scrape: the samples
// plus up=1).
func (s scrape) appendTo(t *testing.T, db *teststorage.TestStorage) {
	t.Helper()
	app := db.Appender(context.Background())
	ts := timestamp.FromTime(s.at)
	for _, smp := range s.samples {
		if _, err := app.Append(0, smp.lset, ts, smp.v); err != nil {
			t.Fatalf("append %v: %v", smp.lset, err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

// scrapeUntil scrapes e until ok accepts a scrape (a deadline of 30s).
func (e *edgeProc) scrapeUntil(t *testing.T, what string, ok func(scrape) bool) scrape {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := e.scrape(t)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached after 30s; last scrape: %v", what, s.plain)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// scrape reads /metrics in the Prometheus text format and parses it with
// Prometheus' own parser (textparse, what the scrape loop uses).
func (e *edgeProc) scrape(t *testing.T) scrape {
	t.Helper()
	s := scrape{at: time.Now(), plain: map[string]float64{}}
	req, err := http.NewRequest(http.MethodGet, "http://"+e.httpAddr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s\n%s", resp.Status, body)
	}
	ct := resp.Header.Get("Content-Type")
	if !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("scrape: Content-Type %q, want the text format", ct)
	}
	p, err := textparse.New(body, ct, labels.NewSymbolTable(), textparse.ParserOptions{})
	if p == nil {
		t.Fatalf("scrape: no parser for %q: %v", ct, err)
	}
	target := map[string]string{"job": edgeJob, "instance": e.httpAddr}
	for {
		entry, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("parse /metrics: %v\n%s", err, body)
		}
		if entry != textparse.EntrySeries {
			continue
		}
		_, _, v := p.Series()
		var lset labels.Labels
		p.Labels(&lset)
		if lset.Len() == 1 {
			s.plain[lset.Get(labels.MetricName)] = v
		}
		b := labels.NewBuilder(lset)
		for k, val := range target {
			b.Set(k, val)
		}
		s.samples = append(s.samples, sample{b.Labels(), v})
	}
	s.samples = append(s.samples, sample{labels.FromMap(map[string]string{labels.MetricName: "up", "job": edgeJob, "instance": e.httpAddr}), 1})
	return s
}
