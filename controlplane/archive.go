package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/catalog/archive"
	"github.com/ragplane/ragplane/internal/pgerr"
)

// restoreRoute (under /v1) is skipped by the admin API's body limit: an archive is streamed into the
// tenant's database, one record (at most archive.MaxLine bytes) in memory at a time.
const restoreRoute = "/tenants/:id/restore"

// manifestOf is the manifest of tenant's archive: its settings, limits and embedding model.
func manifestOf(cfg *ragplane.Config, t *ragplane.Tenant) archive.Manifest {
	return archive.Manifest{
		TenantID: t.ID, Plan: t.Plan, Settings: t.Settings, Limits: t.Limits,
		EmbeddingProvider: cfg.Settings.EmbeddingProvider, EmbeddingModel: cfg.Settings.EmbeddingModel,
		EmbeddingDimension: cfg.Settings.EmbeddingDimension,
	}
}

// tenantDB connects to a tenant's database with the URL the workers use (its own role in a silo,
// the pool's non-owner role in a pool), so row level security confines what the archive sees.
func (s *Server) tenantDB(ctx context.Context, id ragplane.TenantID, actor catalog.Actor) (*pgx.Conn, *ragplane.Config, *ragplane.Tenant, error) {
	cfg, t, err := s.store.TenantConfig(ctx, id, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	if t.Status != ragplane.StatusActive && t.Status != ragplane.StatusSuspended {
		return nil, nil, nil, ragplane.Errorf(ragplane.ECONFLICT, "Tenant %q is %s: only an active or suspended tenant has a database.", id, t.Status)
	}
	// An offloaded tenant's database is an archive until it is restored: ask for that. An export
	// or a restore is a use: an idle tenant is marked awake (so an offload under way is cancelled
	// and not started again at once).
	if w, err := s.store.Wake(ctx, id, time.Now(), actor); err != nil {
		return nil, nil, nil, err
	} else if w.Offload != nil {
		return nil, nil, nil, ragplane.Errorf(ragplane.EUNAVAILABLE,
			"Tenant %q was offloaded to an archive while idle: its restore is under way (GET /v1/tenants/%s/activity); retry then.", id, id)
	}
	url, err := s.store.TenantDatabaseURL(ctx, id)
	if err != nil {
		return nil, nil, nil, err
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, nil, nil, tenantDBError(err)
	}
	return conn, cfg, t, nil
}

// tenantDBError is a tenant database's failure as the API reports it, with no SQL or URL.
func tenantDBError(err error) error {
	var re *ragplane.Error
	if errors.As(err, &re) {
		return err
	}
	return pgerr.Translate(err, "tenant database", "Tenant database")
}

// exportTenant answers POST /v1/tenants/{id}/export: the tenant's archive (catalog/archive),
// streamed as JSON lines from one snapshot of its database, with its usage records from the
// catalog. A failure after the first byte cuts the stream short, without its end record, and a
// restore refuses it.
func (s *Server) exportTenant(c echo.Context) error {
	id, err := tenantID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	conn, cfg, t, err := s.tenantDB(ctx, id, s.actor(c))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := archive.Begin(ctx, conn, id, true)
	if err != nil {
		return tenantDBError(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	w := c.Response()
	w.Header().Set("Content-Type", archive.MediaType)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%s.ndjson"`, id, time.Now().UTC().Format("20060102T150405Z")))
	w.WriteHeader(http.StatusOK)
	usage := func(ctx context.Context, fn func(ragplane.UsageEvent) error) error {
		return s.store.ExportUsage(ctx, id, time.Time{}, time.Now().Add(time.Hour), fn)
	}
	n, err := archive.Export(ctx, tx, manifestOf(cfg, t), usage, w)
	if err != nil {
		s.log.Warn("tenant export cut short", "tenant_id", id, "error", err)
		return nil // the status is sent; the missing end record tells the reader
	}
	if err := s.store.Audit(context.WithoutCancel(ctx), s.actor(c), "tenant.export", "tenant/"+string(id), n); err != nil {
		s.log.Warn("auditing an export failed", "tenant_id", id, "error", err)
	}
	return nil
}

// restoreResponse is what POST /v1/tenants/{id}/restore answers.
type restoreResponse struct {
	TenantID       ragplane.TenantID `json:"tenant_id"`
	SourceTenantID ragplane.TenantID `json:"source_tenant_id"`
	archive.Result
	// IDs says how restored rows are named: archive.MapID.
	IDs string `json:"ids"`
}

// restoreTenant answers POST /v1/tenants/{id}/restore: loads an archive into the tenant, which
// must be active, hold no documents or graph yet, and embed with the archive's provider, model and
// dimension (422 naming the setting otherwise: embeddings are reused, never silently mixed). All
// or nothing: one transaction, committed only when the archive's end record checks out.
func (s *Server) restoreTenant(c echo.Context) error {
	id, err := tenantID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	conn, cfg, _, err := s.tenantDB(ctx, id, s.actor(c))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := archive.Begin(ctx, conn, id, false)
	if err != nil {
		return tenantDBError(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	check := func(m archive.Manifest) error {
		for _, f := range []struct {
			name      string
			from, got any
		}{
			{"embedding_provider", m.EmbeddingProvider, cfg.Settings.EmbeddingProvider},
			{"embedding_model", m.EmbeddingModel, cfg.Settings.EmbeddingModel},
			{"embedding_dimension", m.EmbeddingDimension, cfg.Settings.EmbeddingDimension},
		} {
			if f.from != f.got {
				return ragplane.FieldErrorf(f.name, "The archive's %s is %v but tenant %q's is %v: its embeddings cannot be reused. Restore into a tenant created with %s %v.",
					f.name, f.from, id, f.got, f.name, f.from)
			}
		}
		return nil
	}
	res, err := archive.Restore(ctx, tx, id, c.Request().Body, check)
	if err != nil {
		var ae *archive.Error
		if errors.As(err, &ae) {
			return ae.Problem()
		}
		var he *echo.HTTPError
		if errors.As(err, &he) {
			return err // the body limit, were it set
		}
		return tenantDBError(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return tenantDBError(err)
	}
	out := restoreResponse{TenantID: id, SourceTenantID: res.Manifest.TenantID, Result: *res,
		IDs: "uuid v5 of the archived id in the namespace uuid v5(URL, \"ragplane:tenant:<tenant_id>\")"}
	if err := s.store.Audit(context.WithoutCancel(ctx), s.actor(c), "tenant.restore", "tenant/"+string(id), out); err != nil {
		s.log.Warn("auditing a restore failed", "tenant_id", id, "error", err)
	}
	return c.JSON(http.StatusOK, out)
}
