package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/go-redis/redis_rate/v10"
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

// Defaults for zero Config fields.
const (
	DefaultPrefix  = "ragplane:rl:"
	DefaultTimeout = 50 * time.Millisecond
)

// Config configures a Limiter. Zero fields get the defaults given.
type Config struct {
	// Client is the Redis that all proxy replicas share. Required.
	Client redis.UniversalClient
	// Prefix starts every key (default "ragplane:rl:"). redis_rate puts "rate:" in front of it.
	Prefix string
	// Timeout bounds each Redis call (default 50ms); a slower call counts as Redis being away.
	// Allow makes one call, two when the first limit allows, three when the hour then refuses.
	Timeout time.Duration
	// FailClosed makes Allow return EUNAVAILABLE while Redis is away. By default (false) rate
	// limits fail open: each replica then enforces its share of the limits (see Replicas) in
	// process, so an outage of Redis neither stops the service nor lifts the limits.
	FailClosed bool
	// Replicas is the number of proxy replicas (default 1). While Redis is away each replica
	// allows limit/Replicas, at least one request per burst.
	Replicas int
	// Logger receives a warning, at most one per 10 seconds, while Redis is away. After a failed
	// call, Redis is left alone for a second (decisions are local, or refused if FailClosed).
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
}

// Limiter applies a tenant's requests_per_second (with burst) and queries_per_hour limits,
// shared through Redis by every Limiter that uses the same Redis and Prefix. It is safe for
// concurrent use.
type Limiter struct {
	gcra       *redis_rate.Limiter
	prefix     string
	timeout    time.Duration
	failClosed bool
	local      *localShares
	logger     *slog.Logger
	warn       throttle
	outage     outage
	fallbacks  *prometheus.CounterVec
}

// New returns a Limiter. It panics if cfg.Client is nil.
func New(cfg Config) *Limiter {
	if cfg.Client == nil {
		panic("ratelimit: Config.Client is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Replicas < 1 {
		cfg.Replicas = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Limiter{
		gcra:       redis_rate.NewLimiter(cfg.Client),
		prefix:     cfg.Prefix,
		timeout:    cfg.Timeout,
		failClosed: cfg.FailClosed,
		local:      newLocalShares(cfg.Replicas),
		logger:     cfg.Logger.With("component", "ratelimit"),
		warn:       throttle{interval: warnInterval},
		fallbacks: register(cfg.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ragplane_proxy_ratelimit_fallback_total",
			Help: "Rate-limit decisions taken by the local fallback limiter because Redis was unavailable, by scope (second, hour).",
		}, []string{"scope"})),
	}
}

// Allow counts one request of tenant against both of its limits and reports whether it may
// proceed. A request counts against a limit only if it is allowed: one refused by the hourly
// limit gives back what it took from the per-second one, and one refused per second never
// reaches the hourly one.
//
// Both limits are GCRA (a token bucket kept as one timestamp in Redis, updated atomically by a
// Lua script, so that all replicas share it exactly):
//
//   - requests_per_second: Burst requests at once, then one every 1/requests_per_second.
//     Fractional rates are exact: 0.5/s is 5 requests per 10 s, one every 2 s.
//   - queries_per_hour (N): a bucket of N refilled at N per hour, one every 3600/N s. A tenant
//     that has been idle may send exactly N queries at once; the N+1-th is refused until the
//     first refill. It is a rate, not a calendar window: in any hour at most N + (N-1) queries
//     pass (a full bucket spent, then its refills), and over a long run N per hour.
//
// Each limit is exact across replicas; the pair is two Redis calls, not one transaction, so a
// request the hour refuses holds a per-second token for the moment before it gives it back.
//
// Errors: EUNAUTHORIZED for an empty tenant; EUNAVAILABLE when Redis is away and FailClosed is
// set, or when ctx ends first; an internal error for limits that are not positive.
func (l *Limiter) Allow(ctx context.Context, tenant ragplane.TenantID, lim ragplane.Limits) (Decision, error) {
	if tenant == "" {
		return Decision{}, ragplane.Errorf(ragplane.EUNAUTHORIZED, "No verified tenant in the request.")
	}
	if err := tenant.Validate(); err != nil {
		return Decision{}, fmt.Errorf("ratelimit: malformed tenant id %q", tenant)
	}
	rps := lim.RequestsPerSecond
	if !(rps > 0) || math.IsInf(rps, 0) || lim.Burst < 1 || lim.QueriesPerHour < 1 {
		return Decision{}, fmt.Errorf("ratelimit: tenant %s: limits must be positive (requests_per_second %v, burst %d, queries_per_hour %d)",
			tenant, rps, lim.Burst, lim.QueriesPerHour)
	}
	// The keys name the limit they count against: GCRA's stored state is a time computed with the
	// old rate, so a raised limit would otherwise keep refusing until that time passed. A changed
	// limit starts a fresh bucket (and the old key expires on its own).
	sg := perSecond(rps, lim.Burst)
	second := spec{
		scope:     ScopeSecond,
		key:       fmt.Sprintf("%s{%s}:rps:%d/%d/%d", l.prefix, tenant, sg.Rate, sg.Period.Milliseconds(), sg.Burst),
		gcra:      sg,
		perSecond: rps,
	}
	hour := spec{
		scope:     ScopeHour,
		key:       fmt.Sprintf("%s{%s}:qph:%d", l.prefix, tenant, lim.QueriesPerHour),
		gcra:      redis_rate.Limit{Rate: lim.QueriesPerHour, Burst: lim.QueriesPerHour, Period: time.Hour},
		perSecond: float64(lim.QueriesPerHour) / 3600,
	}

	// The per-second limit goes first: it refuses most of a flood, and a refusal there leaves
	// the hourly budget untouched. Once Redis has failed, the hour is decided locally at once
	// rather than after a second timeout.
	ds, undo, down, err := l.check(ctx, tenant, second, false)
	if err != nil || !ds.Allowed {
		return ds, err
	}
	dh, _, _, err := l.check(ctx, tenant, hour, down)
	if err != nil {
		undo()
		return Decision{}, err
	}
	if !dh.Allowed {
		undo()
		return dh, nil
	}
	if dh.Remaining <= ds.Remaining {
		return dh, nil
	}
	return ds, nil
}

// spec is one limit of one tenant.
type spec struct {
	scope     string
	key       string
	gcra      redis_rate.Limit
	perSecond float64 // the same rate for the local fallback
}

// check applies one limit in Redis or, when Redis is away (or down is already known), in this
// replica's share. It returns the decision, a function that gives back the request it counted
// (for when the other limit refuses it), and whether Redis was found away.
func (l *Limiter) check(ctx context.Context, tenant ragplane.TenantID, s spec, down bool) (Decision, func(), bool, error) {
	err := errOutage
	if !down && !l.outage.active(time.Now()) {
		var res *redis_rate.Result
		res, err = bounded(ctx, l.timeout, func(ctx context.Context) (*redis_rate.Result, error) {
			return l.gcra.Allow(ctx, s.key, s.gcra)
		}, nil)
		if err == nil {
			return fromResult(s, res), func() { l.refund(ctx, s) }, false, nil
		}
		if ctx.Err() != nil {
			return Decision{}, nil, true, fmt.Errorf("ratelimit: %w: %w",
				ctx.Err(), ragplane.Errorf(ragplane.EUNAVAILABLE, "The request ended before its rate limit was checked."))
		}
		l.outage.begin(time.Now())
		if l.warn.ok(time.Now()) {
			l.logger.Warn("redis unavailable", "scope", s.scope, "fail_closed", l.failClosed, "error", err)
		}
	}
	if l.failClosed {
		return Decision{}, nil, true, fmt.Errorf("ratelimit: redis: %w: %w",
			err, ragplane.Errorf(ragplane.EUNAVAILABLE, "Rate limiting is unavailable; retry shortly."))
	}
	l.fallbacks.WithLabelValues(s.scope).Inc()
	d, undo := l.local.take(tenant, s, time.Now())
	return d, undo, true, nil
}

// refund gives back one request to a limit. redis_rate has no refund, but a cost of -1 moves the
// bucket's timestamp back by one emission interval, and its clamp to "now" keeps a full bucket
// from overflowing. A failed refund only costs the tenant one request until the next refill.
func (l *Limiter) refund(ctx context.Context, s spec) {
	_, err := bounded(context.WithoutCancel(ctx), l.timeout, func(ctx context.Context) (*redis_rate.Result, error) {
		return l.gcra.AllowN(ctx, s.key, s.gcra, -1)
	}, nil)
	if err != nil {
		l.logger.Debug("rate limit refund failed", "scope", s.scope, "error", err)
	}
}

func fromResult(s spec, r *redis_rate.Result) Decision {
	d := Decision{
		Allowed:    r.Allowed > 0,
		Limit:      s.gcra.Burst,
		Remaining:  max(0, r.Remaining),
		ResetAfter: max(0, r.ResetAfter),
		Scope:      s.scope,
	}
	if !d.Allowed {
		d.RetryAfter = max(0, r.RetryAfter)
	}
	return d
}

// perSecond expresses rps as whole requests per period, 1 s to 1000 s, so that GCRA's emission
// interval (period/rate) is exact for rates with up to three decimals: 0.5/s becomes 5 per 10 s.
// Other rates become one request per 1/rps, rounded to the nanosecond.
func perSecond(rps float64, burst int) redis_rate.Limit {
	for period := time.Second; period <= 1000*time.Second; period *= 10 {
		n := rps * period.Seconds()
		if r := math.Round(n); r >= 1 && math.Abs(n-r) <= 1e-9*r {
			return redis_rate.Limit{Rate: int(r), Burst: burst, Period: period}
		}
	}
	return redis_rate.Limit{Rate: 1, Burst: burst, Period: time.Duration(float64(time.Second) / rps)}
}
