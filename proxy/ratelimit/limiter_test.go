package ratelimit_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/internal/clocktest"
	"github.com/ragplane/ragplane/proxy/ratelimit"
)

// MustLimiter returns a Limiter on rdb under a fresh prefix. It fails closed and allows Redis a
// generous timeout, so that a slow test machine never silently turns a test into a fallback test.
func MustLimiter(tb testing.TB, rdb *redis.Client) *ratelimit.Limiter {
	tb.Helper()
	return ratelimit.New(ratelimit.Config{Client: rdb, Prefix: MustPrefix(tb, rdb), Timeout: 2 * time.Second, FailPolicy: ragplane.FailClosed})
}

// MustAllow calls Allow and fails the test on error.
func MustAllow(tb testing.TB, l *ratelimit.Limiter, tenant ragplane.TenantID, lim ragplane.Limits) ratelimit.Decision {
	tb.Helper()
	d, err := l.Allow(context.Background(), tenant, lim)
	if err != nil {
		tb.Fatalf("Allow(%s): %v", tenant, err)
	}
	return d
}

// MustAllowN calls Allow n times and returns how many were allowed and the last decision.
func MustAllowN(tb testing.TB, l *ratelimit.Limiter, tenant ragplane.TenantID, lim ragplane.Limits, n int) (int, ratelimit.Decision) {
	tb.Helper()
	allowed := 0
	var d ratelimit.Decision
	for range n {
		if d = MustAllow(tb, l, tenant, lim); d.Allowed {
			allowed++
		}
	}
	return allowed, d
}

func TestLimiterPerSecond(t *testing.T) {
	t.Parallel()
	rdb := MustRedis(t)
	tests := []struct {
		name  string
		given ragplane.Limits
		// expect: Burst requests pass, the next is refused with 0 < RetryAfter <= maxRetry;
		// when refill is set, one more passes after waiting RetryAfter.
		maxRetry, minRetry time.Duration
		refill             bool
	}{
		{name: "burst then refusal", given: ragplane.Limits{RequestsPerSecond: 2, Burst: 5, QueriesPerHour: 1000},
			minRetry: 300 * time.Millisecond, maxRetry: 500 * time.Millisecond},
		{name: "fractional rate is exact", given: ragplane.Limits{RequestsPerSecond: 0.5, Burst: 2, QueriesPerHour: 1000},
			minRetry: 1500 * time.Millisecond, maxRetry: 2 * time.Second},
		{name: "refills after the emission interval", given: ragplane.Limits{RequestsPerSecond: 10, Burst: 3, QueriesPerHour: 1000},
			maxRetry: 100 * time.Millisecond, refill: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := MustLimiter(t, rdb)
			allowed, _ := MustAllowN(t, l, "acme_corp", tt.given, tt.given.Burst)
			if allowed != tt.given.Burst {
				t.Fatalf("allowed %d of the burst, want %d", allowed, tt.given.Burst)
			}
			d := MustAllow(t, l, "acme_corp", tt.given)
			if d.Allowed || d.Scope != ratelimit.ScopeSecond || d.Remaining != 0 || d.Limit != tt.given.Burst {
				t.Fatalf("request after the burst: %+v, want refused, scope second, remaining 0, limit %d", d, tt.given.Burst)
			}
			if d.RetryAfter <= tt.minRetry || d.RetryAfter > tt.maxRetry {
				t.Fatalf("RetryAfter = %v, want in (%v, %v]", d.RetryAfter, tt.minRetry, tt.maxRetry)
			}
			if tt.refill {
				time.Sleep(d.RetryAfter + 10*time.Millisecond)
				if d := MustAllow(t, l, "acme_corp", tt.given); !d.Allowed {
					t.Fatalf("after RetryAfter: %+v, want allowed", d)
				}
			}
		})
	}
}

func TestLimiterSharedAcrossInstances(t *testing.T) {
	t.Parallel()
	rdb := MustRedis(t)
	tests := []struct {
		name        string
		given       ragplane.Limits
		expectN     int
		expectScope string
	}{
		{name: "per second", given: ragplane.Limits{RequestsPerSecond: 0.5, Burst: 5, QueriesPerHour: 1000}, expectN: 5, expectScope: ratelimit.ScopeSecond},
		{name: "per hour", given: ragplane.Limits{RequestsPerSecond: 1000, Burst: 1000, QueriesPerHour: 7}, expectN: 7, expectScope: ratelimit.ScopeHour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			prefix := MustPrefix(t, rdb)
			a := ratelimit.New(ratelimit.Config{Client: rdb, Prefix: prefix, Timeout: 2 * time.Second, FailPolicy: ragplane.FailClosed})
			b := ratelimit.New(ratelimit.Config{Client: rdb, Prefix: prefix, Timeout: 2 * time.Second, FailPolicy: ragplane.FailClosed})
			allowed := 0
			for i := range tt.expectN {
				l := a
				if i%2 == 1 {
					l = b
				}
				if MustAllow(t, l, "acme_corp", tt.given).Allowed {
					allowed++
				}
			}
			if allowed != tt.expectN {
				t.Fatalf("allowed %d across two instances, want %d", allowed, tt.expectN)
			}
			for name, l := range map[string]*ratelimit.Limiter{"a": a, "b": b} {
				if d := MustAllow(t, l, "acme_corp", tt.given); d.Allowed || d.Scope != tt.expectScope {
					t.Fatalf("request %d on instance %s: %+v, want refused by %s", tt.expectN+1, name, d, tt.expectScope)
				}
			}
			// Another tenant's budget is its own.
			if d := MustAllow(t, a, "globex", tt.given); !d.Allowed {
				t.Fatalf("other tenant: %+v, want allowed", d)
			}
		})
	}
}

func TestLimiterQueriesPerHour(t *testing.T) {
	t.Parallel()
	rdb := MustRedis(t)
	for _, n := range []int{1, 3, 50} {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			l := MustLimiter(t, rdb)
			// Two per-second tokens are left over after the hour's budget: if refused requests
			// kept what they took from the per-second bucket, the third refusal would be per second.
			given := ragplane.Limits{RequestsPerSecond: 1, Burst: n + 2, QueriesPerHour: n}
			allowed, _ := MustAllowN(t, l, "acme_corp", given, n)
			if allowed != n {
				t.Fatalf("allowed %d, want %d", allowed, n)
			}
			interval := time.Hour / time.Duration(n)
			for i := range 5 {
				d := MustAllow(t, l, "acme_corp", given)
				if d.Allowed || d.Scope != ratelimit.ScopeHour || d.Limit != n || d.Remaining != 0 {
					t.Fatalf("request %d: %+v, want refused by the hour, limit %d", n+1+i, d, n)
				}
				if d.RetryAfter <= interval-time.Minute || d.RetryAfter > interval {
					t.Fatalf("RetryAfter = %v, want about %v (one emission interval)", d.RetryAfter, interval)
				}
			}
		})
	}
}

func TestLimiterBindingLimit(t *testing.T) {
	t.Parallel()
	rdb := MustRedis(t)
	tests := []struct {
		name   string
		given  ragplane.Limits
		expect ratelimit.Decision
	}{
		{name: "second binds", given: ragplane.Limits{RequestsPerSecond: 1, Burst: 3, QueriesPerHour: 100},
			expect: ratelimit.Decision{Allowed: true, Limit: 3, Remaining: 2, Scope: ratelimit.ScopeSecond, HourRemaining: 99}},
		{name: "hour binds", given: ragplane.Limits{RequestsPerSecond: 1, Burst: 10, QueriesPerHour: 2},
			expect: ratelimit.Decision{Allowed: true, Limit: 2, Remaining: 1, Scope: ratelimit.ScopeHour, HourRemaining: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := MustAllow(t, MustLimiter(t, rdb), "acme_corp", tt.given)
			if d.ResetAfter <= 0 || d.RetryAfter != 0 {
				t.Fatalf("decision %+v: want ResetAfter > 0 and RetryAfter 0", d)
			}
			d.ResetAfter = 0
			if d != tt.expect {
				t.Fatalf("decision = %+v, want %+v", d, tt.expect)
			}
		})
	}
}

func TestLimiterKeysCarryTenantAndExpire(t *testing.T) {
	t.Parallel()
	rdb := MustRedis(t)
	prefix := MustPrefix(t, rdb)
	l := ratelimit.New(ratelimit.Config{Client: rdb, Prefix: prefix, Timeout: 2 * time.Second, FailPolicy: ragplane.FailClosed})
	MustAllow(t, l, "acme_corp", ragplane.Limits{RequestsPerSecond: 5, Burst: 10, QueriesPerHour: 1000})
	// The keys name the tenant (a Redis Cluster hash tag), never the limit: a changed limit
	// rescales the same bucket instead of starting a fresh one.
	for _, key := range []string{prefix + "{acme_corp}:rps", prefix + "{acme_corp}:qph"} {
		ttl, err := rdb.PTTL(context.Background(), key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 || ttl > time.Hour {
			t.Errorf("TTL of %s = %v, want (0, 1h]", key, ttl)
		}
	}
}

// A raised limit applies at once, even right after the old one refused.
func TestLimiterRaisedLimitAppliesAtOnce(t *testing.T) {
	t.Parallel()
	rdb := MustRedis(t)
	l := ratelimit.New(ratelimit.Config{Client: rdb, Prefix: MustPrefix(t, rdb), Timeout: 2 * time.Second, FailPolicy: ragplane.FailClosed})
	tight := ragplane.Limits{RequestsPerSecond: 0.1, Burst: 1, QueriesPerHour: 1000}
	MustAllow(t, l, "acme_corp", tight)
	if d, err := l.Allow(context.Background(), "acme_corp", tight); err != nil || d.Allowed {
		t.Fatalf("second request under the tight limit: %+v %v", d, err)
	}
	loose := ragplane.Limits{RequestsPerSecond: 100, Burst: 50, QueriesPerHour: 1000}
	if d, err := l.Allow(context.Background(), "acme_corp", loose); err != nil || !d.Allowed {
		t.Fatalf("first request under the raised limit: %+v %v", d, err)
	}
}

func TestLimiterFailOpen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		given       ragplane.Limits
		expectN     int // this replica's share, of two
		expectScope string
	}{
		{name: "per second share", given: ragplane.Limits{RequestsPerSecond: 0.5, Burst: 10, QueriesPerHour: 1000}, expectN: 5, expectScope: ratelimit.ScopeSecond},
		{name: "per hour share", given: ragplane.Limits{RequestsPerSecond: 1000, Burst: 1000, QueriesPerHour: 6}, expectN: 3, expectScope: ratelimit.ScopeHour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			clock := clocktest.New(time.Now())
			l := ratelimit.New(ratelimit.Config{Client: DeadRedis(t), Replicas: 2, Registerer: reg, Now: clock.Now})
			allowed, d := MustAllowN(t, l, "acme_corp", tt.given, tt.expectN+1)
			if allowed != tt.expectN {
				t.Fatalf("allowed %d, want this replica's share %d", allowed, tt.expectN)
			}
			if d.Allowed || d.Scope != tt.expectScope || d.Limit != tt.expectN || d.RetryAfter <= 0 {
				t.Fatalf("last decision %+v, want refused by %s with limit %d", d, tt.expectScope, tt.expectN)
			}
			if got := CounterValue(t, reg, "ragplane_proxy_ratelimit_fallback_total", "scope", tt.expectScope); got != float64(tt.expectN+1) {
				t.Fatalf("fallback_total{scope=%q} = %v, want %d", tt.expectScope, got, tt.expectN+1)
			}
			// The share refills on the local clock: once RetryAfter has passed, one more is allowed.
			clock.Advance(d.RetryAfter)
			if d := MustAllow(t, l, "acme_corp", tt.given); !d.Allowed {
				t.Fatalf("after RetryAfter on the local clock: %+v, want allowed", d)
			}
		})
	}
}

func TestLimiterErrors(t *testing.T) {
	t.Parallel()
	valid := ragplane.Limits{RequestsPerSecond: 1, Burst: 1, QueriesPerHour: 1}
	tests := []struct {
		name   string
		given  ratelimit.Config
		when   ragplane.TenantID
		limits ragplane.Limits
		expect string
	}{
		{name: "redis away, fail closed", given: ratelimit.Config{FailPolicy: ragplane.FailClosed}, when: "acme_corp", limits: valid, expect: ragplane.EUNAVAILABLE},
		{name: "no tenant", when: "", limits: valid, expect: ragplane.EUNAUTHORIZED},
		{name: "malformed tenant", when: "Acme}{x", limits: valid, expect: ragplane.EINTERNAL},
		{name: "zero limits", when: "acme_corp", limits: ragplane.Limits{}, expect: ragplane.EINTERNAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.given.Client = DeadRedis(t)
			_, err := ratelimit.New(tt.given).Allow(context.Background(), tt.when, tt.limits)
			AssertCode(t, err, tt.expect)
		})
	}
}

func TestHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		given  ratelimit.Decision
		expect map[string]string
	}{
		{name: "allowed",
			given:  ratelimit.Decision{Allowed: true, Limit: 10, Remaining: 7, ResetAfter: 1500 * time.Millisecond, Scope: ratelimit.ScopeSecond},
			expect: map[string]string{"RateLimit-Limit": "10", "RateLimit-Remaining": "7", "RateLimit-Reset": "2", "Retry-After": ""}},
		{name: "refused by the hour",
			given:  ratelimit.Decision{Limit: 1000, ResetAfter: time.Hour, RetryAfter: 3600 * time.Millisecond, Scope: ratelimit.ScopeHour},
			expect: map[string]string{"RateLimit-Limit": "1000", "RateLimit-Remaining": "0", "RateLimit-Reset": "3600", "Retry-After": "4"}},
		{name: "retry after rounds up to a second",
			given:  ratelimit.Decision{Limit: 5, ResetAfter: 40 * time.Millisecond, RetryAfter: 40 * time.Millisecond, Scope: ratelimit.ScopeSecond},
			expect: map[string]string{"RateLimit-Limit": "5", "RateLimit-Remaining": "0", "RateLimit-Reset": "1", "Retry-After": "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := ratelimit.Headers(tt.given)
			for name, want := range tt.expect {
				if got := h.Get(name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

func TestLimiterReturnsToRedisAfterOutage(t *testing.T) {
	t.Parallel()
	real := MustRedis(t)
	rdb, setUp := MustSwitchableRedis(t, real)
	reg := prometheus.NewRegistry()
	l := ratelimit.New(ratelimit.Config{Client: rdb, Prefix: MustPrefix(t, real), Timeout: 2 * time.Second, Registerer: reg})
	given := ragplane.Limits{RequestsPerSecond: 0.5, Burst: 3, QueriesPerHour: 1000}
	fallbacks := func() float64 {
		return CounterValue(t, reg, "ragplane_proxy_ratelimit_fallback_total", "scope", ratelimit.ScopeSecond)
	}

	MustAllow(t, l, "acme_corp", given) // 1 of 3 in Redis
	setUp(false)
	if d := MustAllow(t, l, "acme_corp", given); !d.Allowed || fallbacks() != 1 {
		t.Fatalf("during the outage: %+v, %v fallbacks; want allowed by the local share, 1 fallback", d, fallbacks())
	}
	setUp(true)
	// One failure is not an outage: the next request uses Redis again, whose bucket still holds
	// the two requests left from before the failure, and no more.
	allowed, d := MustAllowN(t, l, "acme_corp", given, 3)
	if allowed != 2 || d.Allowed || fallbacks() != 1 {
		t.Fatalf("after the outage: %d allowed, last %+v, %v fallbacks; want 2 allowed from Redis, no new fallback", allowed, d, fallbacks())
	}
}
