package provision

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
)

// Sleeper is implemented by provisioners whose tenants' compute can be suspended and started
// through the provider's API (Neon). Without it, sleeping a tenant only closes its pools.
type Sleeper interface {
	// Suspend suspends the compute of the tenant's project.
	Suspend(ctx context.Context, tenant ragplane.TenantID, projectID string) error
	// Start starts it again; starting a running compute is not an error.
	Start(ctx context.Context, tenant ragplane.TenantID, projectID string) error
}

// idleBatch bounds the tenants one statement marks idle or one pass starts.
const idleBatch = 500

// idleState is the reconciler's part that puts unused tenants to sleep.
type idleState struct {
	idle    prometheus.Gauge
	idled   prometheus.Counter
	compute *prometheus.CounterVec
}

func (r *Reconciler) initIdle() {
	if r.cfg.IdleCheckInterval <= 0 {
		r.cfg.IdleCheckInterval = min(max(r.cfg.IdleAfter/4, 10*time.Millisecond), time.Minute)
	}
	if r.cfg.Now == nil {
		r.cfg.Now = time.Now
	}
	r.sleep = &idleState{
		idle: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ragplane_controlplane_tenants_idle",
			Help: "Active tenants marked idle (unused for RAGPLANE_IDLE_AFTER), as of the leader's last pass."}),
		idled: prometheus.NewCounter(prometheus.CounterOpts{Name: "ragplane_controlplane_tenants_idled_total",
			Help: "Tenants marked idle."}),
		compute: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ragplane_controlplane_compute_calls_total",
			Help: "Calls to a provider's API that suspend or start an idle tenant's compute, by provider, action and result."},
			[]string{"provider", "action", "result"}),
	}
	if r.cfg.Registerer != nil {
		r.cfg.Registerer.MustRegister(r.sleep.idle, r.sleep.idled, r.sleep.compute)
	}
}

// sleepIdle marks unused tenants idle every IdleCheckInterval while this replica leads, when
// IdleAfter is set. Marking one notifies the workers (they close its pools); on a provider with a
// Sleeper its compute is suspended, and started again once a request has woken the tenant.
func (r *Reconciler) sleepIdle(ctx context.Context) {
	if r.cfg.IdleAfter <= 0 {
		return
	}
	tick := time.NewTicker(r.cfg.IdleCheckInterval)
	defer tick.Stop()
	for {
		r.idlePass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// idlePass is one pass of sleepIdle.
func (r *Reconciler) idlePass(ctx context.Context) {
	now := r.cfg.Now()
	for ctx.Err() == nil {
		marked, err := r.cfg.Store.MarkIdle(ctx, now.Add(-r.cfg.IdleAfter), now, idleBatch)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("marking idle tenants failed", "error", err)
			}
			return
		}
		for _, t := range marked {
			r.sleep.idled.Inc()
			r.log.Info("tenant is idle", "tenant_id", t.ID, "idle_after", r.cfg.IdleAfter.String())
			r.suspendIfIdle(ctx, t, now)
		}
		if len(marked) < idleBatch {
			break
		}
	}
	if n, err := r.cfg.Store.WakeUsed(ctx); err != nil {
		if ctx.Err() == nil {
			r.log.Warn("waking tenants used since they were marked idle failed", "error", err)
		}
	} else if n > 0 {
		r.log.Info("tenants used since they were marked idle are awake again", "tenants", n)
	}
	r.startOffloads(ctx, now)
	awake, err := r.cfg.Store.AwakeSuspended(ctx, idleBatch)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("listing woken tenants failed", "error", err)
		}
		return
	}
	for _, t := range awake {
		r.computeCall(ctx, t, "start")
	}
	if n, err := r.cfg.Store.CountIdle(ctx); err == nil {
		r.sleep.idle.Set(float64(n))
	}
}

// suspendIfIdle suspends the compute of a tenant this pass marked idle at markedAt, unless a
// request has woken it since: the pass marks a batch of tenants in one statement and then suspends
// them one by one, each a call to the provider, so a tenant may be woken before its turn and its
// compute must then stay up. A wake between this check and the suspend is still possible; the
// tenant is then awake with its compute marked suspended, and the next pass starts it again
// (AwakeSuspended), as after any wake.
func (r *Reconciler) suspendIfIdle(ctx context.Context, t catalog.IdleTenant, markedAt time.Time) {
	if _, ok := r.cfg.Provisioners[t.Provider].(Sleeper); !ok || t.ProviderProjectID == "" {
		return
	}
	since, err := r.cfg.Store.IdleSince(ctx, t.ID)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("checking an idle tenant before suspending its compute failed", "tenant_id", t.ID, "error", err)
		}
		return
	}
	// The catalog keeps microseconds: the same idle_since, as this pass set it, is within one.
	if since == nil || since.Sub(markedAt).Abs() >= time.Millisecond {
		r.log.Info("tenant woken before its compute was suspended; left running", "tenant_id", t.ID)
		return
	}
	r.computeCall(ctx, t, "suspend")
}

// computeCall suspends or starts a tenant's compute when its provider can, and records it. A
// failed call is logged and counted: a suspend is not retried (the provider's own scale-to-zero
// still applies), a start is retried on the next pass.
func (r *Reconciler) computeCall(ctx context.Context, t catalog.IdleTenant, action string) {
	s, ok := r.cfg.Provisioners[t.Provider].(Sleeper)
	if !ok || t.ProviderProjectID == "" {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, r.cfg.AttemptTimeout)
	defer cancel()
	var err error
	if action == "suspend" {
		err = s.Suspend(cctx, t.ID, t.ProviderProjectID)
	} else {
		err = s.Start(cctx, t.ID, t.ProviderProjectID)
	}
	result := "ok"
	if err != nil {
		result = "error"
		if ctx.Err() == nil {
			r.log.Warn("tenant compute call failed", "tenant_id", t.ID, "action", action, "error", err)
		}
	}
	r.sleep.compute.WithLabelValues(string(t.Provider), action, result).Inc()
	if err == nil {
		if err := r.cfg.Store.SetComputeSuspended(ctx, t.ID, action == "suspend"); err != nil && ctx.Err() == nil {
			r.log.Warn("recording the tenant's compute state failed", "tenant_id", t.ID, "error", err)
		}
	}
}
