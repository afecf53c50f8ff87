package dataplane

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/archive"
)

// exportOwn answers GET /v1/export for a token with the admin role: the caller's own tenant as a
// portable archive (catalog/archive), the same as the control plane's POST /v1/tenants/{id}/export,
// read from one snapshot of the tenant's database through its pool (row level security confines
// it) and its usage records from the catalog. A failure after the first byte cuts the stream
// short, without its end record, and a restore refuses it.
func (s *Server) exportOwn(c echo.Context) error {
	ctx := c.Request().Context()
	tenant, err := ragplane.TenantFromContext(ctx)
	if err != nil {
		return err
	}
	rt, err := s.runtime(ctx, tenant)
	if err != nil {
		return err
	}
	cfg, err := rt.Resolve(nil)
	if err != nil {
		return err
	}
	// The tenant's pool itself, not its Scoped view: the archive reads on one snapshot. An export
	// is a use: an idle tenant is marked awake (an offloaded one restored), as by any request.
	rt, pool, _, release, err := s.acquire(ctx, tenant, rt)
	if err != nil {
		return err
	}
	defer release()
	tx, err := archive.Begin(ctx, pool, tenant, true)
	if err != nil {
		return dbError(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	t := rt.Tenant
	m := archive.Manifest{TenantID: t.ID, Plan: t.Plan, Settings: t.Settings, Limits: t.Limits,
		EmbeddingProvider: cfg.Settings.EmbeddingProvider, EmbeddingModel: cfg.Settings.EmbeddingModel,
		EmbeddingDimension: cfg.Settings.EmbeddingDimension}
	usage := func(ctx context.Context, fn func(ragplane.UsageEvent) error) error {
		return s.store.ExportUsage(ctx, tenant, time.Time{}, time.Now().Add(time.Hour), fn)
	}
	w := c.Response()
	w.Header().Set("Content-Type", archive.MediaType)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%s.ndjson"`, tenant, time.Now().UTC().Format("20060102T150405Z")))
	w.WriteHeader(http.StatusOK)
	if _, err := archive.Export(ctx, tx, m, usage, w); err != nil {
		s.log.Warn("tenant self-export cut short", "tenant_id", tenant, "error", err)
	}
	return nil
}
