package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chasqui/chasqui/edge/faultproxy"
)

// pythonBin is Debian's interpreter, which has Debian's python3-grpcio and
// python3-protobuf (a pyenv python3 earlier on PATH has neither).
const pythonBin = "/usr/bin/python3"

// The Python client (clients/python) against the real stack: pytest runs
// clients/python/tests with the edge's address, the address of a fault
// proxy in front of the edge, and a control URL through which the tests cut
// and restore that proxy, drop its answers, read its counters, and count
// rows in central's PostgreSQL (chasqui's records and the ops tables). Every pytest test must pass and none may be
// skipped (a skip would hide a test that never ran).
func TestPythonClient(t *testing.T) {
	if _, err := os.Stat(pythonBin); err != nil {
		t.Fatalf("%s not found: run ./scripts/check-python.sh (Debian's python3, python3-grpcio, python3-protobuf, python3-pytest)", pythonBin)
	}
	s := NewStack(t, StackOptions{})
	cp := faultproxy.New(t, s.Edge.Addr())
	ctl := startControl(t, s, cp)
	root := filepath.Dir(mustModuleDir(t, "edge"))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	args := []string{"-m", "pytest", "-p", "no:cacheprovider", "-rA", "-q"}
	// CHASQUI_PYTEST_K selects tests by pytest -k expression (while developing).
	if k := os.Getenv("CHASQUI_PYTEST_K"); k != "" {
		args = append(args, "-k", k)
	}
	cmd := exec.CommandContext(ctx, pythonBin, append(args, "clients/python/tests")...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"CHASQUI_EDGE_ADDR="+s.Edge.Addr(),
		"CHASQUI_PROXY_ADDR="+cp.Addr(),
		"CHASQUI_CONTROL_URL="+ctl,
		"CHASQUI_EDGE_ID="+s.EdgeID,
		"PYTHONDONTWRITEBYTECODE=1",
	)
	out, err := cmd.CombinedOutput()
	t.Logf("pytest output:\n%s", out)
	require.NoError(t, err, "pytest failed")
	// pytest -q closes with "N passed in Ts" (other outcomes listed beside).
	summary := regexp.MustCompile(`(?m)^=*\s*(\S.*) in [0-9.]+s\b`).FindAllSubmatch(out, -1)
	require.NotEmpty(t, summary, "pytest printed no summary line")
	last := string(summary[len(summary)-1][1])
	want := `^[0-9]+ passed$`
	if os.Getenv("CHASQUI_PYTEST_K") != "" {
		want = `^[0-9]+ passed, [0-9]+ deselected$`
	}
	require.Regexp(t, want, last, "every test ran and passed (none skipped)")
}

func mustModuleDir(t *testing.T, name string) string {
	t.Helper()
	d, err := moduleDir(name)
	require.NoError(t, err)
	return d
}

// startControl serves the pytest side's view of the fault proxy and of
// PostgreSQL on a loopback port, stopped when t ends. Only these fixed
// queries exist: the tests name a value, never SQL.
func startControl(t *testing.T, s *Stack, cp *faultproxy.Proxy) string {
	t.Helper()
	var mu sync.Mutex
	var removers []func()
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	proxyOp := func(f func()) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				http.Error(w, "POST only", http.StatusMethodNotAllowed)
				return
			}
			f()
			reply(w, map[string]bool{"ok": true})
		}
	}
	mux.HandleFunc("/proxy/down", proxyOp(cp.Down))
	mux.HandleFunc("/proxy/up", proxyOp(cp.Up))
	// The WAN link between the edge and central, for writes left buffered.
	mux.HandleFunc("/wan/down", proxyOp(s.Proxy.Down))
	mux.HandleFunc("/wan/up", proxyOp(s.Proxy.Up))
	mux.HandleFunc("/proxy/drop-answers", proxyOp(func() {
		mu.Lock()
		defer mu.Unlock()
		removers = append(removers, cp.DropAnswers())
	}))
	mux.HandleFunc("/proxy/cut-calls", proxyOp(func() {
		mu.Lock()
		defer mu.Unlock()
		removers = append(removers, cp.CutCalls())
	}))
	mux.HandleFunc("/proxy/heal", proxyOp(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, rm := range removers {
			rm()
		}
		removers = nil
	}))
	mux.HandleFunc("/proxy/stats", func(w http.ResponseWriter, _ *http.Request) {
		st := cp.Stats()
		reply(w, map[string]any{
			"at": float64(st.At.UnixNano()) / 1e9, "connections": st.Connections, "requests": st.Requests,
			"refused": st.Refused, "dial_failures": st.DialFailures, "attempts": st.Attempts(),
		})
	})
	query := func(sql, param string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			v := r.URL.Query().Get(param)
			if v == "" {
				http.Error(w, "missing "+param, http.StatusBadRequest)
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
			defer cancel()
			var n int
			var statuses []string
			if err := s.DB.QueryRow(ctx, sql, v).Scan(&n, &statuses); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			reply(w, map[string]any{"count": n, "statuses": statuses})
		}
	}
	mux.HandleFunc("/db/applied", query(
		`SELECT count(*), coalesce(array_agg(outcome ORDER BY seq), '{}') FROM chasqui.applied_transactions WHERE tx_id = $1::uuid`, "tx_id"))
	mux.HandleFunc("/db/observations", query(
		`SELECT count(*), coalesce(array_agg(status ORDER BY id), '{}') FROM chasqui.observations WHERE obs_unit = $1`, "obs_unit"))
	mux.HandleFunc("/db/units", query(
		`SELECT count(*), coalesce(array_agg(status::text ORDER BY id), '{}') FROM ops.observation_unit WHERE name = $1`, "name"))
	mux.HandleFunc("/db/packages", query(
		`SELECT count(*), coalesce(array_agg(p.size_bytes::text ORDER BY p.id), '{}')
		 FROM ops.raw_data_package p JOIN ops.observation_unit u ON u.id = p.unit_id WHERE u.name = $1`, "unit_name"))

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return "http://" + strings.TrimSpace(lis.Addr().String())
}
