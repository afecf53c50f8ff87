package catalog

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
)

const tenantColumns = `id, name, email, plan, region, status, status_reason, provider, provider_project_id,
	schema_version, limits, settings, config_version, provision_attempts, created_at, updated_at, deleted_at`

func scanTenant(row pgx.Row) (*ragplane.Tenant, error) {
	var t ragplane.Tenant
	err := row.Scan(&t.ID, &t.Name, &t.Email, &t.Plan, &t.Region, &t.Status, &t.StatusReason, &t.Provider,
		&t.ProviderProjectID, &t.SchemaVersion, &t.Limits, &t.Settings, &t.ConfigVersion, &t.ProvisionAttempts,
		&t.CreatedAt, &t.UpdatedAt, &t.DeletedAt)
	if err != nil {
		return nil, err
	}
	if t.Limits == nil {
		t.Limits = ragplane.Overrides{}
	}
	if t.Settings == nil {
		t.Settings = ragplane.Overrides{}
	}
	return &t, nil
}

// NewTenant is what an operator gives to create a tenant.
type NewTenant struct {
	ID       ragplane.TenantID  `json:"id"`
	Name     string             `json:"name"`
	Email    string             `json:"email"`
	Plan     string             `json:"plan"`
	Region   string             `json:"region"`
	Provider ragplane.Provider  `json:"provider"`
	Limits   ragplane.Overrides `json:"limits"`
	Settings ragplane.Overrides `json:"settings"`
}

// Validate checks the fields that need no database. Errors are EINVALID naming the field.
func (n *NewTenant) Validate() error {
	if err := n.ID.Validate(); err != nil {
		return err
	}
	if strings.HasPrefix(string(n.ID), ReservedTenantPrefix) {
		// A siloed tenant's database and role are named <prefix><id>, the pools <prefix>pool_...:
		// such an id would name a pool's database, and deleting the tenant would drop the pool.
		return ragplane.FieldErrorf("id", "Tenant ids starting with %q are reserved for the platform's pool databases.", ReservedTenantPrefix)
	}
	if err := ragplane.ValidateName("name", n.Name); err != nil {
		return err
	}
	if err := ragplane.ValidateEmail("email", n.Email); err != nil {
		return err
	}
	if err := ragplane.ValidateRegion("region", n.Region); err != nil {
		return err
	}
	if n.Provider != ragplane.ProviderLocal && n.Provider != ragplane.ProviderNeon {
		return ragplane.FieldErrorf("provider", "Provider must be %q or %q.", ragplane.ProviderLocal, ragplane.ProviderNeon)
	}
	if err := ragplane.ValidateLimits("limits", n.Limits); err != nil {
		return err
	}
	return ragplane.ValidateSettings("settings", n.Settings)
}

// ReservedTenantPrefix starts the names of pool databases after the provisioner's prefix, so no
// tenant id may start with it.
const ReservedTenantPrefix = "pool_"

// Idempotency identifies a create request that a client may retry: the same Key with the same
// request body returns the first result; the same Key with another body is a conflict.
type Idempotency struct {
	Key  string
	Body []byte
}

// CreateTenant records a new tenant in status provisioning; the reconciler does the rest. With an
// idempotency key it returns the tenant created by an earlier identical request and replay=true.
// Errors: EINVALID (a field, or an unknown plan), ECONFLICT (id or email taken, or the key was used
// for another request).
func (s *Store) CreateTenant(ctx context.Context, n NewTenant, idem *Idempotency, actor Actor) (t *ragplane.Tenant, replay bool, err error) {
	// Validation normalises and creation fills in the fixed settings: work on copies, not the
	// caller's maps.
	n.Limits, n.Settings = merge(nil, n.Limits), merge(nil, n.Settings)
	if err := n.Validate(); err != nil {
		return nil, false, err
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if idem != nil {
			id, found, err := claimIdempotency(ctx, tx, "tenants.create", idem, "tenant/"+string(n.ID))
			if err != nil {
				return err
			}
			if found {
				replay = true
				t, err = scanTenant(tx.QueryRow(ctx, `select `+tenantColumns+` from tenants where id = $1`, id))
				return pgError(err, "Tenant")
			}
		}
		system, plan, err := layers(ctx, tx, n.Plan)
		if err != nil {
			return err
		}
		cfg, err := ragplane.Resolve(system, plan, ragplane.ConfigLayer{Settings: n.Settings, Limits: n.Limits}, nil)
		if err != nil {
			return err
		}
		// The embedding settings are fixed now: later plan or default changes must not alter the
		// dimension of vectors already stored.
		for _, k := range ragplane.FixedSettingKeys() {
			n.Settings[k] = cfg.SettingSources[k].Value
		}
		var exists bool
		if err := tx.QueryRow(ctx, `select exists(select 1 from tenants where id = $1)`, n.ID).Scan(&exists); err != nil {
			return pgError(err, "Tenant")
		}
		if exists {
			return ragplane.Errorf(ragplane.ECONFLICT, "Tenant %q already exists.", n.ID)
		}
		if err := tx.QueryRow(ctx, `select exists(select 1 from tenants where lower(email) = lower($1) and status <> 'deleted')`, n.Email).Scan(&exists); err != nil {
			return pgError(err, "Tenant")
		}
		if exists {
			return &ragplane.Error{Code: ragplane.ECONFLICT, Field: "email", Message: "Another tenant has this email."}
		}
		t, err = scanTenant(tx.QueryRow(ctx, `insert into tenants (id, name, email, plan, region, status, provider, limits, settings)
			values ($1, $2, $3, $4, $5, 'provisioning', $6, $7, $8) returning `+tenantColumns,
			n.ID, n.Name, n.Email, n.Plan, n.Region, n.Provider, n.Limits, n.Settings))
		if err != nil {
			// Two requests racing past the checks above meet here.
			return pgError(err, fmt.Sprintf("Tenant %q or its email", n.ID))
		}
		return audit(ctx, tx, actor, "tenant.create", "tenant/"+string(t.ID), nil, t)
	})
	return t, replay, err
}

// claimIdempotency records key for target, or returns the target an earlier identical request got.
func claimIdempotency(ctx context.Context, tx pgx.Tx, scope string, idem *Idempotency, target string) (string, bool, error) {
	if idem.Key == "" || len(idem.Key) > 255 {
		return "", false, ragplane.FieldErrorf("Idempotency-Key", "Idempotency-Key must be 1-255 characters.")
	}
	sum := sha256.Sum256(idem.Body)
	tag, err := tx.Exec(ctx, `insert into idempotency_keys (scope, key, request_hash, target) values ($1, $2, $3, $4)
		on conflict do nothing`, scope, idem.Key, sum[:], target)
	if err != nil {
		return "", false, pgError(err, "Idempotency key")
	}
	if tag.RowsAffected() == 1 {
		return "", false, nil
	}
	// The insert waited for any concurrent holder of the key to commit, so the row is visible now.
	var hash []byte
	var prev string
	if err := tx.QueryRow(ctx, `select request_hash, target from idempotency_keys where scope = $1 and key = $2`,
		scope, idem.Key).Scan(&hash, &prev); err != nil {
		return "", false, pgError(err, "Idempotency key")
	}
	if string(hash) != string(sum[:]) {
		return "", false, &ragplane.Error{Code: ragplane.ECONFLICT, Field: "Idempotency-Key",
			Message: "This Idempotency-Key was used for a different request."}
	}
	var id string
	fmt.Sscanf(prev, "tenant/%s", &id)
	return id, true, nil
}

// layers loads the system and plan layers. An unknown plan is EINVALID naming "plan".
func layers(ctx context.Context, q pgx.Tx, plan string) (system, p ragplane.ConfigLayer, err error) {
	if err = q.QueryRow(ctx, `select settings, limits from system_config`).Scan(&system.Settings, &system.Limits); err != nil {
		return system, p, pgError(err, "System config")
	}
	err = q.QueryRow(ctx, `select settings, limits from plans where name = $1`, plan).Scan(&p.Settings, &p.Limits)
	if errors.Is(err, pgx.ErrNoRows) {
		return system, p, ragplane.FieldErrorf("plan", "Unknown plan %q.", plan)
	} else if err != nil {
		return system, p, pgError(err, "Plan")
	}
	// Validate normalises JSON numbers to the types the cascade expects.
	if err := ragplane.ValidateSettings("system.settings", system.Settings); err != nil {
		return system, p, err
	}
	if err := ragplane.ValidateLimits("system.limits", system.Limits); err != nil {
		return system, p, err
	}
	if err := ragplane.ValidateSettings("plan.settings", p.Settings); err != nil {
		return system, p, err
	}
	if err := ragplane.ValidateLimits("plan.limits", p.Limits); err != nil {
		return system, p, err
	}
	system.Settings = merge(ragplane.SystemSettings(), system.Settings)
	system.Limits = merge(ragplane.SystemLimits(), system.Limits)
	return system, p, nil
}

// merge overlays o onto base; a nil value in o removes the key.
func merge(base, o ragplane.Overrides) ragplane.Overrides {
	out := maps.Clone(base)
	if out == nil {
		out = ragplane.Overrides{}
	}
	for k, v := range o {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

// GetTenant returns a tenant, including deleted ones. ENOTFOUND if there is none.
func (s *Store) GetTenant(ctx context.Context, id ragplane.TenantID) (*ragplane.Tenant, error) {
	t, err := scanTenant(s.pool.QueryRow(ctx, `select `+tenantColumns+` from tenants where id = $1`, id))
	return t, pgError(err, fmt.Sprintf("Tenant %q", id))
}

// TenantFilter selects a page of tenants in id order.
type TenantFilter struct {
	// Status selects one status when set.
	Status ragplane.TenantStatus
	// After is the cursor: the last id of the previous page.
	After ragplane.TenantID
	// Limit caps the page (1-500, default 50).
	Limit int
}

// ListTenants returns a page of tenants and the cursor of the next page ("" at the end).
func (s *Store) ListTenants(ctx context.Context, f TenantFilter) ([]*ragplane.Tenant, ragplane.TenantID, error) {
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 50
	}
	rows, err := s.pool.Query(ctx, `select `+tenantColumns+` from tenants
		where ($1 = '' or status = $1) and id > $2 order by id limit $3`, f.Status, f.After, f.Limit+1)
	if err != nil {
		return nil, "", pgError(err, "Tenants")
	}
	ts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*ragplane.Tenant, error) { return scanTenant(r) })
	if err != nil {
		return nil, "", pgError(err, "Tenants")
	}
	var next ragplane.TenantID
	if len(ts) > f.Limit {
		ts = ts[:f.Limit]
		next = ts[len(ts)-1].ID
	}
	return ts, next, nil
}

// TenantPatch is a partial update. Limits and Settings are merged into the tenant's overrides;
// a null value removes an override.
type TenantPatch struct {
	Name     *string            `json:"name"`
	Plan     *string            `json:"plan"`
	Limits   ragplane.Overrides `json:"limits"`
	Settings ragplane.Overrides `json:"settings"`
}

// UpdateTenant applies a patch and bumps the tenant's config version. The resulting config must
// resolve. Errors: ENOTFOUND, EINVALID naming the field, ECONFLICT if the tenant is deleted.
func (s *Store) UpdateTenant(ctx context.Context, id ragplane.TenantID, p TenantPatch, actor Actor) (*ragplane.Tenant, error) {
	if p.Name != nil {
		if err := ragplane.ValidateName("name", *p.Name); err != nil {
			return nil, err
		}
	}
	if err := ragplane.ValidateLimits("limits", p.Limits); err != nil {
		return nil, err
	}
	if err := ragplane.ValidateSettings("settings", p.Settings); err != nil {
		return nil, err
	}
	for _, k := range ragplane.FixedSettingKeys() {
		if _, ok := p.Settings[k]; ok {
			return nil, ragplane.FieldErrorf("settings."+k, "%s is fixed when the tenant is provisioned.", k)
		}
	}
	var out *ragplane.Tenant
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := s.lockTenant(ctx, tx, id)
		if err != nil {
			return err
		}
		if before.Status == ragplane.StatusDeleted || before.Status == ragplane.StatusDeleting {
			return ragplane.Errorf(ragplane.ECONFLICT, "Tenant %q is %s.", id, before.Status)
		}
		after := *before
		if p.Name != nil {
			after.Name = *p.Name
		}
		if p.Plan != nil {
			after.Plan = *p.Plan
		}
		after.Limits = merge(before.Limits, p.Limits)
		after.Settings = merge(before.Settings, p.Settings)
		system, plan, err := layers(ctx, tx, after.Plan)
		if err != nil {
			return err
		}
		tenant := ragplane.ConfigLayer{Settings: after.Settings, Limits: after.Limits}
		cfg, err := ragplane.Resolve(system, plan, tenant, nil)
		if err != nil {
			return err
		}
		out, err = scanTenant(tx.QueryRow(ctx, `update tenants set name = $2, plan = $3, limits = $4, settings = $5,
			config_version = config_version + 1, updated_at = now() where id = $1 returning `+tenantColumns,
			id, after.Name, after.Plan, after.Limits, after.Settings))
		if err != nil {
			return pgError(err, "Tenant")
		}
		if err := audit(ctx, tx, actor, "tenant.update", "tenant/"+string(id), before, out); err != nil {
			return err
		}
		// A plan or isolation_tier that puts the tenant in the other tier moves it (online).
		return enqueueMove(ctx, tx, out, cfg.Settings.IsolationTier, actor)
	})
	return out, err
}

func (s *Store) lockTenant(ctx context.Context, tx pgx.Tx, id ragplane.TenantID) (*ragplane.Tenant, error) {
	t, err := scanTenant(tx.QueryRow(ctx, `select `+tenantColumns+` from tenants where id = $1 for update`, id))
	return t, pgError(err, fmt.Sprintf("Tenant %q", id))
}

// SetStatus moves a tenant to another status as an operator asks (suspend, resume, delete).
// Deleting also revokes the tenant's API keys at once. Errors: ENOTFOUND; ECONFLICT when the
// transition is not allowed from the current status.
func (s *Store) SetStatus(ctx context.Context, id ragplane.TenantID, to ragplane.TenantStatus, reason string, actor Actor) (*ragplane.Tenant, error) {
	var out *ragplane.Tenant
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := s.lockTenant(ctx, tx, id)
		if err != nil {
			return err
		}
		if before.Status == to {
			out = before // suspending a suspended tenant is a no-op, not an error
			return nil
		}
		// Operators resume only suspended tenants: provisioning -> active is the reconciler's
		// step (MarkActive), taken only once the database exists.
		if !before.Status.CanTransition(to) || (to == ragplane.StatusActive && before.Status != ragplane.StatusSuspended) {
			return ragplane.Errorf(ragplane.ECONFLICT, "Tenant %q is %s and cannot become %s.", id, before.Status, to)
		}
		out, err = scanTenant(tx.QueryRow(ctx, `update tenants set status = $2, status_reason = $3,
			config_version = config_version + 1, updated_at = now(),
			provision_attempts = case when $2 = 'deleting' then 0 else provision_attempts end,
			next_attempt_at = now()
			where id = $1 returning `+tenantColumns, id, to, reason))
		if err != nil {
			return pgError(err, "Tenant")
		}
		if to == ragplane.StatusDeleting {
			if _, err := tx.Exec(ctx, `update api_keys set revoked_at = now() where tenant_id = $1 and revoked_at is null`, id); err != nil {
				return pgError(err, "API keys")
			}
		}
		action := map[ragplane.TenantStatus]string{ragplane.StatusSuspended: "tenant.suspend",
			ragplane.StatusActive: "tenant.resume", ragplane.StatusDeleting: "tenant.delete"}[to]
		if action == "" {
			action = "tenant.status"
		}
		return audit(ctx, tx, actor, action, "tenant/"+string(id), before, out)
	})
	return out, err
}

// TenantConfig resolves a tenant's effective config, with request overrides if given.
func (s *Store) TenantConfig(ctx context.Context, id ragplane.TenantID, request ragplane.Overrides) (*ragplane.Config, *ragplane.Tenant, error) {
	var cfg *ragplane.Config
	var t *ragplane.Tenant
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		t, err = scanTenant(tx.QueryRow(ctx, `select `+tenantColumns+` from tenants where id = $1`, id))
		if err != nil {
			return pgError(err, fmt.Sprintf("Tenant %q", id))
		}
		system, plan, err := layers(ctx, tx, t.Plan)
		if err != nil {
			return err
		}
		if err := ragplane.ValidateSettings("tenant.settings", t.Settings); err != nil {
			return err
		}
		if err := ragplane.ValidateLimits("tenant.limits", t.Limits); err != nil {
			return err
		}
		cfg, err = ragplane.Resolve(system, plan, ragplane.ConfigLayer{Settings: t.Settings, Limits: t.Limits}, request)
		return err
	})
	return cfg, t, err
}

// TenantDatabaseURL returns the tenant's database URL, decrypted. ENOTFOUND if the tenant has no
// database (yet).
func (s *Store) TenantDatabaseURL(ctx context.Context, id ragplane.TenantID) (string, error) {
	var sealed []byte
	err := s.pool.QueryRow(ctx, `select database_url_sealed from tenants where id = $1`, id).Scan(&sealed)
	if err != nil {
		return "", pgError(err, fmt.Sprintf("Tenant %q", id))
	}
	if sealed == nil {
		return "", ragplane.Errorf(ragplane.ENOTFOUND, "Tenant %q has no database.", id)
	}
	url, err := s.sealer.Open(sealed, "tenant-db:"+string(id))
	if err != nil {
		return "", fmt.Errorf("catalog: tenant %s database url: %w", id, err)
	}
	return string(url), nil
}

// TenantCount is the number of tenants with a status and provider.
type TenantCount struct {
	Status   ragplane.TenantStatus
	Provider ragplane.Provider
	Count    int64
}

// CountTenants counts tenants by status and provider.
func (s *Store) CountTenants(ctx context.Context) ([]TenantCount, error) {
	rows, err := s.pool.Query(ctx, `select status, provider, count(*) from tenants group by 1, 2 order by 1, 2`)
	if err != nil {
		return nil, pgError(err, "Tenants")
	}
	counts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[TenantCount])
	return counts, pgError(err, "Tenants")
}

// SetEmbedding records that a tenant's vectors were re-embedded with another model: it changes
// the fixed settings embedding_provider, embedding_model and embedding_dimension, which nothing
// else may change, bumps the config version (so workers pick the new model up) and audits it.
// The caller has already rewritten the tenant's vectors (dataplane.Reembed).
// Errors: ENOTFOUND; ECONFLICT when the tenant is not active or suspended; EINVALID.
func (s *Store) SetEmbedding(ctx context.Context, id ragplane.TenantID, provider, model string, dimension int, actor Actor) (*ragplane.Tenant, error) {
	set := ragplane.Overrides{"embedding_provider": provider, "embedding_model": model, "embedding_dimension": int64(dimension)}
	if err := ragplane.ValidateSettings("settings", set); err != nil {
		return nil, err
	}
	var out *ragplane.Tenant
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := s.lockTenant(ctx, tx, id)
		if err != nil {
			return err
		}
		if before.Status != ragplane.StatusActive && before.Status != ragplane.StatusSuspended {
			return ragplane.Errorf(ragplane.ECONFLICT, "Tenant %q is %s.", id, before.Status)
		}
		var moving bool
		if err := tx.QueryRow(ctx, `select exists(select 1 from tenant_moves where tenant_id = $1)`, id).Scan(&moving); err != nil {
			return pgError(err, "Tenant move")
		}
		if moving {
			return ragplane.Errorf(ragplane.ECONFLICT, "Tenant %q is moving between isolation tiers: re-embed it once the move is done (ragplane tenants tier %s --wait 10m).", id, id)
		}
		settings := merge(before.Settings, set)
		system, plan, err := layers(ctx, tx, before.Plan)
		if err != nil {
			return err
		}
		if _, err := ragplane.Resolve(system, plan, ragplane.ConfigLayer{Settings: settings, Limits: before.Limits}, nil); err != nil {
			return err
		}
		out, err = scanTenant(tx.QueryRow(ctx, `update tenants set settings = $2, config_version = config_version + 1,
			updated_at = now() where id = $1 returning `+tenantColumns, id, settings))
		if err != nil {
			return pgError(err, "Tenant")
		}
		return audit(ctx, tx, actor, "tenant.reembed", "tenant/"+string(id), before, out)
	})
	return out, err
}
