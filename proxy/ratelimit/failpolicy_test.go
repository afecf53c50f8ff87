package ratelimit_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/internal/clocktest"
	"github.com/ragplane/ragplane/proxy/ratelimit"
)

// scriptCounter counts the admission scripts a client sends (not the probes' PINGs).
type scriptCounter struct{ scripts atomic.Int64 }

func (c *scriptCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *scriptCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if n := cmd.Name(); n == "evalsha" || n == "eval" {
			c.scripts.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (c *scriptCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// GaugeValue returns the value of gauge name in g, -1 if absent.
func GaugeValue(tb testing.TB, g prometheus.Gatherer, name string) float64 {
	tb.Helper()
	families, err := g.Gather()
	if err != nil {
		tb.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) > 0 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

// While Redis is away every tenant is still served, each by its own fail policies: by default
// within this replica's share of each limit (of two replicas here), not limited at all when the
// policy is fail_open, refused with EUNAVAILABLE when it is fail_closed. A policy that names
// nothing (from an older control plane) takes the proxy's default.
func TestGateFailPolicies(t *testing.T) {
	t.Parallel()
	const attempts = 12
	rateOnly := ragplane.Limits{RequestsPerSecond: 1, Burst: 10, QueriesPerHour: 100000, MaxConcurrentRequests: 100}
	capOnly := ragplane.Limits{RequestsPerSecond: 1000, Burst: 1000, QueriesPerHour: 100000, MaxConcurrentRequests: 4}
	with := func(l ragplane.Limits, rate, conc string) ragplane.Limits {
		l.RateLimitFailPolicy, l.ConcurrencyFailPolicy = rate, conc
		return l
	}
	tests := []struct {
		name          string
		gateDefault   string // GateConfig's policies for tenants that name none
		given         ragplane.Limits
		expectAdmit   int    // of attempts, each holding its slot
		expectRefusal string // how the first refused one is refused: "rate" (a decision) or an error code
		expectLimit   string // the label of ragplane_proxy_redis_fallback_decisions_total
		expectPolicy  string
	}{
		{name: "rate, local share", given: with(rateOnly, ragplane.FailLocalShare, ragplane.FailLocalShare),
			expectAdmit: 5, expectRefusal: "rate", expectLimit: "rate", expectPolicy: ragplane.FailLocalShare},
		{name: "rate, fail open", given: with(rateOnly, ragplane.FailOpen, ragplane.FailLocalShare),
			expectAdmit: attempts, expectLimit: "rate", expectPolicy: ragplane.FailOpen},
		{name: "rate, fail closed", given: with(rateOnly, ragplane.FailClosed, ragplane.FailLocalShare),
			expectAdmit: 0, expectRefusal: ragplane.EUNAVAILABLE, expectLimit: "rate", expectPolicy: ragplane.FailClosed},
		{name: "cap, local share", given: with(capOnly, ragplane.FailLocalShare, ragplane.FailLocalShare),
			expectAdmit: 2, expectRefusal: ragplane.ERATELIMITED, expectLimit: "concurrency", expectPolicy: ragplane.FailLocalShare},
		{name: "cap, fail open", given: with(capOnly, ragplane.FailLocalShare, ragplane.FailOpen),
			expectAdmit: attempts, expectLimit: "concurrency", expectPolicy: ragplane.FailOpen},
		{name: "cap, fail closed", given: with(capOnly, ragplane.FailLocalShare, ragplane.FailClosed),
			expectAdmit: 0, expectRefusal: ragplane.EUNAVAILABLE, expectLimit: "concurrency", expectPolicy: ragplane.FailClosed},
		{name: "no policy: the cap keeps its share by default", given: capOnly,
			expectAdmit: 2, expectRefusal: ragplane.ERATELIMITED, expectLimit: "concurrency", expectPolicy: ragplane.FailLocalShare},
		{name: "no policy: the proxy's default", gateDefault: ragplane.FailClosed, given: capOnly,
			expectAdmit: 0, expectRefusal: ragplane.EUNAVAILABLE, expectLimit: "rate", expectPolicy: ragplane.FailClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			real := MustRedis(t)
			rdb, setUp := MustSwitchableRedis(t, real)
			reg := prometheus.NewRegistry()
			clock := clocktest.New(time.Now()) // the local shares do not refill during the test
			g := MustGate(t, ratelimit.GateConfig{Client: rdb, RatePrefix: MustPrefix(t, real), LeasePrefix: MustPrefix(t, real),
				OutageAfter: 1, ProbeInterval: time.Hour, Replicas: 2, Now: clock.Now, Registerer: reg,
				RateFailPolicy: tt.gateDefault, ConcurrencyFailPolicy: tt.gateDefault})
			setUp(false)
			admitted, refusal := 0, ""
			for range attempts {
				d, l, err := g.Admit(context.Background(), "acme_corp", tt.given)
				switch {
				case err != nil:
					if refusal == "" {
						refusal = ragplane.ErrorCode(err)
					}
				case !d.Allowed:
					if refusal == "" {
						refusal = "rate"
					}
				default:
					admitted++
					defer l.Done() // held to the end: the cap counts slots in use
				}
			}
			if admitted != tt.expectAdmit || refusal != tt.expectRefusal {
				t.Fatalf("admitted %d of %d, first refusal %q; want %d and %q", admitted, attempts, refusal, tt.expectAdmit, tt.expectRefusal)
			}
			if got := CounterValue(t, reg, "ragplane_proxy_redis_fallback_decisions_total", "limit", tt.expectLimit, "policy", tt.expectPolicy); got == 0 {
				t.Fatalf("no decision counted for limit=%s policy=%s", tt.expectLimit, tt.expectPolicy)
			}
		})
	}
}

// A Gate reports Redis away once an outage begins (for /readyz and ragplane_proxy_redis_up), and
// finds it back by itself, with no request needed, as soon as it answers again. During the outage
// requests do not call Redis: none waits for a timeout.
func TestGateRedisStatus(t *testing.T) {
	t.Parallel()
	real := MustRedis(t)
	rdb, setUp := MustSwitchableRedis(t, real)
	var count scriptCounter
	rdb.AddHook(&count)
	reg := prometheus.NewRegistry()
	g := MustGate(t, ratelimit.GateConfig{Client: rdb, RatePrefix: MustPrefix(t, real), LeasePrefix: MustPrefix(t, real),
		OutageAfter: 2, ProbeInterval: 5 * time.Millisecond, Registerer: reg})
	if st := g.Redis(); !st.Up || GaugeValue(t, reg, "ragplane_proxy_redis_up") != 1 {
		t.Fatalf("before the outage: %+v, redis_up %v", st, GaugeValue(t, reg, "ragplane_proxy_redis_up"))
	}
	_, l, err := g.Admit(context.Background(), "acme_corp", wide)
	if err != nil {
		t.Fatal(err)
	}
	MustRelease(t, l) // gone from Redis before the cut

	setUp(false)
	before := time.Now()
	for range 2 {
		if _, l, err := g.Admit(context.Background(), "acme_corp", wide); err != nil {
			t.Fatalf("admission while Redis is away: %v", err)
		} else {
			l.Done()
		}
	}
	st := g.Redis()
	if st.Up || st.Since.Before(before.Add(-time.Second)) || st.LastError == "" {
		t.Fatalf("after 2 failures: %+v, want down since the outage began, with the error", st)
	}
	if got := GaugeValue(t, reg, "ragplane_proxy_redis_up"); got != 0 {
		t.Fatalf("redis_up = %v during the outage", got)
	}
	scripts := count.scripts.Load()
	for range 50 {
		if _, l, err := g.Admit(context.Background(), "acme_corp", wide); err != nil {
			t.Fatalf("admission during the outage: %v", err)
		} else {
			l.Done()
		}
	}
	if got := count.scripts.Load() - scripts; got != 0 {
		t.Fatalf("%d admissions called Redis during the outage, want none (the probe loop pings it)", got)
	}

	setUp(true)
	Eventually(t, 10*time.Second, "Redis found back without any request", func() bool { return g.Redis().Up })
	if got := GaugeValue(t, reg, "ragplane_proxy_redis_up"); got != 1 {
		t.Fatalf("redis_up = %v after the outage", got)
	}
	_, l, err = g.Admit(context.Background(), "acme_corp", wide)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Done()
	if n := MustGateInFlight(t, g, "acme_corp"); n != 1 {
		t.Fatalf("InFlight = %d after the outage, want the one slot taken in Redis again", n)
	}
}
