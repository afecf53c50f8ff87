package dataplane

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
)

// tenants caches tenants' catalog entries briefly, so a busy tenant costs one catalog read per
// TTL rather than one per request; a suspension or deletion takes effect within the TTL.
//
// A catalog row that fails validation (catalog.Store.TenantRuntime answers EINVALID) is the
// platform's fault, not the client's: the tenant keeps being served with its last good entry, as
// the proxy keeps its last good configuration, and a tenant without one gets EUNAVAILABLE (503).
// Either way the worker warns once per distinct problem and reports the tenant in
// ragplane_dataplane_tenant_config_invalid until a good row is read again.
type tenants struct {
	cfg   tenantCacheConfig
	group singleflight.Group

	mu      sync.Mutex
	m       map[ragplane.TenantID]cachedRuntime
	invalid map[ragplane.TenantID]string        // the problem last warned about, per tenant whose row is invalid
	waiting map[ragplane.TenantID]chan struct{} // closed at the tenant's next expire or drop (changed)
	gauge   *prometheus.GaugeVec
}

type cachedRuntime struct {
	rt  *catalog.Runtime
	err error
	at  time.Time
	// bad is the validation error of the catalog's current row when rt is the last good entry
	// served in its place; nil when rt is the current row.
	bad error
}

// tenantCacheConfig configures the tenant cache.
type tenantCacheConfig struct {
	// Load reads a tenant's catalog entry (catalog.Store.TenantRuntime).
	Load func(context.Context, ragplane.TenantID) (*catalog.Runtime, error)
	// TTL is how long an entry is served before it is read again.
	TTL time.Duration
	// Now is the cache's clock (default time.Now).
	Now func() time.Time
	// Logger receives the warnings about invalid catalog rows (default: discarded).
	Logger *slog.Logger
	// Registerer registers ragplane_dataplane_tenant_config_invalid (default: not registered).
	Registerer prometheus.Registerer
}

func newTenants(cfg tenantCacheConfig) *tenants {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	t := &tenants{cfg: cfg, m: map[ragplane.TenantID]cachedRuntime{}, invalid: map[ragplane.TenantID]string{},
		waiting: map[ragplane.TenantID]chan struct{}{},
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "ragplane_dataplane_tenant_config_invalid",
			Help: "1 while a tenant's catalog row fails validation (the worker serves its last good configuration, or 503 without one)."},
			[]string{"tenant"})}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(t.gauge)
	}
	return t
}

// get returns a servable tenant's runtime, or the error its status calls for: an unknown tenant is
// EUNAUTHORIZED (the token names nobody), a suspended one EFORBIDDEN, a deleted one EGONE, one
// still being provisioned EUNAVAILABLE, and one whose catalog row is invalid and which this worker
// has no last good entry for EUNAVAILABLE.
func (t *tenants) get(ctx context.Context, id ragplane.TenantID) (*catalog.Runtime, error) {
	t.mu.Lock()
	c, ok := t.m[id]
	t.mu.Unlock()
	if !ok || t.cfg.Now().Sub(c.at) > t.cfg.TTL {
		v, err, _ := t.group.Do(string(id), func() (any, error) {
			return t.load(ctx, id), nil
		})
		if err != nil {
			return nil, err
		}
		c = v.(cachedRuntime)
	}
	if c.err != nil {
		if ragplane.ErrorCode(c.err) == ragplane.ENOTFOUND {
			return nil, ragplane.Errorf(ragplane.EUNAUTHORIZED, "Unknown tenant.")
		}
		return nil, c.err
	}
	switch c.rt.Tenant.Status {
	case ragplane.StatusActive:
		if c.rt.DatabaseURL == "" {
			return nil, ragplane.Errorf(ragplane.EUNAVAILABLE, "The tenant's database is not ready.")
		}
		return c.rt, nil
	case ragplane.StatusSuspended:
		return nil, ragplane.Errorf(ragplane.EFORBIDDEN, "The tenant is suspended.")
	case ragplane.StatusDeleting, ragplane.StatusDeleted:
		return nil, ragplane.Errorf(ragplane.EGONE, "The tenant has been deleted.")
	case ragplane.StatusProvisioning:
		return nil, ragplane.Errorf(ragplane.EUNAVAILABLE, "The tenant is still being provisioned.")
	default:
		return nil, ragplane.Errorf(ragplane.EUNAVAILABLE, "The tenant cannot be served (%s).", c.rt.Tenant.Status)
	}
}

// load reads a tenant's entry from the catalog and caches what may be cached: a good entry, an
// unknown tenant, and for an invalid row the last good entry or the EUNAVAILABLE that stands in
// for it. Other failures (the catalog is unreachable) are not cached.
func (t *tenants) load(ctx context.Context, id ragplane.TenantID) cachedRuntime {
	rt, err := t.cfg.Load(context.WithoutCancel(ctx), id)
	c := cachedRuntime{rt: rt, err: err, at: t.cfg.Now()}
	code := ragplane.ErrorCode(err)
	if err != nil && code != ragplane.ENOTFOUND && code != ragplane.EINVALID {
		return c
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if code == ragplane.EINVALID {
		prev, ok := t.m[id]
		if ok && prev.err == nil && prev.rt != nil {
			c = cachedRuntime{rt: prev.rt, at: c.at, bad: err}
		} else {
			c = cachedRuntime{err: ragplane.Errorf(ragplane.EUNAVAILABLE,
				"The tenant's stored configuration is invalid (%s); the platform operator has to correct it.", fieldOf(err)), at: c.at, bad: err}
		}
		t.warnInvalid(id, err, c.rt)
	} else if _, was := t.invalid[id]; was {
		delete(t.invalid, id)
		t.gauge.DeleteLabelValues(string(id))
		t.cfg.Logger.Info("tenant configuration in the catalog is valid again", "tenant_id", id)
	}
	if len(t.m) > 100_000 { // a bound, not an LRU: entries are tiny and expire anyway
		clear(t.m)
	}
	t.m[id] = c
	return c
}

// warnInvalid logs an invalid catalog row once per distinct problem and sets the tenant's gauge.
// serving is the last good entry served in its place, nil when there is none. t.mu is held.
func (t *tenants) warnInvalid(id ragplane.TenantID, err error, serving *catalog.Runtime) {
	t.gauge.WithLabelValues(string(id)).Set(1)
	problem := fieldOf(err) + ": " + ragplane.ErrorMessage(err)
	if t.invalid[id] == problem {
		return
	}
	t.invalid[id] = problem
	if serving != nil {
		t.cfg.Logger.Warn("tenant configuration in the catalog is invalid; serving the last good one",
			"tenant_id", id, "field", fieldOf(err), "error", ragplane.ErrorMessage(err),
			"serving_config_version", serving.Tenant.ConfigVersion)
		return
	}
	t.cfg.Logger.Warn("tenant configuration in the catalog is invalid and there is no good one to serve; answering 503",
		"tenant_id", id, "field", fieldOf(err), "error", ragplane.ErrorMessage(err))
}

func fieldOf(err error) string {
	if f := ragplane.ErrorField(err); f != "" {
		return f
	}
	return "tenant"
}

// expire makes the next request read the tenant's catalog entry again, keeping the entry as the
// last good one should the row read then be invalid.
func (t *tenants) expire(id ragplane.TenantID) {
	t.mu.Lock()
	if c, ok := t.m[id]; ok {
		c.at = time.Time{}
		t.m[id] = c
	}
	t.signal(id)
	t.mu.Unlock()
}

// drop forgets a tenant's cached entry, so the next request reads the catalog.
func (t *tenants) drop(id ragplane.TenantID) {
	t.mu.Lock()
	delete(t.m, id)
	t.signal(id)
	t.mu.Unlock()
}

// changed returns a channel closed when the tenant's entry is next expired or dropped (a catalog
// notice that its row or activity changed).
func (t *tenants) changed(id ragplane.TenantID) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	ch, ok := t.waiting[id]
	if !ok {
		ch = make(chan struct{})
		t.waiting[id] = ch
	}
	return ch
}

// signal wakes those waiting for the tenant's entry to change. t.mu is held.
func (t *tenants) signal(id ragplane.TenantID) {
	if ch, ok := t.waiting[id]; ok {
		close(ch)
		delete(t.waiting, id)
	}
}
