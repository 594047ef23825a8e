package metrics_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"

	"github.com/chasqui/chasqui/internal/metrics"
)

func TestEdgeSeriesScrapedOverHTTP(t *testing.T) {
	t.Parallel()
	reg := metrics.NewRegistry()
	metrics.ServerRPC(reg)
	metrics.ClientRPC(reg)
	var fail atomic.Bool
	reg.MustRegister(metrics.NewEdgeCollector(func() (metrics.EdgeSnapshot, error) {
		if fail.Load() {
			return metrics.EdgeSnapshot{}, errors.New("store closed")
		}
		return metrics.EdgeSnapshot{
			Status: &edgev1.GetStatusResponse{
				QueueCount: 7, QueueBytes: 700, QueueLimitBytes: 1000, OldestPendingAgeSeconds: 301,
				ForwarderState: "backoff", LastCommitAt: timestamppb.New(time.Unix(1700000000, 0)),
				DeadLetters: 2, CentralLsn: "1/0000000A", ReplicaReplayLsn: "1/00000002",
				ReplicaLagBytes: 8, ReplicaLagSeconds: 3.5, DiskFreeBytes: 1 << 30,
			},
			Forwarding: true, ForwardedTotal: 40, DeadLettersTotal: 3, DiskBytes: 4096,
			CentralProbed: true, CentralReachable: false, CentralLastReachable: time.Unix(1700000100, 0),
		}, nil
	}))
	srv := httptest.NewServer(metrics.Handler(reg))
	t.Cleanup(srv.Close)

	scrape := func() (map[string]float64, int) {
		resp, err := http.Get(srv.URL)
		require.NoError(t, err)
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, resp.StatusCode
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(resp.Body)
		require.NoError(t, err)
		got := map[string]float64{}
		for name, f := range fams {
			for _, m := range f.GetMetric() {
				if len(m.GetLabel()) > 0 && name != "chasqui_forwarder_state" {
					continue
				}
				v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
				if name == "chasqui_forwarder_state" {
					if m.GetLabel()[0].GetValue() != "backoff" {
						continue
					}
				}
				got[name] = v
			}
		}
		return got, http.StatusOK
	}
	got, _ := scrape()
	want := map[string]float64{
		"chasqui_queue_transactions": 7, "chasqui_queue_bytes": 700, "chasqui_queue_limit_bytes": 1000,
		"chasqui_queue_oldest_pending_age_seconds": 301, "chasqui_forwarder_up": 0, "chasqui_forwarder_state": 1,
		"chasqui_forwarder_last_success_timestamp_seconds": 1700000000, "chasqui_forwarded_transactions_total": 40,
		"chasqui_dead_letters": 2, "chasqui_dead_letters_total": 3,
		"chasqui_central_commit_lsn": 1<<32 | 10, "chasqui_replica_replay_lsn": 1<<32 | 2,
		"chasqui_replica_lag_bytes": 8, "chasqui_replica_lag_seconds": 3.5, "chasqui_badger_disk_bytes": 4096,
		"chasqui_central_reachable": 0, "chasqui_central_last_reachable_timestamp_seconds": 1700000100,
	}
	for name, v := range want {
		require.Contains(t, got, name)
		require.Equal(t, v, got[name], name)
	}
	// The oldest-age alert expression fires on the scraped value.
	require.Greater(t, got["chasqui_queue_oldest_pending_age_seconds"], 300.0)

	// A failing read fails the scrape instead of reporting zeros.
	fail.Store(true)
	_, code := scrape()
	require.Equal(t, http.StatusInternalServerError, code)
}

func TestParseLSN(t *testing.T) {
	t.Parallel()
	v, ok := metrics.ParseLSN("16/B374D848")
	require.True(t, ok)
	require.Equal(t, uint64(0x16)<<32|0xB374D848, v)
	for _, bad := range []string{"", "16", "x/1", "1/x"} {
		_, ok := metrics.ParseLSN(bad)
		require.False(t, ok, bad)
	}
}

func TestDirBytesCountsAllocatedSpace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "sparse.vlog"))
	require.NoError(t, err)
	require.NoError(t, f.Truncate(128<<20)) // like Badger's preallocated value log
	_, err = f.Write(make([]byte, 8192))
	require.NoError(t, err)
	require.NoError(t, f.Close())
	n, err := metrics.DirBytes(dir)
	require.NoError(t, err)
	require.GreaterOrEqual(t, n, int64(8192))
	require.Less(t, n, int64(1<<20), "sparse space is not counted")
}

// chasqui_central_reachable is left out, not 0, until the edge's link
// probe has a view of central (or with probing off), so that the
// ChasquiCentralUnreachable alert never fires on "not known yet".
func TestCentralReachableOnlyWhenProbed(t *testing.T) {
	t.Parallel()
	gather := func(s metrics.EdgeSnapshot) map[string]float64 {
		reg := prometheus.NewRegistry()
		s.Status = &edgev1.GetStatusResponse{ForwarderState: "idle"}
		reg.MustRegister(metrics.NewEdgeCollector(func() (metrics.EdgeSnapshot, error) { return s, nil }))
		fams, err := reg.Gather()
		require.NoError(t, err)
		got := map[string]float64{}
		for _, f := range fams {
			if m := f.GetMetric(); len(m) == 1 {
				got[f.GetName()] = m[0].GetGauge().GetValue()
			}
		}
		return got
	}
	got := gather(metrics.EdgeSnapshot{Forwarding: true})
	require.NotContains(t, got, "chasqui_central_reachable")
	require.NotContains(t, got, "chasqui_central_last_reachable_timestamp_seconds")
	require.Equal(t, 1.0, got["chasqui_forwarder_up"], "idle counts as up: the gap the probe closes")

	got = gather(metrics.EdgeSnapshot{Forwarding: true, CentralProbed: true})
	require.Equal(t, 0.0, got["chasqui_central_reachable"])
	require.NotContains(t, got, "chasqui_central_last_reachable_timestamp_seconds", "never answered")

	at := time.Unix(1700000000, 500_000_000)
	got = gather(metrics.EdgeSnapshot{Forwarding: true, CentralProbed: true, CentralReachable: true, CentralLastReachable: at})
	require.Equal(t, 1.0, got["chasqui_central_reachable"])
	require.Equal(t, 1700000000.5, got["chasqui_central_last_reachable_timestamp_seconds"])

	got = gather(metrics.EdgeSnapshot{CentralProbed: true, CentralReachable: true})
	require.NotContains(t, got, "chasqui_central_reachable", "no forwarder, no link")
}
