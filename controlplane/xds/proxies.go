package xds

import (
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/ragplane/ragplane/internal/xdsapi"
)

// ProxyStatus is what the server knows about one connected xDS stream (one proxy on ADS).
// It is served as JSON by GET /v1/proxies in the API's conventions: snake_case, null for never.
type ProxyStatus struct {
	// NodeID is the node id the proxy sent; empty until its first request.
	NodeID string `json:"node_id"`
	// Protocol is "delta" (incremental) or "sotw" (state of the world).
	Protocol string `json:"protocol"`
	// ConnectedSince is when the stream opened.
	ConnectedSince time.Time `json:"connected_since"`
	// Types holds, by type URL, the state of each type the proxy has answered for.
	Types map[string]TypeStatus `json:"types"`
}

// TypeStatus is a proxy's answer to the responses of one type.
type TypeStatus struct {
	// AckedVersion is the system version of the last response the proxy accepted, AckedAt when.
	AckedVersion string    `json:"acked_version"`
	AckedAt      time.Time `json:"acked_at"`
	// NackedVersion, NackError and NackedAt describe the last rejected response. They are
	// cleared by a later ACK, so a non-empty NackError means the proxy is running on an older
	// version of this type right now.
	NackedVersion string    `json:"nacked_version"`
	NackError     string    `json:"nack_error"`
	NackedAt      time.Time `json:"nacked_at"`
}

// MarshalJSON writes a time that never happened (an ACK or NACK not seen yet) as null.
func (t TypeStatus) MarshalJSON() ([]byte, error) {
	never := func(at time.Time) *time.Time {
		if at.IsZero() {
			return nil
		}
		return &at
	}
	type view struct {
		AckedVersion  string     `json:"acked_version"`
		AckedAt       *time.Time `json:"acked_at"`
		NackedVersion string     `json:"nacked_version"`
		NackError     string     `json:"nack_error"`
		NackedAt      *time.Time `json:"nacked_at"`
	}
	return json.Marshal(view{t.AckedVersion, never(t.AckedAt), t.NackedVersion, t.NackError, never(t.NackedAt)})
}

// Protocols of ProxyStatus.
const (
	ProtocolDelta = "delta"
	ProtocolSotW  = "sotw"
)

// versionsKept bounds the Update times remembered per type for the push latency histogram.
const versionsKept = 64

// streamKey identifies a stream: the delta and sotw servers number their streams independently.
type streamKey struct {
	delta bool
	id    int64
}

type sent struct {
	nonce   int64
	version string
}

type streamState struct {
	ProxyStatus
	// defaultType is the type of a per-type (non-ADS) stream, whose requests may omit it.
	defaultType string
	// pending holds, by type URL, the responses sent and not yet answered.
	pending map[string][]sent
	// requested holds the types the stream asked for.
	requested map[string]bool
}

type versionTime struct {
	version string
	at      time.Time
}

// tracker follows the streams through go-control-plane's callbacks, which the server calls
// synchronously on each stream's goroutine.
type tracker struct {
	log     *slog.Logger
	metrics *metrics

	// sotw counts open state-of-the-world streams, which make rate-limit snapshots worth building.
	sotw atomic.Int64

	mu       sync.Mutex
	streams  map[streamKey]*streamState
	versions map[string][]versionTime // by type URL, oldest first
}

func newTracker(log *slog.Logger, m *metrics) *tracker {
	return &tracker{log: log, metrics: m, streams: map[streamKey]*streamState{}, versions: map[string][]versionTime{}}
}

// recordVersion remembers when Update produced a version of a type, for the push latency.
func (t *tracker) recordVersion(typeURL, version string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	vs := append(t.versions[typeURL], versionTime{version, at})
	if len(vs) > versionsKept {
		vs = slices.Delete(vs, 0, len(vs)-versionsKept)
	}
	t.versions[typeURL] = vs
}

func (t *tracker) open(key streamKey, protocol, defaultType string) {
	t.mu.Lock()
	t.streams[key] = &streamState{
		ProxyStatus: ProxyStatus{Protocol: protocol, ConnectedSince: time.Now(), Types: map[string]TypeStatus{}},
		defaultType: defaultType,
		pending:     map[string][]sent{},
		requested:   map[string]bool{},
	}
	t.mu.Unlock()
	if !key.delta {
		t.sotw.Add(1)
	}
	t.metrics.connected.Inc()
}

// sotwStreams is the number of open state-of-the-world streams.
func (t *tracker) sotwStreams() int64 { return t.sotw.Load() }

func (t *tracker) closed(key streamKey, node *corev3.Node) {
	t.mu.Lock()
	_, ok := t.streams[key]
	delete(t.streams, key)
	t.mu.Unlock()
	if ok {
		if !key.delta {
			t.sotw.Add(-1)
		}
		t.metrics.connected.Dec()
		t.log.Info("proxy disconnected", "node_id", node.GetId())
	}
}

func (t *tracker) response(key streamKey, typeURL, nonce, version string) {
	t.metrics.pushes.WithLabelValues(typeLabel(typeURL)).Inc()
	n, err := strconv.ParseInt(nonce, 10, 64)
	if err != nil {
		return // go-control-plane's nonces are counters; anything else cannot be matched
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.streams[key]; s != nil {
		s.pending[typeURL] = append(s.pending[typeURL], sent{n, version})
	}
}

// request records the node id and, when the request answers a response (it carries its nonce),
// the ACK or NACK of that response's version.
func (t *tracker) request(key streamKey, node *corev3.Node, typeURL, nonce string, nack *string) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.streams[key]
	if s == nil {
		return
	}
	if typeURL == "" {
		typeURL = s.defaultType
	}
	s.requested[typeURL] = true
	if id := node.GetId(); id != "" && s.NodeID == "" {
		s.NodeID = id
		t.log.Info("proxy connected", "node_id", id, "protocol", s.Protocol)
	}
	n, err := strconv.ParseInt(nonce, 10, 64)
	if nonce == "" || err != nil {
		return
	}
	// Find the answered response and forget it and any older one of the type: a client answers
	// responses in order, so those will never be answered.
	var version string
	found := false
	pending := s.pending[typeURL]
	i := 0
	for ; i < len(pending) && pending[i].nonce <= n; i++ {
		if pending[i].nonce == n {
			version, found = pending[i].version, true
		}
	}
	s.pending[typeURL] = slices.Delete(pending, 0, i)
	if !found {
		return
	}
	if nack == nil && xdsapi.IsPartial(version) {
		// One chunk of a larger state: the proxy does not hold this version of the type yet,
		// so the ACKed version stays where it was until the last chunk is ACKed.
		return
	}
	st := s.Types[typeURL]
	if nack != nil {
		st.NackedVersion, st.NackError, st.NackedAt = version, *nack, now
		t.metrics.nacks.WithLabelValues(typeLabel(typeURL)).Inc()
		t.log.Warn("proxy rejected configuration", "node_id", s.NodeID, "type", typeLabel(typeURL),
			"version", version, "error", *nack)
	} else {
		st = TypeStatus{AckedVersion: version, AckedAt: now}
		// Only changes made while the stream was open count: a new proxy's initial sync is not a
		// push of that Update. A response that coalesced several Updates is timed from the last.
		for _, v := range t.versions[typeURL] {
			if v.version == version && v.at.After(s.ConnectedSince) {
				t.metrics.pushLatency.WithLabelValues(typeLabel(typeURL)).Observe(now.Sub(v.at).Seconds())
			}
		}
	}
	s.Types[typeURL] = st
}

// proxies returns a copy of every stream's status, by node id and then connection time.
func (t *tracker) proxies() []ProxyStatus {
	t.mu.Lock()
	out := make([]ProxyStatus, 0, len(t.streams))
	for _, s := range t.streams {
		p := s.ProxyStatus
		p.Types = maps.Clone(p.Types)
		out = append(out, p)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b ProxyStatus) int {
		return cmp.Or(cmp.Compare(a.NodeID, b.NodeID), a.ConnectedSince.Compare(b.ConnectedSince))
	})
	return out
}

// callbacks adapts the tracker to go-control-plane's server callbacks.
func (t *tracker) callbacks() serverv3.Callbacks {
	return serverv3.CallbackFuncs{
		DeltaStreamOpenFunc: func(_ context.Context, id int64, typeURL string) error {
			t.open(streamKey{true, id}, ProtocolDelta, typeURL)
			return nil
		},
		DeltaStreamClosedFunc: func(id int64, node *corev3.Node) { t.closed(streamKey{true, id}, node) },
		StreamDeltaRequestFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			t.request(streamKey{true, id}, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), errorDetail(req))
			return nil
		},
		StreamDeltaResponseFunc: func(id int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
			t.response(streamKey{true, id}, resp.GetTypeUrl(), resp.GetNonce(), resp.GetSystemVersionInfo())
		},
		StreamOpenFunc: func(_ context.Context, id int64, typeURL string) error {
			t.open(streamKey{false, id}, ProtocolSotW, typeURL)
			return nil
		},
		StreamClosedFunc: func(id int64, node *corev3.Node) { t.closed(streamKey{false, id}, node) },
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			t.request(streamKey{false, id}, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), errorDetail(req))
			return nil
		},
		StreamResponseFunc: func(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			t.response(streamKey{false, id}, resp.GetTypeUrl(), resp.GetNonce(), resp.GetVersionInfo())
		},
	}
}

// errorDetail returns the NACK message of a request, nil for an ACK or a plain request.
func errorDetail(req interface{ GetErrorDetail() *rpcstatus.Status }) *string {
	d := req.GetErrorDetail()
	if d == nil {
		return nil
	}
	msg := d.GetMessage()
	if msg == "" {
		msg = "rejected without detail (code " + strconv.Itoa(int(d.GetCode())) + ")"
	}
	return &msg
}
