package dataplane

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragplane/ragplane"
)

// metrics are the worker's per-tenant series. The tenant label is bounded: the first
// MetricsTopTenants tenants a worker serves get their own label value, the rest share "other".
type metrics struct {
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	retrieval  *prometheus.HistogramVec
	tokens     *prometheus.CounterVec
	documents  *prometheus.CounterVec
	chunks     *prometheus.CounterVec
	ingestSecs *prometheus.HistogramVec

	mu     sync.Mutex
	top    int
	labels map[ragplane.TenantID]bool
}

func newMetrics(reg prometheus.Registerer, top int) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ragplane_dataplane_requests_total",
			Help: "Requests by tenant, route and status."}, []string{"tenant", "route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ragplane_dataplane_request_duration_seconds",
			Help: "Request latency by tenant and route.", Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}},
			[]string{"tenant", "route"}),
		retrieval: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ragplane_dataplane_retrieval_duration_seconds",
			Help: "Retrieval latency by tenant and mode.", Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}},
			[]string{"tenant", "mode"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ragplane_dataplane_tokens_total",
			Help: "Tokens by tenant and kind (prompt, completion, embedding)."}, []string{"tenant", "kind"}),
		documents: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ragplane_dataplane_documents_ingested_total",
			Help: "Documents ingested by tenant."}, []string{"tenant"}),
		chunks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ragplane_dataplane_chunks_ingested_total",
			Help: "Chunks ingested by tenant."}, []string{"tenant"}),
		ingestSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ragplane_dataplane_ingest_duration_seconds",
			Help: "Time to ingest one document (extract, chunk, embed, write).", Buckets: prometheus.DefBuckets},
			[]string{"tenant"}),
		top: top, labels: map[ragplane.TenantID]bool{},
	}
	reg.MustRegister(m.requests, m.latency, m.retrieval, m.tokens, m.documents, m.chunks, m.ingestSecs)
	return m
}

// tenant returns the label value for a tenant.
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
