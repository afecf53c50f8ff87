package dataplane

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/exaring/otelpgx"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxvec "github.com/pgvector/pgvector-go/pgx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/catalog/tenantdb"
)

// pools holds a pgx pool per database, most recently used first: a siloed tenant's own, or a pool
// database shared by the tenants in it (keyed by URL, which is the same for all of them: they
// share its pgx pool). A siloed tenant's pool has PerTenant connections, a pool database's
// PoolConns; the pools open never add up to more than MaxConns, so the worker never holds more
// than MaxConns connections whatever the number of tenants. When the budget is spent, the least
// recently used pools that nobody is using are closed to make room; when all are busy, a request
// waits up to Wait and then gets 503 with Retry-After.
//
// In a pool database, each tenant may hold at most PerTenant of its connections at once, and a
// request waits at most Wait for one (tenantdb.Gate): one busy tenant cannot take every
// connection of the pool and stall the other tenants in it.
type pools struct {
	cfg  DBConfig
	used int // connections of the open pools (their MaxConns), at most cfg.MaxConns
	log  *slog.Logger

	mu      sync.Mutex
	cond    *sync.Cond
	entries *lru.Cache[string, *poolEntry]
	// tenants is the database URL each tenant last acquired, for forget.
	tenants map[ragplane.TenantID]string

	open     prometheus.Gauge
	inUse    prometheus.Gauge
	waits    prometheus.Counter
	timeouts prometheus.Counter
	evicted  prometheus.Counter
}

type poolEntry struct {
	pool   *pgxpool.Pool
	conns  int               // its MaxConns, counted in pools.used
	tenant ragplane.TenantID // the first tenant that acquired it
	shared bool              // a pool database, or another tenant acquired it too
	users  int               // requests holding this pool
	last   time.Time
	// gates are the connection slots of each tenant of a pool database (PerTenant each).
	gates map[ragplane.TenantID]chan struct{}
}

func newPools(cfg DBConfig, reg prometheus.Registerer, log *slog.Logger) *pools {
	// The cache never evicts by itself (the size is past any slot count): eviction is ours, because
	// only a pool nobody uses may be closed.
	entries, _ := lru.New[string, *poolEntry](1 << 30)
	p := &pools{cfg: cfg, log: log, entries: entries, tenants: map[ragplane.TenantID]string{},
		open: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ragplane_dataplane_db_pools_open",
			Help: "Tenant database pools open on this worker."}),
		inUse: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ragplane_dataplane_db_pools_in_use",
			Help: "Tenant database pools held by requests."}),
		waits: prometheus.NewCounter(prometheus.CounterOpts{Name: "ragplane_dataplane_db_pool_waits_total",
			Help: "Requests that waited for a free pool slot."}),
		timeouts: prometheus.NewCounter(prometheus.CounterOpts{Name: "ragplane_dataplane_db_pool_timeouts_total",
			Help: "Requests refused with 503 because the connection budget stayed exhausted."}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{Name: "ragplane_dataplane_db_pools_evicted_total",
			Help: "Idle tenant pools closed to make room for others."}),
	}
	p.cond = sync.NewCond(&p.mu)
	reg.MustRegister(p.open, p.inUse, p.waits, p.timeouts, p.evicted)
	return p
}

// errBudget is returned when no pool slot frees up in time.
var errBudget = &ragplane.Error{Code: ragplane.EUNAVAILABLE, Message: "This worker's database connections are all busy; retry shortly."}

// acquire returns the tenant's pool, opening it if needed, and the tenant's view of it, which
// waits at most Wait for a connection. pooled says the database is a pool database shared with
// other tenants. The caller must call release.
func (p *pools) acquire(ctx context.Context, tenant ragplane.TenantID, url string, pooled bool) (*pgxpool.Pool, *tenantdb.Scoped, func(), error) {
	deadline := time.Now().Add(p.cfg.Wait)
	p.mu.Lock()
	defer p.mu.Unlock()
	waited := false
	for {
		if old, ok := p.tenants[tenant]; ok && old != url {
			// The tenant's database moved (re-provisioned): drop the old pool once unused.
			delete(p.tenants, tenant)
			if e, ok := p.entries.Peek(old); ok && e.users == 0 && !e.shared {
				p.closeLocked(old, e)
			}
		}
		if e, ok := p.entries.Get(url); ok {
			p.tenants[tenant] = url
			if e.tenant != tenant {
				e.shared = true
			}
			return p.hold(e, tenant)
		}
		conns := p.cfg.PerTenant
		if pooled {
			conns = p.poolConns()
		}
		if p.roomLocked(conns) {
			pool, err := p.openPool(url, conns)
			if err != nil {
				return nil, nil, nil, err
			}
			e := &poolEntry{pool: pool, conns: conns, tenant: tenant, shared: pooled}
			p.entries.Add(url, e)
			p.used += conns
			p.tenants[tenant] = url
			p.open.Set(float64(p.entries.Len()))
			return p.hold(e, tenant)
		}
		if !waited {
			waited = true
			p.waits.Inc()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.timeouts.Inc()
			return nil, nil, nil, errBudget
		}
		// Wake up on a release or at the deadline, whichever comes first.
		t := time.AfterFunc(min(time.Until(deadline), 50*time.Millisecond), p.cond.Broadcast)
		p.cond.Wait()
		t.Stop()
	}
}

// pooledTenant reports whether the tenant's rows are in a pool database (the pooled tier).
func pooledTenant(rt *catalog.Runtime) bool { return rt.Tenant.Tier() == ragplane.TierPooled }

// poolConns is the size of a pool database's pgx pool.
func (p *pools) poolConns() int {
	return min(max(p.cfg.PoolConns, p.cfg.PerTenant), p.cfg.MaxConns)
}

// roomLocked reports whether a pool of conns connections fits in the budget, closing least
// recently used pools nobody holds to make room.
func (p *pools) roomLocked(conns int) bool {
	for p.used+conns > p.cfg.MaxConns {
		if !p.evictOneLocked() {
			return false
		}
	}
	return true
}

func (p *pools) hold(e *poolEntry, tenant ragplane.TenantID) (*pgxpool.Pool, *tenantdb.Scoped, func(), error) {
	if e.users == 0 {
		p.inUse.Inc()
	}
	e.users++
	gate := tenantdb.Gate{Wait: p.cfg.Wait, Busy: errBusyConns}
	if e.shared && p.cfg.PerTenant < e.conns {
		if e.gates == nil {
			e.gates = map[ragplane.TenantID]chan struct{}{}
		}
		if gate.Slots = e.gates[tenant]; gate.Slots == nil {
			gate.Slots = make(chan struct{}, p.cfg.PerTenant)
			e.gates[tenant] = gate.Slots
		}
	}
	var once sync.Once
	return e.pool, tenantdb.ScopeWith(e.pool, string(tenant), gate), func() {
		once.Do(func() {
			p.mu.Lock()
			e.users--
			e.last = time.Now()
			if e.users == 0 {
				p.inUse.Dec()
			}
			p.mu.Unlock()
			p.cond.Broadcast()
		})
	}, nil
}

// errBusyConns is returned when a tenant's requests find no connection of its pool free within
// Wait: its own slots in a pool database are all taken, or the pool's connections are.
var errBusyConns = &ragplane.Error{Code: ragplane.EUNAVAILABLE, Message: "The tenant database's connections are all busy; retry shortly."}

// evictOneLocked closes the least recently used pool nobody holds. It reports whether it did.
func (p *pools) evictOneLocked() bool {
	for _, k := range p.entries.Keys() { // oldest first
		if e, ok := p.entries.Peek(k); ok && e.users == 0 {
			p.closeLocked(k, e)
			p.evicted.Inc()
			return true
		}
	}
	return false
}

func (p *pools) closeLocked(k string, e *poolEntry) {
	p.entries.Remove(k)
	p.used -= e.conns
	p.open.Set(float64(p.entries.Len()))
	// Nobody holds it, so Close does not wait on acquired connections; it is synchronous so that
	// the connections are gone before a new pool takes the slot.
	e.pool.Close()
}

func (p *pools) openPool(url string, conns int) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, errors.New("dataplane: a tenant database URL cannot be parsed")
	}
	cfg.MaxConns = int32(conns)
	cfg.MinConns = 0
	cfg.MaxConnIdleTime = p.cfg.IdleTimeout
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error { return pgxvec.RegisterTypes(ctx, c) }
	// Tenant-database queries join the request's trace (SQL text only, never its arguments).
	cfg.ConnConfig.Tracer = otelpgx.NewTracer()
	return pgxpool.NewWithConfig(context.Background(), cfg)
}

// closeIdle closes pools unused for longer than the idle timeout.
func (p *pools) closeIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range p.entries.Keys() {
		if e, ok := p.entries.Peek(k); ok && e.users == 0 && time.Since(e.last) > p.cfg.IdleTimeout {
			p.closeLocked(k, e)
		}
	}
}

// forget closes a tenant's pool when nobody holds it (the tenant was deleted or suspended), unless
// other tenants share it.
func (p *pools) forget(tenant ragplane.TenantID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	url, ok := p.tenants[tenant]
	if !ok {
		return
	}
	delete(p.tenants, tenant)
	e, ok := p.entries.Peek(url)
	if !ok {
		return
	}
	if g := e.gates[tenant]; g != nil && len(g) == 0 {
		delete(e.gates, tenant)
	}
	if e.users == 0 && !e.shared {
		p.closeLocked(url, e)
	}
}

// closeAll closes every pool at shutdown.
func (p *pools) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range p.entries.Keys() {
		if e, ok := p.entries.Peek(k); ok {
			p.entries.Remove(k)
			p.used -= e.conns
			e.pool.Close()
		}
	}
}
