package metrics

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	edgev1 "github.com/chasqui/chasqui/gen/chasqui/edge/v1"
	"github.com/chasqui/chasqui/internal/pglsn"
)

// EdgeSnapshot is what the edge collector reads at each scrape.
type EdgeSnapshot struct {
	// Status is the edge's status (the same figures as /status and
	// `chasqui status`). Required.
	Status *edgev1.GetStatusResponse
	// Forwarding reports whether the edge runs a forwarder at all; without
	// one the forwarder series are left out.
	Forwarding bool
	// ForwardedTotal counts transactions this process forwarded and central
	// settled (applied or rejected); DeadLettersTotal those set aside as
	// dead letters.
	ForwardedTotal, DeadLettersTotal uint64
	// Started is the process start, the last-success time until the first
	// commit (so "no success for 5 minutes" also covers a forwarder that
	// never succeeded).
	Started time.Time
	// DiskBytes is the size of the Badger directory; negative when unknown.
	DiskBytes int64
	// AcceptedTotal and AppendGroupsTotal count, since the process
	// started, the transactions the edge stored and the fsync'd groups it
	// stored them in.
	AcceptedTotal, AppendGroupsTotal uint64
	// CentralProbed reports whether the edge's link probe has a view of
	// central (probing on, and a probe or commit answered or a probe
	// failed); without one the chasqui_central_reachable series are left
	// out. CentralReachable is that view, CentralLastReachable when central
	// last answered a probe or committed a batch (zero: never).
	CentralProbed, CentralReachable bool
	CentralLastReachable            time.Time
}

// EdgeMetrics lists the edge's series with their meaning, in the order
// NewEdgeCollector emits them. The alert rules (deploy/prometheus/alerts.yml)
// use these names.
var EdgeMetrics = []Metric{
	{Name: "chasqui_queue_transactions", Type: prometheus.GaugeValue,
		Help: "Transactions accepted by the edge and not yet settled at central."},
	{Name: "chasqui_queue_bytes", Type: prometheus.GaugeValue,
		Help: "Payload bytes of the transactions waiting for central."},
	{Name: "chasqui_queue_limit_bytes", Type: prometheus.GaugeValue,
		Help: "Queue limit (--queue-max-bytes); at it Submit answers RESOURCE_EXHAUSTED."},
	{Name: "chasqui_queue_oldest_pending_age_seconds", Type: prometheus.GaugeValue,
		Help: "Age of the oldest transaction waiting for central; 0 when the queue is empty."},
	{Name: "chasqui_forwarder_up", Type: prometheus.GaugeValue,
		Help: "1 while the forwarder is idle or its last attempt succeeded; 0 while it backs off or is refused, in conflict or stuck."},
	{Name: "chasqui_forwarder_state", Type: prometheus.GaugeValue, Labels: []string{"state"},
		Help: "1 for the forwarder's current state (idle, forwarding, backoff, conflict, refused, stuck)."},
	{Name: "chasqui_forwarder_last_success_timestamp_seconds", Type: prometheus.GaugeValue,
		Help: "Unix time of the last batch committed at central (the process start until the first)."},
	{Name: "chasqui_forwarded_transactions_total", Type: prometheus.CounterValue,
		Help: "Transactions forwarded by this process and settled at central (applied or rejected)."},
	{Name: "chasqui_forwarder_commit_rate_transactions_per_second", Type: prometheus.GaugeValue,
		Help: "Recent commit rate at central, transactions per second."},
	{Name: "chasqui_dead_letters", Type: prometheus.GaugeValue,
		Help: "Dead letters waiting for an operator (chasqui deadletters list)."},
	{Name: "chasqui_dead_letters_total", Type: prometheus.CounterValue,
		Help: "Transactions central rejected for their data and the edge set aside, since the process started."},
	{Name: "chasqui_central_commit_lsn", Type: prometheus.GaugeValue,
		Help: "Newest commit LSN central acknowledged to this edge, as a number (bytes of WAL)."},
	{Name: "chasqui_replica_replay_lsn", Type: prometheus.GaugeValue,
		Help: "The site replica's replay LSN, as a number (bytes of WAL)."},
	{Name: "chasqui_replica_lag_bytes", Type: prometheus.GaugeValue,
		Help: "WAL bytes between central's newest acknowledged commit and the replica's replay position."},
	{Name: "chasqui_replica_lag_seconds", Type: prometheus.GaugeValue,
		Help: "0 once the replica replayed the newest acknowledged commit, else the age of the oldest acknowledged commit it has not."},
	{Name: "chasqui_badger_disk_bytes", Type: prometheus.GaugeValue,
		Help: "Bytes of the edge's Badger directory on disk."},
	{Name: "chasqui_disk_free_bytes", Type: prometheus.GaugeValue,
		Help: "Free bytes on the data directory's file system."},
	{Name: "chasqui_accepted_transactions_total", Type: prometheus.CounterValue,
		Help: "Transactions accepted and stored (fsync'd) by this process; resubmitted duplicates not counted."},
	{Name: "chasqui_queue_append_groups_total", Type: prometheus.CounterValue,
		Help: "Append groups written by this process, one fsync each: accepted per group is what group commit saves."},
	{Name: "chasqui_central_reachable", Type: prometheus.GaugeValue,
		Help: "1 when central answered the edge's last link probe (GetCursor for this edge over the forwarder's authenticated connection) or committed a batch since, 0 when the last probe failed. " +
			"Probed every --central-probe-interval while nothing was committed within it, so it drops even while the edge has nothing to send; absent when probing is off (0)."},
	{Name: "chasqui_central_last_reachable_timestamp_seconds", Type: prometheus.GaugeValue,
		Help: "Unix time central last answered a link probe or committed a batch; absent before the first answer and when probing is off."},
}

// ForwarderStates are the states chasqui_forwarder_state reports.
var ForwarderStates = []string{"idle", "forwarding", "backoff", "conflict", "refused", "stuck"}

// ForwarderUp maps a forwarder state to chasqui_forwarder_up.
func ForwarderUp(state string) bool { return state == "idle" || state == "forwarding" }

// NewEdgeCollector returns the collector of EdgeMetrics. A failing read
// leaves every series out of that scrape (and is returned as an invalid
// metric, so the scrape fails visibly) rather than reporting zeros.
func NewEdgeCollector(read func() (EdgeSnapshot, error)) prometheus.Collector {
	return NewFunc(EdgeMetrics, func() ([][]Sample, error) {
		s, err := read()
		if err != nil {
			return nil, fmt.Errorf("edge status: %w", err)
		}
		if s.Status == nil {
			return nil, fmt.Errorf("edge status: none")
		}
		st := s.Status
		out := make([][]Sample, len(EdgeMetrics))
		out[0] = One(float64(st.GetQueueCount()))
		out[1] = One(float64(st.GetQueueBytes()))
		out[2] = One(float64(st.GetQueueLimitBytes()))
		out[3] = One(st.GetOldestPendingAgeSeconds())
		if s.Forwarding {
			out[4] = One(Bool(ForwarderUp(st.GetForwarderState())))
			for _, state := range ForwarderStates {
				out[5] = append(out[5], Sample{Value: Bool(st.GetForwarderState() == state), Labels: []string{state}})
			}
			last := s.Started
			if st.GetLastCommitAt() != nil {
				last = st.GetLastCommitAt().AsTime()
			}
			out[6] = One(float64(last.UnixNano()) / 1e9)
			out[7] = One(float64(s.ForwardedTotal))
			out[8] = One(st.GetCommitRateTxPerSecond())
		}
		out[9] = One(float64(st.GetDeadLetters()))
		out[10] = One(float64(s.DeadLettersTotal))
		if lsn, ok := ParseLSN(st.GetCentralLsn()); ok {
			out[11] = One(float64(lsn))
		}
		if lsn, ok := ParseLSN(st.GetReplicaReplayLsn()); ok {
			out[12] = One(float64(lsn))
			out[13] = One(float64(st.GetReplicaLagBytes()))
			out[14] = One(st.GetReplicaLagSeconds())
		}
		if s.DiskBytes >= 0 {
			out[15] = One(float64(s.DiskBytes))
		}
		out[16] = One(float64(st.GetDiskFreeBytes()))
		out[17] = One(float64(s.AcceptedTotal))
		out[18] = One(float64(s.AppendGroupsTotal))
		if s.Forwarding && s.CentralProbed {
			out[19] = One(Bool(s.CentralReachable))
			if !s.CentralLastReachable.IsZero() {
				out[20] = One(float64(s.CentralLastReachable.UnixNano()) / 1e9)
			}
		}
		return out, nil
	})
}

// ParseLSN reads a PostgreSQL LSN ("16/B374D848") as a number.
func ParseLSN(s string) (uint64, bool) {
	v, err := pglsn.Parse(s)
	return v, err == nil
}

// DirBytes sums the disk space used by the regular files under dir: the
// allocated blocks, since Badger's value-log files are sparse (their
// apparent size is the preallocated 128 MiB+).
func DirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok {
					n += st.Blocks * 512
				} else {
					n += fi.Size()
				}
			}
		}
		return nil
	})
	return n, err
}
