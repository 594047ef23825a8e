// Package metrics owns the Prometheus side of both services: a registry
// per process (no global state, so tests run services side by side), the
// /metrics handler, the gRPC server and client RPC metrics of the
// go-grpc-middleware v2 Prometheus provider, and a collector whose values
// are read at scrape time (queue depth, lag: state that already lives
// elsewhere and must not be copied into gauges by hand).
//
// Service metrics are named chasqui_<what>_<unit>, with the unit in the name
// (_bytes, _seconds, _total for counters).
package metrics

import (
	"net/http"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
)

// Namespace prefixes every service metric.
const Namespace = "chasqui"

// RPCBuckets are the handling-time histogram buckets of RPC metrics, in
// seconds: from a local call to a WAN call riding through retries.
var RPCBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// NewRegistry returns a registry with the Go runtime and process
// collectors.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Handler serves reg in the Prometheus text (or OpenMetrics) format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true})
}

// ServerRPC registers and returns the server RPC metrics
// (grpc_server_started_total, grpc_server_handled_total{grpc_code},
// grpc_server_handling_seconds, ...). Put its interceptors in the server
// chain and call InitializeMetrics(server) once services are registered so
// every method shows up at zero.
func ServerRPC(reg prometheus.Registerer) *grpcprom.ServerMetrics {
	m := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramBuckets(RPCBuckets)))
	reg.MustRegister(m)
	return m
}

// ClientRPC registers and returns the client RPC metrics
// (grpc_client_started_total, grpc_client_handled_total,
// grpc_client_handling_seconds). Its unary interceptor belongs inside the
// retry interceptor (grpcclient.Options.Unary) so each attempt counts:
// started minus logical calls is the retry count.
func ClientRPC(reg prometheus.Registerer) *grpcprom.ClientMetrics {
	m := grpcprom.NewClientMetrics(grpcprom.WithClientHandlingTimeHistogram(grpcprom.WithHistogramBuckets(RPCBuckets)))
	reg.MustRegister(m)
	return m
}

// ServerInterceptors returns m's interceptors, for grpcserver.Options.
func ServerInterceptors(m *grpcprom.ServerMetrics) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	return m.UnaryServerInterceptor(), m.StreamServerInterceptor()
}

// Sample is one value of a Func collector's metric.
type Sample struct {
	Value  float64
	Labels []string // label values, in the order of the Desc's labels
}

// Metric describes one metric of a Func collector.
type Metric struct {
	Name   string // full name, chasqui_ prefix included
	Help   string
	Type   prometheus.ValueType // prometheus.GaugeValue or prometheus.CounterValue
	Labels []string
}

// Func is a collector that asks read for its values at every scrape. read
// returns one sample slice per metric, in the order of metrics; a metric
// with no samples is left out of that scrape (unknown, not zero). An error
// fails the scrape visibly instead of reporting zeros. read must be quick:
// it runs on the scrape.
type Func struct {
	descs []*prometheus.Desc
	types []prometheus.ValueType
	read  func() ([][]Sample, error)
}

// NewFunc builds a Func collector.
func NewFunc(metrics []Metric, read func() ([][]Sample, error)) *Func {
	f := &Func{read: read}
	for _, m := range metrics {
		f.descs = append(f.descs, prometheus.NewDesc(m.Name, m.Help, m.Labels, nil))
		f.types = append(f.types, m.Type)
	}
	return f
}

// Describe implements prometheus.Collector.
func (f *Func) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range f.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (f *Func) Collect(ch chan<- prometheus.Metric) {
	vals, err := f.read()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(f.descs[0], err)
		return
	}
	for i, d := range f.descs {
		if i >= len(vals) {
			return
		}
		for _, s := range vals[i] {
			ch <- prometheus.MustNewConstMetric(d, f.types[i], s.Value, s.Labels...)
		}
	}
}

// One is a single unlabelled sample.
func One(v float64) []Sample { return []Sample{{Value: v}} }

// Bool is 1 for true, 0 for false.
func Bool(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
