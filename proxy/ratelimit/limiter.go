package ratelimit

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/ragplane/ragplane"
)

// Scopes name the limit a Decision is about.
const (
	// ScopeSecond is requests_per_second with its burst.
	ScopeSecond = "second"
	// ScopeHour is queries_per_hour.
	ScopeHour = "hour"
)

// Config configures a Limiter. Zero fields get the defaults of GateConfig.
type Config struct {
	// Client is the Redis that all proxy replicas share. Required.
	Client redis.UniversalClient
	// Prefix starts every key (default "ragplane:rl:").
	Prefix string
	// Timeout bounds each Redis call (default 250ms). Allow makes one call.
	Timeout time.Duration
	// FailPolicy is what Allow does while Redis is away, for tenants whose Limits name no
	// RateLimitFailPolicy: ragplane.FailLocalShare (the default: each replica enforces its share
	// of the limits, see Replicas), ragplane.FailOpen (allow) or ragplane.FailClosed
	// (EUNAVAILABLE).
	FailPolicy string
	// Replicas is the number of proxy replicas (default 1). While Redis is away each replica
	// allows limit/Replicas, at least one request per burst.
	Replicas int
	// Now is the clock of the local fallback (default time.Now).
	Now func() time.Time
	// Logger receives a warning, at most one per 10 seconds, while Redis is away.
	Logger *slog.Logger
	// Registerer registers ragplane_proxy_ratelimit_fallback_total{scope}; nil registers nothing.
	Registerer prometheus.Registerer
}

// Decision is the outcome of Allow for the limit that binds: the one that refused the request,
// or, when both allowed it, the one with fewer requests remaining (the hour on a tie).
type Decision struct {
	// Allowed reports whether the request may proceed.
	Allowed bool
	// Limit is the most requests the binding limit allows at once: the burst for ScopeSecond,
	// queries_per_hour for ScopeHour (this replica's share of it while Redis is away).
	Limit int
	// Remaining is how many more requests the binding limit would allow right now.
	Remaining int
	// ResetAfter is the time until Remaining is back to Limit if no request comes.
	ResetAfter time.Duration
	// RetryAfter is the time until a refused request may succeed; 0 when Allowed.
	RetryAfter time.Duration
	// Scope is ScopeSecond or ScopeHour.
	Scope string
	// HourRemaining is how many more requests queries_per_hour allows right now, whichever limit
	// binds; -1 when no hourly limit was applied (rate limits not enforced).
	HourRemaining int
}

// Limiter applies a tenant's requests_per_second (with burst) and queries_per_hour limits,
// shared through Redis by every Limiter (and Gate) that uses the same Redis and Prefix. It is a
// Gate that takes no concurrency slots, and it is safe for concurrent use.
type Limiter struct {
	g *Gate
}

// New returns a Limiter. It panics if cfg.Client is nil.
func New(cfg Config) *Limiter {
	return &Limiter{g: newGate(GateConfig{Client: cfg.Client, RatePrefix: cfg.Prefix, Timeout: cfg.Timeout,
		RateFailPolicy: cfg.FailPolicy, Replicas: cfg.Replicas, Now: cfg.Now, Logger: cfg.Logger, Registerer: cfg.Registerer})}
}

// Allow counts one request of tenant against both of its limits and reports whether it may
// proceed. A request counts against a limit only if both allow it: the two are decided together,
// atomically, in one Redis call.
//
// Both limits are GCRA (a token bucket kept as one timestamp in Redis):
//
//   - requests_per_second: Burst requests at once, then one every 1/requests_per_second.
//     Fractional rates are exact: 0.5/s is one request every 2 s.
//   - queries_per_hour (N): a bucket of N refilled at N per hour, one every 3600/N s. A tenant
//     that has been idle may send exactly N queries at once; the N+1-th is refused until the
//     first refill. It is a rate, not a calendar window: in any hour at most N + (N-1) queries
//     pass (a full bucket spent, then its refills), and over a long run N per hour.
//
// Both are exact across replicas. A changed limit applies at once: what the tenant had used of
// the old bucket carries over in proportion.
//
// Errors: EUNAUTHORIZED for an empty tenant; EUNAVAILABLE when Redis is away and the fail policy
// is ragplane.FailClosed, or when ctx ends first; an internal error for limits that are not positive.
func (l *Limiter) Allow(ctx context.Context, tenant ragplane.TenantID, lim ragplane.Limits) (Decision, error) {
	d, _, err := l.g.admit(ctx, tenant, &lim, 0)
	return d, err
}
