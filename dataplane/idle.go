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

	restoreWait     prometheus.Histogram
	restoreTimeouts prometheus.Counter
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
	s.restoreWait = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ragplane_dataplane_tenant_restore_wait_seconds",
		Help:    "How long a request to a tenant offloaded to an archive waited for its restore.",
		Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60}})
	s.restoreTimeouts = prometheus.NewCounter(prometheus.CounterOpts{Name: "ragplane_dataplane_tenant_restore_timeouts_total",
		Help: "Requests to an offloaded tenant answered 503 because its restore took longer than RAGPLANE_RESTORE_WAIT."})
	reg.MustRegister(s.wakes, s.wakeTime, s.slept, s.restoreWait, s.restoreTimeouts)
	return s
}

// wake wakes the request's tenant if the catalog says it is idle: the catalog marks it awake and
// the tenant's pool takes a connection (timed). It reports restoring when the tenant turns out to
// be offloaded, or being offloaded, to an archive: its restore is then asked for, and the caller
// must not use the pool (see Server.runtime). A failure is logged, not returned: the request
// itself goes on and fails on its own if the database is unreachable.
func (s *Server) wake(ctx context.Context, tenant ragplane.TenantID, rt *catalog.Runtime, pool *pgxpool.Pool) (restoring bool) {
	if rt.IdleSince == nil {
		return false
	}
	start := time.Now()
	w, err := s.store.Wake(ctx, tenant, time.Now(), catalog.Actor{Name: "worker:request"})
	if err != nil {
		s.log.Warn("marking an idle tenant awake failed", "tenant_id", tenant, "error", err)
		return false
	}
	s.tenants.drop(tenant) // the next request reads it awake
	if w.Offload != nil {
		s.log.Info("request to an offloaded tenant: waiting for its restore", "tenant_id", tenant, "offload_state", w.Offload.State)
		return true
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		s.log.Warn("waking an idle tenant: its database is not reachable", "tenant_id", tenant, "error", err)
		return false
	}
	conn.Release()
	if w.Woke {
		d := time.Since(start)
		s.sleep.wakes.Inc()
		s.sleep.wakeTime.Observe(d.Seconds())
		s.log.Info("idle tenant woken", "tenant_id", tenant, "idle_since", w.IdleSince, "wake_ms", d.Milliseconds())
	}
	return false
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
