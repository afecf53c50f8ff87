package xds

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	rlsconfv3 "github.com/envoyproxy/go-control-plane/ratelimit/config/ratelimit/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/internal/xdsapi"
)

// JWK is one public key of the published JWK Set (RFC 7517; OKP keys per RFC 8037). It has the
// shape of the control plane's JWKS entries; the service's Run converts between the two, so this
// package does not import its parent.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// Input is the catalog state the proxies are configured from.
type Input struct {
	// Policies are the tenants' policies (catalog.Store.TenantPolicies).
	Policies []ragplane.TenantPolicy `json:"policies"`
	// Workers are the live data-plane workers (catalog.Store.LiveWorkers).
	Workers []ragplane.Worker `json:"workers"`
	// Keys are the published token verification keys, newest first.
	Keys []JWK `json:"keys"`
	// Issuer and Audience are what tenant tokens must carry; both are required.
	Issuer   string `json:"issuer"`
	Audience string `json:"audience"`
}

// Resources are translated xDS resources by type URL and then by resource name.
type Resources struct {
	// Types holds a map (possibly empty) for every type URL of TypeURLs.
	Types map[string]map[string]proto.Message
	// Warnings describe input that was left out (a malformed worker address, a duplicate tenant).
	// One bad row must not freeze the configuration of every other tenant, so it is skipped and
	// reported rather than failing the translation.
	Warnings []string
}

// clusterConnectTimeout bounds a connection attempt from a proxy to a worker.
const clusterConnectTimeout = 2 * time.Second

// Translate turns catalog state into xDS resources. It depends on nothing but its input, so its
// output is covered by golden files. It fails (EINVALID) only when the input as a whole is unusable
// (no issuer or audience); single bad rows are skipped with a warning.
func Translate(in Input) (Resources, error) {
	if in.Issuer == "" || in.Audience == "" {
		return Resources{}, ragplane.Errorf(ragplane.EINVALID, "Token issuer and audience are required for the JWT provider.")
	}
	r := Resources{Types: map[string]map[string]proto.Message{}}
	for _, t := range typeOrder {
		r.Types[t] = map[string]proto.Message{}
	}

	for _, p := range in.Policies {
		name := string(p.TenantID)
		if _, dup := r.Types[TypeTenantPolicy][name]; dup {
			r.warnf("tenant %q skipped: listed twice", name)
			continue
		}
		policy, limit, err := makeTenant(p)
		if err != nil {
			r.warnf("%v", err)
			continue
		}
		r.Types[TypeTenantPolicy][name] = policy
		r.Types[TypeRateLimit][RateLimitPrefix+name] = limit
	}

	cla, warnings := makeLoadAssignment(DataplaneCluster, in.Workers)
	r.Warnings = append(r.Warnings, warnings...)
	r.Types[TypeCluster][DataplaneCluster] = makeCluster(DataplaneCluster)
	r.Types[TypeEndpoint][DataplaneCluster] = cla

	provider, warnings := makeJWTProvider(in.Issuer, in.Audience, in.Keys)
	r.Warnings = append(r.Warnings, warnings...)
	r.Types[TypeJWTProvider][JWTProviderName] = provider
	return r, nil
}

func (r *Resources) warnf(format string, args ...any) {
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...))
}

// makeTenant translates one tenant: its policy and its rate-limit config. A malformed tenant id
// is an error (the tenant is skipped with a warning); the error names the tenant.
func makeTenant(p ragplane.TenantPolicy) (*structpb.Struct, *rlsconfv3.RateLimitConfig, error) {
	if err := p.TenantID.Validate(); err != nil {
		return nil, nil, fmt.Errorf("tenant %q skipped: malformed tenant id", p.TenantID)
	}
	return makeTenantPolicy(p), makeRateLimit(p), nil
}

// makeTenantPolicy renders a policy as a Struct with the shared contract's encoding
// (xdsapi.EncodePolicy): the field names are ragplane.TenantPolicy's JSON tags.
func makeTenantPolicy(p ragplane.TenantPolicy) *structpb.Struct { return xdsapi.EncodePolicy(p) }

// makeRateLimit renders a tenant's rates in envoyproxy/ratelimit's configuration: descriptor
// (tenant_id=<tenant>) allows ceil(requests_per_second) per second over all requests, and the
// nested (operation=query) allows queries_per_hour per hour. Burst has no equivalent there (that
// service counts fixed windows, not a token bucket), so it is left out; Ragplane's own proxy
// enforces it with GCRA from the tenant policy.
func makeRateLimit(p ragplane.TenantPolicy) *rlsconfv3.RateLimitConfig {
	return &rlsconfv3.RateLimitConfig{
		Name:   RateLimitPrefix + string(p.TenantID),
		Domain: RateLimitDomain,
		Descriptors: []*rlsconfv3.RateLimitDescriptor{{
			Key:   TenantDescriptorKey,
			Value: string(p.TenantID),
			RateLimit: &rlsconfv3.RateLimitPolicy{
				Unit:            rlsconfv3.RateLimitUnit_SECOND,
				RequestsPerUnit: clampUint32(math.Ceil(p.Limits.RequestsPerSecond)),
			},
			Descriptors: []*rlsconfv3.RateLimitDescriptor{{
				Key:   OperationDescriptorKey,
				Value: OperationQuery,
				RateLimit: &rlsconfv3.RateLimitPolicy{
					Unit:            rlsconfv3.RateLimitUnit_HOUR,
					RequestsPerUnit: clampUint32(float64(p.Limits.QueriesPerHour)),
				},
			}},
		}},
	}
}

// clampUint32 keeps a limit in range; a non-positive or NaN rate becomes 0, which the rate-limit
// service reads as "deny all" (fail closed).
func clampUint32(f float64) uint32 {
	switch {
	case math.IsNaN(f) || f <= 0:
		return 0
	case f >= math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(f)
}

// makeCluster is the EDS cluster of data-plane workers, its endpoints coming over the same ADS
// stream. Least-request balancing suits RAG requests, whose durations vary by orders of magnitude.
func makeCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{
			EdsConfig: &corev3.ConfigSource{
				ResourceApiVersion:    corev3.ApiVersion_V3,
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			},
		},
		ConnectTimeout: durationpb.New(clusterConnectTimeout),
		LbPolicy:       clusterv3.Cluster_LEAST_REQUEST,
	}
}

// makeLoadAssignment lists the workers by id as endpoints; each carries its worker id in
// filter_metadata[WorkerMetadataKey]. Workers whose address is not host:port with a numeric port,
// or whose id came earlier in the list, are skipped with a warning. Envoy itself needs IP addresses in EDS; Ragplane's proxy also
// resolves host names.
func makeLoadAssignment(cluster string, workers []ragplane.Worker) (*endpointv3.ClusterLoadAssignment, []string) {
	ws := slices.Clone(workers)
	slices.SortStableFunc(ws, func(a, b ragplane.Worker) int { return strings.Compare(a.ID, b.ID) })
	var warnings []string
	seen := map[string]bool{}
	lbs := []*endpointv3.LbEndpoint{}
	for _, w := range ws {
		host, portText, err := net.SplitHostPort(w.Addr)
		port, perr := strconv.ParseUint(portText, 10, 16)
		switch {
		case w.ID == "":
			warnings = append(warnings, fmt.Sprintf("worker at %q skipped: no id", w.Addr))
			continue
		case seen[w.ID]:
			warnings = append(warnings, fmt.Sprintf("worker %q skipped: listed twice", w.ID))
			continue
		case err != nil || host == "" || perr != nil || port == 0:
			warnings = append(warnings, fmt.Sprintf("worker %q skipped: address %q is not host:port", w.ID, w.Addr))
			continue
		}
		seen[w.ID] = true
		lbs = append(lbs, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Protocol:      corev3.SocketAddress_TCP,
					Address:       host,
					PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
				}}},
			}},
			Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
				WorkerMetadataKey: {Fields: map[string]*structpb.Value{"worker_id": structpb.NewStringValue(w.ID)}},
			}},
		})
	}
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: cluster,
		Endpoints:   []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}},
	}, warnings
}

// jwks is the JWK Set document.
type jwks struct {
	Keys []JWK `json:"keys"`
}

// makeJWTProvider verifies tenant tokens against the published keys, inline so that verification
// never depends on the control plane being reachable. Keys that are not Ed25519 public keys are
// skipped with a warning; with no key left the JWKS is empty and every token fails (fail closed).
func makeJWTProvider(issuer, audience string, keys []JWK) (*jwtv3.JwtProvider, []string) {
	var warnings []string
	set := jwks{Keys: []JWK{}}
	seen := map[string]bool{}
	for _, k := range keys {
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		switch {
		case k.Kid == "" || seen[k.Kid]:
			warnings = append(warnings, fmt.Sprintf("key %q skipped: missing or duplicate kid", k.Kid))
			continue
		case k.Kty != "OKP" || k.Crv != "Ed25519" || err != nil || len(x) != 32:
			warnings = append(warnings, fmt.Sprintf("key %q skipped: not an Ed25519 public key", k.Kid))
			continue
		}
		seen[k.Kid] = true
		// alg and use are fixed by the key type; normalising them keeps a sloppy row usable.
		set.Keys = append(set.Keys, JWK{Kty: "OKP", Crv: "Ed25519", X: k.X, Kid: k.Kid, Alg: "EdDSA", Use: "sig"})
	}
	doc, _ := json.Marshal(set) // cannot fail: strings only
	return &jwtv3.JwtProvider{
		Issuer:    issuer,
		Audiences: []string{audience},
		JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{
			Specifier: &corev3.DataSource_InlineString{InlineString: string(doc)},
		}},
	}, warnings
}
