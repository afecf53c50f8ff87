package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
)

// ChangeMark is a position in the catalog's stream of tenant changes: the oldest transaction
// that was still running when the tenants were last read. Every tenant written by a transaction
// at or after the mark is read again by TenantPoliciesChangedSince, so no change is missed
// whatever the commit order. The zero mark reads every tenant.
type ChangeMark uint64

// RevokedKeyWindow is how long a revoked API key stays in its tenant's policy: the tokens it
// minted live at most an hour (the control plane's and the proxies' cap), and the margin covers
// the proxies' leeway and clock skew. A key revoked earlier cannot have a live token.
const RevokedKeyWindow = time.Hour + 5*time.Minute

// MaxRevokedKeys bounds the revoked keys in one tenant's policy, so that a policy stays small
// whatever a tenant does; the newest revocations are kept.
const MaxRevokedKeys = 1000

// TenantPoliciesByID returns the policies of the given tenants that exist, deleted ones included
// (with status deleted), so that a caller told about a change learns about a deletion too.
func (s *Store) TenantPoliciesByID(ctx context.Context, ids []ragplane.TenantID) ([]ragplane.TenantPolicy, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var out []ragplane.TenantPolicy
	err := s.readPolicies(ctx, func(tx pgx.Tx) error {
		var err error
		names := make([]string, len(ids))
		for i, id := range ids {
			names[i] = string(id)
		}
		out, err = tenantPolicies(ctx, tx, `id = any($1) order by id`, names)
		return err
	})
	return out, err
}

// TenantPoliciesChangedSince returns the policies of the tenants written since mark, deleted
// ones included (with status deleted), and the mark to pass next time. Its cost is bounded by the
// number of changes since mark, not by the number of tenants: the rows are found through an
// index. With the zero mark it returns every tenant, for a first full load.
func (s *Store) TenantPoliciesChangedSince(ctx context.Context, mark ChangeMark) ([]ragplane.TenantPolicy, ChangeMark, error) {
	var out []ragplane.TenantPolicy
	var next ChangeMark
	err := s.readPolicies(ctx, func(tx pgx.Tx) error {
		// Taken in the same snapshot as the rows below: whatever this read cannot see yet was
		// written by a transaction at or after next.
		if err := tx.QueryRow(ctx, `select pg_snapshot_xmin(pg_current_snapshot())::text::bigint`).Scan(&next); err != nil {
			return pgError(err, "Tenants")
		}
		var err error
		if mark == 0 {
			out, err = tenantPolicies(ctx, tx, `true order by id`)
		} else {
			out, err = tenantPolicies(ctx, tx, `change_xid >= $1::text::xid8 order by id`, fmt.Sprint(uint64(mark)))
		}
		return err
	})
	if err != nil {
		return nil, mark, err
	}
	return out, next, nil
}

// readPolicies runs fn in a read-only repeatable-read transaction, so that tenants, plans and
// system defaults are read from one snapshot.
func (s *Store) readPolicies(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, fn)
}

// tenantPolicies resolves the effective limits of the tenants matching where (SQL after
// "where", with args as its parameters). Each plan's layers are read once.
func tenantPolicies(ctx context.Context, tx pgx.Tx, where string, args ...any) ([]ragplane.TenantPolicy, error) {
	rows, err := tx.Query(ctx, `select `+tenantColumns+` from tenants where `+where, args...)
	if err != nil {
		return nil, pgError(err, "Tenants")
	}
	ts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*ragplane.Tenant, error) { return scanTenant(r) })
	if err != nil {
		return nil, pgError(err, "Tenants")
	}
	out := make([]ragplane.TenantPolicy, 0, len(ts))
	plans := map[string]ragplane.ConfigLayer{}
	var system ragplane.ConfigLayer
	for _, t := range ts {
		if t.Status == ragplane.StatusDeleted {
			// A deleted tenant's plan may be gone and its limits do not matter.
			out = append(out, ragplane.TenantPolicy{TenantID: t.ID, Status: t.Status, Plan: t.Plan, ConfigVersion: t.ConfigVersion})
			continue
		}
		p, ok := plans[t.Plan]
		if !ok {
			if system, p, err = layers(ctx, tx, t.Plan); err != nil {
				return nil, err
			}
			plans[t.Plan] = p
		}
		if err := ragplane.ValidateLimits("tenant.limits", t.Limits); err != nil {
			return nil, err
		}
		if err := ragplane.ValidateSettings("tenant.settings", t.Settings); err != nil {
			return nil, err
		}
		cfg, err := ragplane.Resolve(system, p, ragplane.ConfigLayer{Settings: t.Settings, Limits: t.Limits}, nil)
		if err != nil {
			return nil, fmt.Errorf("catalog: tenant %s config: %w", t.ID, err)
		}
		out = append(out, ragplane.TenantPolicy{TenantID: t.ID, Status: t.Status, Plan: t.Plan, Limits: cfg.Limits, ConfigVersion: t.ConfigVersion})
	}
	if err := revokedKeys(ctx, tx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// revokedKeys fills in the RevokedAPIKeys of the policies of tenants that are not deleted: their
// keys revoked within RevokedKeyWindow, newest first, at most MaxRevokedKeys each.
func revokedKeys(ctx context.Context, tx pgx.Tx, policies []ragplane.TenantPolicy) error {
	at := make(map[ragplane.TenantID]int, len(policies))
	ids := make([]string, 0, len(policies))
	for i, p := range policies {
		if p.Status != ragplane.StatusDeleted {
			at[p.TenantID] = i
			ids = append(ids, string(p.TenantID))
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `select tenant_id, id from (
			select tenant_id, id, revoked_at, row_number() over (partition by tenant_id order by revoked_at desc, id) as n
			from api_keys where tenant_id = any($1) and revoked_at > now() - make_interval(secs => $2)
		) k where n <= $3 order by tenant_id, revoked_at desc, id`, ids, RevokedKeyWindow.Seconds(), MaxRevokedKeys)
	if err != nil {
		return pgError(err, "API keys")
	}
	var tenant, key string
	_, err = pgx.ForEachRow(rows, []any{&tenant, &key}, func() error {
		if i, ok := at[ragplane.TenantID(tenant)]; ok {
			policies[i].RevokedAPIKeys = append(policies[i].RevokedAPIKeys, key)
		}
		return nil
	})
	return pgError(err, "API keys")
}
