package xds

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus series. Label "type" is one of the few short names of
// typeLabel, so cardinality stays bounded whatever proxies ask for.
type metrics struct {
	connected   prometheus.Gauge
	pushes      *prometheus.CounterVec
	nacks       *prometheus.CounterVec
	pushLatency *prometheus.HistogramVec
	// sotwOversize counts state-of-the-world rate-limit snapshots too large to serve.
	sotwOversize prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ragplane_controlplane_xds_connected_proxies",
			Help: "xDS streams currently open (one per proxy on ADS).",
		}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ragplane_controlplane_xds_pushes_total",
			Help: "xDS responses sent to proxies, by resource type.",
		}, []string{"type"}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ragplane_controlplane_xds_nacks_total",
			Help: "xDS responses rejected by proxies, by resource type.",
		}, []string{"type"}),
		pushLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ragplane_controlplane_xds_push_latency_seconds",
			Help: "Time from an Update that changed a resource type to a proxy's ACK of that version. " +
				"Initial syncs of newly connected proxies are not counted.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"type"}),
		sotwOversize: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ragplane_controlplane_xds_sotw_oversize_total",
			Help: "State-of-the-world rate-limit snapshots not served because they exceed the message size limit.",
		}),
	}
	if reg == nil {
		return m
	}
	m.connected = register(reg, m.connected)
	m.pushes = register(reg, m.pushes)
	m.nacks = register(reg, m.nacks)
	m.pushLatency = register(reg, m.pushLatency)
	m.sotwOversize = register(reg, m.sotwOversize)
	return m
}

// register registers c, or returns the collector already registered under its name, so that a
// server restarted in the same process keeps counting on the same series.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	return c
}
