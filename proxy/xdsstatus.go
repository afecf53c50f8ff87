package proxy

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragplane/ragplane/proxy/xdsclient"
)

// rejectedShown bounds the rejected resource names /readyz lists per type.
const rejectedShown = 10

// readiness is the body of /readyz. The proxy answers 503 only while it can serve nothing: it has
// no complete configuration (the first sync of every type is not over, or it holds no token
// verification keys), or no data-plane worker is registered (every request would be 503). Workers
// the proxy ejected for failing are still tried when all are (see balancer), so that makes it
// degraded, not unready. Once it can serve it answers 200 even when part of its configuration is stale
// (status "degraded", with what and why): a proxy on its last good configuration still serves
// every tenant correctly but the ones named, and a single bad tenant policy, which every proxy
// rejects alike, must not take the whole fleet out of its load balancers.
type readiness struct {
	// Status is "ready", "degraded" (serving, but some configuration is stale, every worker
	// is ejected or Redis is away) or "not_ready".
	Status string `json:"status"`
	// Reason says why the proxy is not ready or degraded, in words that name no tenant, worker
	// or address: the tenant listener shows it too.
	Reason string `json:"reason,omitempty"`
	// Workers is how many workers the control plane lists; Ejected how many of them this proxy
	// has taken out of rotation for failing.
	Workers int `json:"workers"`
	Ejected int `json:"workers_ejected"`
	// Connected reports whether the xDS stream to the control plane is open.
	Connected bool `json:"xds_connected"`
	// StreamError is why the last xDS stream failed, if the proxy is not connected now.
	StreamError string `json:"xds_stream_error,omitempty"`
	// Stale lists the types whose configuration is not current, with the reason.
	Stale []staleType `json:"stale,omitempty"`
	// Dependencies lists the shared services the proxy needs besides the control plane (Redis),
	// up or down; one that is down makes a proxy that can serve "degraded" (see addDependencies).
	Dependencies []dependency `json:"dependencies"`
}

// staleType says why one resource type is not current.
type staleType struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
	// Rejected maps the first rejected resource names to the reason each was rejected.
	Rejected      map[string]string `json:"rejected,omitempty"`
	RejectedCount int               `json:"rejected_count,omitempty"`
}

// readiness reports the proxy's configuration state and whether it can serve.
func (s *Server) readiness() (readiness, bool) {
	st := s.xds.Status()
	r := readiness{Status: "ready", Connected: st.Connected}
	if !st.Connected {
		r.StreamError = st.StreamError
	}
	for _, t := range subscribed {
		ts := st.Types[t]
		switch {
		case !ts.Synced:
			r.Stale = append(r.Stale, staleType{Type: shortType(t), Reason: "initial sync not complete"})
		case len(ts.Rejected) > 0:
			names := make([]string, 0, len(ts.Rejected))
			for name := range ts.Rejected {
				names = append(names, name)
			}
			slices.Sort(names)
			shown := map[string]string{}
			for _, name := range names[:min(len(names), rejectedShown)] {
				shown[name] = ts.Rejected[name]
			}
			r.Stale = append(r.Stale, staleType{Type: shortType(t), Reason: "update rejected (NACK); the previous version is served",
				Rejected: shown, RejectedCount: len(names)})
		case ts.Syncing:
			r.Stale = append(r.Stale, staleType{Type: shortType(t), Reason: "resync in progress"})
		case !st.Connected && st.StreamError != "":
			r.Stale = append(r.Stale, staleType{Type: shortType(t), Reason: "control plane unreachable: " + st.StreamError})
		}
	}
	workers := s.state.endpoints()
	r.Workers, r.Ejected = len(workers), s.balancer.ejected(workers)
	ok := false
	switch {
	case !s.xds.Ready():
		r.Status, r.Reason = "not_ready", "the configuration from the control plane is not complete yet"
	case len(s.state.keys().keys) == 0:
		r.Status, r.Reason = "not_ready", "no token verification keys"
	case len(workers) == 0:
		r.Status, r.Reason = "not_ready", "no data-plane worker is registered with the control plane"
	case len(r.Stale) > 0:
		ok, r.Status, r.Reason = true, "degraded", "part of the configuration is stale"
	case r.Ejected == len(workers):
		ok, r.Status, r.Reason = true, "degraded", "every data-plane worker is failing"
	default:
		ok = true
	}
	s.addDependencies(&r)
	return r, ok
}

func (r readiness) json() string {
	b, _ := json.Marshal(r) // cannot fail: strings, bools and maps of strings
	return string(b)
}

// public is the body of the tenant listener's /readyz: the status and its reason only.
func (r readiness) public() string {
	b, _ := json.Marshal(struct {
		Status string `json:"status"`
		Reason string `json:"reason,omitempty"`
	}{r.Status, r.Reason})
	return string(b)
}

// xdsCollector exports the xDS client's state at scrape time, so the series never lag it.
type xdsCollector struct {
	client   *xdsclient.Client
	stale    *prometheus.Desc
	rejected *prometheus.Desc
	streamAt *prometheus.Desc
}

func newXDSCollector(c *xdsclient.Client) *xdsCollector {
	return &xdsCollector{
		client: c,
		stale: prometheus.NewDesc("ragplane_proxy_xds_stale",
			"1 while a resource type's configuration is not current: initial sync not complete, an update rejected, or the control plane unreachable.",
			[]string{"type"}, nil),
		rejected: prometheus.NewDesc("ragplane_proxy_xds_rejected_resources",
			"Resources whose latest version this proxy rejected (NACK) and serves the previous version of, by type.",
			[]string{"type"}, nil),
		streamAt: prometheus.NewDesc("ragplane_proxy_xds_stream_error_timestamp_seconds",
			"When the xDS stream last failed (0: never).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *xdsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.stale
	ch <- c.rejected
	ch <- c.streamAt
}

// Collect implements prometheus.Collector.
func (c *xdsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.client.Status()
	for _, t := range subscribed {
		ts := st.Types[t]
		stale := 0.0
		if !ts.Synced || ts.Syncing || len(ts.Rejected) > 0 || (!st.Connected && st.StreamError != "") {
			stale = 1
		}
		ch <- prometheus.MustNewConstMetric(c.stale, prometheus.GaugeValue, stale, shortType(t))
		ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.GaugeValue, float64(len(ts.Rejected)), shortType(t))
	}
	at := 0.0
	if !st.StreamErrorAt.IsZero() {
		at = float64(st.StreamErrorAt.UnixNano()) / float64(time.Second)
	}
	ch <- prometheus.MustNewConstMetric(c.streamAt, prometheus.GaugeValue, at)
}
