package dataplane

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
)

// tenants caches tenants' catalog entries briefly, so a busy tenant costs one catalog read per
// TTL rather than one per request; a suspension or deletion takes effect within the TTL.
type tenants struct {
	cfg   tenantCacheConfig
	group singleflight.Group

	mu sync.Mutex
	m  map[ragplane.TenantID]cachedRuntime
}

type cachedRuntime struct {
	rt  *catalog.Runtime
	err error
	at  time.Time
}

// tenantCacheConfig configures the tenant cache.
type tenantCacheConfig struct {
	// Load reads a tenant's catalog entry (catalog.Store.TenantRuntime).
	Load func(context.Context, ragplane.TenantID) (*catalog.Runtime, error)
	// TTL is how long an entry is served before it is read again.
	TTL time.Duration
	// Now is the cache's clock (default time.Now).
	Now func() time.Time
}

func newTenants(cfg tenantCacheConfig) *tenants {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &tenants{cfg: cfg, m: map[ragplane.TenantID]cachedRuntime{}}
}

// get returns a servable tenant's runtime, or the error its status calls for: an unknown tenant is
// EUNAUTHORIZED (the token names nobody), a suspended one EFORBIDDEN, a deleted one EGONE, one
// still being provisioned EUNAVAILABLE.
func (t *tenants) get(ctx context.Context, id ragplane.TenantID) (*catalog.Runtime, error) {
	t.mu.Lock()
	c, ok := t.m[id]
	t.mu.Unlock()
	if !ok || t.cfg.Now().Sub(c.at) > t.cfg.TTL {
		v, err, _ := t.group.Do(string(id), func() (any, error) {
			rt, err := t.cfg.Load(context.WithoutCancel(ctx), id)
			c := cachedRuntime{rt: rt, err: err, at: t.cfg.Now()}
			code := ragplane.ErrorCode(err)
			if err == nil || code == ragplane.ENOTFOUND {
				t.mu.Lock()
				if len(t.m) > 100_000 { // a bound, not an LRU: entries are tiny and expire anyway
					clear(t.m)
				}
				t.m[id] = c
				t.mu.Unlock()
			}
			return c, nil
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
