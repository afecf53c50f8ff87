package ratelimit_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/proxy/ratelimit"
)

// MustConcurrency returns a Concurrency on rdb under prefix, closed when the test ends. The Redis
// timeout is generous so that a slow test machine does not fail acquisitions.
func MustConcurrency(tb testing.TB, rdb *redis.Client, prefix string, ttl time.Duration) *ratelimit.Concurrency {
	tb.Helper()
	c := ratelimit.NewConcurrency(ratelimit.ConcurrencyConfig{Client: rdb, Prefix: prefix, Timeout: 2 * time.Second, LeaseTTL: ttl})
	tb.Cleanup(func() { c.Close() })
	return c
}

// MustAcquire acquires a slot and fails the test on error.
func MustAcquire(tb testing.TB, c *ratelimit.Concurrency, tenant ragplane.TenantID, limit int) *ratelimit.Lease {
	tb.Helper()
	l, err := c.Acquire(context.Background(), tenant, limit)
	if err != nil {
		tb.Fatalf("Acquire(%s, %d): %v", tenant, limit, err)
	}
	return l
}

// MustRelease releases a lease and fails the test on error.
func MustRelease(tb testing.TB, l *ratelimit.Lease) {
	tb.Helper()
	if err := l.Release(context.Background()); err != nil {
		tb.Fatalf("Release: %v", err)
	}
}

// MustInFlight returns the tenant's leases in flight.
func MustInFlight(tb testing.TB, c *ratelimit.Concurrency, tenant ragplane.TenantID) int {
	tb.Helper()
	n, err := c.InFlight(context.Background(), tenant)
	if err != nil {
		tb.Fatalf("InFlight(%s): %v", tenant, err)
	}
	return n
}

func TestConcurrencyCapAcrossInstances(t *testing.T) {
	t.Parallel()
	rdb := MustRedis(t)
	prefix := MustPrefix(t, rdb)
	a := MustConcurrency(t, rdb, prefix, 0)
	b := MustConcurrency(t, rdb, prefix, 0)

	l1 := MustAcquire(t, a, "acme_corp", 3)
	MustAcquire(t, b, "acme_corp", 3)
	MustAcquire(t, a, "acme_corp", 3)
	for name, c := range map[string]*ratelimit.Concurrency{"a": a, "b": b} {
		_, err := c.Acquire(context.Background(), "acme_corp", 3)
		AssertCode(t, err, ragplane.ERATELIMITED)
		if n := MustInFlight(t, c, "acme_corp"); n != 3 {
			t.Fatalf("InFlight on %s = %d, want 3", name, n)
		}
	}
	// Another tenant has its own slots.
	MustAcquire(t, b, "globex", 1)

	MustRelease(t, l1)
	MustAcquire(t, b, "acme_corp", 3)
}

func TestConcurrencyReleaseIsIdempotent(t *testing.T) {
	t.Parallel()
	rdb := MustRedis(t)
	c := MustConcurrency(t, rdb, MustPrefix(t, rdb), 0)
	l1 := MustAcquire(t, c, "acme_corp", 2)
	MustAcquire(t, c, "acme_corp", 2)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	// A client that went away still releases its slot; repeated releases change nothing.
	for range 3 {
		if err := l1.Release(cancelled); err != nil {
			t.Fatalf("Release: %v", err)
		}
	}
	if n := MustInFlight(t, c, "acme_corp"); n != 1 {
		t.Fatalf("InFlight = %d, want 1 (only the other lease)", n)
	}
}

func TestConcurrencyLeaseOfCrashedHolderExpires(t *testing.T) {
	t.Parallel()
	rdb := MustRedis(t)
	prefix := MustPrefix(t, rdb)
	const ttl = 600 * time.Millisecond
	crashing := MustConcurrency(t, rdb, prefix, ttl)
	other := MustConcurrency(t, rdb, prefix, ttl)
	key := prefix + "{acme_corp}:leases"

	MustAcquire(t, crashing, "acme_corp", 1) // never released: its holder crashes
	first := MustLeaseExpiry(t, rdb, key)
	// While the holder lives, renewal pushes the lease's expiry on: wait until it has, twice.
	renewed := first
	for range 2 {
		last := renewed
		Eventually(t, 10*ttl, "the lease is renewed", func() bool {
			renewed = MustLeaseExpiry(t, rdb, key)
			return renewed > last
		})
	}
	_, err := other.Acquire(context.Background(), "acme_corp", 1)
	AssertCode(t, err, ragplane.ERATELIMITED)

	crashing.Close() // renewal stops, the lease stays behind
	_, err = other.Acquire(context.Background(), "acme_corp", 1)
	AssertCode(t, err, ragplane.ERATELIMITED)
	// The lease outlives its holder by at most the TTL: its expiry (Redis's clock) is at most a
	// TTL after Redis's clock now.
	now, err := rdb.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Duration(MustLeaseExpiry(t, rdb, key)-now.UnixMilli()) * time.Millisecond; left > ttl {
		t.Fatalf("the crashed holder's lease expires in %v, more than the TTL %v", left, ttl)
	}
	var lease *ratelimit.Lease
	Eventually(t, 10*ttl, "the crashed holder's slot comes back", func() bool {
		lease, err = other.Acquire(context.Background(), "acme_corp", 1)
		return err == nil
	})
	MustRelease(t, lease)
	if n := MustInFlight(t, other, "acme_corp"); n != 0 {
		t.Fatalf("InFlight = %d, want 0", n)
	}
}

// MustLeaseExpiry returns the expiry (ms of Redis's clock) of the one lease in key.
func MustLeaseExpiry(tb testing.TB, rdb *redis.Client, key string) int64 {
	tb.Helper()
	zs, err := rdb.ZRangeWithScores(context.Background(), key, 0, -1).Result()
	if err != nil || len(zs) != 1 {
		tb.Fatalf("leases in %s: %v %v, want one", key, zs, err)
	}
	return int64(zs[0].Score)
}

func TestConcurrencyCancelledAcquireLeavesNoLease(t *testing.T) {
	t.Parallel()
	rdb := MustRedis(t)
	c := MustConcurrency(t, rdb, MustPrefix(t, rdb), 0)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Acquire(cancelled, "acme_corp", 5)
	AssertCode(t, err, ragplane.EUNAVAILABLE)

	// Deadlines that end before, during and after the script: whatever the outcome, the only
	// leases left are the ones Acquire returned.
	for range 200 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.IntN(1500))*time.Microsecond)
		l, err := c.Acquire(ctx, "acme_corp", 1000)
		cancel()
		if err == nil {
			MustRelease(t, l)
		} else {
			AssertCode(t, err, ragplane.EUNAVAILABLE)
		}
	}
	Eventually(t, 5*time.Second, "no lease left behind", func() bool { return MustInFlight(t, c, "acme_corp") == 0 })
}

func TestConcurrencyNeverExceedsLimit(t *testing.T) {
	t.Parallel()
	rdb := MustRedis(t)
	prefix := MustPrefix(t, rdb)
	instances := []*ratelimit.Concurrency{MustConcurrency(t, rdb, prefix, 0), MustConcurrency(t, rdb, prefix, 0)}
	const limit = 4
	var inFlight, peak, granted atomic.Int64
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			c := instances[g%2]
			for range 20 {
				l, err := c.Acquire(context.Background(), "acme_corp", limit)
				if err != nil {
					if !isCode(err, ragplane.ERATELIMITED) {
						t.Errorf("Acquire: %v", err)
					}
					continue
				}
				granted.Add(1)
				n := inFlight.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				time.Sleep(time.Millisecond)
				inFlight.Add(-1)
				if err := l.Release(context.Background()); err != nil {
					t.Errorf("Release: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if peak.Load() > limit || granted.Load() == 0 {
		t.Fatalf("peak in flight %d (limit %d), %d granted", peak.Load(), limit, granted.Load())
	}
	if n := MustInFlight(t, instances[0], "acme_corp"); n != 0 {
		t.Fatalf("InFlight after all released = %d, want 0", n)
	}
}

func TestConcurrencyRedisAway(t *testing.T) {
	t.Parallel()
	t.Run("fails closed when asked", func(t *testing.T) {
		t.Parallel()
		c := ratelimit.NewConcurrency(ratelimit.ConcurrencyConfig{Client: DeadRedis(t), FailPolicy: ragplane.FailClosed})
		defer c.Close()
		_, err := c.Acquire(context.Background(), "acme_corp", 5)
		AssertCode(t, err, ragplane.EUNAVAILABLE)
	})
	t.Run("keeps this replica's share by default", func(t *testing.T) {
		t.Parallel()
		reg := prometheus.NewRegistry()
		c := ratelimit.NewConcurrency(ratelimit.ConcurrencyConfig{Client: DeadRedis(t), Replicas: 2, Registerer: reg})
		defer c.Close()
		l1 := MustAcquire(t, c, "acme_corp", 4)
		MustAcquire(t, c, "acme_corp", 4)
		_, err := c.Acquire(context.Background(), "acme_corp", 4)
		AssertCode(t, err, ragplane.ERATELIMITED)
		MustRelease(t, l1)
		MustRelease(t, l1)
		MustAcquire(t, c, "acme_corp", 4)
		if got := CounterValue(t, reg, "ragplane_proxy_concurrency_fallback_total"); got != 3 {
			t.Fatalf("fallback_total = %v, want 3", got)
		}
	})
	t.Run("fail open is not capped", func(t *testing.T) {
		t.Parallel()
		c := ratelimit.NewConcurrency(ratelimit.ConcurrencyConfig{Client: DeadRedis(t), FailPolicy: ragplane.FailOpen, Replicas: 2})
		defer c.Close()
		for range 10 {
			MustAcquire(t, c, "acme_corp", 4)
		}
	})
}

func TestRedisCallsAreBounded(t *testing.T) {
	t.Parallel()
	limits := ragplane.Limits{RequestsPerSecond: 5, Burst: 10, QueriesPerHour: 1000}
	tests := []struct {
		name    string
		timeout time.Duration // Config.Timeout
		ctxWait time.Duration // the caller's deadline; 0 for none
		when    func(ctx context.Context, rdb *redis.Client, timeout time.Duration) error
		expect  string
	}{
		{name: "limiter, fail closed, config timeout", timeout: 100 * time.Millisecond, expect: ragplane.EUNAVAILABLE,
			when: func(ctx context.Context, rdb *redis.Client, timeout time.Duration) error {
				_, err := ratelimit.New(ratelimit.Config{Client: rdb, Timeout: timeout, FailPolicy: ragplane.FailClosed}).Allow(ctx, "acme_corp", limits)
				return err
			}},
		{name: "limiter, fail open, config timeout", timeout: 100 * time.Millisecond, expect: "",
			when: func(ctx context.Context, rdb *redis.Client, timeout time.Duration) error {
				d, err := ratelimit.New(ratelimit.Config{Client: rdb, Timeout: timeout}).Allow(ctx, "acme_corp", limits)
				if err == nil && !d.Allowed {
					t.Errorf("fail-open decision %+v, want allowed", d)
				}
				return err
			}},
		{name: "limiter, caller deadline", timeout: time.Minute, ctxWait: 50 * time.Millisecond, expect: ragplane.EUNAVAILABLE,
			when: func(ctx context.Context, rdb *redis.Client, timeout time.Duration) error {
				_, err := ratelimit.New(ratelimit.Config{Client: rdb, Timeout: timeout}).Allow(ctx, "acme_corp", limits)
				return err
			}},
		{name: "concurrency, fail closed, config timeout", timeout: 100 * time.Millisecond, expect: ragplane.EUNAVAILABLE,
			when: func(ctx context.Context, rdb *redis.Client, timeout time.Duration) error {
				c := ratelimit.NewConcurrency(ratelimit.ConcurrencyConfig{Client: rdb, Timeout: timeout, FailPolicy: ragplane.FailClosed})
				defer c.Close()
				_, err := c.Acquire(ctx, "acme_corp", 5)
				return err
			}},
		{name: "concurrency, local share, config timeout", timeout: 100 * time.Millisecond, expect: "",
			when: func(ctx context.Context, rdb *redis.Client, timeout time.Duration) error {
				c := ratelimit.NewConcurrency(ratelimit.ConcurrencyConfig{Client: rdb, Timeout: timeout})
				defer c.Close()
				_, err := c.Acquire(ctx, "acme_corp", 5)
				return err
			}},
		{name: "concurrency, caller deadline", timeout: time.Minute, ctxWait: 50 * time.Millisecond, expect: ragplane.EUNAVAILABLE,
			when: func(ctx context.Context, rdb *redis.Client, timeout time.Duration) error {
				c := ratelimit.NewConcurrency(ratelimit.ConcurrencyConfig{Client: rdb, Timeout: timeout})
				defer c.Close()
				_, err := c.Acquire(ctx, "acme_corp", 5)
				return err
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			if tt.ctxWait > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxWait)
				defer cancel()
			}
			start := time.Now()
			err := tt.when(ctx, HungRedis(t), tt.timeout)
			elapsed := time.Since(start)
			AssertCode(t, err, tt.expect)
			// The hung server never answers and go-redis would wait its 3 s read timeout: a bound
			// well under that shows the package's own bound ended the call.
			if elapsed > time.Second {
				t.Fatalf("took %v against a hung Redis, want about one timeout", elapsed)
			}
		})
	}
}
