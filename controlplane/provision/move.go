package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/catalog/tenantdb"
)

// TierMover is implemented by provisioners that can move tenants between tiers: they hand the
// mover a connection URL with owner rights (a role row level security does not bind) on the
// database a project id names.
type TierMover interface {
	OwnerURL(projectID string) (string, error)
}

// MoveStats is what a move did, for the audit log (tenant.move.switch and tenant.move.done).
type MoveStats struct {
	// Copy is step 1's first pass, from a snapshot while the tenant was served from the source.
	Copy tenantdb.SyncStats `json:"copy"`
	// CatchUp is the second pass, with the tenant's transactions held: what changed meanwhile.
	CatchUp tenantdb.SyncStats `json:"catch_up"`
	// Passes is how many passes step 1 took (the first, then what changed during the previous).
	Passes int `json:"passes"`
	// CopySeconds and HeldSeconds are how long steps 1 and 2 took; HeldSeconds is how long the
	// tenant's new requests could wait (from asking for its move lock to committing the seal).
	CopySeconds float64 `json:"copy_seconds"`
	HeldSeconds float64 `json:"held_seconds"`
}

// Step 1 repeats its pass while the previous one copied or deleted more than movePrecopyRows
// rows, at most movePrecopyPasses times: a tenant that writes faster than a pass copies is held
// for what its last pass left.
const (
	movePrecopyRows   = 100
	movePrecopyPasses = 5
)

// moveHoldWait bounds the wait for a tenant's transactions in flight before its writes are held
// (the tenant's new transactions queue behind the wait): a long ingestion makes the move try
// again later rather than hold the tenant's other requests.
const moveHoldWait = 2 * time.Second

// MoveGrace is how long the old copy of a moved tenant is kept sealed before it is removed:
// workers read the tenant's catalog entry again within their cache TTL (2s by default), and until
// then a worker still holding the old database gets 503 and retries (the seal), never rows that
// are about to go.
var MoveGrace = 5 * time.Second

// moveHook, when set (tests), is called at each step of a move: "copied", "sealed", "switched".
// An error stops the move there, as a crash of the control plane would.
var moveHook func(step string, tenant ragplane.TenantID) error

// SetMoveHook sets a hook called at each step of a move (tests of interrupted moves); it returns
// a function that restores the previous one.
func SetMoveHook(h func(step string, tenant ragplane.TenantID) error) func() {
	old := moveHook
	moveHook = h
	return func() { moveHook = old }
}

func hook(step string, tenant ragplane.TenantID) error {
	if moveHook == nil {
		return nil
	}
	return moveHook(step, tenant)
}

// move drives a tenant's move between tiers one step further (see catalog/tenantdb/sync.go for
// the copy and catalog.Move for the states). Every step is safe to repeat: an interrupted move is
// resumed by the next leader from the state the catalog records.
func (r *Reconciler) move(ctx context.Context, m *catalog.Move) {
	log := r.log.With("tenant_id", m.TenantID, "from_tier", m.FromTier, "to_tier", m.ToTier)
	lctx, unlock, ok := r.lockTenantData(ctx, m.TenantID, log)
	if !ok {
		return // another replica is moving it
	}
	defer unlock()
	ctx = lctx
	// Read the move again under the lock: another mover may have moved it on.
	var err error
	if m, err = r.cfg.Store.GetMove(ctx, m.TenantID); err != nil {
		if ragplane.ErrorCode(err) != ragplane.ENOTFOUND {
			log.Warn("tenant move: reading it failed", "error", err)
		}
		return
	}
	err = r.moveStep(ctx, m, log)
	if err == nil {
		return
	}
	reason := r.reason(err)
	if ragplane.ErrorCode(err) == ragplane.EINVALID && m.State == catalog.MoveCopying {
		// The provider cannot do it (e.g. Neon has no pools): give the move up.
		log.Warn("tenant move refused", "reason", reason)
		if err := r.cancelMove(ctx, m, reason); err != nil {
			log.Warn("cancelling the tenant move failed", "error", err)
		}
		return
	}
	log.Warn("tenant move step failed", "state", m.State, "attempt", m.Attempts+1, "error", err)
	retry := r.backoff(m.Attempts + 1)
	if errors.As(err, new(sealedError)) {
		// The tenant's old copy is sealed and the catalog still names it: it is refused until the
		// switch, which is all that is left to do.
		retry = min(retry, time.Second)
	}
	if err := r.cfg.Store.RetryMove(context.WithoutCancel(ctx), m.TenantID, reason, time.Now().Add(retry)); err != nil {
		log.Warn("scheduling the tenant move's retry failed", "error", err)
	}
}

// lockTenantData takes the lock that gives one control-plane replica at a time the right to move,
// offload or delete a tenant's data: a leader that lost its leadership may still be finishing a
// step, and two would each write from their own snapshot. It is a session lock on a catalog
// connection of its own, outside the catalog pool (which the steps use); unlock closes the
// session, which releases it. The step runs under lctx, which ends when ctx does or when the
// lock's session is found gone (checked every lockCheckInterval): a lock lost that way (the
// session terminated, the connection cut) stops the step at its next statement rather than let it
// run beside the replica that takes the lock next. ok is false when another session holds the
// lock or it could not be taken (logged).
func (r *Reconciler) lockTenantData(ctx context.Context, id ragplane.TenantID, log *slog.Logger) (lctx context.Context, unlock func(), ok bool) {
	conn, err := pgx.ConnectConfig(ctx, r.cfg.Store.Pool().Config().ConnConfig.Copy())
	if err != nil {
		log.Warn("no catalog connection for the tenant's data lock", "error", err)
		return nil, nil, false
	}
	var mine bool
	if err := conn.QueryRow(ctx, `select pg_try_advisory_lock(hashtextextended('ragplane.move:' || $1, 0))`, string(id)).Scan(&mine); err != nil || !mine {
		if err != nil {
			log.Warn("taking the tenant's data lock failed", "error", err)
		}
		conn.Close(context.WithoutCancel(ctx))
		return nil, nil, false
	}
	lctx, cancel := context.WithCancel(ctx)
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(lockCheckInterval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-lctx.Done():
				return
			case <-tick.C:
			}
			pctx, pcancel := context.WithTimeout(lctx, lockCheckInterval)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil && lctx.Err() == nil {
				log.Warn("the tenant's data lock was lost with its session: stopping the step", "error", err)
				cancel()
				return
			}
		}
	}()
	unlock = func() {
		close(stop)
		<-stopped
		cancel()
		conn.Close(context.WithoutCancel(ctx))
	}
	return lctx, unlock, true
}

// lockCheckInterval is how often a step checks that it still holds the tenant's data lock.
const lockCheckInterval = 2 * time.Second

func (r *Reconciler) moveStep(ctx context.Context, m *catalog.Move, log *slog.Logger) error {
	t, err := r.cfg.Store.GetTenant(ctx, m.TenantID)
	if err != nil {
		return err
	}
	p := r.cfg.Provisioners[t.Provider]
	if p == nil {
		return fmt.Errorf("provider %s is not configured on this control plane", t.Provider)
	}
	mover, ok := p.(TierMover)
	if !ok {
		return ragplane.Errorf(ragplane.EINVALID, "Provider %s cannot move tenants between tiers.", t.Provider)
	}
	gone := t.Status != ragplane.StatusActive && t.Status != ragplane.StatusSuspended
	if m.State == catalog.MoveCopying {
		if gone {
			return r.cancelMove(ctx, m, "the tenant is "+string(t.Status))
		}
		// An offloaded tenant's data is in an archive: it is restored first, then moved.
		if w, err := r.cfg.Store.Wake(ctx, t.ID, time.Now(), actor); err != nil {
			return err
		} else if w.Offload != nil {
			return ragplane.Errorf(ragplane.EUNAVAILABLE, "Tenant %q is offloaded to an archive: it is being restored before it moves.", t.ID)
		}
		start := time.Now()
		stats, err := r.copyAndSwitch(ctx, m, t, p, mover)
		if err != nil {
			return err
		}
		log.Info("tenant moved: serving from the new tier", "to_project_id", m.ToProjectID,
			"copy_seconds", stats.CopySeconds, "held_seconds", stats.HeldSeconds, "duration_ms", time.Since(start).Milliseconds())
		m.State, m.SwitchedAt = catalog.MoveSwitched, ptr(time.Now())
		m.Stats = nil
	}
	// Switched: remove the old copy once workers have had time to read the catalog again.
	if m.SwitchedAt != nil && !gone {
		if wait := time.Until(m.SwitchedAt.Add(MoveGrace)); wait > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
	}
	if err := p.Deprovision(ctx, m.TenantID, m.FromProjectID); err != nil {
		return err
	}
	// FinishMove starts the next move if the tier was changed back meanwhile.
	if err := r.cfg.Store.FinishMove(ctx, m.TenantID, map[string]any{"removed_project_id": m.FromProjectID}); err != nil {
		return err
	}
	log.Info("tenant move done: old copy removed", "from_project_id", m.FromProjectID)
	return nil
}

// sealedError is a move's failure after it sealed the tenant's old copy and before the catalog
// named the new one: the tenant is refused until a retry switches it.
type sealedError struct{ error }

func (e sealedError) Unwrap() error { return e.error }

// cancelMove removes what a move that cannot finish provisioned and drops the move.
func (r *Reconciler) cancelMove(ctx context.Context, m *catalog.Move, reason string) error {
	if m.ToProjectID != "" {
		t, err := r.cfg.Store.GetTenant(ctx, m.TenantID)
		if err != nil {
			return err
		}
		if p := r.cfg.Provisioners[t.Provider]; p != nil && m.ToProjectID != t.ProviderProjectID {
			if err := p.Deprovision(ctx, m.TenantID, m.ToProjectID); err != nil {
				return err
			}
		}
	}
	return r.cfg.Store.CancelMove(ctx, m.TenantID, reason)
}

// copyAndSwitch provisions the target, copies the tenant's rows in two passes (the second with its
// transactions held), seals the source and switches the catalog.
func (r *Reconciler) copyAndSwitch(ctx context.Context, m *catalog.Move, t *ragplane.Tenant, p Provisioner, mover TierMover) (MoveStats, error) {
	var stats MoveStats
	rt, err := r.cfg.Store.TenantRuntime(ctx, m.TenantID)
	if err != nil {
		return stats, err
	}
	cfg, err := rt.Resolve(nil)
	if err != nil {
		return stats, err
	}
	if t.ProviderProjectID != m.FromProjectID {
		return stats, fmt.Errorf("the tenant's project is %s, the move's source %s", t.ProviderProjectID, m.FromProjectID)
	}
	// The copy needs one schema on both sides; the target is provisioned at the latest, and the
	// schema upgrader leaves moving tenants to their mover.
	if latest := tenantdb.LatestVersion(); rt.Tenant.SchemaVersion < latest {
		if err := r.upgradeTenant(ctx, t.ID, latest); err != nil {
			return stats, transientErr("upgrade the tenant's schema", err)
		}
	}
	if m.ToURL == "" {
		db, err := p.Provision(ctx, Request{TenantID: t.ID, Region: t.Region, ProjectID: m.ToProjectID,
			EmbeddingDimension: cfg.Settings.EmbeddingDimension, Pooled: m.ToTier == ragplane.TierPooled},
			func(projectID string) error {
				m.ToProjectID = projectID
				return r.cfg.Store.SetMoveTarget(ctx, t.ID, projectID, "", 0)
			})
		if err != nil {
			return stats, err
		}
		if err := r.cfg.Store.SetMoveTarget(ctx, t.ID, db.ProjectID, db.URL, db.SchemaVersion); err != nil {
			return stats, err
		}
		m.ToProjectID, m.ToURL, m.ToSchemaVersion = db.ProjectID, db.URL, db.SchemaVersion
	}
	srcURL, err := mover.OwnerURL(m.FromProjectID)
	if err != nil {
		return stats, err
	}
	dstURL, err := mover.OwnerURL(m.ToProjectID)
	if err != nil {
		return stats, err
	}
	src, err := pgx.Connect(ctx, srcURL)
	if err != nil {
		return stats, transientErr("connect to the move's source", err)
	}
	defer src.Close(context.WithoutCancel(ctx))
	dst, err := pgx.Connect(ctx, dstURL)
	if err != nil {
		return stats, transientErr("connect to the move's target", err)
	}
	defer dst.Close(context.WithoutCancel(ctx))
	tenant := string(t.ID)
	// A resumed move whose old copy is sealed for this target has copied everything (the target
	// committed before the seal): only the switch is left.
	if to, err := tenantdb.SealedTo(ctx, src, tenant); err != nil {
		return stats, transientErr("read the old copy's seal", err)
	} else if to != "" {
		if to != m.ToProjectID {
			return stats, fmt.Errorf("the tenant's old copy is sealed for %s, not the move's target %s", to, m.ToProjectID)
		}
		if err := r.cfg.Store.SwitchMove(ctx, t.ID, map[string]any{"resumed": "after the seal"}); err != nil {
			return stats, sealedError{err}
		}
		return stats, hook("switched", t.ID)
	}

	// 1. The bulk of the rows, from one snapshot, while the tenant is served from the source; then
	// what changed during that pass, from a new snapshot, until little does (each pass copies what
	// the previous one's duration let the tenant write), so that step 2 holds the tenant briefly.
	start := time.Now()
	var known tenantdb.Hashes
	for pass := 1; ; pass++ {
		var st tenantdb.SyncStats
		var next tenantdb.Hashes
		err = pgx.BeginTxFunc(ctx, src, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, func(stx pgx.Tx) error {
			return pgx.BeginFunc(ctx, dst, func(dtx pgx.Tx) error {
				var err error
				st, next, err = tenantdb.Sync(ctx, stx, dtx, tenant, known)
				return err
			})
		})
		if err != nil {
			return stats, transientErr("copy the tenant's rows", err)
		}
		known = next // committed: the target holds exactly these
		if pass == 1 {
			stats.Copy = st
		}
		stats.Passes = pass
		copied, deleted := st.Total()
		if copied+deleted <= movePrecopyRows || pass >= movePrecopyPasses {
			break
		}
	}
	stats.CopySeconds = time.Since(start).Seconds()
	if err := hook("copied", t.ID); err != nil {
		return stats, err
	}

	// 2. What changed meanwhile, with the tenant's transactions held; then the seal. The target
	// commits first: a crash between the commits leaves the source unsealed and in use, and the
	// next attempt copies again.
	held := time.Now() // the tenant's new transactions queue from the first wait for its lock
	err = pgx.BeginTxFunc(ctx, src, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(stx pgx.Tx) error {
		if err := tenantdb.Fence(ctx, stx, tenant, moveHoldWait); err != nil {
			return err
		}
		err := pgx.BeginFunc(ctx, dst, func(dtx pgx.Tx) error {
			var err error
			if stats.CatchUp, _, err = tenantdb.Sync(ctx, stx, dtx, tenant, known); err != nil {
				return err
			}
			if err := tenantdb.Unseal(ctx, dtx, tenant); err != nil {
				return err
			}
			return tenantdb.Seal(ctx, stx, tenant, m.ToProjectID)
		})
		stats.HeldSeconds = time.Since(held).Seconds()
		return err
	})
	if err != nil {
		return stats, transientErr("copy the tenant's last changes and seal its old copy", err)
	}
	if err := hook("sealed", t.ID); err != nil {
		return stats, sealedError{err}
	}
	// 3. The catalog names the target: workers follow (the sealed source refuses them meanwhile).
	if err := r.cfg.Store.SwitchMove(ctx, t.ID, stats); err != nil {
		return stats, sealedError{err}
	}
	return stats, hook("switched", t.ID)
}

func transientErr(step string, err error) error {
	return fmt.Errorf("%w (%w)", ragplane.Errorf(ragplane.EUNAVAILABLE, "Moving the tenant failed to %s; it will be retried.", step), err)
}

func ptr[T any](v T) *T { return &v }
