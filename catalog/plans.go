package catalog

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
)

// ListPlans returns every plan by name.
func (s *Store) ListPlans(ctx context.Context) ([]ragplane.Plan, error) {
	rows, err := s.pool.Query(ctx, `select name, description, limits, settings from plans order by name`)
	if err != nil {
		return nil, pgError(err, "Plans")
	}
	plans, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ragplane.Plan])
	return plans, pgError(err, "Plans")
}

// GetPlan returns one plan. ENOTFOUND if there is none.
func (s *Store) GetPlan(ctx context.Context, name string) (ragplane.Plan, error) {
	var p ragplane.Plan
	err := s.pool.QueryRow(ctx, `select name, description, limits, settings from plans where name = $1`, name).
		Scan(&p.Name, &p.Description, &p.Limits, &p.Settings)
	return p, pgError(err, fmt.Sprintf("Plan %q", name))
}

// PutPlan creates or replaces a plan. The change reaches every tenant on the plan, so their
// config versions are bumped; a plan that would make any tenant's config invalid is EINVALID.
func (s *Store) PutPlan(ctx context.Context, p ragplane.Plan, actor Actor) (ragplane.Plan, error) {
	p.Limits, p.Settings = merge(nil, p.Limits), merge(nil, p.Settings)
	if err := p.Validate(); err != nil {
		return p, err
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var before *ragplane.Plan
		var old ragplane.Plan
		err := tx.QueryRow(ctx, `select name, description, limits, settings from plans where name = $1 for update`, p.Name).
			Scan(&old.Name, &old.Description, &old.Limits, &old.Settings)
		if err == nil {
			before = &old
		} else if err != pgx.ErrNoRows {
			return pgError(err, "Plan")
		}
		if _, err := tx.Exec(ctx, `insert into plans (name, description, limits, settings) values ($1, $2, $3, $4)
			on conflict (name) do update set description = $2, limits = $3, settings = $4, updated_at = now()`,
			p.Name, p.Description, p.Limits, p.Settings); err != nil {
			return pgError(err, "Plan")
		}
		if err := s.checkTenantConfigs(ctx, tx, "plan = $1", p.Name); err != nil {
			return err
		}
		return audit(ctx, tx, actor, "plan.put", "plan/"+p.Name, before, p)
	})
	return p, err
}

// SystemConfig returns the operator's overrides of the built-in defaults and the effective defaults.
func (s *Store) SystemConfig(ctx context.Context) (overrides, effective ragplane.ConfigLayer, err error) {
	err = s.pool.QueryRow(ctx, `select settings, limits from system_config`).Scan(&overrides.Settings, &overrides.Limits)
	if err != nil {
		return overrides, effective, pgError(err, "System config")
	}
	effective.Settings = merge(ragplane.SystemSettings(), overrides.Settings)
	effective.Limits = merge(ragplane.SystemLimits(), overrides.Limits)
	return overrides, effective, nil
}

// PutSystemConfig replaces the operator's overrides of the system defaults. Every tenant's config
// version is bumped; overrides that would make any tenant's config invalid are EINVALID.
func (s *Store) PutSystemConfig(ctx context.Context, o ragplane.ConfigLayer, actor Actor) error {
	if o.Settings == nil {
		o.Settings = ragplane.Overrides{}
	}
	if o.Limits == nil {
		o.Limits = ragplane.Overrides{}
	}
	if err := ragplane.ValidateSettings("settings", o.Settings); err != nil {
		return err
	}
	if err := ragplane.ValidateLimits("limits", o.Limits); err != nil {
		return err
	}
	for k, v := range o.Settings {
		if v == nil {
			delete(o.Settings, k)
		}
	}
	for k, v := range o.Limits {
		if v == nil {
			delete(o.Limits, k)
		}
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var before ragplane.ConfigLayer
		if err := tx.QueryRow(ctx, `select settings, limits from system_config for update`).Scan(&before.Settings, &before.Limits); err != nil {
			return pgError(err, "System config")
		}
		if _, err := tx.Exec(ctx, `update system_config set settings = $1, limits = $2, updated_at = now()`, o.Settings, o.Limits); err != nil {
			return pgError(err, "System config")
		}
		if err := s.checkTenantConfigs(ctx, tx, "true", nil); err != nil {
			return err
		}
		return audit(ctx, tx, actor, "config.defaults.put", "config/defaults", before, o)
	})
}

// checkTenantConfigs re-resolves the config of the live tenants matching where and bumps their
// config versions, inside the transaction that changed a lower layer.
func (s *Store) checkTenantConfigs(ctx context.Context, tx pgx.Tx, where string, arg any) error {
	q := `select ` + tenantColumns + ` from tenants where status <> 'deleted' and ` + where
	var rows pgx.Rows
	var err error
	if arg != nil {
		rows, err = tx.Query(ctx, q, arg)
	} else {
		rows, err = tx.Query(ctx, q)
	}
	if err != nil {
		return pgError(err, "Tenants")
	}
	ts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*ragplane.Tenant, error) { return scanTenant(r) })
	if err != nil {
		return pgError(err, "Tenants")
	}
	for _, t := range ts {
		system, plan, err := layers(ctx, tx, t.Plan)
		if err != nil {
			return err
		}
		if _, err := ragplane.Resolve(system, plan, ragplane.ConfigLayer{Settings: t.Settings, Limits: t.Limits}, nil); err != nil {
			return ragplane.FieldErrorf(ragplane.ErrorField(err), "This change would make tenant %q's config invalid: %s", t.ID, ragplane.ErrorMessage(err))
		}
	}
	if _, err := tx.Exec(ctx, `update tenants set config_version = config_version + 1, updated_at = now()
		where status <> 'deleted' and id = any($1)`, ids(ts)); err != nil {
		return pgError(err, "Tenants")
	}
	return nil
}

func ids(ts []*ragplane.Tenant) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = string(t.ID)
	}
	return out
}
