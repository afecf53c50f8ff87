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
	"github.com/ragplane/ragplane/internal/xdsapi"
)

// Type URLs served, one LinearCache each. They are the contract of internal/xdsapi, which the
// proxy imports too; they are repeated here so that this package's users need not know it.
const (
	// TypeTenantPolicy carries one google.protobuf.Struct per tenant (xdsapi.EncodePolicy).
	TypeTenantPolicy = xdsapi.TypeTenantPolicy
	// TypeRateLimit carries one RateLimitConfig per tenant, named RateLimitPrefix + tenant id.
	TypeRateLimit = xdsapi.TypeRateLimit
	// TypeCluster carries the one EDS cluster DataplaneCluster.
	TypeCluster = xdsapi.TypeCluster
	// TypeEndpoint carries the ClusterLoadAssignment of DataplaneCluster: the live workers.
	TypeEndpoint = xdsapi.TypeEndpoint
	// TypeJWTProvider carries the one jwt_authn JwtProvider JWTProviderName with the JWKS inline.
	TypeJWTProvider = xdsapi.TypeJWTProvider
)

// Resource names and rate-limit descriptor keys (see internal/xdsapi).
const (
	// DataplaneCluster names both the cluster and its load assignment.
	DataplaneCluster = xdsapi.DataplaneCluster
	// JWTProviderName names the JwtProvider that verifies tenant tokens.
	JWTProviderName = xdsapi.JWTProviderName
	// RateLimitPrefix prefixes the tenant id in a RateLimitConfig's name.
	RateLimitPrefix = xdsapi.RateLimitPrefix
	// RateLimitDomain is the domain of every RateLimitConfig.
	RateLimitDomain = xdsapi.RateLimitDomain
	// TenantDescriptorKey is the descriptor key whose value is the tenant id.
	TenantDescriptorKey = xdsapi.TenantDescriptorKey
	// OperationDescriptorKey with value OperationQuery carries the tenant's queries per hour.
	OperationDescriptorKey = xdsapi.OperationDescriptorKey
	// OperationQuery is the OperationDescriptorKey value of query requests.
	OperationQuery = xdsapi.OperationQuery
	// WorkerMetadataKey is the filter_metadata namespace of each endpoint; it holds "worker_id".
	WorkerMetadataKey = xdsapi.WorkerMetadataKey
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
