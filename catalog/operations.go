package catalog

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
)

// PendingTenants returns tenants the reconciler must work on now: provisioning or deleting, whose
// next attempt is due.
func (s *Store) PendingTenants(ctx context.Context, limit int) ([]*ragplane.Tenant, error) {
	rows, err := s.pool.Query(ctx, `select `+tenantColumns+` from tenants
		where status in ('provisioning', 'deleting') and next_attempt_at <= now()
		order by next_attempt_at, id limit $1`, limit)
	if err != nil {
		return nil, pgError(err, "Tenants")
	}
	ts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*ragplane.Tenant, error) { return scanTenant(r) })
	return ts, pgError(err, "Tenants")
}

// NextDue returns when the next pending tenant is due, or false if none is pending.
func (s *Store) NextDue(ctx context.Context) (time.Time, bool, error) {
	var at *time.Time
	err := s.pool.QueryRow(ctx, `select min(next_attempt_at) from tenants where status in ('provisioning', 'deleting')`).Scan(&at)
	if err != nil || at == nil {
		return time.Time{}, false, pgError(err, "Tenants")
	}
	return *at, true, nil
}

// StartOperation records the start of a provisioning attempt and counts it on the tenant.
func (s *Store) StartOperation(ctx context.Context, id ragplane.TenantID, kind string) (opID int64, attempt int, err error) {
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `update tenants set provision_attempts = provision_attempts + 1 where id = $1
			returning provision_attempts`, id).Scan(&attempt); err != nil {
			return pgError(err, "Tenant")
		}
		return tx.QueryRow(ctx, `insert into provisioning_operations (tenant_id, kind, attempt, state)
			values ($1, $2, $3, 'running') returning id`, id, kind, attempt).Scan(&opID)
	})
	return opID, attempt, err
}

// FinishOperation records the end of an operation; errText is empty on success.
func (s *Store) FinishOperation(ctx context.Context, opID int64, errText string) error {
	state := "succeeded"
	if errText != "" {
		state = "failed"
	}
	_, err := s.pool.Exec(ctx, `update provisioning_operations set state = $2, error = $3, finished_at = now() where id = $1`,
		opID, state, errText)
	return pgError(err, "Operation")
}

// Operation is one provisioning attempt.
type Operation struct {
	ID         int64      `json:"id"`
	TenantID   string     `json:"tenant_id"`
	Kind       string     `json:"kind"`
	Attempt    int        `json:"attempt"`
	State      string     `json:"state"`
	Error      string     `json:"error,omitempty"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// ListOperations returns a tenant's provisioning operations, oldest first.
func (s *Store) ListOperations(ctx context.Context, id ragplane.TenantID) ([]Operation, error) {
	rows, err := s.pool.Query(ctx, `select id, tenant_id, kind, attempt, state, error, started_at, finished_at
		from provisioning_operations where tenant_id = $1 order by id`, id)
	if err != nil {
		return nil, pgError(err, "Operations")
	}
	ops, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Operation])
	return ops, pgError(err, "Operations")
}

// RecordProjectID stores the provider's id for the tenant's database as soon as it is known, so a
// control plane that dies before provisioning finishes finds it again instead of creating another.
func (s *Store) RecordProjectID(ctx context.Context, id ragplane.TenantID, projectID string) error {
	_, err := s.pool.Exec(ctx, `update tenants set provider_project_id = $2, updated_at = now() where id = $1`, id, projectID)
	return pgError(err, "Tenant")
}

// MarkActive stores the tenant's sealed database URL and makes it active, if it is still
// provisioning (an operator may have deleted it meanwhile; then false is returned).
func (s *Store) MarkActive(ctx context.Context, id ragplane.TenantID, projectID, databaseURL string, schemaVersion int, actor Actor) (bool, error) {
	sealed := s.sealer.Seal([]byte(databaseURL), "tenant-db:"+string(id))
	var ok bool
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := s.lockTenant(ctx, tx, id)
		if err != nil {
			return err
		}
		if before.Status != ragplane.StatusProvisioning {
			return nil
		}
		after, err := scanTenant(tx.QueryRow(ctx, `update tenants set status = 'active', status_reason = '',
			provider_project_id = $2, database_url_sealed = $3, schema_version = $4, config_version = config_version + 1,
			updated_at = now() where id = $1 returning `+tenantColumns, id, projectID, sealed, schemaVersion))
		if err != nil {
			return pgError(err, "Tenant")
		}
		ok = true
		return audit(ctx, tx, actor, "tenant.provisioned", "tenant/"+string(id), before, after)
	})
	return ok, err
}

// RetryLater records a failed attempt and when to try again.
func (s *Store) RetryLater(ctx context.Context, id ragplane.TenantID, reason string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `update tenants set status_reason = $2, next_attempt_at = $3, updated_at = now()
		where id = $1 and status in ('provisioning', 'deleting')`, id, reason, at)
	return pgError(err, "Tenant")
}

// MarkFailed makes a provisioning tenant failed with reason; its partial resources are gone.
func (s *Store) MarkFailed(ctx context.Context, id ragplane.TenantID, reason string, actor Actor) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := s.lockTenant(ctx, tx, id)
		if err != nil || before.Status != ragplane.StatusProvisioning {
			return err
		}
		after, err := scanTenant(tx.QueryRow(ctx, `update tenants set status = 'failed', status_reason = $2,
			provider_project_id = '', database_url_sealed = null, config_version = config_version + 1, updated_at = now()
			where id = $1 returning `+tenantColumns, id, reason))
		if err != nil {
			return pgError(err, "Tenant")
		}
		return audit(ctx, tx, actor, "tenant.failed", "tenant/"+string(id), before, after)
	})
}

// MarkDeleted records that a deleting tenant's database is gone. The row stays for the audit
// trail and billing; its id is never reused.
func (s *Store) MarkDeleted(ctx context.Context, id ragplane.TenantID, actor Actor) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := s.lockTenant(ctx, tx, id)
		if err != nil || before.Status != ragplane.StatusDeleting {
			return err
		}
		after, err := scanTenant(tx.QueryRow(ctx, `update tenants set status = 'deleted', database_url_sealed = null,
			config_version = config_version + 1, updated_at = now(), deleted_at = now()
			where id = $1 returning `+tenantColumns, id))
		if err != nil {
			return pgError(err, "Tenant")
		}
		return audit(ctx, tx, actor, "tenant.deleted", "tenant/"+string(id), before, after)
	})
}

// OutdatedTenants returns up to limit tenants with a database (active or suspended) whose schema
// version is below version, in id order after the id after (empty for the first page).
func (s *Store) OutdatedTenants(ctx context.Context, version int, after ragplane.TenantID, limit int) ([]ragplane.TenantID, error) {
	// A tenant moving between tiers is upgraded by its mover, not beside it; an offloaded one has
	// no database (its restore upgrades it).
	rows, err := s.pool.Query(ctx, `select id from tenants where status in ('active', 'suspended')
		and database_url_sealed is not null and schema_version < $1 and id > $2
		and not exists (select 1 from tenant_moves m where m.tenant_id = tenants.id)
		and not exists (select 1 from tenant_offloads o where o.tenant_id = tenants.id) order by id limit $3`, version, after, limit)
	if err != nil {
		return nil, pgError(err, "Tenant")
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[ragplane.TenantID])
	return ids, pgError(err, "Tenant")
}

// SetSchemaVersion records that a tenant's database was migrated to version (never lowering it).
func (s *Store) SetSchemaVersion(ctx context.Context, id ragplane.TenantID, version int) error {
	_, err := s.pool.Exec(ctx, `update tenants set schema_version = $2, updated_at = now()
		where id = $1 and schema_version < $2`, id, version)
	return pgError(err, "Tenant")
}
