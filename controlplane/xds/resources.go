// Package xds serves the control plane's state to proxies over xDS (ADS, incremental and
// state-of-the-world) with github.com/envoyproxy/go-control-plane.
//
// It has two halves kept apart on purpose: Translate, a near-pure function from catalog state
// (tenant policies, live workers, JWT verification keys) to xDS resources, and Server, which holds
// one LinearCache per type URL behind a MuxCache and pushes only what changed between two
// translations. The resource contract below is what the proxy subscribes to; it is also shaped so
// that a stock Envoy (clusters, endpoints, jwt_authn providers) and envoyproxy/ratelimit
// (RateLimitConfig) could consume the same stream.
package xds

import (
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// Type URLs served, one LinearCache each.
const (
	// TypeTenantPolicy carries one google.protobuf.Struct per tenant, named by tenant id, holding
	// the JSON view of ragplane.TenantPolicy: tenant_id, status, plan, config_version and limits
	// {queries_per_hour, requests_per_second, burst, max_concurrent_requests, max_request_bytes,
	// max_tokens_per_query, max_documents, max_storage_mb, max_top_k, max_model_tier,
	// monthly_tokens}.
	TypeTenantPolicy = "type.googleapis.com/google.protobuf.Struct"
	// TypeRateLimit carries one ratelimit.config.ratelimit.v3.RateLimitConfig per tenant, named
	// RateLimitPrefix + tenant id.
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

// typeOrder lists every served type URL in push order: Envoy wants a cluster before its
// endpoints (make before break), and the policies before the limits that refer to them.
var typeOrder = []string{TypeTenantPolicy, TypeRateLimit, TypeCluster, TypeEndpoint, TypeJWTProvider}

// TypeURLs returns every type URL the server serves, in the order updates are pushed.
func TypeURLs() []string { return append([]string(nil), typeOrder...) }

// typeLabel is the bounded metric label for a type URL.
func typeLabel(typeURL string) string {
	switch typeURL {
	case TypeTenantPolicy:
		return "tenant_policy"
	case TypeRateLimit:
		return "rate_limit"
	case TypeCluster:
		return "cluster"
	case TypeEndpoint:
		return "endpoint"
	case TypeJWTProvider:
		return "jwt_provider"
	}
	return "other"
}
