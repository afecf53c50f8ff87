package provision

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/catalog/tenantdb"
)

// ReconcilerConfig configures a Reconciler. Zero fields get defaults.
type ReconcilerConfig struct {
	// Store is the catalog.
	Store *catalog.Store
	// Provisioners by provider; a tenant whose provider has none fails.
	Provisioners map[ragplane.Provider]Provisioner
	// Concurrency caps tenants worked on at once (default 8).
	Concurrency int
	// MaxAttempts is how many provisioning attempts a tenant gets before it fails (default 5).
	MaxAttempts int
	// BaseBackoff and MaxBackoff bound the wait between attempts (default 1s and 1m), with jitter.
	BaseBackoff, MaxBackoff time.Duration
	// AttemptTimeout bounds one attempt (default 10m: a Neon project can take a while).
	AttemptTimeout time.Duration
	// PollInterval is how often pending work is looked for without a notification (default 2s).
	PollInterval time.Duration
	// Registerer receives the reconciler's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger receives the reconciler's logs.
	Logger *slog.Logger
	// IdleAfter marks a tenant idle once unused this long (see idle.go); zero never does.
	IdleAfter time.Duration
	// IdleCheckInterval is how often unused tenants are looked for (default IdleAfter/4, at most 1m).
	IdleCheckInterval time.Duration
	// Now is the clock idleness is judged by (default time.Now).
	Now func() time.Time
	// OffloadAfter offloads a siloed tenant idle this long (see offload.go) to Archives, on
	// providers that can (Offloader); zero never does. Idleness is judged by the idle pass, so it
	// needs IdleAfter.
	OffloadAfter time.Duration
	// Archives keeps offloaded tenants' archives; nil offloads none (restores then fail).
	Archives ArchiveStore
}

// Reconciler drives tenants through provisioning and deletion. Every control-plane replica runs
// one; a PostgreSQL advisory lock elects a single leader that does the work, and a new leader
// resumes whatever the old one left half done (provisioners are idempotent).
type Reconciler struct {
	cfg      ReconcilerConfig
	log      *slog.Logger
	leader   atomic.Bool
	lost     atomic.Int64 // campaigns that found the lock held by another replica
	wake     chan struct{}
	mu       sync.Mutex
	inFlight map[ragplane.TenantID]bool

	attempts *prometheus.CounterVec
	duration *prometheus.HistogramVec
	leaderG  prometheus.Gauge
	sleep    *idleState
	offl     *offloadState
	// offloading counts the offloads (not restores) in flight: dispatch caps them.
	offloading atomic.Int64
}

// leaderLockKey is the advisory lock that elects the reconciler leader.
var leaderLockKey = func() int64 {
	h := fnv.New64a()
	h.Write([]byte("ragplane reconciler leader"))
	return int64(h.Sum64() >> 1)
}()

// Actor is how the reconciler appears in the audit log.
var actor = catalog.Actor{Name: "reconciler"}

// NewReconciler returns a reconciler; Run starts it.
func NewReconciler(cfg ReconcilerConfig) *Reconciler {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 10 * time.Minute
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Reconciler{
		cfg: cfg, log: cfg.Logger.With("component", "reconciler"),
		wake: make(chan struct{}, 1), inFlight: map[ragplane.TenantID]bool{},
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ragplane_controlplane_provision_attempts_total",
			Help: "Provisioning and deprovisioning attempts by provider, kind and result.",
		}, []string{"provider", "kind", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ragplane_controlplane_provision_duration_seconds",
			Help:    "Duration of provisioning and deprovisioning attempts.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"provider", "kind", "result"}),
		leaderG: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ragplane_controlplane_reconciler_leader",
			Help: "1 if this replica's reconciler holds the leader lock.",
		}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(r.attempts, r.duration, r.leaderG)
	}
	r.initIdle()
	r.initOffload()
	return r
}

// IsLeader reports whether this replica currently leads.
func (r *Reconciler) IsLeader() bool { return r.leader.Load() }

// Kick asks the reconciler to look for work now (e.g. after a tenant was created on this replica).
func (r *Reconciler) Kick() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run campaigns for leadership and, while leading, reconciles until ctx ends. It returns nil when
// ctx ends, and an error only when listening for catalog notifications cannot work at all.
func (r *Reconciler) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.listen(ctx) })
	g.Go(func() error {
		for ctx.Err() == nil {
			if err := r.lead(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("reconciler leadership lost", "error", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(r.cfg.PollInterval):
			}
		}
		return nil
	})
	return g.Wait()
}

// lead holds the leader lock on a dedicated connection for as long as it can and does the work.
func (r *Reconciler) lead(ctx context.Context) error {
	pool := r.cfg.Store.Pool()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The lock lives as long as this session; the connection is closed, not returned, at the end.
	defer func() {
		conn.Conn().Close(context.Background())
		conn.Release()
	}()
	var got bool
	if err := conn.QueryRow(ctx, `select pg_try_advisory_lock($1)`, leaderLockKey).Scan(&got); err != nil {
		return err
	}
	if !got {
		r.lost.Add(1)
		return nil
	}
	r.leader.Store(true)
	r.leaderG.Set(1)
	defer func() { r.leader.Store(false); r.leaderG.Set(0) }()
	r.log.Info("reconciler is leader")
	// Operations marked running were interrupted with the previous leader.
	if _, err := pool.Exec(ctx, `update provisioning_operations set state = 'failed',
		error = 'interrupted: the control plane stopped', finished_at = now() where state = 'running'`); err != nil {
		return err
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() { defer wg.Done(); r.upgrade(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); r.sleepIdle(ctx) }()
	done := make(chan struct{}, r.cfg.Concurrency)
	for {
		if err := r.dispatch(ctx, &wg, done); err != nil && ctx.Err() == nil {
			r.log.Warn("reconcile pass failed", "error", err)
		}
		timer := time.NewTimer(r.cfg.PollInterval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-r.wake:
		case <-done:
		case <-timer.C:
			// Losing the session loses the lock: stop leading at once.
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
		}
		timer.Stop()
	}
}

// dispatch starts work on pending tenants not already in flight, up to the concurrency cap.
func (r *Reconciler) dispatch(ctx context.Context, wg *sync.WaitGroup, done chan struct{}) error {
	r.mu.Lock()
	free := r.cfg.Concurrency - len(r.inFlight)
	r.mu.Unlock()
	if free <= 0 {
		return nil
	}
	pending, err := r.cfg.Store.PendingTenants(ctx, free+r.cfg.Concurrency)
	if err != nil {
		return err
	}
	moves, err := r.cfg.Store.PendingMoves(ctx, free+r.cfg.Concurrency)
	if err != nil {
		return err
	}
	offloads, err := r.cfg.Store.PendingOffloads(ctx, free+r.cfg.Concurrency)
	if err != nil {
		return err
	}
	// Restores come first (PendingOffloads orders them so: a request waits for each), and
	// offloads take at most half the slots, so that they neither hold back restores nor new
	// tenants' provisioning.
	offloadSlots := max(1, r.cfg.Concurrency/2)
	for _, o := range offloads {
		restore := o.RestoreRequestedAt != nil
		if !restore && r.offloading.Load() >= int64(offloadSlots) {
			continue
		}
		if !restore {
			r.offloading.Add(1)
		}
		started := r.start(wg, done, o.TenantID, func() {
			if !restore {
				defer r.offloading.Add(-1)
			}
			actx, cancel := context.WithTimeout(ctx, r.cfg.AttemptTimeout)
			defer cancel()
			r.offload(actx, o)
		})
		if !started && !restore {
			r.offloading.Add(-1)
		}
	}
	for _, m := range moves {
		r.start(wg, done, m.TenantID, func() {
			actx, cancel := context.WithTimeout(ctx, r.cfg.AttemptTimeout)
			defer cancel()
			r.move(actx, m)
		})
	}
	for _, t := range pending {
		r.start(wg, done, t.ID, func() { r.reconcile(ctx, t) })
	}
	return nil
}

// start runs work on a tenant in a goroutine unless the tenant is in flight already or the
// concurrency cap is reached; done is signalled when it ends. It reports whether it started it.
func (r *Reconciler) start(wg *sync.WaitGroup, done chan struct{}, id ragplane.TenantID, work func()) bool {
	r.mu.Lock()
	if r.inFlight[id] || len(r.inFlight) >= r.cfg.Concurrency {
		r.mu.Unlock()
		return false
	}
	r.inFlight[id] = true
	r.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		work()
		r.mu.Lock()
		delete(r.inFlight, id)
		r.mu.Unlock()
		select {
		case done <- struct{}{}:
		default:
		}
	}()
	return true
}

// upgrade migrates the databases of existing tenants to the schema this control plane was built
// with (tenantdb.LatestVersion), so a new release's tenant-schema migrations reach every tenant,
// not only new ones. It runs while this replica leads; tenants that fail are retried after a
// minute until all are current or ctx ends. Migrations are idempotent and serialised per
// database by tern's advisory lock.
func (r *Reconciler) upgrade(ctx context.Context) {
	latest := tenantdb.LatestVersion()
	for {
		failed := 0
		var after ragplane.TenantID
		for {
			ids, err := r.cfg.Store.OutdatedTenants(ctx, latest, after, 100)
			if err != nil {
				if ctx.Err() == nil {
					r.log.Warn("listing outdated tenant schemas failed", "error", err)
				}
				failed++
				break
			}
			for _, id := range ids {
				if err := r.upgradeTenant(ctx, id, latest); err != nil {
					if ctx.Err() != nil {
						return
					}
					failed++
					r.log.Warn("tenant schema upgrade failed", "tenant_id", id, "error", err)
				}
			}
			if len(ids) < 100 {
				break
			}
			after = ids[len(ids)-1]
		}
		if failed == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Minute):
		}
	}
}

// upgradeTenant migrates one tenant's database to version.
func (r *Reconciler) upgradeTenant(ctx context.Context, id ragplane.TenantID, version int) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.AttemptTimeout)
	defer cancel()
	rt, err := r.cfg.Store.TenantRuntime(ctx, id)
	if err != nil {
		return err
	}
	if rt.DatabaseURL == "" || rt.Offload != "" {
		return nil // no database, or offloaded since it was listed: its restore upgrades it
	}
	if strings.HasPrefix(rt.Tenant.ProviderProjectID, PooledProjectPrefix) {
		up, ok := r.cfg.Provisioners[rt.Tenant.Provider].(PoolUpgrader)
		if !ok {
			return fmt.Errorf("provider %s has no pools to upgrade", rt.Tenant.Provider)
		}
		got, err := up.UpgradePool(ctx, rt.Tenant.ProviderProjectID)
		if err != nil {
			return err
		}
		return r.cfg.Store.SetSchemaVersion(ctx, id, got)
	}
	conn, err := pgx.Connect(ctx, rt.DatabaseURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	cfg, err := rt.Resolve(nil)
	if err != nil {
		return err
	}
	start := time.Now()
	got, err := tenantdb.MigrateSilo(ctx, conn, cfg.Settings.EmbeddingDimension, string(id))
	if err != nil {
		return err
	}
	if err := r.cfg.Store.SetSchemaVersion(ctx, id, got); err != nil {
		return err
	}
	r.log.Info("tenant schema upgraded", "tenant_id", id, "from", rt.Tenant.SchemaVersion, "to", got,
		"duration_ms", time.Since(start).Milliseconds())
	return nil
}

// listen turns catalog notifications into wake-ups until ctx ends.
func (r *Reconciler) listen(ctx context.Context) error {
	return r.cfg.Store.Listen(ctx, catalog.Listener{
		Channels: []string{catalog.ChannelTenants, catalog.ChannelOffloads},
		Notify:   func(string, string) { r.Kick() },
		Interrupted: func(err error, retryIn time.Duration) {
			r.log.Warn("catalog notifications interrupted", "error", err, "retry_in", retryIn)
		},
	})
}

func (r *Reconciler) reconcile(ctx context.Context, t *ragplane.Tenant) {
	actx, cancel := context.WithTimeout(ctx, r.cfg.AttemptTimeout)
	defer cancel()
	switch t.Status {
	case ragplane.StatusProvisioning:
		r.provision(actx, t)
	case ragplane.StatusDeleting:
		r.deprovision(actx, t)
	}
}

func (r *Reconciler) provision(ctx context.Context, t *ragplane.Tenant) {
	log := r.log.With("tenant_id", t.ID, "provider", t.Provider)
	p := r.cfg.Provisioners[t.Provider]
	if t.ProvisionAttempts >= r.cfg.MaxAttempts || p == nil {
		reason := t.StatusReason
		if p == nil {
			reason = "provider " + string(t.Provider) + " is not configured on this control plane"
		}
		r.giveUp(ctx, t, p, reason)
		return
	}
	opID, attempt, err := r.cfg.Store.StartOperation(ctx, t.ID, "provision")
	if err != nil {
		log.Warn("starting provisioning failed", "error", err)
		return
	}
	dim, _ := t.Settings["embedding_dimension"].(float64)
	pooled, err := r.pooled(ctx, t)
	if err != nil {
		log.Warn("reading the tenant's isolation tier failed", "error", err)
		if ferr := r.cfg.Store.FinishOperation(context.WithoutCancel(ctx), opID, r.reason(err)); ferr != nil {
			log.Warn("recording operation failed", "error", ferr)
		}
		if err := r.cfg.Store.RetryLater(ctx, t.ID, r.reason(err), time.Now().Add(r.backoff(attempt))); err != nil {
			log.Warn("scheduling retry failed", "error", err)
		}
		return
	}
	start := time.Now()
	db, err := p.Provision(ctx, Request{
		TenantID: t.ID, Region: t.Region, ProjectID: t.ProviderProjectID, EmbeddingDimension: int(dim), Pooled: pooled,
	}, func(projectID string) error {
		t.ProviderProjectID = projectID
		return r.cfg.Store.RecordProjectID(ctx, t.ID, projectID)
	})
	if err == nil {
		var ok bool
		ok, err = r.cfg.Store.MarkActive(ctx, t.ID, db.ProjectID, db.URL, db.SchemaVersion, actor)
		if err == nil && !ok {
			log.Info("tenant left provisioning while it was provisioned; deletion will clean up")
		}
		if err == nil && ok {
			// Its tier may have been changed while it was provisioned: move it now if so.
			if terr := r.cfg.Store.ReconcileTier(ctx, t.ID, actor); terr != nil {
				log.Warn("checking the new tenant's tier failed", "error", terr)
			}
		}
	}
	r.observe(t.Provider, "provision", err, start)
	reason := r.reason(err)
	if ferr := r.cfg.Store.FinishOperation(context.WithoutCancel(ctx), opID, reason); ferr != nil {
		log.Warn("recording operation failed", "error", ferr)
	}
	if err == nil {
		log.Info("tenant provisioned", "attempt", attempt, "duration_ms", time.Since(start).Milliseconds())
		return
	}
	log.Warn("provisioning attempt failed", "attempt", attempt, "reason", reason)
	if ragplane.ErrorCode(err) == ragplane.EINVALID || attempt >= r.cfg.MaxAttempts {
		t.ProvisionAttempts = attempt
		r.giveUp(ctx, t, p, reason)
		return
	}
	if err := r.cfg.Store.RetryLater(ctx, t.ID, reason, time.Now().Add(r.backoff(attempt))); err != nil {
		log.Warn("scheduling retry failed", "error", err)
	}
}

// pooled reports whether the tenant goes to the pooled tier: its resolved isolation_tier setting
// (plan, then tenant), or a pool an interrupted attempt recorded.
func (r *Reconciler) pooled(ctx context.Context, t *ragplane.Tenant) (bool, error) {
	if strings.HasPrefix(t.ProviderProjectID, PooledProjectPrefix) {
		return true, nil
	}
	rt, err := r.cfg.Store.TenantRuntime(ctx, t.ID)
	if err != nil {
		return false, err
	}
	cfg, err := rt.Resolve(nil)
	if err != nil {
		return false, err
	}
	return cfg.Settings.IsolationTier == ragplane.TierPooled, nil
}

// giveUp removes whatever an attempt left behind and marks the tenant failed. If the cleanup itself
// fails the tenant stays provisioning and cleanup is retried.
func (r *Reconciler) giveUp(ctx context.Context, t *ragplane.Tenant, p Provisioner, reason string) {
	log := r.log.With("tenant_id", t.ID, "provider", t.Provider)
	if p != nil {
		opID, _, err := r.cfg.Store.StartOperation(ctx, t.ID, "cleanup")
		if err != nil {
			log.Warn("starting cleanup failed", "error", err)
			return
		}
		start := time.Now()
		err = p.Deprovision(ctx, t.ID, t.ProviderProjectID)
		r.observe(t.Provider, "cleanup", err, start)
		_ = r.cfg.Store.FinishOperation(context.WithoutCancel(ctx), opID, r.reason(err))
		if err != nil {
			log.Warn("cleanup after failed provisioning failed", "error", err)
			_ = r.cfg.Store.RetryLater(ctx, t.ID, reason, time.Now().Add(r.backoff(r.cfg.MaxAttempts)))
			return
		}
	}
	if err := r.cfg.Store.MarkFailed(ctx, t.ID, reason, actor); err != nil {
		log.Warn("marking tenant failed failed", "error", err)
		return
	}
	log.Warn("tenant provisioning failed", "reason", reason)
}

func (r *Reconciler) deprovision(ctx context.Context, t *ragplane.Tenant) {
	log := r.log.With("tenant_id", t.ID, "provider", t.Provider)
	p := r.cfg.Provisioners[t.Provider]
	if p == nil {
		_ = r.cfg.Store.RetryLater(ctx, t.ID, "provider "+string(t.Provider)+" is not configured on this control plane", time.Now().Add(r.cfg.MaxBackoff))
		return
	}
	// Not beside a move or an offload of the tenant's data on another replica (a leader that lost
	// the lead finishing a step), which could provision again what this removes.
	lctx, unlock, ok := r.lockTenantData(ctx, t.ID, log)
	if !ok {
		_ = r.cfg.Store.RetryLater(ctx, t.ID, "another control-plane session is moving or offloading the tenant's data", time.Now().Add(2*time.Second))
		return
	}
	defer unlock()
	ctx = lctx
	opID, attempt, err := r.cfg.Store.StartOperation(ctx, t.ID, "deprovision")
	if err != nil {
		log.Warn("starting deprovisioning failed", "error", err)
		return
	}
	start := time.Now()
	err = p.Deprovision(ctx, t.ID, t.ProviderProjectID)
	if err == nil {
		err = r.cfg.Store.MarkDeleted(ctx, t.ID, actor)
	}
	r.observe(t.Provider, "deprovision", err, start)
	_ = r.cfg.Store.FinishOperation(context.WithoutCancel(ctx), opID, r.reason(err))
	if err != nil {
		// Deletion is never given up: the data must go. Operators see the reason on the tenant.
		log.Warn("deprovisioning attempt failed", "attempt", attempt, "error", err)
		_ = r.cfg.Store.RetryLater(ctx, t.ID, r.reason(err), time.Now().Add(r.backoff(attempt)))
		return
	}
	log.Info("tenant deleted", "duration_ms", time.Since(start).Milliseconds())
}

// reason is the operator-facing text of an error: a ragplane.Error's message, or a generic text
// for anything else (its detail goes to the log only).
func (r *Reconciler) reason(err error) string {
	if err == nil {
		return ""
	}
	var e *ragplane.Error
	if errors.As(err, &e) {
		return e.Message
	}
	r.log.Error("provisioning error", "error", err)
	return "internal error; see the control plane log"
}

// backoff is exponential in the attempt number with ±50% jitter, capped.
func (r *Reconciler) backoff(attempt int) time.Duration {
	d := r.cfg.BaseBackoff << min(attempt-1, 20)
	if d <= 0 || d > r.cfg.MaxBackoff {
		d = r.cfg.MaxBackoff
	}
	return d/2 + rand.N(d)
}

func (r *Reconciler) observe(p ragplane.Provider, kind string, err error, start time.Time) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	r.attempts.WithLabelValues(string(p), kind, result).Inc()
	r.duration.WithLabelValues(string(p), kind, result).Observe(time.Since(start).Seconds())
}
