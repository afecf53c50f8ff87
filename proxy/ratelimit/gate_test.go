package ratelimit_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/proxy/ratelimit"
)

// MustDirectRedis returns a client of the local stack's Redis that applies context deadlines to
// its sockets, as the proxy's does, so that a Gate calls it on the caller's goroutine.
func MustDirectRedis(tb testing.TB, real *redis.Client) *redis.Client {
	tb.Helper()
	opt := *real.Options()
	opt.ContextTimeoutEnabled = true
	rdb := redis.NewClient(&opt)
	tb.Cleanup(func() { rdb.Close() })
	return rdb
}

// MustGate returns a Gate closed when the test ends. Without a Timeout it gets a generous one,
// so that a busy test machine does not turn slow replies into failures.
func MustGate(tb testing.TB, cfg ratelimit.GateConfig) *ratelimit.Gate {
	tb.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	g := ratelimit.NewGate(cfg)
	tb.Cleanup(func() { g.Close() })
	return g
}

// commandCounter counts the commands a client sends outside pipelines, and its pipelines; the
// handshake of a new connection (HELLO, CLIENT SETINFO) does not count.
type commandCounter struct{ single, pipelines atomic.Int64 }

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "hello", "client", "auth", "select":
		default:
			c.single.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.pipelines.Add(1)
		return next(ctx, cmds)
	}
}

var wide = ragplane.Limits{RequestsPerSecond: 1000, Burst: 1000, QueriesPerHour: 100000, MaxConcurrentRequests: 100}

// An admission is one Redis command for both rate limits and the slot; giving the slot back adds
// no command on the request path (it rides on the next admission or a background pipeline).
func TestGateAdmitsInOneRoundTrip(t *testing.T) {
	t.Parallel()
	real := MustRedis(t)
	rdb := MustDirectRedis(t, real)
	var count commandCounter
	rdb.AddHook(&count)
	g := MustGate(t, ratelimit.GateConfig{Client: rdb, RatePrefix: MustPrefix(t, real), LeasePrefix: MustPrefix(t, real)})

	_, l, err := g.Admit(context.Background(), "acme_corp", wide) // loads the script
	if err != nil {
		t.Fatal(err)
	}
	l.Done()
	before := count.single.Load()
	const n = 50
	for range n {
		d, l, err := g.Admit(context.Background(), "acme_corp", wide)
		if err != nil || !d.Allowed || l == nil {
			t.Fatalf("Admit: %+v %v %v", d, l, err)
		}
		l.Done()
	}
	if got := count.single.Load() - before; got != n {
		t.Fatalf("%d admissions sent %d single commands, want %d", n, got, n)
	}
}

// Two replicas admitting and releasing concurrently never exceed the cap nor the burst.
func TestGateExactAcrossReplicas(t *testing.T) {
	t.Parallel()
	real := MustRedis(t)
	rl, cc := MustPrefix(t, real), MustPrefix(t, real)
	gates := []*ratelimit.Gate{
		MustGate(t, ratelimit.GateConfig{Client: MustDirectRedis(t, real), RatePrefix: rl, LeasePrefix: cc}),
		MustGate(t, ratelimit.GateConfig{Client: MustDirectRedis(t, real), RatePrefix: rl, LeasePrefix: cc}),
	}
	// A burst of 200 with a negligible refill: exactly 200 admissions in all.
	lim := ragplane.Limits{RequestsPerSecond: 0.001, Burst: 200, QueriesPerHour: 100000, MaxConcurrentRequests: 4}
	var inFlight, peak, admitted atomic.Int64
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			g := gates[w%2]
			for range 40 {
				d, l, err := g.Admit(context.Background(), "acme_corp", lim)
				if err != nil {
					if !isCode(err, ragplane.ERATELIMITED) {
						t.Errorf("Admit: %v", err)
					}
					continue
				}
				if !d.Allowed {
					continue
				}
				admitted.Add(1)
				n := inFlight.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				time.Sleep(200 * time.Microsecond)
				inFlight.Add(-1)
				l.Done()
			}
		})
	}
	wg.Wait()
	if peak.Load() > 4 {
		t.Fatalf("peak in flight %d, cap 4", peak.Load())
	}
	// Requests refused by the cap consumed nothing, so the burst is spent only by admissions.
	d, l, err := gates[0].Admit(context.Background(), "acme_corp", lim)
	for err != nil && isCode(err, ragplane.ERATELIMITED) { // a slot still on its way back
		d, l, err = gates[0].Admit(context.Background(), "acme_corp", lim)
	}
	if err != nil {
		t.Fatal(err)
	}
	if d.Allowed {
		l.Done()
		admitted.Add(1)
	}
	if admitted.Load() > 200 {
		t.Fatalf("%d admitted, the burst is 200", admitted.Load())
	}
	if admitted.Load() < 200 && !d.Allowed {
		t.Fatalf("refused after %d admissions of a burst of 200: %+v", admitted.Load(), d)
	}
}

// A slot given back with Done is free for the tenant's very next request through the same
// replica, although its removal is asynchronous.
func TestGateReleasedSlotIsFreeForTheNextRequest(t *testing.T) {
	t.Parallel()
	real := MustRedis(t)
	g := MustGate(t, ratelimit.GateConfig{Client: MustDirectRedis(t, real), RatePrefix: MustPrefix(t, real), LeasePrefix: MustPrefix(t, real)})
	one := wide
	one.MaxConcurrentRequests = 1
	for i := range 200 {
		_, l, err := g.Admit(context.Background(), "acme_corp", one)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		l.Done()
	}
}

// A request refused by the cap names the cap and consumes none of the rate limits.
func TestGateConcurrencyRefusalConsumesNothing(t *testing.T) {
	t.Parallel()
	real := MustRedis(t)
	g := MustGate(t, ratelimit.GateConfig{Client: MustDirectRedis(t, real), RatePrefix: MustPrefix(t, real), LeasePrefix: MustPrefix(t, real)})
	lim := ragplane.Limits{RequestsPerSecond: 0.001, Burst: 3, QueriesPerHour: 1000, MaxConcurrentRequests: 1}
	_, held, err := g.Admit(context.Background(), "acme_corp", lim)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		_, _, err := g.Admit(context.Background(), "acme_corp", lim)
		AssertCode(t, err, ragplane.ERATELIMITED)
		var e *ragplane.Error
		if !errors.As(err, &e) || e.Field != "max_concurrent_requests" {
			t.Fatalf("refusal %v does not name max_concurrent_requests", err)
		}
	}
	held.Done()
	for i := range 2 {
		d, l, err := g.Admit(context.Background(), "acme_corp", lim)
		if err != nil || !d.Allowed {
			t.Fatalf("admission %d after the release: %+v %v (the refusals must not have spent the burst)", i+2, d, err)
		}
		l.Done()
	}
	if d, _, err := g.Admit(context.Background(), "acme_corp", lim); err != nil || d.Allowed || d.Scope != ratelimit.ScopeSecond {
		t.Fatalf("fourth admission: %+v %v, want refused by the burst of 3", d, err)
	}
}

// One slow reply is not an outage: the next request uses Redis again.
func TestGateSlowReplyIsNotAnOutage(t *testing.T) {
	t.Parallel()
	real := MustRedis(t)
	rdb, slowNext := MustDelayedRedis(t, real)
	reg := prometheus.NewRegistry()
	g := MustGate(t, ratelimit.GateConfig{Client: rdb, RatePrefix: MustPrefix(t, real), LeasePrefix: MustPrefix(t, real),
		Timeout: 500 * time.Millisecond, ConcurrencyFailPolicy: ragplane.FailClosed, Registerer: reg})
	if _, l, err := g.Admit(context.Background(), "acme_corp", wide); err != nil {
		t.Fatal(err)
	} else {
		MustRelease(t, l) // nothing else in flight: the next reply is the admission's
	}
	slowNext(time.Second)
	_, _, err := g.Admit(context.Background(), "acme_corp", wide)
	AssertCode(t, err, ragplane.EUNAVAILABLE) // the cap, asked to fail closed, refuses the request that timed out
	for i := range 20 {
		d, l, err := g.Admit(context.Background(), "acme_corp", wide)
		if err != nil || !d.Allowed {
			t.Fatalf("request %d after one slow reply: %+v %v", i, d, err)
		}
		l.Done()
	}
	if got := CounterValue(t, reg, "ragplane_proxy_ratelimit_fallback_total", "scope", ratelimit.ScopeSecond); got != 1 {
		t.Fatalf("%v local decisions, want 1 (only the request whose reply was slow)", got)
	}
}

// OutageAfter failures in a row declare an outage: calls then skip Redis.
func TestGateOutageSkipsRedis(t *testing.T) {
	t.Parallel()
	real := MustRedis(t)
	rdb, setUp := MustSwitchableRedis(t, real)
	var count commandCounter
	rdb.AddHook(&count)
	g := MustGate(t, ratelimit.GateConfig{Client: rdb, RatePrefix: MustPrefix(t, real), LeasePrefix: MustPrefix(t, real),
		OutageAfter: 3, ProbeInterval: time.Hour})
	setUp(false)
	for range 3 {
		if _, l, err := g.Admit(context.Background(), "acme_corp", wide); err != nil {
			t.Fatalf("fail-open admission: %v", err)
		} else {
			l.Done()
		}
	}
	tried := count.single.Load()
	if tried < 3 {
		t.Fatalf("%d calls before the outage, want at least 3", tried)
	}
	for range 10 {
		if _, l, err := g.Admit(context.Background(), "acme_corp", wide); err != nil {
			t.Fatalf("fail-open admission: %v", err)
		} else {
			l.Done()
		}
	}
	if got := count.single.Load(); got != tried {
		t.Fatalf("%d calls to Redis during the outage, want none", got-tried)
	}
}

// An outage ends as soon as Redis answers a probe: decisions are shared again.
func TestGateOutageEndsWhenRedisAnswers(t *testing.T) {
	t.Parallel()
	real := MustRedis(t)
	rdb, setUp := MustSwitchableRedis(t, real)
	reg := prometheus.NewRegistry()
	cc := MustPrefix(t, real)
	g := MustGate(t, ratelimit.GateConfig{Client: rdb, RatePrefix: MustPrefix(t, real), LeasePrefix: cc,
		OutageAfter: 1, ProbeInterval: 5 * time.Millisecond, Registerer: reg})
	setUp(false)
	_, l, err := g.Admit(context.Background(), "acme_corp", wide)
	if err != nil {
		t.Fatal(err)
	}
	l.Done()
	setUp(true)
	var held *ratelimit.Lease
	Eventually(t, 5*time.Second, "a slot taken in Redis again", func() bool {
		_, l, err := g.Admit(context.Background(), "acme_corp", wide)
		if err != nil {
			t.Fatal(err)
		}
		before := CounterValue(t, reg, "ragplane_proxy_concurrency_fallback_total")
		_, l2, err := g.Admit(context.Background(), "acme_corp", wide)
		if err != nil {
			t.Fatal(err)
		}
		l.Done()
		if CounterValue(t, reg, "ragplane_proxy_concurrency_fallback_total") == before {
			held = l2
			return true
		}
		l2.Done()
		return false
	})
	if n := MustGateInFlight(t, g, "acme_corp"); n < 1 {
		t.Fatalf("InFlight = %d with a lease held in Redis", n)
	}
	held.Done()
}

// A changed limit rescales what the tenant has used instead of opening a fresh window: raising
// queries_per_hour from 40 to 41 after 40 queries allows one more, not 41.
func TestLimiterChangedLimitKeepsUsage(t *testing.T) {
	t.Parallel()
	l := MustLimiter(t, MustRedis(t))
	lim := ragplane.Limits{RequestsPerSecond: 1000, Burst: 1000, QueriesPerHour: 40}
	if allowed, _ := MustAllowN(t, l, "acme_corp", lim, 45); allowed != 40 {
		t.Fatalf("allowed %d of 45 under 40/hour", allowed)
	}
	lim.QueriesPerHour = 41
	if allowed, _ := MustAllowN(t, l, "acme_corp", lim, 5); allowed != 1 {
		t.Fatalf("allowed %d after raising to 41/hour, want 1", allowed)
	}
}

func MustGateInFlight(tb testing.TB, g *ratelimit.Gate, tenant ragplane.TenantID) int {
	tb.Helper()
	n, err := g.InFlight(context.Background(), tenant)
	if err != nil {
		tb.Fatalf("InFlight: %v", err)
	}
	return n
}

// BenchmarkGateAdmit measures one admission and its release, in parallel, against the local
// stack's Redis (the proxy's hot path without HTTP).
func BenchmarkGateAdmit(b *testing.B) {
	for _, auto := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "autopipeline"}[auto], func(b *testing.B) { benchmarkGateAdmit(b, auto) })
	}
}

func benchmarkGateAdmit(b *testing.B, auto bool) {
	real := MustRedis(b)
	g := MustGate(b, ratelimit.GateConfig{Client: MustDirectRedis(b, real), RatePrefix: MustPrefix(b, real), LeasePrefix: MustPrefix(b, real),
		AutoPipeline: auto})
	b.SetParallelism(32)
	huge := ragplane.Limits{RequestsPerSecond: 1e6, Burst: 1e6, QueriesPerHour: 1e9, MaxConcurrentRequests: 10000}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d, l, err := g.Admit(context.Background(), "acme_corp", huge)
			if err != nil || !d.Allowed {
				b.Error(d, err)
				return
			}
			l.Done()
		}
	})
}
