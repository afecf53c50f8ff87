package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
)

// Move is a tenant's move between isolation tiers in progress (migrations/009_tenant_moves.sql).
type Move struct {
	TenantID      ragplane.TenantID `json:"tenant_id"`
	FromTier      string            `json:"from_tier"`
	ToTier        string            `json:"to_tier"`
	State         string            `json:"state"`
	FromProjectID string            `json:"from_project_id"`
	ToProjectID   string            `json:"to_project_id,omitempty"`
	// ToURL is the target's URL for the tenant's workers, once provisioned. It is a secret.
	ToURL           string          `json:"-"`
	ToSchemaVersion int             `json:"-"`
	Stats           json.RawMessage `json:"stats,omitempty"`
	Attempts        int             `json:"attempts"`
	LastError       string          `json:"last_error,omitempty"`
	NextAttemptAt   time.Time       `json:"next_attempt_at"`
	RequestedBy     string          `json:"requested_by"`
	StartedAt       time.Time       `json:"started_at"`
	SwitchedAt      *time.Time      `json:"switched_at,omitempty"`
}

// Move states.
const (
	MoveCopying  = "copying"
	MoveSwitched = "switched"
)

const moveColumns = `tenant_id, from_tier, to_tier, state, from_project_id, to_project_id, to_url_sealed,
	to_schema_version, stats, attempts, last_error, next_attempt_at, requested_by, started_at, switched_at`

func (s *Store) scanMove(row pgx.Row) (*Move, error) {
	var m Move
	var sealed []byte
	if err := row.Scan(&m.TenantID, &m.FromTier, &m.ToTier, &m.State, &m.FromProjectID, &m.ToProjectID, &sealed,
		&m.ToSchemaVersion, &m.Stats, &m.Attempts, &m.LastError, &m.NextAttemptAt, &m.RequestedBy, &m.StartedAt, &m.SwitchedAt); err != nil {
		return nil, err
	}
	if sealed != nil {
		url, err := s.sealer.Open(sealed, "tenant-db:"+string(m.TenantID))
		if err != nil {
			return nil, fmt.Errorf("catalog: tenant %s move target url: %w", m.TenantID, err)
		}
		m.ToURL = string(url)
	}
	return &m, nil
}

// enqueueMove starts a move of the tenant to the tier its config now resolves to, in the caller's
// transaction (the change that asks for it and the move commit together), when that differs from
// the tier its data is in. Only an active or suspended tenant with a database moves; a tenant
// still being provisioned gets the new tier from its config. A move already in progress is left
// alone: when it is done the reconciler compares the tiers again and moves the tenant back if
// they differ.
func enqueueMove(ctx context.Context, tx pgx.Tx, t *ragplane.Tenant, toTier string, actor Actor) error {
	if t.Status != ragplane.StatusActive && t.Status != ragplane.StatusSuspended {
		return nil
	}
	if t.ProviderProjectID == "" || t.Tier() == toTier {
		return nil
	}
	if t.Provider == ragplane.ProviderNeon && toTier == ragplane.TierPooled {
		return nil // Neon has no pools: the tenant stays in its project (GET .../move shows both tiers)
	}
	tag, err := tx.Exec(ctx, `insert into tenant_moves (tenant_id, from_tier, to_tier, from_project_id, requested_by)
		values ($1, $2, $3, $4, $5) on conflict (tenant_id) do nothing`, t.ID, t.Tier(), toTier, t.ProviderProjectID, actor.Name)
	if err != nil || tag.RowsAffected() == 0 {
		return pgError(err, "Tenant move")
	}
	return audit(ctx, tx, actor, "tenant.move.start", "tenant/"+string(t.ID), nil,
		map[string]any{"from_tier": t.Tier(), "to_tier": toTier, "from_project_id": t.ProviderProjectID})
}

// GetMove returns the tenant's move in progress; ENOTFOUND when there is none.
func (s *Store) GetMove(ctx context.Context, id ragplane.TenantID) (*Move, error) {
	m, err := s.scanMove(s.pool.QueryRow(ctx, `select `+moveColumns+` from tenant_moves where tenant_id = $1`, id))
	return m, pgError(err, fmt.Sprintf("A move of tenant %q", id))
}

// PendingMoves returns moves due for work, oldest first.
func (s *Store) PendingMoves(ctx context.Context, limit int) ([]*Move, error) {
	rows, err := s.pool.Query(ctx, `select `+moveColumns+` from tenant_moves where next_attempt_at <= now()
		order by next_attempt_at, tenant_id limit $1`, limit)
	if err != nil {
		return nil, pgError(err, "Tenant moves")
	}
	ms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Move, error) { return s.scanMove(r) })
	return ms, pgError(err, "Tenant moves")
}

// SetMoveTarget records the move's target: its project id as soon as the provider names it (url
// empty), then its URL and schema version once it is provisioned.
func (s *Store) SetMoveTarget(ctx context.Context, id ragplane.TenantID, projectID, url string, schemaVersion int) error {
	var sealed []byte
	if url != "" {
		sealed = s.sealer.Seal([]byte(url), "tenant-db:"+string(id))
	}
	_, err := s.pool.Exec(ctx, `update tenant_moves set to_project_id = $2,
		to_url_sealed = coalesce($3, to_url_sealed), to_schema_version = greatest(to_schema_version, $4)
		where tenant_id = $1 and state = 'copying'`, id, projectID, sealed, schemaVersion)
	return pgError(err, "Tenant move")
}

// SwitchMove points the tenant at the move's target, in one transaction with the move's state
// (switched) and its audit entry: from here on workers that read the catalog use the target. The
// caller has sealed the tenant's rows in the old database first, so a worker still holding the old
// one fails and reads the catalog again. stats go to the audit log.
func (s *Store) SwitchMove(ctx context.Context, id ragplane.TenantID, stats any) error {
	b, err := json.Marshal(stats)
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := s.lockTenant(ctx, tx, id)
		if err != nil {
			return err
		}
		m, err := s.scanMove(tx.QueryRow(ctx, `select `+moveColumns+` from tenant_moves where tenant_id = $1 for update`, id))
		if err != nil {
			return pgError(err, "Tenant move")
		}
		if m.State != MoveCopying {
			return nil
		}
		if m.ToURL == "" || before.ProviderProjectID != m.FromProjectID {
			return ragplane.Errorf(ragplane.ECONFLICT, "Tenant %q's move has no target or its source changed.", id)
		}
		after, err := scanTenant(tx.QueryRow(ctx, `update tenants set provider_project_id = $2, database_url_sealed = $3,
			schema_version = $4, config_version = config_version + 1, updated_at = now()
			where id = $1 returning `+tenantColumns, id, m.ToProjectID, s.sealer.Seal([]byte(m.ToURL), "tenant-db:"+string(id)), m.ToSchemaVersion))
		if err != nil {
			return pgError(err, "Tenant")
		}
		if _, err := tx.Exec(ctx, `update tenant_moves set state = 'switched', switched_at = now(), stats = $2,
			last_error = '' where tenant_id = $1`, id, b); err != nil {
			return pgError(err, "Tenant move")
		}
		return audit(ctx, tx, Actor{Name: "reconciler"}, "tenant.move.switch", "tenant/"+string(id), before,
			map[string]any{"tenant": after, "stats": json.RawMessage(b)})
	})
}

// FinishMove ends a switched move whose old copy is removed, with its audit entry, and in the same
// transaction starts the next move if the tenant's tier was changed back meanwhile.
func (s *Store) FinishMove(ctx context.Context, id ragplane.TenantID, stats any) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		m, err := s.scanMove(tx.QueryRow(ctx, `delete from tenant_moves where tenant_id = $1 and state = 'switched'
			returning `+moveColumns, id))
		if err != nil {
			return pgError(err, "Tenant move")
		}
		actor := Actor{Name: "reconciler"}
		if err := audit(ctx, tx, actor, "tenant.move.done", "tenant/"+string(id), nil, map[string]any{
			"from_tier": m.FromTier, "to_tier": m.ToTier, "from_project_id": m.FromProjectID, "to_project_id": m.ToProjectID,
			"requested_by": m.RequestedBy, "started_at": m.StartedAt, "switched_at": m.SwitchedAt,
			"duration_seconds": time.Since(m.StartedAt).Seconds(), "stats": stats}); err != nil {
			return err
		}
		return s.reconcileTier(ctx, tx, id, actor)
	})
}

// ReconcileTier starts a move if the tenant's data is not in the tier its config resolves to (a
// change made while it was being provisioned, for one).
func (s *Store) ReconcileTier(ctx context.Context, id ragplane.TenantID, actor Actor) error {
	return s.inTx(ctx, func(tx pgx.Tx) error { return s.reconcileTier(ctx, tx, id, actor) })
}

func (s *Store) reconcileTier(ctx context.Context, tx pgx.Tx, id ragplane.TenantID, actor Actor) error {
	t, err := s.lockTenant(ctx, tx, id)
	if err != nil {
		return err
	}
	system, plan, err := layers(ctx, tx, t.Plan)
	if err != nil {
		return err
	}
	cfg, err := ragplane.Resolve(system, plan, ragplane.ConfigLayer{Settings: t.Settings, Limits: t.Limits}, nil)
	if err != nil {
		return err
	}
	return enqueueMove(ctx, tx, t, cfg.Settings.IsolationTier, actor)
}

// CancelMove drops a move that cannot go on (the tenant is being deleted, or its provider has no
// such tier) before it switched, with its audit entry; the caller has removed what it provisioned.
func (s *Store) CancelMove(ctx context.Context, id ragplane.TenantID, reason string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		m, err := s.scanMove(tx.QueryRow(ctx, `delete from tenant_moves where tenant_id = $1 and state = 'copying'
			returning `+moveColumns, id))
		if err != nil {
			return pgError(err, "Tenant move")
		}
		return audit(ctx, tx, Actor{Name: "reconciler"}, "tenant.move.cancel", "tenant/"+string(id), nil,
			map[string]any{"from_tier": m.FromTier, "to_tier": m.ToTier, "to_project_id": m.ToProjectID, "reason": reason})
	})
}

// RetryMove records a failed step of a move and when to try again.
func (s *Store) RetryMove(ctx context.Context, id ragplane.TenantID, reason string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `update tenant_moves set attempts = attempts + 1, last_error = $2, next_attempt_at = $3
		where tenant_id = $1`, id, reason, at)
	return pgError(err, "Tenant move")
}
