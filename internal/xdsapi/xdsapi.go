// Package xdsapi is the resource contract between the control plane's xDS server
// (controlplane/xds) and the proxy's xDS client (proxy, proxy/xdsclient): the type URLs and
// resource names served, the tenant-policy encoding, how a bounded (partial) response is marked,
// and the gRPC message size limits both ends set. It is the one definition both import, so the
// two ends cannot drift apart.
package xdsapi

import (
	"strings"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// Type URLs served, one cache each on the control plane.
const (
	// TypeTenantPolicy carries one google.protobuf.Struct per tenant, named by tenant id, holding
	// the JSON view of ragplane.TenantPolicy (see EncodePolicy).
	TypeTenantPolicy = "type.googleapis.com/google.protobuf.Struct"
	// TypeRateLimit carries one ratelimit.config.ratelimit.v3.RateLimitConfig per tenant, named
	// RateLimitPrefix + tenant id, for stock Envoy's rate-limit service. Ragplane's proxy does not
	// subscribe to it: the tenant policies carry the same limits.
	TypeRateLimit = resource.RateLimitConfigType
	// TypeCluster carries the one EDS cluster DataplaneCluster.
	TypeCluster = resource.ClusterType
	// TypeEndpoint carries the ClusterLoadAssignment of DataplaneCluster: the live workers.
	TypeEndpoint = resource.EndpointType
	// TypeJWTProvider carries the one jwt_authn JwtProvider JWTProviderName with the JWKS inline.
	TypeJWTProvider = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtProvider"
)

// Resource names and rate-limit descriptor keys.
const (
	// DataplaneCluster names both the cluster and its load assignment.
	DataplaneCluster = "ragplane-dataplane"
	// JWTProviderName names the JwtProvider that verifies tenant tokens.
	JWTProviderName = "ragplane-tenants"
	// RateLimitPrefix prefixes the tenant id in a RateLimitConfig's name.
	RateLimitPrefix = "ratelimit/"
	// RateLimitDomain is the domain of every RateLimitConfig.
	RateLimitDomain = "ragplane"
	// TenantDescriptorKey is the descriptor key whose value is the tenant id; its limit is the
	// tenant's requests per second over all requests.
	TenantDescriptorKey = "tenant_id"
	// OperationDescriptorKey with value OperationQuery, nested under the tenant descriptor, carries
	// the tenant's queries per hour (Envoy: a generic_key action with descriptor_key "operation" on
	// the query route).
	OperationDescriptorKey = "operation"
	// OperationQuery is the OperationDescriptorKey value of query requests.
	OperationQuery = "query"
	// WorkerMetadataKey is the filter_metadata namespace of each endpoint; it holds "worker_id".
	WorkerMetadataKey = "ragplane"
)

// ProxyTypeURLs are the types Ragplane's proxy subscribes to, every resource of each.
var ProxyTypeURLs = []string{TypeTenantPolicy, TypeCluster, TypeEndpoint, TypeJWTProvider}

// Message size limits. gRPC refuses a message over the receiver's limit (4 MiB by default) and
// fails the whole stream with ResourceExhausted, so both ends set these explicitly and the
// server keeps every delta response far below them.
const (
	// MaxResponseResourceBytes bounds the encoded resources (and removed names) of one delta
	// response. A larger change is sent as several responses, each marked partial but the last.
	// 3 MiB keeps every response under gRPC's default 4 MiB receive limit (so a client that never
	// raised it still syncs) while needing few round trips: 100,000 tenant policies (about 570
	// bytes each) take 19 responses. Each response costs the control plane a pass over the whole
	// type (go-control-plane's LinearCache recomputes what the client lacks per request), so fewer,
	// larger responses sync a cold proxy faster: measured at 100,000 tenants, 1 MiB took 37 s,
	// 4 MiB 11 s.
	MaxResponseResourceBytes = 3 << 20
	// MaxPolicyResponseBytes is the bound for tenant policies, the one type whose size grows with
	// the tenant count. Only Ragplane proxies subscribe to it, and they accept MaxMessageBytes, so
	// its responses may be larger: 100,000 policies take 7 responses instead of 19, and each costs
	// the control plane a pass over every tenant.
	MaxPolicyResponseBytes = 8 << 20
	// MaxMessageBytes is the receive and send limit both ends set on the ADS connection.
	// Responses stay near MaxResponseResourceBytes; the largest message is a reconnecting
	// client's first request of a type, whose initial_resource_versions name every resource it
	// holds with a 64-character version (about 90 bytes per resource: 9 MB at 100,000 tenants).
	// 64 MiB leaves room for about 700,000 tenants.
	MaxMessageBytes = 64 << 20
	// MaxStateOfTheWorldBytes bounds a state-of-the-world response (rate-limit configs for
	// envoyproxy/ratelimit, which cannot take partial responses). A larger configuration is not
	// served: the control plane logs and counts it rather than failing the subscriber's stream.
	MaxStateOfTheWorldBytes = MaxMessageBytes - 1<<20
)

// PartialSuffix marks a bounded delta response that does not complete its type: the server
// appends it to system_version_info when changes were left out to keep the response under
// MaxResponseResourceBytes. The rest follows as soon as the client answers (ACK or NACK) the
// response. A client has the server's complete state of a type (the initial sync is over, or a
// resync after a reconnect is) once it has applied a response of that type without the marker.
// The server records an ACK of a partial response as progress only, never as the ACKed version.
const PartialSuffix = "+partial"

// MarkPartial returns version marked as the version of a partial response.
func MarkPartial(version string) string { return version + PartialSuffix }

// IsPartial reports whether a system_version_info marks a partial response.
func IsPartial(version string) bool { return strings.HasSuffix(version, PartialSuffix) }
