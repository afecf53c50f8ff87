package catalog

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
)

// ChannelTenantActivity carries "idle:<tenant id>" when a tenant was marked idle and
// "awake:<tenant id>" when it was woken.
const ChannelTenantActivity = "ragplane_tenant_activity"

// IdleTenant is a tenant the control plane just marked idle, with what suspending its compute takes.
type IdleTenant struct {
	ID                ragplane.TenantID
	Provider          ragplane.Provider
	ProviderProjectID string
}

// MarkIdle marks idle up to limit active tenants, not idle already, whose last use (their newest
// usage event, their last wake, or their creation, whichever is latest) is before unusedSince;
// their idle_since becomes now. It returns the tenants it marked, in id order. Marking is one
// statement, so a tenant woken meanwhile is not marked on stale information.
func (s *Store) MarkIdle(ctx context.Context, unusedSince, now time.Time, limit int) ([]IdleTenant, error) {
	rows, err := s.pool.Query(ctx, `with cand as (
			select t.id from tenants t left join tenant_activity a on a.tenant_id = t.id
			where t.status = 'active' and a.idle_since is null
			  and greatest(t.created_at, a.woke_at,
			        (select max(u.at) from usage_events u where u.tenant_id = t.id)) < $1
			order by t.id limit $3),
		marked as (
			insert into tenant_activity (tenant_id, idle_since) select id, $2 from cand
			on conflict (tenant_id) do update set idle_since = excluded.idle_since
			  where tenant_activity.idle_since is null
			returning tenant_id)
		select t.id, t.provider, t.provider_project_id from marked m join tenants t on t.id = m.tenant_id
		order by t.id`, unusedSince, now, limit)
	if err != nil {
		return nil, pgError(err, "Idle tenants")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (IdleTenant, error) {
		var t IdleTenant
		err := r.Scan(&t.ID, &t.Provider, &t.ProviderProjectID)
		return t, err
	})
	if err != nil {
		return nil, pgError(err, "Idle tenants")
	}
	return out, nil
}

// WakeTenant marks an idle tenant awake at now. It reports whether the tenant was idle and since when.
func (s *Store) WakeTenant(ctx context.Context, id ragplane.TenantID, now time.Time) (idleSince time.Time, woke bool, err error) {
	w, err := s.Wake(ctx, id, now, Actor{Name: "wake"})
	return w.IdleSince, w.Woke, err
}

// Waking is what Wake did.
type Waking struct {
	// Woke says the tenant was idle (since IdleSince) and is now marked awake.
	Woke      bool
	IdleSince time.Time
	// Offload is the tenant's offload when it has one: its restore is then asked for (as
	// as the API does), and its database is not to be used until the restore ends it.
	Offload *Offload
}

// Wake marks an idle tenant awake at now and, when the tenant is being offloaded or is offloaded,
// asks for its restore, in one transaction. With FinishOffload's check that the tenant is still
// idle (both lock the offload's row), an offload either sees the wake and is cancelled or is seen
// by it and restored: a tenant woken mid-offload is never left with its database dropped.
func (s *Store) Wake(ctx context.Context, id ragplane.TenantID, now time.Time, actor Actor) (Waking, error) {
	var w Waking
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `update tenant_activity a set idle_since = null, woke_at = $2
			from (select tenant_id, idle_since from tenant_activity where tenant_id = $1 and idle_since is not null for update) old
			where a.tenant_id = old.tenant_id returning old.idle_since`, id, now).Scan(&w.IdleSince)
		switch {
		case err == nil:
			w.Woke = true
		case !errors.Is(err, pgx.ErrNoRows):
			return pgError(err, "Tenant activity")
		}
		w.Offload, err = requestRestore(ctx, tx, id, actor)
		return err
	})
	return w, err
}

// SetComputeSuspended records whether the tenant's compute is suspended through its provider's API.
func (s *Store) SetComputeSuspended(ctx context.Context, id ragplane.TenantID, suspended bool) error {
	_, err := s.pool.Exec(ctx, `update tenant_activity set compute_suspended = $2 where tenant_id = $1`, id, suspended)
	return pgError(err, "Tenant activity")
}

// AwakeSuspended returns up to limit tenants awake again (or no longer active) whose compute is
// still recorded as suspended: the control plane starts their compute and clears the mark.
func (s *Store) AwakeSuspended(ctx context.Context, limit int) ([]IdleTenant, error) {
	rows, err := s.pool.Query(ctx, `select t.id, t.provider, t.provider_project_id from tenant_activity a
		join tenants t on t.id = a.tenant_id
		where a.compute_suspended and a.idle_since is null order by t.id limit $1`, limit)
	if err != nil {
		return nil, pgError(err, "Tenant activity")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (IdleTenant, error) {
		var t IdleTenant
		err := r.Scan(&t.ID, &t.Provider, &t.ProviderProjectID)
		return t, err
	})
	if err != nil {
		return nil, pgError(err, "Tenant activity")
	}
	return out, nil
}

// CountIdle returns how many active tenants are idle.
func (s *Store) CountIdle(ctx context.Context) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `select count(*) from tenant_activity a join tenants t on t.id = a.tenant_id
		where a.idle_since is not null and t.status = 'active'`).Scan(&n)
	return n, pgError(err, "Tenant activity")
}

// IdleSince returns when the tenant was marked idle, or nil while it is awake.
func (s *Store) IdleSince(ctx context.Context, id ragplane.TenantID) (*time.Time, error) {
	var at *time.Time
	err := s.pool.QueryRow(ctx, `select idle_since from tenant_activity where tenant_id = $1`, id).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return at, pgError(err, "Tenant activity")
}

// WakeUsed marks awake the idle tenants that were used after they were marked idle (a request in
// flight at the marking that ended since, recorded by its usage event), as if that use had woken
// them: they sleep again after a full idle period from it, and are not offloaded meanwhile. It
// returns how many it woke.
func (s *Store) WakeUsed(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `update tenant_activity a set idle_since = null, woke_at = used.at
		from (select a2.tenant_id, max(u.at) as at from tenant_activity a2
			join usage_events u on u.tenant_id = a2.tenant_id and u.at >= a2.idle_since
			where a2.idle_since is not null group by a2.tenant_id) used
		where a.tenant_id = used.tenant_id and a.idle_since is not null`)
	if err != nil {
		return 0, pgError(err, "Tenant activity")
	}
	return tag.RowsAffected(), nil
}
