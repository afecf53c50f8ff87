package xds_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	sotw "github.com/envoyproxy/go-control-plane/pkg/client/sotw/v3"
	rlsconfv3 "github.com/envoyproxy/go-control-plane/ratelimit/config/ratelimit/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/controlplane/xds"
	"github.com/ragplane/ragplane/proxy/xdsclient"
)

// waitFor bounds every wait; conditions are polled, never slept on.
const waitFor = 10 * time.Second

// TestEndToEnd runs the real server and the real delta client over gRPC on loopback through the
// life of a proxy: initial sync, a one-tenant change, a removal, a rejected update, a control
// plane restart with changes made while it was away.
func TestEndToEnd(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	in := MustInput(t)
	reg := prometheus.NewRegistry()
	srv := MustStartServer(t, ctx, "127.0.0.1:0", reg, in)

	rec := &recorder{}
	cl := xdsclient.New(xdsclient.Config{
		Addr:       srv.addr,
		NodeID:     "proxy-1",
		TypeURLs:   xds.TypeURLs(),
		Validate:   validate,
		OnResponse: rec.add,
		MaxBackoff: 500 * time.Millisecond,
	})
	clientDone := make(chan error, 1)
	go func() { clientDone <- cl.Run(ctx) }()

	t.Run("initial state arrives for every type", func(t *testing.T) {
		MustEventually(t, "client ready", cl.Ready)
		expect := map[string][]string{
			xds.TypeTenantPolicy: {"acme", "globex_corp"},
			xds.TypeRateLimit:    {"ratelimit/acme", "ratelimit/globex_corp"},
			xds.TypeCluster:      {xds.DataplaneCluster},
			xds.TypeEndpoint:     {xds.DataplaneCluster},
			xds.TypeJWTProvider:  {xds.JWTProviderName},
		}
		for typeURL, names := range expect {
			if got := sortedNames(cl.Snapshot(typeURL)); !slices.Equal(got, names) {
				t.Errorf("%s: got %v, want %v", typeURL, got, names)
			}
		}
		if got := MustPolicy(t, cl, "acme"); !reflect.DeepEqual(got, in.Policies[0]) {
			t.Errorf("acme policy: got %+v, want %+v", got, in.Policies[0])
		}
		MustEventually(t, "every type ACKed", func() bool {
			p := onlyProxy(srv.Proxies())
			return p != nil && p.NodeID == "proxy-1" && p.Protocol == xds.ProtocolDelta && len(p.Types) == len(xds.TypeURLs()) &&
				allAcked(p.Types)
		})
	})

	t.Run("a change to one tenant sends that tenant only", func(t *testing.T) {
		before := onlyProxy(srv.Proxies())
		if before == nil {
			t.Fatal("no proxy connected")
		}
		mark := rec.len()
		in.Policies[0].Limits.QueriesPerHour = 2000
		MustUpdate(t, srv, in)
		MustEventually(t, "policy and rate limit responses", func() bool {
			got := rec.since(mark)
			return len(got[xds.TypeTenantPolicy]) > 0 && len(got[xds.TypeRateLimit]) > 0
		})
		got := rec.since(mark)
		if u := updated(got[xds.TypeTenantPolicy]); !slices.Equal(u, []string{"acme"}) {
			t.Errorf("policies sent: %v, want [acme]", u)
		}
		if u := updated(got[xds.TypeRateLimit]); !slices.Equal(u, []string{"ratelimit/acme"}) {
			t.Errorf("rate limits sent: %v, want [ratelimit/acme]", u)
		}
		for _, typeURL := range []string{xds.TypeCluster, xds.TypeEndpoint, xds.TypeJWTProvider} {
			if len(got[typeURL]) != 0 {
				t.Errorf("%s: %d responses, want none", typeURL, len(got[typeURL]))
			}
		}
		if p := MustPolicy(t, cl, "acme"); p.Limits.QueriesPerHour != 2000 {
			t.Errorf("client has queries_per_hour %d, want 2000", p.Limits.QueriesPerHour)
		}
		MustEventually(t, "server sees the new version ACKed", func() bool {
			p := onlyProxy(srv.Proxies())
			return p != nil && p.Types[xds.TypeTenantPolicy].AckedVersion != before.Types[xds.TypeTenantPolicy].AckedVersion &&
				p.Types[xds.TypeRateLimit].AckedVersion != before.Types[xds.TypeRateLimit].AckedVersion
		})
		after := onlyProxy(srv.Proxies())
		if after.Types[xds.TypeCluster].AckedVersion != before.Types[xds.TypeCluster].AckedVersion {
			t.Errorf("cluster version moved: %q -> %q", before.Types[xds.TypeCluster].AckedVersion, after.Types[xds.TypeCluster].AckedVersion)
		}
		if n := MustMetric(t, reg, "ragplane_controlplane_xds_push_latency_seconds", "tenant_policy"); n < 1 {
			t.Errorf("push latency observations for tenant_policy: %v, want >= 1", n)
		}
	})

	t.Run("removing a tenant removes it client-side", func(t *testing.T) {
		mark := rec.len()
		in.Policies = in.Policies[:1]
		MustUpdate(t, srv, in)
		MustEventually(t, "globex_corp gone", func() bool {
			_, p := cl.Snapshot(xds.TypeTenantPolicy)["globex_corp"]
			_, r := cl.Snapshot(xds.TypeRateLimit)["ratelimit/globex_corp"]
			return !p && !r
		})
		if r := removed(rec.since(mark)[xds.TypeTenantPolicy]); !slices.Equal(r, []string{"globex_corp"}) {
			t.Errorf("policies removed: %v, want [globex_corp]", r)
		}
	})

	t.Run("a rejected update is NACKed and the client keeps its version", func(t *testing.T) {
		keep := cl.Versions(xds.TypeTenantPolicy)["acme"]
		good := in.Policies[0]
		in.Policies[0].Plan = "rejected"
		MustUpdate(t, srv, in)
		MustEventually(t, "NACK visible in Proxies", func() bool {
			p := onlyProxy(srv.Proxies())
			return p != nil && strings.Contains(p.Types[xds.TypeTenantPolicy].NackError, "plan rejected by this proxy")
		})
		if got := MustPolicy(t, cl, "acme"); !reflect.DeepEqual(got, good) {
			t.Errorf("client policy after NACK: got %+v, want %+v", got, good)
		}
		if v := cl.Versions(xds.TypeTenantPolicy)["acme"]; v != keep {
			t.Errorf("client version after NACK: %q, want %q", v, keep)
		}
		if n := MustMetric(t, reg, "ragplane_controlplane_xds_nacks_total", "tenant_policy"); n != 1 {
			t.Errorf("nacks_total{type=tenant_policy} = %v, want 1", n)
		}

		in.Policies[0] = good
		MustUpdate(t, srv, in)
		MustEventually(t, "a good update clears the NACK", func() bool {
			p := onlyProxy(srv.Proxies())
			return p != nil && p.Types[xds.TypeTenantPolicy].NackError == "" && p.Types[xds.TypeTenantPolicy].AckedVersion != ""
		})
	})

	t.Run("the client keeps its state while the server is down and converges after a restart", func(t *testing.T) {
		hooli := in.Policies[0]
		hooli.TenantID = "hooli"
		in.Policies = append(in.Policies, hooli)
		MustUpdate(t, srv, in)
		MustEventually(t, "hooli arrives", func() bool { return cl.Snapshot(xds.TypeTenantPolicy)["hooli"] != nil })

		srv.stop(t)
		MustEventually(t, "client disconnected", func() bool { return !cl.Connected() })
		if got := sortedNames(cl.Snapshot(xds.TypeTenantPolicy)); !slices.Equal(got, []string{"acme", "hooli"}) || !cl.Ready() {
			t.Fatalf("state while disconnected: %v ready=%t", got, cl.Ready())
		}

		// Changes made while the proxy was away: one tenant changed, one removed, one added.
		in.Policies[0].Limits.QueriesPerHour = 3000
		initech := in.Policies[0]
		initech.TenantID, initech.ConfigVersion = "initech", 1
		in.Policies = []ragplane.TenantPolicy{in.Policies[0], initech}
		mark := rec.len()

		srv = MustStartServer(t, ctx, srv.addr, prometheus.NewRegistry(), in)
		MustEventually(t, "converged", func() bool {
			p, r := cl.Snapshot(xds.TypeTenantPolicy), cl.Snapshot(xds.TypeRateLimit)
			return cl.Connected() && p["initech"] != nil && p["hooli"] == nil && r["ratelimit/hooli"] == nil && len(p) == 2 &&
				MustPolicy(t, cl, "acme").Limits.QueriesPerHour == 3000
		})
		MustEventually(t, "every type ACKed on the new server", func() bool {
			p := onlyProxy(srv.Proxies())
			return p != nil && p.NodeID == "proxy-1" && len(p.Types) == len(xds.TypeURLs()) && allAcked(p.Types)
		})
		// initial_resource_versions spared what the client already held.
		got := rec.since(mark)
		if u := updated(got[xds.TypeTenantPolicy]); !slices.Equal(u, []string{"acme", "initech"}) {
			t.Errorf("policies sent after restart: %v, want [acme initech]", u)
		}
		if r := removed(got[xds.TypeTenantPolicy]); !slices.Equal(r, []string{"hooli"}) {
			t.Errorf("policies removed after restart: %v, want [hooli]", r)
		}
		for _, typeURL := range []string{xds.TypeCluster, xds.TypeEndpoint, xds.TypeJWTProvider} {
			if u := updated(got[typeURL]); len(u) != 0 {
				t.Errorf("%s resent after restart: %v", typeURL, u)
			}
		}
	})

	cancel()
	select {
	case err := <-clientDone:
		if err != nil {
			t.Errorf("client Run: %v", err)
		}
	case <-time.After(waitFor):
		t.Error("client Run did not return after cancel")
	}
}

// TestStateOfTheWorldRateLimits subscribes to rate-limit configs the way envoyproxy/ratelimit does
// (go-control-plane's state-of-the-world ADS client, wildcard): every response carries every
// tenant's config, since that service replaces its configuration with each response.
func TestStateOfTheWorldRateLimits(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := MustInput(t)
	srv := MustStartServer(t, ctx, "127.0.0.1:0", prometheus.NewRegistry(), in)

	conn, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ads := sotw.NewADSClient(ctx, &corev3.Node{Id: "ratelimit-1"}, xds.TypeRateLimit)
	if err := ads.InitConnect(conn); err != nil {
		t.Fatal(err)
	}
	fetch := func() map[string]uint32 {
		t.Helper()
		resp, err := ads.Fetch()
		if err != nil {
			t.Fatal(err)
		}
		if err := ads.Ack(); err != nil {
			t.Fatal(err)
		}
		out := map[string]uint32{}
		for _, res := range resp.Resources {
			var c rlsconfv3.RateLimitConfig
			if err := res.UnmarshalTo(&c); err != nil {
				t.Fatal(err)
			}
			out[c.GetName()] = c.GetDescriptors()[0].GetDescriptors()[0].GetRateLimit().GetRequestsPerUnit()
		}
		return out
	}

	if got, want := fetch(), map[string]uint32{"ratelimit/acme": 1000, "ratelimit/globex_corp": 1000}; !maps.Equal(got, want) {
		t.Errorf("first response: %v, want %v", got, want)
	}
	in.Policies[1].Limits.QueriesPerHour = 50
	MustUpdate(t, srv, in)
	if got, want := fetch(), map[string]uint32{"ratelimit/acme": 1000, "ratelimit/globex_corp": 50}; !maps.Equal(got, want) {
		t.Errorf("after a change to one tenant: %v, want %v (full state)", got, want)
	}
	MustEventually(t, "sotw stream ACKed", func() bool {
		p := onlyProxy(srv.Proxies())
		return p != nil && p.NodeID == "ratelimit-1" && p.Protocol == xds.ProtocolSotW &&
			strings.HasSuffix(p.Types[xds.TypeRateLimit].AckedVersion, ".2")
	})
}

// TestServeWaitsForFirstUpdate: a server that never had an Update serves nothing and still stops.
func TestServeWaitsForFirstUpdate(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- xds.New(xds.Config{}).Serve(ctx, lis) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Serve did not return")
	}
}

func TestUpdateRejectsUnusableInput(t *testing.T) {
	err := xds.New(xds.Config{}).Update(xds.Input{})
	if got := ragplane.ErrorCode(err); got != ragplane.EINVALID {
		t.Errorf("code %q, want %q (%v)", got, ragplane.EINVALID, err)
	}
}

// validate is the test proxy's check: every resource must decode, and a policy on plan
// "rejected" is refused.
func validate(typeURL string, res *anypb.Any) error {
	msg, err := res.UnmarshalNew()
	if err != nil {
		return err
	}
	if typeURL == xds.TypeTenantPolicy {
		if s, ok := msg.(*structpb.Struct); ok && s.GetFields()["plan"].GetStringValue() == "rejected" {
			return errors.New("plan rejected by this proxy")
		}
	}
	return nil
}

type testServer struct {
	*xds.Server
	addr   string
	cancel context.CancelFunc
	done   chan error
}

func (s *testServer) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Serve did not stop")
	}
}

// MustStartServer serves in on addr until the test ends (or stop).
func MustStartServer(tb testing.TB, ctx context.Context, addr string, reg prometheus.Registerer, in xds.Input) *testServer {
	tb.Helper()
	return MustStartServerWith(tb, ctx, addr, xds.Config{Registerer: reg}, in)
}

// MustStartServerWith is MustStartServer with a Config of the test's.
func MustStartServerWith(tb testing.TB, ctx context.Context, addr string, cfg xds.Config, in xds.Input) *testServer {
	tb.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &testServer{Server: xds.New(cfg), addr: lis.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	MustUpdate(tb, s.Server, in)
	go func() { s.done <- s.Serve(ctx, lis) }()
	tb.Cleanup(cancel)
	return s
}

func MustUpdate(tb testing.TB, s interface{ Update(xds.Input) error }, in xds.Input) {
	tb.Helper()
	if err := s.Update(in); err != nil {
		tb.Fatalf("Update: %v", err)
	}
}

func MustEventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// MustPolicy decodes a tenant's policy from the client's state, as the proxy would.
func MustPolicy(tb testing.TB, cl *xdsclient.Client, tenant string) ragplane.TenantPolicy {
	tb.Helper()
	res := cl.Snapshot(xds.TypeTenantPolicy)[tenant]
	if res == nil {
		tb.Fatalf("no policy for %s", tenant)
	}
	var s structpb.Struct
	if err := res.UnmarshalTo(&s); err != nil {
		tb.Fatal(err)
	}
	b, err := protojson.Marshal(&s)
	if err != nil {
		tb.Fatal(err)
	}
	var p ragplane.TenantPolicy
	if err := json.Unmarshal(b, &p); err != nil {
		tb.Fatal(err)
	}
	return p
}

// MustMetric returns a counter's value or a histogram's sample count for the series type=label.
func MustMetric(tb testing.TB, g prometheus.Gatherer, name, label string) float64 {
	tb.Helper()
	mfs, err := g.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "type" && l.GetValue() == label {
					if h := m.GetHistogram(); h != nil {
						return float64(h.GetSampleCount())
					}
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func MustInput(tb testing.TB) xds.Input {
	tb.Helper()
	limits := ragplane.Limits{QueriesPerHour: 1000, RequestsPerSecond: 5, Burst: 10, MaxConcurrentRequests: 5,
		MaxTokensPerQuery: 2048, MaxDocuments: 1000, MaxStorageMB: 100, MaxTopK: 20, MaxModelTier: "standard",
		MaxRequestBytes: 10 << 20, MonthlyTokens: 1_000_000}
	return xds.Input{
		Issuer:   "ragplane",
		Audience: "ragplane-api",
		Policies: []ragplane.TenantPolicy{
			{TenantID: "acme", Status: ragplane.StatusActive, Plan: "starter", Limits: limits, ConfigVersion: 1},
			{TenantID: "globex_corp", Status: ragplane.StatusActive, Plan: "pro", Limits: limits, ConfigVersion: 4},
		},
		Workers: []ragplane.Worker{{ID: "w1", Addr: "127.0.0.1:8090"}},
		Keys:    []xds.JWK{{Kty: "OKP", Crv: "Ed25519", X: "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE", Kid: "k1", Alg: "EdDSA", Use: "sig"}},
	}
}

// recorder keeps every response the client handled.
type recorder struct {
	mu   sync.Mutex
	resp []xdsclient.Response
}

func (r *recorder) add(resp xdsclient.Response) {
	r.mu.Lock()
	r.resp = append(r.resp, resp)
	r.mu.Unlock()
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.resp)
}

// since returns the responses after the first mark ones, by type URL.
func (r *recorder) since(mark int) map[string][]xdsclient.Response {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]xdsclient.Response{}
	for _, resp := range r.resp[mark:] {
		out[resp.TypeURL] = append(out[resp.TypeURL], resp)
	}
	return out
}

func updated(rs []xdsclient.Response) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Updated...)
	}
	slices.Sort(out)
	return out
}

func removed(rs []xdsclient.Response) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Removed...)
	}
	slices.Sort(out)
	return out
}

func sortedNames(m map[string]*anypb.Any) []string {
	out := make([]string, 0, len(m))
	for name := range m {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

func onlyProxy(ps []xds.ProxyStatus) *xds.ProxyStatus {
	if len(ps) != 1 {
		return nil
	}
	return &ps[0]
}

func allAcked(types map[string]xds.TypeStatus) bool {
	for _, st := range types {
		if st.AckedVersion == "" || st.NackError != "" {
			return false
		}
	}
	return true
}
