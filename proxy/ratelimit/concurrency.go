package ratelimit

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/ragplane/ragplane"
)

// ConcurrencyConfig configures a Concurrency. Zero fields get the defaults of GateConfig.
type ConcurrencyConfig struct {
	// Client is the Redis that all proxy replicas share. Required.
	Client redis.UniversalClient
	// Prefix starts every key (default "ragplane:cc:").
	Prefix string
	// Timeout bounds each Redis call (default 250ms).
	Timeout time.Duration
	// LeaseTTL is how long a lease outlives its holder's last renewal (default 30s).
	LeaseTTL time.Duration
	// FailPolicy is what Acquire does while Redis is away: ragplane.FailLocalShare (the
	// default: admit up to this replica's share of the limit, see Replicas, counted in process),
	// ragplane.FailOpen (admit, uncapped) or ragplane.FailClosed (EUNAVAILABLE).
	FailPolicy string
	// Replicas is the number of proxy replicas (default 1).
	Replicas int
	// Now is the clock of in-process decisions (default time.Now).
	Now func() time.Time
	// Logger receives warnings, at most one per 10 seconds, while Redis is away.
	Logger *slog.Logger
	// Registerer registers ragplane_proxy_concurrency_fallback_total and
	// ragplane_proxy_concurrency_renewal_failures_total; nil registers nothing.
	Registerer prometheus.Registerer
}

// Concurrency caps the requests a tenant has in flight across every proxy replica that uses the
// same Redis and Prefix. Each request holds a lease: a member of the tenant's sorted set whose
// score is its expiry in milliseconds of Redis's clock (TIME), so replicas' clocks never matter.
// It is a Gate that applies no rate limits, and it is safe for concurrent use.
type Concurrency struct {
	g *Gate
}

// NewConcurrency returns a Concurrency and starts its lease loops. It panics if cfg.Client is nil.
func NewConcurrency(cfg ConcurrencyConfig) *Concurrency {
	return &Concurrency{g: NewGate(GateConfig{Client: cfg.Client, LeasePrefix: cfg.Prefix, Timeout: cfg.Timeout,
		LeaseTTL: cfg.LeaseTTL, ConcurrencyFailPolicy: cfg.FailPolicy, Replicas: cfg.Replicas, Now: cfg.Now, Logger: cfg.Logger,
		Registerer: cfg.Registerer})}
}

// Acquire takes one of tenant's limit in-flight slots. The lease is renewed until it is given
// back (or Close), so a long stream keeps its slot; ctx bounds only the acquisition. The caller
// must Release (or Done) the lease when the request ends.
//
// A lease is never left behind by a failed Acquire: when ctx ends or Redis answers too late, the
// lease is removed as soon as the outcome of the Redis call is known.
//
// Errors: ERATELIMITED when limit leases are held; EUNAUTHORIZED for an empty tenant; EUNAVAILABLE
// when Redis is away and the fail policy is ragplane.FailClosed, when ctx ends first, or after Close; an internal error for
// limit < 1 or a malformed tenant.
func (c *Concurrency) Acquire(ctx context.Context, tenant ragplane.TenantID, limit int) (*Lease, error) {
	if limit < 1 {
		limit = -1 // admit reports it; 0 would mean "no lease wanted"
	}
	_, l, err := c.g.admit(ctx, tenant, nil, limit)
	return l, err
}

// InFlight returns how many unexpired leases tenant holds across all replicas (not counting
// fail-open slots, which live only in process). Errors: EUNAVAILABLE when Redis is away.
func (c *Concurrency) InFlight(ctx context.Context, tenant ragplane.TenantID) (int, error) {
	return c.g.InFlight(ctx, tenant)
}

// Close stops renewing every lease, as a crash would: leases not released expire after LeaseTTL.
// Release drained requests first. Acquire fails with EUNAVAILABLE after Close. It does not close
// the Redis client.
func (c *Concurrency) Close() error { return c.g.Close() }
