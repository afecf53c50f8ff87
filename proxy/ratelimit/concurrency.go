package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/ragplane/ragplane"
)

// Defaults for zero ConcurrencyConfig fields.
const (
	DefaultConcurrencyPrefix = "ragplane:cc:"
	DefaultLeaseTTL          = 30 * time.Second
)

// ConcurrencyConfig configures a Concurrency. Zero fields get the defaults given.
type ConcurrencyConfig struct {
	// Client is the Redis that all proxy replicas share. Required.
	Client redis.UniversalClient
	// Prefix starts every key (default "ragplane:cc:").
	Prefix string
	// Timeout bounds each Redis call (default 50ms); a slower call counts as Redis being away.
	Timeout time.Duration
	// LeaseTTL is how long a lease outlives its holder's last renewal (default 30s): the slots
	// of a proxy that crashed come back after at most this long. Holders renew every LeaseTTL/3.
	LeaseTTL time.Duration
	// FailOpen admits requests while Redis is away, capped in process at this replica's share
	// of the limit (see Replicas). By default (false) Acquire fails closed with EUNAVAILABLE.
	FailOpen bool
	// Replicas is the number of proxy replicas (default 1); with FailOpen, each replica admits
	// max/Replicas requests in flight, at least one, while Redis is away.
	Replicas int
	// Logger receives warnings, at most one per 10 seconds, while Redis is away. After a failed
	// call, Acquire leaves Redis alone for a second (fail open or closed at once).
	Logger *slog.Logger
	// Registerer registers ragplane_proxy_concurrency_fallback_total and
	// ragplane_proxy_concurrency_renewal_failures_total; nil registers nothing.
	Registerer prometheus.Registerer
}

// Concurrency caps the requests a tenant has in flight across every proxy replica that uses the
// same Redis and Prefix. Each request holds a lease: a member of the tenant's sorted set whose
// score is its expiry in milliseconds of Redis's clock (TIME), so replicas' clocks never matter.
// It is safe for concurrent use.
type Concurrency struct {
	client   redis.UniversalClient
	prefix   string
	timeout  time.Duration
	ttl      time.Duration
	failOpen bool
	replicas int
	logger   *slog.Logger
	warn     throttle
	outage   outage

	fallbacks       prometheus.Counter
	renewalFailures prometheus.Counter

	// stop ends every renewal on Close; renewals counts the running ones.
	stop      context.Context
	cancel    context.CancelFunc
	mu        sync.Mutex
	closed    bool
	renewals  sync.WaitGroup
	localUsed map[ragplane.TenantID]int // fail-open slots in use, by tenant
}

// NewConcurrency returns a Concurrency. It panics if cfg.Client is nil.
func NewConcurrency(cfg ConcurrencyConfig) *Concurrency {
	if cfg.Client == nil {
		panic("ratelimit: ConcurrencyConfig.Client is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultConcurrencyPrefix
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.Replicas < 1 {
		cfg.Replicas = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	stop, cancel := context.WithCancel(context.Background())
	return &Concurrency{
		client:   cfg.Client,
		prefix:   cfg.Prefix,
		timeout:  cfg.Timeout,
		ttl:      cfg.LeaseTTL,
		failOpen: cfg.FailOpen,
		replicas: cfg.Replicas,
		logger:   cfg.Logger.With("component", "concurrency"),
		warn:     throttle{interval: warnInterval},
		fallbacks: register(cfg.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ragplane_proxy_concurrency_fallback_total",
			Help: "Concurrency slots granted in process (fail open) because Redis was unavailable.",
		})),
		renewalFailures: register(cfg.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ragplane_proxy_concurrency_renewal_failures_total",
			Help: "Lease renewals that failed or found their lease expired.",
		})),
		stop:      stop,
		cancel:    cancel,
		localUsed: make(map[ragplane.TenantID]int),
	}
}

// acquireScript drops the tenant's expired leases, then adds lease ARGV[3] for ARGV[2] ms if fewer
// than ARGV[1] remain. The key expires with its last lease. It returns {acquired (0|1), in flight}.
var acquireScript = redis.NewScript(`
local key, max, ttl, id = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
local n = redis.call('ZCARD', key)
if n >= max then
  return {0, n}
end
redis.call('ZADD', key, now + ttl, id)
local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', key, last[2])
return {1, n + 1}
`)

// renewScript extends lease ARGV[2] to ARGV[1] ms from now if it still exists and has not
// expired; it never brings back a lease that was released or expired. It returns 1 if renewed.
var renewScript = redis.NewScript(`
local key, ttl, id = KEYS[1], tonumber(ARGV[1]), ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if not redis.call('ZSCORE', key, id) then
  return 0
end
redis.call('ZADD', key, now + ttl, id)
local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', key, last[2])
return 1
`)

// inFlightScript counts the leases that have not expired.
var inFlightScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], string.format('(%d', now), '+inf')
`)

func (c *Concurrency) key(tenant ragplane.TenantID) string {
	return c.prefix + "{" + string(tenant) + "}:leases"
}

// Acquire takes one of tenant's limit in-flight slots. The lease renews itself every LeaseTTL/3
// until Release (or Close), so a long stream keeps its slot; ctx bounds only the acquisition.
// The caller must Release the lease when the request ends.
//
// A lease is never left behind by a failed Acquire: when ctx ends or Redis answers too late, the
// lease is removed as soon as the outcome of the Redis call is known.
//
// Errors: ERATELIMITED when limit leases are held; EUNAUTHORIZED for an empty tenant; EUNAVAILABLE
// when Redis is away (unless FailOpen), when ctx ends first, or after Close; an internal error for
// limit < 1 or a malformed tenant.
func (c *Concurrency) Acquire(ctx context.Context, tenant ragplane.TenantID, limit int) (*Lease, error) {
	if tenant == "" {
		return nil, ragplane.Errorf(ragplane.EUNAUTHORIZED, "No verified tenant in the request.")
	}
	if err := tenant.Validate(); err != nil {
		return nil, fmt.Errorf("concurrency: malformed tenant id %q", tenant)
	}
	if limit < 1 {
		return nil, fmt.Errorf("concurrency: tenant %s: max_concurrent_requests must be positive, got %d", tenant, limit)
	}
	if err := ctx.Err(); err != nil {
		return nil, c.ended(err)
	}
	if c.isClosed() {
		return nil, ragplane.Errorf(ragplane.EUNAVAILABLE, "The proxy is shutting down.")
	}

	id := uuid.NewString()
	type reply struct {
		acquired bool
		inFlight int64
	}
	r, err := reply{}, errOutage
	if !c.outage.active(time.Now()) {
		r, err = bounded(ctx, c.timeout, func(ctx context.Context) (reply, error) {
			v, err := acquireScript.Run(ctx, c.client, []string{c.key(tenant)}, limit, c.ttl.Milliseconds(), id).Int64Slice()
			if err != nil {
				if isTimeout(err) {
					// The script may have run after all.
					go c.forget(tenant, id)
				}
				return reply{}, err
			}
			if len(v) != 2 {
				return reply{}, fmt.Errorf("acquire script returned %d values", len(v))
			}
			return reply{acquired: v[0] == 1, inFlight: v[1]}, nil
		}, func(r reply, err error) {
			// Acquire gave up before the reply came: undo a lease that was taken after all.
			if r.acquired {
				c.forget(tenant, id)
			}
		})
		switch {
		case err == nil && !r.acquired:
			return nil, ragplane.Errorf(ragplane.ERATELIMITED, "Concurrency limit of %d reached.", limit)
		case err == nil:
			return c.start(tenant, id), nil
		case ctx.Err() != nil:
			return nil, c.ended(ctx.Err())
		}
		c.outage.begin(time.Now())
		if c.warn.ok(time.Now()) {
			c.logger.Warn("redis unavailable", "fail_open", c.failOpen, "error", err)
		}
	}
	if c.failOpen {
		return c.acquireLocal(tenant, limit)
	}
	return nil, fmt.Errorf("concurrency: redis: %w: %w", err,
		ragplane.Errorf(ragplane.EUNAVAILABLE, "Concurrency limiting is unavailable; retry shortly."))
}

func (c *Concurrency) ended(err error) error {
	return fmt.Errorf("concurrency: %w: %w", err,
		ragplane.Errorf(ragplane.EUNAVAILABLE, "The request ended before a concurrency slot was acquired."))
}

// start returns the lease and starts its renewal.
func (c *Concurrency) start(tenant ragplane.TenantID, id string) *Lease {
	l := &Lease{c: c, tenant: tenant, id: id, stop: make(chan struct{}), done: make(chan struct{})}
	c.mu.Lock()
	if c.closed {
		// Close came while acquiring: the lease is not renewed and expires after LeaseTTL.
		c.mu.Unlock()
		close(l.done)
		return l
	}
	c.renewals.Add(1)
	c.mu.Unlock()
	go l.renew()
	return l
}

// acquireLocal takes a slot of this replica's fail-open share.
func (c *Concurrency) acquireLocal(tenant ragplane.TenantID, limit int) (*Lease, error) {
	share := max(1, limit/c.replicas)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.localUsed[tenant] >= share {
		return nil, ragplane.Errorf(ragplane.ERATELIMITED, "Concurrency limit of %d reached.", limit)
	}
	c.localUsed[tenant]++
	c.fallbacks.Inc()
	done := make(chan struct{})
	close(done)
	return &Lease{c: c, tenant: tenant, local: true, stop: make(chan struct{}), done: done}, nil
}

// forget removes a lease, best effort: if Redis is away the lease expires after LeaseTTL anyway.
func (c *Concurrency) forget(tenant ragplane.TenantID, id string) error {
	_, err := bounded(context.Background(), c.timeout, func(ctx context.Context) (int64, error) {
		return c.client.ZRem(ctx, c.key(tenant), id).Result()
	}, nil)
	return err
}

// InFlight returns how many unexpired leases tenant holds across all replicas (not counting
// fail-open slots, which live only in process). Errors: EUNAVAILABLE when Redis is away.
func (c *Concurrency) InFlight(ctx context.Context, tenant ragplane.TenantID) (int, error) {
	n, err := bounded(ctx, c.timeout, func(ctx context.Context) (int64, error) {
		return inFlightScript.Run(ctx, c.client, []string{c.key(tenant)}).Int64()
	}, nil)
	if err != nil {
		return 0, fmt.Errorf("concurrency: in flight: %w: %w", err,
			ragplane.Errorf(ragplane.EUNAVAILABLE, "Concurrency limiting is unavailable; retry shortly."))
	}
	return int(n), nil
}

// Close stops renewing every lease, as a crash would: leases not released expire after LeaseTTL.
// Release drained requests first. Acquire fails with EUNAVAILABLE after Close. It does not close
// the Redis client.
func (c *Concurrency) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.renewals.Wait()
	return nil
}

func (c *Concurrency) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Lease is one request's concurrency slot.
type Lease struct {
	c      *Concurrency
	tenant ragplane.TenantID
	id     string
	local  bool // a fail-open slot, counted in process only

	once sync.Once
	stop chan struct{} // closed by Release
	done chan struct{} // closed when renewal has stopped
}

// Release gives the slot back. It is idempotent: only the first call does anything, and its error
// only means the lease will expire after LeaseTTL instead. It works with a cancelled ctx (a client
// that went away), which bounds only how long Release waits: the removal itself runs with a context
// detached from ctx's cancellation.
func (l *Lease) Release(ctx context.Context) error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		if l.local {
			l.c.mu.Lock()
			l.c.localUsed[l.tenant]--
			if l.c.localUsed[l.tenant] <= 0 {
				delete(l.c.localUsed, l.tenant)
			}
			l.c.mu.Unlock()
			return
		}
		// Wait for renewal to stop first, so that no renewal can race the removal.
		<-l.done
		_, err = bounded(context.WithoutCancel(ctx), l.c.timeout, func(ctx context.Context) (int64, error) {
			return l.c.client.ZRem(ctx, l.c.key(l.tenant), l.id).Result()
		}, nil)
		if err != nil {
			err = fmt.Errorf("concurrency: release: %w: %w", err,
				ragplane.Errorf(ragplane.EUNAVAILABLE, "Concurrency limiting is unavailable; retry shortly."))
		}
	})
	return err
}

// renew extends the lease every LeaseTTL/3 until Release or Close. A renewal that fails is retried
// at the next tick; two in a row may fail before the lease expires. Renewal stops if the lease has
// expired in the meantime: it is not brought back, as its slot may already be someone else's.
func (l *Lease) renew() {
	c := l.c
	defer c.renewals.Done()
	defer close(l.done)
	tick := time.NewTicker(c.ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-c.stop.Done():
			return
		case <-tick.C:
		}
		ok, err := bounded(c.stop, c.timeout, func(ctx context.Context) (int64, error) {
			return renewScript.Run(ctx, c.client, []string{c.key(l.tenant)}, c.ttl.Milliseconds(), l.id).Int64()
		}, nil)
		switch {
		case err != nil && c.stop.Err() != nil:
			return
		case err != nil:
			c.renewalFailures.Inc()
			if c.warn.ok(time.Now()) {
				c.logger.Warn("lease renewal failed", "tenant_id", l.tenant, "error", err)
			}
		case ok == 0:
			c.renewalFailures.Inc()
			c.logger.Warn("lease expired before renewal; the request runs on uncounted", "tenant_id", l.tenant)
			return
		}
	}
}
