package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/ragplane/ragplane"
)

// Defaults for zero GateConfig fields (and the Config and ConcurrencyConfig built on it).
const (
	DefaultPrefix            = "ragplane:rl:"
	DefaultConcurrencyPrefix = "ragplane:cc:"
	// DefaultTimeout bounds one Redis call. A request makes one; a healthy Redis under load may
	// take tens of milliseconds to answer, which must not count as an outage.
	DefaultTimeout = 250 * time.Millisecond
	// DefaultOutageAfter failed calls in a row declare Redis away.
	DefaultOutageAfter = 3
	// DefaultProbeInterval is how often a call tries Redis during an outage.
	DefaultProbeInterval = 50 * time.Millisecond
	DefaultLeaseTTL      = 30 * time.Second
	DefaultReleaseDelay  = 2 * time.Millisecond
)

// maxPiggyback bounds the released leases one admission removes on its way.
const maxPiggyback = 64

// GateConfig configures a Gate. Zero fields get the defaults given.
type GateConfig struct {
	// Client is the Redis that all proxy replicas share. Required. With ContextTimeoutEnabled
	// set (the proxy sets it), calls run on the caller's goroutine; otherwise each call runs on
	// a goroutine of its own so that Timeout bounds it whatever the client's socket timeouts.
	Client redis.UniversalClient
	// RatePrefix starts every rate-limit key (default "ragplane:rl:"), LeasePrefix every lease
	// key (default "ragplane:cc:").
	RatePrefix, LeasePrefix string
	// Timeout bounds each Redis call (default 250ms).
	Timeout time.Duration
	// OutageAfter is how many failed calls in a row declare Redis away (default 3). During an
	// outage requests do not call Redis: a Gate (NewGate) pings it every ProbeInterval (default
	// 50ms) in the background and the first answer ends the outage, so a request pays at most one
	// Timeout for an outage. (A Limiter, which has no loops, lets one request per ProbeInterval
	// try Redis instead.)
	OutageAfter   int
	ProbeInterval time.Duration
	// RateFailPolicy and ConcurrencyFailPolicy are what the rate limits and the concurrency cap
	// do while Redis is away, for tenants whose Limits name no policy (RateLimitFailPolicy,
	// ConcurrencyFailPolicy): ragplane.FailLocalShare (the default: each replica enforces its
	// share of the limit, see Replicas, in process, so an outage of Redis neither stops the
	// service nor lifts the limits), ragplane.FailOpen (not enforced) or ragplane.FailClosed
	// (EUNAVAILABLE). Any other value is the default.
	RateFailPolicy, ConcurrencyFailPolicy string
	// Replicas is the number of proxy replicas (default 1): while Redis is away each replica
	// allows limit/Replicas, at least one, of a limit whose policy is the local share.
	Replicas int
	// LeaseTTL is how long a lease outlives its holder's last renewal (default 30s): the slots
	// of a proxy that crashed come back after at most this long. One loop per Gate renews every
	// lease it holds each LeaseTTL/3, in one call per tenant.
	LeaseTTL time.Duration
	// AutoPipeline sends admissions through go-redis's auto-pipeliner (Client.AutoPipeline):
	// concurrent requests' scripts share one write and one read, which divides Redis's per-command
	// system-call cost among them. The auto-pipeliner does not end a queued call when its
	// context does, so the client's ReadTimeout and WriteTimeout must bound a call (the proxy
	// sets them to Timeout), and its MaxRetries should be -1 so that a batch is never sent twice.
	// Only for a *redis.Client; ignored otherwise.
	AutoPipeline bool
	// ReleaseDelay is how long a released slot may wait for a batch (default 2ms): a release
	// that the tenant's next admission through this replica carries within that time costs no
	// Redis call of its own. Other replicas see the slot free after at most about this long.
	ReleaseDelay time.Duration
	// Now is the clock of the in-process decisions (the local fallback while Redis is away, the
	// outage's probes; default time.Now). Decisions in Redis use Redis's clock.
	Now func() time.Time
	// Logger receives warnings, at most one per 10 seconds, while Redis is away. The gate adds
	// no component attribute: the caller names it (the proxy passes component=proxy.ratelimit),
	// so a line never carries the key twice.
	Logger *slog.Logger
	// Registerer registers ragplane_proxy_ratelimit_fallback_total{scope},
	// ragplane_proxy_concurrency_fallback_total,
	// ragplane_proxy_concurrency_renewal_failures_total, ragplane_proxy_redis_up and
	// ragplane_proxy_redis_fallback_decisions_total{limit,policy}; nil registers nothing.
	Registerer prometheus.Registerer
}

// Gate admits a request in one Redis round trip: its tenant's requests_per_second (with burst)
// and queries_per_hour limits and a concurrency slot, all shared exactly by every replica that uses
// the same Redis and prefixes. A refused request consumes nothing. Released slots are removed in
// batches off the request path, or on the way of the tenant's next admission through this
// replica, whichever comes first; leases are renewed by one loop, not one per request. It is safe
// for concurrent use; Close it to stop its loops.
type Gate struct {
	client       redis.UniversalClient
	admitter     redis.Scripter // client, or its auto-pipeliner
	direct       bool           // the client applies context deadlines to its sockets
	releaseDelay time.Duration
	now          func() time.Time
	ratePrefix   string
	leasePrefix  string
	timeout      time.Duration
	ratePolicy   string
	leasePolicy  string
	replicas     int
	ttl          time.Duration
	logger       *slog.Logger
	warn         throttle
	health       health
	local        *localShares
	idPrefix     string
	seq          atomic.Uint64

	rateFallbacks   *prometheus.CounterVec
	leaseFallbacks  prometheus.Counter
	renewalFailures prometheus.Counter
	policyDecisions *prometheus.CounterVec
	lastError       atomic.Pointer[string] // the last Redis failure, for Redis()

	stop    context.Context
	cancel  context.CancelFunc
	loops   sync.WaitGroup
	flushes chan struct{}

	mu        sync.Mutex
	closed    bool
	started   bool
	held      map[string]map[string]struct{} // lease key -> ids held by this replica
	pending   map[string]map[string]struct{} // lease key -> ids released, not yet claimed
	flushing  map[string]map[string]struct{} // the release loop's batch on its way to Redis
	localUsed map[ragplane.TenantID]int      // fail-open slots in use, by tenant
}

// NewGate returns a Gate and starts its lease loops. It panics if cfg.Client is nil.
func NewGate(cfg GateConfig) *Gate {
	g := newGate(cfg)
	g.start()
	return g
}

func newGate(cfg GateConfig) *Gate {
	if cfg.Client == nil {
		panic("ratelimit: a Redis client is required")
	}
	if cfg.RatePrefix == "" {
		cfg.RatePrefix = DefaultPrefix
	}
	if cfg.LeasePrefix == "" {
		cfg.LeasePrefix = DefaultConcurrencyPrefix
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.OutageAfter < 1 {
		cfg.OutageAfter = DefaultOutageAfter
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.Replicas < 1 {
		cfg.Replicas = 1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReleaseDelay <= 0 {
		cfg.ReleaseDelay = DefaultReleaseDelay
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.RateFailPolicy = failPolicy(cfg.RateFailPolicy, ragplane.FailLocalShare)
	cfg.ConcurrencyFailPolicy = failPolicy(cfg.ConcurrencyFailPolicy, ragplane.FailLocalShare)
	var admitter redis.Scripter = cfg.Client
	if c, ok := cfg.Client.(*redis.Client); ok && cfg.AutoPipeline {
		if ap, err := c.AutoPipeline(); err == nil {
			admitter = ap
		} else {
			cfg.Logger.Warn("redis auto-pipelining unavailable; admissions use the plain client", "error", err)
		}
	}
	b := make([]byte, 6)
	rand.Read(b)
	stop, cancel := context.WithCancel(context.Background())
	g := &Gate{
		client:       cfg.Client,
		admitter:     admitter,
		now:          cfg.Now,
		releaseDelay: cfg.ReleaseDelay,
		direct:       contextTimeouts(cfg.Client),
		ratePrefix:   cfg.RatePrefix,
		leasePrefix:  cfg.LeasePrefix,
		timeout:      cfg.Timeout,
		ratePolicy:   cfg.RateFailPolicy,
		leasePolicy:  cfg.ConcurrencyFailPolicy,
		replicas:     cfg.Replicas,
		ttl:          cfg.LeaseTTL,
		logger:       cfg.Logger,
		warn:         throttle{interval: warnInterval},
		health:       health{after: int32(cfg.OutageAfter), probe: cfg.ProbeInterval},
		local:        newLocalShares(cfg.Replicas),
		idPrefix:     hex.EncodeToString(b) + ":",
		rateFallbacks: register(cfg.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ragplane_proxy_ratelimit_fallback_total",
			Help: "Rate-limit decisions taken by the local fallback limiter because Redis was unavailable, by scope (second, hour).",
		}, []string{"scope"})),
		leaseFallbacks: register(cfg.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ragplane_proxy_concurrency_fallback_total",
			Help: "Concurrency slots granted in process (fail open) because Redis was unavailable.",
		})),
		renewalFailures: register(cfg.Registerer, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ragplane_proxy_concurrency_renewal_failures_total",
			Help: "Lease renewals that failed or found their lease expired.",
		})),
		policyDecisions: register(cfg.Registerer, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ragplane_proxy_redis_fallback_decisions_total",
			Help: "Requests decided without Redis because it was unavailable, by limit (rate, concurrency) and the tenant's fail policy (local_share, fail_open, fail_closed).",
		}, []string{"limit", "policy"})),
		stop:      stop,
		cancel:    cancel,
		flushes:   make(chan struct{}, 1),
		held:      map[string]map[string]struct{}{},
		pending:   map[string]map[string]struct{}{},
		localUsed: map[ragplane.TenantID]int{},
	}
	register(cfg.Registerer, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ragplane_proxy_redis_up",
		Help: "0 while this proxy considers Redis unavailable (limits are then decided in process by each tenant's fail policy), else 1.",
	}, func() float64 {
		if g.health.down.Load() {
			return 0
		}
		return 1
	}))
	return g
}

// failPolicy returns p if it is a fail policy, else def.
func failPolicy(p, def string) string {
	if slices.Contains(ragplane.FailPolicies, p) {
		return p
	}
	return def
}

// RedisStatus is Redis as a Gate sees it.
type RedisStatus struct {
	// Up is false during an outage: OutageAfter calls in a row failed and no probe has been
	// answered since.
	Up bool
	// Since is when the outage began (zero when Up).
	Since time.Time
	// LastError is the last failure of a call to Redis, if any.
	LastError string
}

// Redis reports whether Redis is up or, during an outage, since when it is away and why.
func (g *Gate) Redis() RedisStatus {
	st := RedisStatus{Up: !g.health.down.Load()}
	if !st.Up {
		st.Since = time.Unix(0, g.health.since.Load())
	}
	if e := g.lastError.Load(); e != nil {
		st.LastError = *e
	}
	return st
}

// contextTimeouts reports whether c ends a call on its socket when the call's context ends.
func contextTimeouts(c redis.UniversalClient) bool {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	}
	return false
}

// start runs the renewal and release loops.
func (g *Gate) start() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started || g.closed {
		return
	}
	g.started = true
	g.health.background.Store(true)
	g.loops.Add(2)
	go g.renewLoop()
	go g.flushLoop()
}

// Admit counts one request of tenant against its rate limits and takes one of its
// lim.MaxConcurrentRequests slots, in one Redis call. The Decision describes the binding rate
// limit (see Limiter.Allow); when it is not Allowed the request was refused by that limit. A
// request admitted gets a Lease, which it must give back with Done (or Release) when it ends.
//
// Errors: ERATELIMITED (field max_concurrent_requests) when every slot is taken, with the rate
// Decision, which then consumed nothing; EUNAVAILABLE when Redis is away and the limit that
// needs it fails closed, when ctx ends first, or after Close; EUNAUTHORIZED for an empty tenant;
// an internal error for limits that are not positive.
func (g *Gate) Admit(ctx context.Context, tenant ragplane.TenantID, lim ragplane.Limits) (Decision, *Lease, error) {
	return g.admit(ctx, tenant, &lim, lim.MaxConcurrentRequests)
}

// InFlight returns how many unexpired leases tenant holds across all replicas (not counting
// fail-open slots, which live only in process). Errors: EUNAVAILABLE when Redis is away.
func (g *Gate) InFlight(ctx context.Context, tenant ragplane.TenantID) (int, error) {
	n, err := call(g, ctx, func(ctx context.Context) (int64, error) {
		return inFlightScript.Run(ctx, g.client, []string{g.leaseKey(tenant)}).Int64()
	}, nil)
	if err != nil {
		return 0, unavailable("concurrency: in flight", err, "Concurrency limiting is unavailable; retry shortly.")
	}
	return int(n), nil
}

// Close stops renewing leases, as a crash would: leases not given back expire after LeaseTTL.
// Leases already given back are removed first. Admissions that need a lease fail with
// EUNAVAILABLE after Close. It does not close the Redis client.
func (g *Gate) Close() error {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.cancel()
	g.loops.Wait()
	g.flush(context.Background())
	return nil
}

func (g *Gate) isClosed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

func (g *Gate) leaseKey(tenant ragplane.TenantID) string {
	return g.leasePrefix + "{" + string(tenant) + "}:leases"
}

// spec is one rate limit of one tenant.
type spec struct {
	scope     string
	key       string
	interval  float64 // microseconds between two requests
	burst     int
	perSecond float64 // the same rate, for the local fallback
}

// rateSpecs returns the tenant's two rate limits. The keys do not name the limit: the script
// rescales the stored state when the limit changes (see admitScript).
func (g *Gate) rateSpecs(tenant ragplane.TenantID, lim ragplane.Limits) (spec, spec, error) {
	rps := lim.RequestsPerSecond
	if !(rps > 0) || math.IsInf(rps, 0) || lim.Burst < 1 || lim.QueriesPerHour < 1 {
		return spec{}, spec{}, fmt.Errorf("ratelimit: tenant %s: limits must be positive (requests_per_second %v, burst %d, queries_per_hour %d)",
			tenant, rps, lim.Burst, lim.QueriesPerHour)
	}
	base := g.ratePrefix + "{" + string(tenant) + "}:"
	return spec{scope: ScopeSecond, key: base + "rps", interval: 1e6 / rps, burst: lim.Burst, perSecond: rps},
		spec{scope: ScopeHour, key: base + "qph", interval: 3600e6 / float64(lim.QueriesPerHour), burst: lim.QueriesPerHour,
			perSecond: float64(lim.QueriesPerHour) / 3600}, nil
}

// admit applies the rate limits when lim is not nil and takes a lease when slots > 0.
func (g *Gate) admit(ctx context.Context, tenant ragplane.TenantID, lim *ragplane.Limits, slots int) (Decision, *Lease, error) {
	if tenant == "" {
		return Decision{}, nil, ragplane.Errorf(ragplane.EUNAUTHORIZED, "No verified tenant in the request.")
	}
	if err := tenant.Validate(); err != nil {
		return Decision{}, nil, fmt.Errorf("ratelimit: malformed tenant id %q", tenant)
	}
	var second, hour spec
	if lim != nil {
		var err error
		if second, hour, err = g.rateSpecs(tenant, *lim); err != nil {
			return Decision{}, nil, err
		}
	}
	wantLease := slots > 0
	if lim == nil && slots < 1 {
		return Decision{}, nil, fmt.Errorf("concurrency: tenant %s: max_concurrent_requests must be positive, got %d", tenant, slots)
	}
	if err := ctx.Err(); err != nil {
		return Decision{}, nil, ended(err)
	}
	if wantLease && g.isClosed() {
		return Decision{}, nil, ragplane.Errorf(ragplane.EUNAVAILABLE, "The proxy is shutting down.")
	}

	err := errOutage
	if g.health.allow(g.now()) {
		var d Decision
		var l *Lease
		d, l, err = g.admitRedis(ctx, tenant, lim != nil, second, hour, slots)
		if err == nil {
			if g.health.ok() {
				g.logger.Info("redis answers again; limits are shared again")
			}
			return d, l, nil
		}
		if !errors.Is(err, errRedis) {
			return d, nil, err // a decision, not a failure
		}
		if ctx.Err() != nil {
			return Decision{}, nil, ended(ctx.Err())
		}
		msg := err.Error()
		g.lastError.Store(&msg)
		began := g.health.fail(g.now())
		if began || g.warn.ok(g.now()) {
			g.logger.Warn("redis unavailable; limits are decided in process by each tenant's fail policy", "error", err)
		}
		if began {
			g.startProbe()
		}
	}
	ratePolicy, leasePolicy := g.ratePolicy, g.leasePolicy
	if lim != nil {
		ratePolicy = failPolicy(lim.RateLimitFailPolicy, ratePolicy)
		leasePolicy = failPolicy(lim.ConcurrencyFailPolicy, leasePolicy)
	}
	return g.admitLocal(tenant, lim != nil, second, hour, slots, ratePolicy, leasePolicy, err)
}

// startProbe pings Redis every probe interval until it answers, which ends the outage, or the
// Gate is closed. Requests do not call Redis meanwhile (see health.allow).
func (g *Gate) startProbe() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.started || g.closed {
		return
	}
	g.loops.Add(1)
	go func() {
		defer g.loops.Done()
		tick := time.NewTicker(g.health.probe)
		defer tick.Stop()
		for g.health.down.Load() {
			select {
			case <-g.stop.Done():
				return
			case <-tick.C:
			}
			_, err := call(g, g.stop, func(ctx context.Context) (string, error) {
				return g.client.Ping(ctx).Result()
			}, nil)
			if err == nil {
				if g.health.ok() {
					g.logger.Info("redis answers again; limits are shared again")
				}
				return
			}
			msg := err.Error()
			g.lastError.Store(&msg)
		}
	}()
}

// errRedis marks a failed Redis call, as opposed to a refusal.
var errRedis = errors.New("redis")

// admitRedis makes the one Redis call of an admission.
func (g *Gate) admitRedis(ctx context.Context, tenant ragplane.TenantID, rate bool, second, hour spec, slots int) (Decision, *Lease, error) {
	key := g.leaseKey(tenant)
	var id string
	var released []string
	args := make([]any, 9, 9+maxPiggyback)
	args[0], args[1] = "0", "0"
	args[2], args[3], args[4], args[5] = "0", "0", "0", "0"
	args[6], args[7], args[8] = "0", "0", ""
	if rate {
		args[0] = "1"
		args[2], args[3] = strconv.FormatFloat(second.interval, 'g', -1, 64), second.burst
		args[4], args[5] = strconv.FormatFloat(hour.interval, 'g', -1, 64), hour.burst
	}
	if slots > 0 {
		id = g.idPrefix + strconv.FormatUint(g.seq.Add(1), 36)
		args[1], args[6], args[7], args[8] = "1", slots, g.ttl.Milliseconds(), id
		var flushing []string
		released, flushing = g.takePending(key)
		for _, r := range released {
			args = append(args, r)
		}
		for _, r := range flushing {
			args = append(args, r)
		}
	}
	keys := []string{second.key, hour.key, key}
	if !rate {
		keys[0], keys[1] = key, key
	}
	reply, err := call(g, ctx, func(ctx context.Context) ([]int64, error) {
		return admitScript.Run(ctx, g.admitter, keys, args...).Int64Slice()
	}, func(reply []int64, err error) {
		// The caller gave up before the reply came: give back a lease taken after all.
		if len(reply) == replyLen && reply[replyAllowed] == 1 && id != "" {
			g.release(key, id)
		}
	})
	if err == nil && len(reply) != replyLen {
		err = fmt.Errorf("admit script returned %d values", len(reply))
	}
	if err != nil {
		g.unclaim(key, released)
		if id != "" && isTimeout(err) && g.direct {
			// The script may have run after all. Redis orders commands by connection, so remove
			// the lease once a late script has surely run, not right away.
			time.AfterFunc(time.Second, func() { g.release(key, id) })
		}
		return Decision{}, nil, fmt.Errorf("%w: %w", errRedis, err)
	}

	var d Decision
	if rate {
		ds := fromReply(second, reply[replySecondRemaining], reply[replySecondReset], reply[replySecondRetry])
		dh := fromReply(hour, reply[replyHourRemaining], reply[replyHourReset], reply[replyHourRetry])
		switch {
		case reply[replyRefusedBy] == refusedBySecond:
			ds.Allowed = false
			return ds, nil, nil
		case reply[replyRefusedBy] == refusedByHour:
			dh.Allowed = false
			return dh, nil, nil
		case dh.Remaining <= ds.Remaining:
			d = dh
		default:
			d = ds
		}
		d.Allowed, d.RetryAfter, d.HourRemaining = true, 0, dh.Remaining
	}
	if slots < 1 {
		return d, nil, nil
	}
	if reply[replyRefusedBy] == refusedByConcurrency {
		return d, nil, concurrencyRefused(slots)
	}
	return d, g.hold(tenant, key, id), nil
}

func fromReply(s spec, remaining, resetUS, retryUS int64) Decision {
	return Decision{
		Allowed:    retryUS == 0,
		Limit:      s.burst,
		Remaining:  int(max(0, remaining)),
		ResetAfter: max(0, time.Duration(resetUS)*time.Microsecond),
		RetryAfter: max(0, time.Duration(retryUS)*time.Microsecond),
		Scope:      s.scope,
	}
}

// admitLocal decides in process while Redis is away, by the tenant's fail policies: the rate
// limits and the slot on this replica's share (local_share), not enforced (fail_open), or the
// request refused (fail_closed).
func (g *Gate) admitLocal(tenant ragplane.TenantID, rate bool, second, hour spec, slots int, ratePolicy, leasePolicy string, cause error) (Decision, *Lease, error) {
	d := Decision{Allowed: true, HourRemaining: -1}
	undo := func() {}
	if rate {
		g.policyDecisions.WithLabelValues("rate", ratePolicy).Inc()
	}
	switch {
	case !rate || ratePolicy == ragplane.FailOpen:
	case ratePolicy == ragplane.FailClosed:
		return Decision{}, nil, unavailable("ratelimit: redis", cause, "Rate limiting is unavailable; retry shortly.")
	default:
		now := g.now()
		g.rateFallbacks.WithLabelValues(second.scope).Inc()
		ds, undoSecond := g.local.take(tenant, second, now)
		if !ds.Allowed {
			return ds, nil, nil
		}
		g.rateFallbacks.WithLabelValues(hour.scope).Inc()
		dh, undoHour := g.local.take(tenant, hour, now)
		if !dh.Allowed {
			undoSecond()
			return dh, nil, nil
		}
		d = ds
		if dh.Remaining <= ds.Remaining {
			d = dh
		}
		d.HourRemaining = dh.Remaining
		undo = func() { undoSecond(); undoHour() }
	}
	if slots < 1 {
		return d, nil, nil
	}
	g.policyDecisions.WithLabelValues("concurrency", leasePolicy).Inc()
	if leasePolicy == ragplane.FailClosed {
		undo()
		return d, nil, unavailable("concurrency: redis", cause, "Concurrency limiting is unavailable; retry shortly.")
	}
	l, err := g.holdLocal(tenant, slots, leasePolicy == ragplane.FailOpen)
	if err != nil {
		undo()
	}
	return d, l, err
}

func concurrencyRefused(limit int) error {
	return &ragplane.Error{Code: ragplane.ERATELIMITED, Field: "max_concurrent_requests",
		Message: fmt.Sprintf("Concurrency limit of %d reached.", limit)}
}

func unavailable(what string, cause error, message string) error {
	return fmt.Errorf("%s: %w: %w", what, cause, ragplane.Errorf(ragplane.EUNAVAILABLE, "%s", message))
}

func ended(err error) error {
	return fmt.Errorf("ratelimit: %w: %w", err,
		ragplane.Errorf(ragplane.EUNAVAILABLE, "The request ended before its limits were checked."))
}

// call runs fn against Redis bounded by the Gate's timeout (and ctx): directly when the client
// honours context deadlines on its sockets, else on a goroutine (see bounded).
func call[T any](g *Gate, ctx context.Context, fn func(context.Context) (T, error), orphan func(T, error)) (T, error) {
	if !g.direct {
		return bounded(ctx, g.timeout, fn, orphan)
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	return fn(ctx)
}

// hold records a lease taken in Redis, for renewal.
func (g *Gate) hold(tenant ragplane.TenantID, key, id string) *Lease {
	g.mu.Lock()
	ids := g.held[key]
	if ids == nil {
		ids = map[string]struct{}{}
		g.held[key] = ids
	}
	ids[id] = struct{}{}
	g.mu.Unlock()
	return &Lease{g: g, tenant: tenant, key: key, id: id}
}

// holdLocal takes a slot of this replica's share of limit, or a slot beyond it if uncapped.
func (g *Gate) holdLocal(tenant ragplane.TenantID, limit int, uncapped bool) (*Lease, error) {
	share := max(1, limit/g.replicas)
	g.mu.Lock()
	defer g.mu.Unlock()
	if !uncapped && g.localUsed[tenant] >= share {
		return nil, concurrencyRefused(limit)
	}
	g.localUsed[tenant]++
	g.leaseFallbacks.Inc()
	return &Lease{g: g, tenant: tenant, local: true}, nil
}

// unhold forgets a lease: it is no longer renewed.
func (g *Gate) unhold(l *Lease) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if l.local {
		g.localUsed[l.tenant]--
		if g.localUsed[l.tenant] <= 0 {
			delete(g.localUsed, l.tenant)
		}
		return
	}
	if ids := g.held[l.key]; ids != nil {
		delete(ids, l.id)
		if len(ids) == 0 {
			delete(g.held, l.key)
		}
	}
}

// release queues a lease's removal for the release loop.
func (g *Gate) release(key, id string) {
	g.mu.Lock()
	ids := g.pending[key]
	if ids == nil {
		ids = map[string]struct{}{}
		g.pending[key] = ids
	}
	ids[id] = struct{}{}
	g.mu.Unlock()
	select {
	case g.flushes <- struct{}{}:
	default:
	}
}

// takePending claims up to maxPiggyback released leases of key for one admission, which removes
// them on its way: no other admission carries them again. It also returns (without claiming) the
// leases of key that the release loop is removing right now, so that the admission cannot overtake
// a removal still on its way to Redis; removing a lease twice is harmless.
func (g *Gate) takePending(key string) (claimed, flushing []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ids := g.pending[key]; len(ids) > 0 {
		claimed = make([]string, 0, min(len(ids), maxPiggyback))
		for id := range ids {
			if len(claimed) == maxPiggyback {
				break
			}
			claimed = append(claimed, id)
			delete(ids, id)
		}
		if len(ids) == 0 {
			delete(g.pending, key)
		}
	}
	for id := range g.flushing[key] {
		if len(claimed)+len(flushing) == maxPiggyback {
			break
		}
		flushing = append(flushing, id)
	}
	return claimed, flushing
}

// unclaim gives back leases an admission failed to remove.
func (g *Gate) unclaim(key string, ids []string) {
	for _, id := range ids {
		g.release(key, id)
	}
}

// flushLoop removes released leases in batches: one pipeline for all of them, started as soon as
// the first is released; what is released meanwhile goes in the next batch.
func (g *Gate) flushLoop() {
	defer g.loops.Done()
	for {
		select {
		case <-g.stop.Done():
			return
		case <-g.flushes:
		}
		// Give the tenant's next admission the chance to carry the releases for free.
		select {
		case <-g.stop.Done():
			return
		case <-time.After(g.releaseDelay):
		}
		g.flush(g.stop)
	}
}

// flush removes every pending release in one pipeline. On failure the releases are dropped and
// only logged: the leases expire after LeaseTTL.
func (g *Gate) flush(ctx context.Context) {
	g.mu.Lock()
	batch := g.pending
	g.pending = map[string]map[string]struct{}{}
	g.flushing = batch
	g.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	_, err := call(g, context.WithoutCancel(ctx), func(ctx context.Context) ([]redis.Cmder, error) {
		return g.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for key, ids := range batch {
				members := make([]any, 0, len(ids))
				for id := range ids {
					members = append(members, id)
				}
				p.ZRem(ctx, key, members...)
			}
			return nil
		})
	}, nil)
	g.mu.Lock()
	g.flushing = nil
	g.mu.Unlock()
	if err != nil && g.warn.ok(g.now()) {
		g.logger.Warn("releasing concurrency slots failed; they expire after the lease TTL", "tenants", len(batch), "error", err)
	}
}

// renewLoop extends every lease this replica holds each LeaseTTL/3, one script per tenant in one
// pipeline. A renewal that fails is retried at the next tick; two in a row may fail before a lease
// expires.
func (g *Gate) renewLoop() {
	defer g.loops.Done()
	tick := time.NewTicker(g.ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-g.stop.Done():
			return
		case <-tick.C:
		}
		g.renew()
	}
}

func (g *Gate) renew() {
	g.mu.Lock()
	batch := make(map[string][]any, len(g.held))
	count := 0
	for key, ids := range g.held {
		args := make([]any, 0, len(ids)+1)
		args = append(args, g.ttl.Milliseconds())
		for id := range ids {
			args = append(args, id)
		}
		batch[key] = args
		count += len(ids)
	}
	g.mu.Unlock()
	if count == 0 {
		return
	}
	cmds, err := call(g, g.stop, func(ctx context.Context) ([]redis.Cmder, error) {
		return g.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			// EVAL, not EVALSHA: in a pipeline a missing script cannot be loaded on the way, and
			// Redis compiles a script once whatever the number of EVALs.
			for key, args := range batch {
				renewScript.Eval(ctx, p, []string{key}, args...)
			}
			return nil
		})
	}, nil)
	if g.stop.Err() != nil {
		return
	}
	renewed := 0
	for _, c := range cmds {
		if n, err := c.(*redis.Cmd).Int(); err == nil {
			renewed += n
		}
	}
	if failed := count - renewed; failed > 0 {
		g.renewalFailures.Add(float64(failed))
		if g.warn.ok(g.now()) {
			g.logger.Warn("lease renewal failed or found leases expired; those requests run on uncounted", "leases", failed, "error", err)
		}
	}
}

// Lease is one request's concurrency slot.
type Lease struct {
	g      *Gate
	tenant ragplane.TenantID
	key    string
	id     string
	local  bool // a fail-open slot, counted in process only
	once   sync.Once
}

// Done gives the slot back without waiting: the slot is removed from Redis in the release loop's
// next batch (a pipeline sent at once), or by this tenant's next admission on this replica if that
// comes first, so a client's next request through the same replica always finds it free. Only the
// first Done or Release does anything.
func (l *Lease) Done() {
	l.once.Do(func() {
		l.g.unhold(l)
		if !l.local {
			l.g.release(l.key, l.id)
		}
	})
}

// Release gives the slot back and waits until Redis has removed it. It is idempotent: only the
// first call (of Release or Done) does anything, and its error only means the lease will expire
// after LeaseTTL instead. It works with a cancelled ctx (a client that went away), which bounds
// only how long Release waits.
func (l *Lease) Release(ctx context.Context) error {
	var err error
	l.once.Do(func() {
		l.g.unhold(l)
		if l.local {
			return
		}
		_, err = call(l.g, context.WithoutCancel(ctx), func(ctx context.Context) (int64, error) {
			return l.g.client.ZRem(ctx, l.key, l.id).Result()
		}, nil)
		if err != nil {
			err = unavailable("concurrency: release", err, "Concurrency limiting is unavailable; retry shortly.")
		}
	})
	return err
}
