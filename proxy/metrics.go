package proxy

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragplane/ragplane"
)

// metrics are the proxy's per-tenant series; the tenant label is bounded to the first topN
// tenants seen, the rest count as "other".
type metrics struct {
	requests      *prometheus.CounterVec
	rateLimited   *prometheus.CounterVec
	concRejected  *prometheus.CounterVec
	inFlight      *prometheus.GaugeVec
	upstream      *prometheus.HistogramVec
	proxyOverhead *prometheus.HistogramVec
	configAge     prometheus.GaugeFunc
	retries       *prometheus.CounterVec
	timeouts      *prometheus.CounterVec

	mu     sync.Mutex
	top    int
	labels map[ragplane.TenantID]bool
}

func newMetrics(reg prometheus.Registerer, top int, lastUpdate func() float64) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ragplane_proxy_requests_total",
			Help: "Requests by tenant and status code."}, []string{"tenant", "code"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ragplane_proxy_rate_limited_total",
			Help: "Requests refused by a rate limit, by tenant and scope."}, []string{"tenant", "scope"}),
		concRejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ragplane_proxy_concurrency_rejected_total",
			Help: "Requests refused by the concurrency cap, by tenant."}, []string{"tenant"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ragplane_proxy_in_flight_requests",
			Help: "Requests in flight through this proxy, by tenant."}, []string{"tenant"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ragplane_proxy_upstream_duration_seconds",
			Help:    "Time from forwarding to the worker's response headers, by tenant.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"tenant"}),
		proxyOverhead: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ragplane_proxy_added_duration_seconds",
			Help:    "Time the proxy spends before forwarding (auth, policy, limits), by tenant.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1}}, []string{"tenant"}),
		configAge: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ragplane_proxy_xds_config_age_seconds",
			Help: "Seconds since the last xDS update was applied."}, lastUpdate),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ragplane_proxy_upstream_retries_total",
			Help: "Requests sent again to another worker after the first gave no response, by reason: connect (it could not be reached; nothing was sent) or idempotent (it failed after the request may have reached it)."},
			[]string{"reason"}),
		timeouts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ragplane_proxy_upstream_timeouts_total",
			Help: "Worker requests ended by a timeout, by reason: headers (no response within the route's timeout) or idle (a response body, a stream included, that sent nothing for the idle timeout). Each counts as a failure of the worker."},
			[]string{"reason"}),
		top: top, labels: map[ragplane.TenantID]bool{},
	}
	reg.MustRegister(m.requests, m.rateLimited, m.concRejected, m.inFlight, m.upstream, m.proxyOverhead, m.configAge, m.retries, m.timeouts)
	for _, reason := range []string{"headers", "idle"} {
		m.timeouts.WithLabelValues(reason) // present at 0, for rates and alerts
	}
	return m
}

func (m *metrics) tenant(id ragplane.TenantID) string {
	if id == "" {
		return "none"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.labels[id] {
		return string(id)
	}
	if len(m.labels) < m.top {
		m.labels[id] = true
		return string(id)
	}
	return "other"
}
