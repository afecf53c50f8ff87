package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
)

// Offload is a tenant's offload to an archive, from its start to its restore
// (migrations/010_tenant_offloads.sql).
type Offload struct {
	TenantID      ragplane.TenantID `json:"tenant_id"`
	State         string            `json:"state"`
	ProjectID     string            `json:"-"`
	Archive       string            `json:"archive,omitempty"`
	Bytes         int64             `json:"archive_bytes"`
	SHA256        string            `json:"archive_sha256,omitempty"`
	SchemaVersion int               `json:"schema_version"`
	Rows          map[string]int64  `json:"rows,omitempty"`
	// Dropped says the tenant's database is dropped (the archive is its only copy).
	Dropped            bool       `json:"database_dropped"`
	RestoreRequestedAt *time.Time `json:"restore_requested_at"`
	RestoreRequestedBy string     `json:"restore_requested_by,omitempty"`
	Attempts           int        `json:"attempts"`
	LastError          string     `json:"last_error,omitempty"`
	NextAttemptAt      time.Time  `json:"next_attempt_at"`
	StartedAt          time.Time  `json:"started_at"`
	OffloadedAt        *time.Time `json:"offloaded_at"`
}

// Offload states.
const (
	OffloadOffloading = "offloading"
	OffloadOffloaded  = "offloaded"
)

// OffloadArchive is what an offload wrote: the archive's name in the offload store, its size,
// checksum, schema version and rows per table.
type OffloadArchive struct {
	Name          string
	Bytes         int64
	SHA256        string
	SchemaVersion int
	Rows          map[string]int64
}

const offloadColumns = `tenant_id, state, project_id, archive, bytes, sha256, schema_version, rows, dropped,
	restore_requested_at, restore_requested_by, attempts, last_error, next_attempt_at, started_at, offloaded_at`

func scanOffload(row pgx.Row) (*Offload, error) {
	var o Offload
	if err := row.Scan(&o.TenantID, &o.State, &o.ProjectID, &o.Archive, &o.Bytes, &o.SHA256, &o.SchemaVersion, &o.Rows,
		&o.Dropped, &o.RestoreRequestedAt, &o.RestoreRequestedBy, &o.Attempts, &o.LastError, &o.NextAttemptAt,
		&o.StartedAt, &o.OffloadedAt); err != nil {
		return nil, err
	}
	return &o, nil
}

// StartOffloads starts offloading up to limit siloed tenants idle since before idleBefore, in
// one statement: active tenants with a database of their own (not in a pool) on one of
// providers, unused since they were marked idle (a request in flight then may have ended since),
// neither moving nor offloaded already. It returns the tenants it started, in id order.
func (s *Store) StartOffloads(ctx context.Context, idleBefore time.Time, providers []ragplane.Provider, limit int) ([]ragplane.TenantID, error) {
	names := make([]string, len(providers))
	for i, p := range providers {
		names[i] = string(p)
	}
	rows, err := s.pool.Query(ctx, `insert into tenant_offloads (tenant_id, project_id)
		select t.id, t.provider_project_id from tenants t join tenant_activity a on a.tenant_id = t.id
		where t.status = 'active' and a.idle_since < $1 and t.provider = any($2)
		  and not exists (select 1 from usage_events u where u.tenant_id = t.id and u.at >= a.idle_since)
		  and t.database_url_sealed is not null and t.provider_project_id <> ''
		  and t.provider_project_id not like 'pool:%'
		  and not exists (select 1 from tenant_moves m where m.tenant_id = t.id)
		  and not exists (select 1 from tenant_offloads o where o.tenant_id = t.id)
		order by t.id limit $3
		on conflict (tenant_id) do nothing
		returning tenant_id`, idleBefore, names, limit)
	if err != nil {
		return nil, pgError(err, "Tenant offloads")
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[ragplane.TenantID])
	return ids, pgError(err, "Tenant offloads")
}

// GetOffload returns the tenant's offload; ENOTFOUND when it has none.
func (s *Store) GetOffload(ctx context.Context, id ragplane.TenantID) (*Offload, error) {
	o, err := scanOffload(s.pool.QueryRow(ctx, `select `+offloadColumns+` from tenant_offloads where tenant_id = $1`, id))
	return o, pgError(err, "Tenant offload")
}

// PendingOffloads returns up to limit offloads with work due: those offloading, and offloaded
// ones whose database is still to be dropped or whose restore was asked for, of tenants not being
// deleted (their offboarding removes the archive: DeleteOffload). Restores asked for come first.
func (s *Store) PendingOffloads(ctx context.Context, limit int) ([]*Offload, error) {
	rows, err := s.pool.Query(ctx, `select `+offloadColumns+` from tenant_offloads
		where next_attempt_at <= now() and (state = 'offloading' or not dropped or restore_requested_at is not null)
		  and tenant_id in (select id from tenants where status in ('active', 'suspended'))
		order by restore_requested_at is null, next_attempt_at limit $1`, limit)
	if err != nil {
		return nil, pgError(err, "Tenant offloads")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Offload, error) { return scanOffload(r) })
	return out, pgError(err, "Tenant offloads")
}

// FinishOffload records the archive of an offloading tenant (state offloaded), with its audit
// entry. It reports false, changing nothing, when a restore was asked for meanwhile or the tenant
// was woken (the caller cancels the offload: see Wake), or the offload is gone.
func (s *Store) FinishOffload(ctx context.Context, id ragplane.TenantID, a OffloadArchive) (bool, error) {
	rows, err := json.Marshal(a.Rows)
	if err != nil {
		return false, err
	}
	done := false
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		o, err := scanOffload(tx.QueryRow(ctx, `update tenant_offloads set state = 'offloaded', archive = $2, bytes = $3,
			sha256 = $4, schema_version = $5, rows = $6, offloaded_at = now(), attempts = 0, last_error = ''
			where tenant_id = $1 and state = 'offloading' and restore_requested_at is null
			  and exists (select 1 from tenant_activity a where a.tenant_id = $1 and a.idle_since is not null)
			returning `+offloadColumns,
			id, a.Name, a.Bytes, a.SHA256, a.SchemaVersion, rows))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return pgError(err, "Tenant offload")
		}
		done = true
		return audit(ctx, tx, Actor{Name: "reconciler"}, "tenant.offload", "tenant/"+string(id), nil, o)
	})
	return done, err
}

// SetOffloadDropped records that an offloaded tenant's database is dropped.
func (s *Store) SetOffloadDropped(ctx context.Context, id ragplane.TenantID) error {
	_, err := s.pool.Exec(ctx, `update tenant_offloads set dropped = true, attempts = 0, last_error = ''
		where tenant_id = $1 and state = 'offloaded'`, id)
	return pgError(err, "Tenant offload")
}

// CancelOffload ends an offload that did not finish (its tenant was woken, or it cannot be
// offloaded), with its audit entry. The caller has unsealed the tenant's database.
func (s *Store) CancelOffload(ctx context.Context, id ragplane.TenantID, reason string) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		o, err := scanOffload(tx.QueryRow(ctx, `delete from tenant_offloads where tenant_id = $1 and state = 'offloading'
			returning `+offloadColumns, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return pgError(err, "Tenant offload")
		}
		// Workers waiting for the tenant's restore read it again at once: it is served from its database.
		if _, err := tx.Exec(ctx, `select pg_notify($1, $2)`, ChannelTenants, string(id)); err != nil {
			return pgError(err, "Tenant offload")
		}
		return audit(ctx, tx, Actor{Name: "reconciler"}, "tenant.offload.cancel", "tenant/"+string(id), o,
			map[string]string{"reason": reason})
	})
}

// RetryOffload records a failed step of an offload or restore and when to try again.
func (s *Store) RetryOffload(ctx context.Context, id ragplane.TenantID, reason string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `update tenant_offloads set attempts = attempts + 1, last_error = $2, next_attempt_at = $3
		where tenant_id = $1`, id, reason, at)
	return pgError(err, "Tenant offload")
}

// requestRestore asks for an offloaded (or offloading) tenant back (see Store.Wake): the
// reconciler leader is notified and restores it (or cancels the offload). It returns the offload,
// or nil when the tenant has none. Asking again changes nothing.
func requestRestore(ctx context.Context, tx pgx.Tx, id ragplane.TenantID, actor Actor) (*Offload, error) {
	o, err := scanOffload(tx.QueryRow(ctx, `update tenant_offloads set
		restore_requested_at = coalesce(restore_requested_at, now()),
		restore_requested_by = case when restore_requested_at is null then $2 else restore_requested_by end,
		next_attempt_at = case when restore_requested_at is null then now() else next_attempt_at end
		where tenant_id = $1 returning `+offloadColumns, id, actor.Name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, pgError(err, "Tenant offload")
	}
	if _, err := tx.Exec(ctx, `select pg_notify($1, $2)`, ChannelOffloads, string(id)); err != nil {
		return nil, pgError(err, "Tenant offload")
	}
	return o, nil
}

// FinishRestore points a restored tenant at its new database (projectID, url, at schemaVersion),
// ends its offload, marks it awake and audits the restore, in one transaction. Workers read the
// tenant again on the tenants channel's notice.
func (s *Store) FinishRestore(ctx context.Context, id ragplane.TenantID, projectID, url string, schemaVersion int) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := s.lockTenant(ctx, tx, id)
		if err != nil {
			return err
		}
		o, err := scanOffload(tx.QueryRow(ctx, `delete from tenant_offloads where tenant_id = $1 and state = 'offloaded'
			returning `+offloadColumns, id))
		if err != nil {
			return pgError(err, "Tenant offload")
		}
		if _, err := tx.Exec(ctx, `update tenants set provider_project_id = $2, database_url_sealed = $3,
			schema_version = $4, config_version = config_version + 1, updated_at = now() where id = $1`,
			id, projectID, s.sealer.Seal([]byte(url), "tenant-db:"+string(id)), schemaVersion); err != nil {
			return pgError(err, "Tenant")
		}
		if _, err := tx.Exec(ctx, `update tenant_activity set idle_since = null, woke_at = now() where tenant_id = $1`, id); err != nil {
			return pgError(err, "Tenant activity")
		}
		return audit(ctx, tx, Actor{Name: "reconciler"}, "tenant.offload.restore", "tenant/"+string(id), o,
			map[string]any{"project_id": projectID, "schema_version": schemaVersion, "provider_project_id_before": before.ProviderProjectID,
				"offloaded_seconds": time.Since(*o.OffloadedAt).Seconds()})
	})
}

// CountOffloads returns how many tenants have an offload (under way or done).
func (s *Store) CountOffloads(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `select count(*) from tenant_offloads`).Scan(&n)
	return n, pgError(err, "Tenant offloads")
}

// DeleteOffload ends a deleted tenant's offload, whatever its state, once its archive is removed.
func (s *Store) DeleteOffload(ctx context.Context, id ragplane.TenantID) error {
	_, err := s.pool.Exec(ctx, `delete from tenant_offloads where tenant_id = $1`, id)
	return pgError(err, "Tenant offload")
}
