package dataplane

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
)

// sleepers is the worker's side of tenants that sleep (see catalog.MarkIdle): when the control
// plane marks a tenant idle the worker closes its pools at once, and the first request to an idle
// tenant wakes it: its pool opens again (on Neon, the first connection starts the suspended
// compute: Neon's scale-to-zero wakes a compute on connection), the catalog marks it awake, and
// the time this took is observed.
type sleepers struct {
	wakes    prometheus.Counter
	wakeTime prometheus.Histogram
	slept    prometheus.Counter
}

func newSleepers(reg prometheus.Registerer) *sleepers {
	s := &sleepers{
		wakes: prometheus.NewCounter(prometheus.CounterOpts{Name: "ragplane_dataplane_tenant_wakes_total",
			Help: "Idle tenants woken by a request on this worker."}),
		wakeTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ragplane_dataplane_tenant_wake_seconds",
			Help:    "What waking an idle tenant added to its first request: a first database connection and marking it awake.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
		slept: prometheus.NewCounter(prometheus.CounterOpts{Name: "ragplane_dataplane_tenants_slept_total",
			Help: "Notices that a tenant was marked idle, on which this worker closed its pools."}),
	}
	reg.MustRegister(s.wakes, s.wakeTime, s.slept)
	return s
}

// wake wakes the request's tenant if the catalog says it is idle. A failure is logged, not
// returned: the request itself goes on and fails on its own if the database is unreachable.
func (s *Server) wake(ctx context.Context, tenant ragplane.TenantID, rt *catalog.Runtime, pool *pgxpool.Pool) {
	if rt.IdleSince == nil {
		return
	}
	start := time.Now()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		s.log.Warn("waking an idle tenant: its database is not reachable", "tenant_id", tenant, "error", err)
		return
	}
	conn.Release()
	since, woke, err := s.store.WakeTenant(ctx, tenant, time.Now())
	if err != nil {
		s.log.Warn("marking an idle tenant awake failed", "tenant_id", tenant, "error", err)
		return
	}
	s.tenants.drop(tenant) // the next request reads it awake
	if woke {
		d := time.Since(start)
		s.sleep.wakes.Inc()
		s.sleep.wakeTime.Observe(d.Seconds())
		s.log.Info("idle tenant woken", "tenant_id", tenant, "idle_since", since, "wake_ms", d.Milliseconds())
	}
}

// listenActivity follows the catalog's idle and wake notices until ctx ends: an idle tenant's
// pools are closed (unless a request holds them or other tenants share them), and its cached
// catalog entry is dropped either way so the worker sees the change at once. A change of the
// tenant's row (its config, its status, the database a tier move switched it to) drops its
// cached entry too, so the worker does not wait for the cache TTL.
func (s *Server) listenActivity(ctx context.Context) {
	err := s.store.Listen(ctx, catalog.Listener{
		Channels: []string{catalog.ChannelTenantActivity, catalog.ChannelTenants},
		Notify: func(channel, payload string) {
			if channel == catalog.ChannelTenants {
				s.tenants.expire(ragplane.TenantID(payload))
				return
			}
			state, id, ok := strings.Cut(payload, ":")
			if !ok {
				return
			}
			tenant := ragplane.TenantID(id)
			s.tenants.drop(tenant)
			if state == "idle" {
				s.pools.forget(tenant)
				s.sleep.slept.Inc()
			}
		},
		Interrupted: func(err error, retryIn time.Duration) {
			s.log.Warn("listening for idle tenants interrupted", "error", err, "retry_in", retryIn.String())
		},
	})
	if err != nil && ctx.Err() == nil {
		s.log.Warn("listening for idle tenants failed", "error", err)
	}
}
