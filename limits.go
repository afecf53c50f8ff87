package ragplane

// Limits are a tenant's quotas and rate limits, resolved system -> plan -> tenant.
type Limits struct {
	// QueriesPerHour caps queries in a sliding hour.
	QueriesPerHour int `json:"queries_per_hour"`
	// RequestsPerSecond and Burst define the tenant's request rate (GCRA).
	RequestsPerSecond float64 `json:"requests_per_second"`
	Burst             int     `json:"burst"`
	// MaxConcurrentRequests caps requests in flight across all proxies.
	MaxConcurrentRequests int `json:"max_concurrent_requests"`
	// MaxTokensPerQuery caps the tokens of one answer.
	MaxTokensPerQuery int `json:"max_tokens_per_query"`
	// MaxDocuments and MaxStorageMB cap what the tenant stores.
	MaxDocuments int `json:"max_documents"`
	MaxStorageMB int `json:"max_storage_mb"`
	// MaxTopK caps top_k however it is set.
	MaxTopK int `json:"max_top_k"`
	// MaxModelTier is the most expensive model tier the tenant may use.
	MaxModelTier string `json:"max_model_tier"`
	// MaxRequestBytes caps a request body.
	MaxRequestBytes int `json:"max_request_bytes"`
	// MonthlyTokens caps the tokens used in a calendar month.
	MonthlyTokens int `json:"monthly_tokens"`
	// RateLimitFailPolicy and ConcurrencyFailPolicy say what a proxy does with the rate limits
	// (requests_per_second, burst, queries_per_hour) and with max_concurrent_requests while Redis,
	// where the proxy replicas share them, does not answer: FailLocalShare, FailOpen or FailClosed.
	// Empty (a policy from an older control plane) means the proxy's own default.
	RateLimitFailPolicy   string `json:"rate_limit_fail_policy"`
	ConcurrencyFailPolicy string `json:"concurrency_fail_policy"`
}

// Fail policies: what a proxy does with a tenant's shared limits while Redis is away.
const (
	// FailLocalShare enforces the limit in each proxy at its share of it: limit/N (at least 1)
	// with N proxy replicas (RAGPLANE_PROXY_REPLICAS). The default.
	FailLocalShare = "local_share"
	// FailOpen does not enforce the limit until Redis answers again.
	FailOpen = "fail_open"
	// FailClosed refuses the tenant's requests (503) until Redis answers again.
	FailClosed = "fail_closed"
)

// FailPolicies lists the valid fail policies.
var FailPolicies = []string{FailLocalShare, FailOpen, FailClosed}

var limitFields = []field{
	{Key: "queries_per_hour", Kind: kindInt, Min: 1, Max: 100_000_000, Doc: "Queries per hour."},
	{Key: "requests_per_second", Kind: kindFloat, Min: 0.01, Max: 100_000, Doc: "Sustained requests per second."},
	{Key: "burst", Kind: kindInt, Min: 1, Max: 100_000, Doc: "Requests allowed in a burst."},
	{Key: "max_concurrent_requests", Kind: kindInt, Min: 1, Max: 10_000, Doc: "Requests in flight."},
	{Key: "max_tokens_per_query", Kind: kindInt, Min: 1, Max: 1_000_000, Doc: "Tokens per answer."},
	{Key: "max_documents", Kind: kindInt, Min: 1, Max: 1_000_000_000, Doc: "Documents stored."},
	{Key: "max_storage_mb", Kind: kindInt, Min: 1, Max: 100_000_000, Doc: "Storage in MiB."},
	{Key: "max_top_k", Kind: kindInt, Min: 1, Max: 100, Doc: "Largest top_k."},
	{Key: "max_model_tier", Kind: kindEnum, Enum: modelTiers, Aliases: ModelTierAliases, Doc: "Most expensive model tier."},
	{Key: "max_request_bytes", Kind: kindInt, Min: 1024, Max: 1 << 30, Doc: "Largest request body in bytes."},
	{Key: "monthly_tokens", Kind: kindInt, Min: 1, Max: 1_000_000_000_000, Doc: "Tokens per calendar month."},
	{Key: "rate_limit_fail_policy", Kind: kindEnum, Enum: FailPolicies,
		Doc: "Rate limits while Redis is away: local_share (each proxy allows its 1/N), fail_open (not enforced) or fail_closed (503)."},
	{Key: "concurrency_fail_policy", Kind: kindEnum, Enum: FailPolicies,
		Doc: "max_concurrent_requests while Redis is away: local_share (each proxy allows its 1/N), fail_open (not enforced) or fail_closed (503)."},
}

// SystemLimits returns the built-in system default limits, the bottom layer of the cascade.
func SystemLimits() Overrides {
	return Overrides{
		"queries_per_hour":        int64(1000),
		"requests_per_second":     5.0,
		"burst":                   int64(10),
		"max_concurrent_requests": int64(5),
		"max_tokens_per_query":    int64(2048),
		"max_documents":           int64(1000),
		"max_storage_mb":          int64(100),
		"max_top_k":               int64(20),
		"max_model_tier":          "standard",
		"max_request_bytes":       int64(10 << 20),
		"monthly_tokens":          int64(1_000_000),
		"rate_limit_fail_policy":  FailLocalShare,
		"concurrency_fail_policy": FailLocalShare,
	}
}

// ValidateLimits checks a layer of limit overrides: known keys, types and bounds. Errors are
// EINVALID naming "<prefix>.<key>".
func ValidateLimits(prefix string, o Overrides) error {
	return validateOverrides(prefix, limitFields, o, false)
}
