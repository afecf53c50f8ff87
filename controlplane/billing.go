package controlplane

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
)

// Price is what a model costs per 1,000 tokens (catalog.Price).
type Price = catalog.Price

// DefaultPrices is the built-in price table (RAGPLANE_PRICES replaces it).
func DefaultPrices() map[string]Price { return catalog.DefaultPrices() }

func parsePrices(s string) (map[string]Price, error) { return catalog.ParsePrices(s) }

// tenantMetrics answers GET /v1/metrics/{tenant_id}: the compliance seed's metrics of a tenant
// over the last ?hours= (default 24), field for field (catalog.TenantMetrics).
func (s *Server) tenantMetrics(c echo.Context) error {
	id := ragplane.TenantID(c.Param("tenant_id"))
	if id.Validate() != nil {
		return ragplane.Errorf(ragplane.ENOTFOUND, "Tenant %q not found.", id)
	}
	hours, err := metricsHours(c.QueryParam("hours"))
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := s.store.GetTenant(ctx, id); err != nil {
		return err
	}
	m, err := s.store.TenantMetrics(ctx, id, hours, time.Now().UTC(), s.cfg.Prices)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, m)
}

// metricsHours reads the window of GET /v1/metrics/{tenant_id}: 1-8784 hours, default 24.
func metricsHours(v string) (int, error) {
	if v == "" {
		return 24, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 24*366 {
		return 0, ragplane.FieldErrorf("hours", "hours must be a whole number from 1 to 8784.")
	}
	return n, nil
}

// exportUsage answers GET /v1/usage/export?month=YYYY-MM[&tenant=]: every usage record of the
// month as CSV, for billing; record ids are stable, so re-exports reconcile.
func (s *Server) exportUsage(c echo.Context) error {
	month, err := time.Parse("2006-01", c.QueryParam("month"))
	if err != nil {
		return ragplane.FieldErrorf("month", "month must look like 2026-11.")
	}
	tenant := ragplane.TenantID(c.QueryParam("tenant"))
	if tenant != "" && tenant.Validate() != nil {
		return ragplane.FieldErrorf("tenant", "Not a tenant id.")
	}
	w := c.Response()
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="usage-`+month.Format("2006-01")+`.csv"`)
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	cw.Write([]string{"id", "tenant_id", "subject", "route", "retrieval_mode", "model", "prompt_tokens", "completion_tokens",
		"embedding_tokens", "documents_written", "chunks_written", "latency_ms", "status", "request_id", "at"})
	err = s.store.ExportUsage(c.Request().Context(), tenant, month, month.AddDate(0, 1, 0), func(e ragplane.UsageEvent) error {
		i := strconv.Itoa
		return cw.Write([]string{e.ID, string(e.TenantID), e.Subject, e.Route, e.RetrievalMode, e.Model, i(e.PromptTokens),
			i(e.CompletionTokens), i(e.EmbeddingTokens), i(e.DocumentsWritten), i(e.ChunksWritten), i(e.LatencyMS),
			i(e.Status), e.RequestID, e.At.UTC().Format(time.RFC3339Nano)})
	})
	cw.Flush()
	if err != nil {
		s.log.Error("usage export failed midway", "error", err)
	}
	return nil
}

// usageRange reads from, to (RFC 3339; default the last 24 hours) and granularity (default hour).
func usageRange(c echo.Context) (from, to time.Time, gran string, err error) {
	to, from, gran = time.Now().UTC(), time.Now().UTC().Add(-24*time.Hour), "hour"
	if v := c.QueryParam("granularity"); v != "" {
		gran = v
	}
	for name, dst := range map[string]*time.Time{"from": &from, "to": &to} {
		if v := c.QueryParam(name); v != "" {
			t, perr := time.Parse(time.RFC3339, v)
			if perr != nil {
				return from, to, gran, ragplane.FieldErrorf(name, "%s must be an RFC 3339 time like 2026-11-01T00:00:00Z.", name)
			}
			*dst = t
		}
	}
	return from, to, gran, nil
}

// getUsage answers GET /v1/tenants/{id}/usage: the tenant's hourly or daily rollups.
func (s *Server) getUsage(c echo.Context) error {
	id, err := tenantID(c)
	if err != nil {
		return err
	}
	from, to, gran, err := usageRange(c)
	if err != nil {
		return err
	}
	if _, err := s.store.GetTenant(c.Request().Context(), id); err != nil {
		return err
	}
	pts, err := s.store.Usage(c.Request().Context(), id, gran, from, to)
	if err != nil {
		return err
	}
	if pts == nil {
		pts = []catalog.UsagePoint{}
	}
	return c.JSON(http.StatusOK, map[string]any{"tenant_id": id, "granularity": gran, "from": from, "to": to, "items": pts})
}
