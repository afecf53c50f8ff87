package e2etest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/controlplane/xds"
	"github.com/ragplane/ragplane/internal/xdsapi"
)

// Waiting for configuration to reach the proxies.
//
// A change made through the admin API is committed to the catalog; the control plane learns of it
// from a notification, translates it into a new version of the affected xDS type and pushes it;
// each proxy applies it and ACKs that version, which GET /v1/proxies reports per proxy and type.
// "The proxy has ACKed the version current after my change" is therefore the event a test waits
// for. The control plane does not publish its current version, and reading one right after the
// change would race the notification anyway, so the helpers find the first version that carries
// the change the way a proxy would: a witness subscribes over xDS to the resources concerned and
// waits until their content shows the change (a tenant policy's config_version, an endpoint set's
// addresses); that response's system version is the one every proxy must have ACKed, or a later
// one. Versions are "<prefix><counter>", the prefix naming one control-plane instance, so a
// version of another instance never counts. A bounded (partial) response carries the version it
// is part of; the control plane records a proxy's ACKed version only for the response that
// completes it, by which time the proxy holds everything of that version.
//
// The proxy applies a response to the state its requests read before it ACKs, so once the
// control plane reports the ACK, the next request through that proxy sees the change.

// xdsWait bounds each wait; a push normally lands within milliseconds.
const xdsWait = 20 * time.Second

// witnessPrefix starts the node id of the helpers' own xDS streams, which are not proxies.
const witnessPrefix = "e2etest-witness-"

// gone is the config version WaitPolicies wants of a deleted tenant: no policy at all.
const gone = -1

// WaitPolicies waits until every proxy connected to the control plane (at least one) has ACKed
// tenant policies that include each named tenant's configuration as the admin API reports it when
// called: its config_version or a later one, or, for a deleted tenant, no policy. With no tenant
// named it waits for every tenant the admin API lists. Call it after a change (PATCH, suspend,
// resume, delete) returns and before a request through a proxy that must see the change; it
// replaces sleeping "to let xDS deliver".
func (s *Stack) WaitPolicies(tb testing.TB, tenants ...string) {
	tb.Helper()
	want := map[string]int64{} // tenant -> config version its policy must reach; gone if deleted
	add := func(t ragplane.Tenant) {
		want[string(t.ID)] = t.ConfigVersion
		if t.Status == ragplane.StatusDeleted {
			want[string(t.ID)] = gone
		}
	}
	if len(tenants) == 0 {
		for _, t := range s.listTenants(tb) {
			add(t)
		}
		if len(want) == 0 {
			return
		}
	}
	for _, id := range tenants {
		r := s.adminAs(tb, "GET", "/v1/tenants/"+id)
		if r.Status != http.StatusOK {
			tb.Fatalf("WaitPolicies: tenant %s: %d %s", id, r.Status, r.Body)
		}
		var t ragplane.Tenant
		r.Decode(tb, &t)
		add(t)
	}
	names := make([]string, 0, len(want))
	for id := range want {
		names = append(names, id)
	}
	slices.Sort(names)
	s.waitProxies(tb, xdsapi.TypeTenantPolicy, names, func(held map[string]*anypb.Any) string {
		for _, id := range names {
			if want[id] == gone {
				if held[id] != nil {
					return fmt.Sprintf("tenant %s is deleted but still has a policy", id)
				}
				continue
			}
			v, err := policyVersion(held[id])
			if err != nil || v < want[id] {
				return fmt.Sprintf("tenant %s: policy at config_version %d (%v), want %d", id, v, err, want[id])
			}
		}
		return ""
	})
}

// WaitEndpoints waits until every proxy connected to the control plane (at least one) has ACKed
// an endpoint set that routes to every worker the admin API lists as live when called.
func (s *Stack) WaitEndpoints(tb testing.TB) {
	tb.Helper()
	var workers struct {
		Items []ragplane.Worker `json:"items"`
	}
	s.adminAs(tb, "GET", "/v1/workers").Decode(tb, &workers)
	s.waitProxies(tb, xdsapi.TypeEndpoint, []string{xdsapi.DataplaneCluster}, func(held map[string]*anypb.Any) string {
		addrs, err := endpointAddrs(held[xdsapi.DataplaneCluster])
		if err != nil {
			return err.Error()
		}
		for _, w := range workers.Items {
			if !slices.Contains(addrs, w.Addr) {
				return fmt.Sprintf("worker %s (%s) is not in the endpoint set %v", w.ID, w.Addr, addrs)
			}
		}
		return ""
	})
}

// waitProxies finds, with a witness stream, the first version of typeURL whose resources (names)
// satisfy pending (it returns "" once they do, else what is still missing), then polls
// GET /v1/proxies until every proxy has ACKed that version or a later one of the same instance.
func (s *Stack) waitProxies(tb testing.TB, typeURL string, names []string, pending func(map[string]*anypb.Any) string) {
	tb.Helper()
	deadline := time.Now().Add(xdsWait)
	version := s.witness(tb, deadline, typeURL, names, pending)
	for {
		var page struct {
			Items []xds.ProxyStatus `json:"items"`
		}
		s.adminAs(tb, "GET", "/v1/proxies").Decode(tb, &page)
		behind := []string{}
		proxies := 0
		for _, p := range page.Items {
			if strings.HasPrefix(p.NodeID, witnessPrefix) {
				continue
			}
			proxies++
			if ts := p.Types[typeURL]; !versionAtLeast(ts.AckedVersion, version) {
				behind = append(behind, fmt.Sprintf("%s: ACKed %q, NACKed %q (%s)", p.NodeID, ts.AckedVersion, ts.NackedVersion, ts.NackError))
			}
		}
		if proxies > 0 && len(behind) == 0 {
			return
		}
		if time.Now().After(deadline) {
			if proxies == 0 {
				behind = append(behind, "no proxy is connected")
			}
			tb.Fatalf("proxies have not ACKed %s version %s within %s:\n%s", typeURL, version, xdsWait, strings.Join(behind, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// witness subscribes to names of typeURL over delta ADS, as a proxy does, and returns the system
// version of the first response after which pending reports nothing missing. It claims to hold
// every name at a version no resource has, so that the server answers at once for each: with the
// resource, or with its removal when there is none (a name nobody holds would get no answer).
func (s *Stack) witness(tb testing.TB, deadline time.Time, typeURL string, names []string, pending func(map[string]*anypb.Any) string) string {
	tb.Helper()
	conn, err := grpc.NewClient(s.XDSAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(xdsapi.MaxMessageBytes), grpc.MaxCallSendMsgSize(xdsapi.MaxMessageBytes)))
	if err != nil {
		tb.Fatalf("xds witness: %v", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		tb.Fatalf("xds witness: %v", err)
	}
	node := &corev3.Node{Id: witnessPrefix + strconv.FormatInt(time.Now().UnixNano(), 36)}
	claimed := map[string]string{}
	for _, name := range names {
		claimed[name] = witnessPrefix + "none"
	}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: typeURL,
		ResourceNamesSubscribe: names, InitialResourceVersions: claimed}); err != nil {
		tb.Fatalf("xds witness: subscribe: %v", err)
	}
	held := map[string]*anypb.Any{}
	missing := "no response yet"
	for {
		resp, err := stream.Recv()
		if err != nil {
			tb.Fatalf("the control plane never served %s with the change (%s): %v", typeURL, missing, err)
		}
		for _, r := range resp.GetResources() {
			held[r.GetName()] = r.GetResource()
		}
		for _, name := range resp.GetRemovedResources() {
			delete(held, name)
		}
		if missing = pending(held); missing == "" {
			return strings.TrimSuffix(resp.GetSystemVersionInfo(), xdsapi.PartialSuffix)
		}
		// The answer also asks for the rest of a partial response.
		if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: typeURL, ResponseNonce: resp.GetNonce()}); err != nil {
			tb.Fatalf("xds witness: ack: %v", err)
		}
	}
}

// versionAtLeast reports whether got is want or a later version of the same control plane.
func versionAtLeast(got, want string) bool {
	gp, gn, ok1 := splitVersion(got)
	wp, wn, ok2 := splitVersion(want)
	return ok1 && ok2 && gp == wp && gn >= wn
}

// splitVersion splits "<prefix><counter>" (the prefix ends in a dot) into its parts.
func splitVersion(v string) (prefix string, counter uint64, ok bool) {
	i := strings.LastIndexByte(v, '.') + 1
	n, err := strconv.ParseUint(v[i:], 10, 64)
	return v[:i], n, err == nil
}

// policyVersion is the config_version in a tenant policy resource.
func policyVersion(res *anypb.Any) (int64, error) {
	if res == nil {
		return 0, fmt.Errorf("not served")
	}
	p, err := xdsapi.DecodePolicyAny(res)
	return p.ConfigVersion, err
}

// endpointAddrs lists the host:port of every endpoint in a ClusterLoadAssignment resource.
func endpointAddrs(res *anypb.Any) ([]string, error) {
	if res == nil {
		return nil, fmt.Errorf("no endpoint set served")
	}
	var cla endpointv3.ClusterLoadAssignment
	if err := res.UnmarshalTo(&cla); err != nil {
		return nil, err
	}
	var out []string
	for _, loc := range cla.GetEndpoints() {
		for _, lb := range loc.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			out = append(out, net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10)))
		}
	}
	return out, nil
}

// listTenants returns every tenant the admin API lists, following the cursor.
func (s *Stack) listTenants(tb testing.TB) []ragplane.Tenant {
	tb.Helper()
	var all []ragplane.Tenant
	cursor := ""
	for {
		var page struct {
			Items      []ragplane.Tenant `json:"items"`
			NextCursor string            `json:"next_cursor"`
		}
		r := s.adminAs(tb, "GET", "/v1/tenants?limit=100&cursor="+cursor)
		if r.Status != http.StatusOK {
			tb.Fatalf("list tenants: %d %s", r.Status, r.Body)
		}
		r.Decode(tb, &page)
		all = append(all, page.Items...)
		if cursor = page.NextCursor; cursor == "" {
			return all
		}
	}
}

// adminAs calls the admin API and reports failures against tb (Admin reports them against the
// test that started the stack).
func (s *Stack) adminAs(tb testing.TB, method, path string) Response {
	tb.Helper()
	return Send(tb, method, s.AdminURL+path, nil, "Authorization", "Bearer "+AdminToken)
}
