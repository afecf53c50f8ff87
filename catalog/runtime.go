package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
)

// Runtime is what a data-plane worker needs to serve a tenant: the tenant, the lower layers of
// its config cascade (so per-request overrides resolve without another round trip), and its
// database URL.
type Runtime struct {
	Tenant      *ragplane.Tenant
	System      ragplane.ConfigLayer
	Plan        ragplane.ConfigLayer
	DatabaseURL string
	// IdleSince is when the tenant was marked idle (see MarkIdle); nil while it is awake.
	IdleSince *time.Time
	// Offload is the state of the tenant's offload to an archive (OffloadOffloading,
	// OffloadOffloaded), empty when it has none: an offloaded tenant's database is gone (or about
	// to be) until it is restored, which its first request asks for (Store.Wake).
	Offload string
}

// Resolve resolves the tenant's config with per-request overrides.
func (r *Runtime) Resolve(request ragplane.Overrides) (*ragplane.Config, error) {
	return ragplane.Resolve(r.System, r.Plan, ragplane.ConfigLayer{Settings: r.Tenant.Settings, Limits: r.Tenant.Limits}, request)
}

// TenantRuntime loads a tenant's runtime in one transaction. The database URL is empty unless the
// tenant has one (active or suspended tenants). ENOTFOUND if there is no such tenant.
func (s *Store) TenantRuntime(ctx context.Context, id ragplane.TenantID) (*Runtime, error) {
	rt := &Runtime{}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var sealed []byte
		row := tx.QueryRow(ctx, `select `+tenantColumns+`, database_url_sealed, a.idle_since,
			coalesce((select o.state from tenant_offloads o where o.tenant_id = tenants.id), '') from tenants
			left join tenant_activity a on a.tenant_id = tenants.id where id = $1`, id)
		var t ragplane.Tenant
		if err := row.Scan(&t.ID, &t.Name, &t.Email, &t.Plan, &t.Region, &t.Status, &t.StatusReason, &t.Provider,
			&t.ProviderProjectID, &t.SchemaVersion, &t.Limits, &t.Settings, &t.ConfigVersion, &t.ProvisionAttempts,
			&t.CreatedAt, &t.UpdatedAt, &t.DeletedAt, &sealed, &rt.IdleSince, &rt.Offload); err != nil {
			return pgError(err, fmt.Sprintf("Tenant %q", id))
		}
		for _, o := range []*ragplane.Overrides{&t.Limits, &t.Settings} {
			if *o == nil {
				*o = ragplane.Overrides{}
			}
		}
		if err := ragplane.ValidateSettings("tenant.settings", t.Settings); err != nil {
			return err
		}
		if err := ragplane.ValidateLimits("tenant.limits", t.Limits); err != nil {
			return err
		}
		var err error
		if rt.System, rt.Plan, err = layers(ctx, tx, t.Plan); err != nil {
			return err
		}
		rt.Tenant = &t
		if sealed != nil {
			url, err := s.sealer.Open(sealed, "tenant-db:"+string(id))
			if err != nil {
				return fmt.Errorf("catalog: tenant %s database url: %w", id, err)
			}
			rt.DatabaseURL = string(url)
		}
		return nil
	})
	return rt, err
}
