package controlplane

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/internal/apidocs"
)

// routes registers the admin API. Every route here must be in openapi.json (a test checks both ways).
func (s *Server) routes(e *echo.Echo) {
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(s.metricsHandler))
	e.GET("/openapi.json", s.openAPI)
	e.GET("/docs", s.docs)
	e.GET("/docs/:file", s.docs)
	e.GET("/.well-known/jwks.json", s.getJWKS)
	e.POST("/v1/auth/token", s.issueToken)
	// The tenant's own keys, for tokens with the admin role, through the proxy (tenantkeys.go).
	e.GET("/v1/keys", s.tenantListKeys, s.requireTenantContext)
	e.POST("/v1/keys", s.tenantCreateKey, s.requireTenantContext)
	e.DELETE("/v1/keys/:key_id", s.tenantRevokeKey, s.requireTenantContext)

	e.PUT("/v1/workers/:id", s.putWorker, s.requireWorker)
	e.DELETE("/v1/workers/:id", s.deleteWorker, s.requireWorker)

	v1 := e.Group("/v1", s.requireAdmin)
	v1.GET("/workers", s.listWorkers)
	v1.GET("/proxies", s.listProxies)
	v1.POST("/tenants", s.createTenant)
	v1.GET("/tenants", s.listTenants)
	v1.GET("/tenants/:id", s.getTenant)
	v1.PATCH("/tenants/:id", s.patchTenant)
	v1.DELETE("/tenants/:id", s.deleteTenant)
	v1.POST("/tenants/:id/suspend", s.suspendTenant)
	v1.POST("/tenants/:id/resume", s.resumeTenant)
	v1.GET("/tenants/:id/config", s.getTenantConfig)
	v1.GET("/tenants/:id/operations", s.listOperations)
	v1.GET("/tenants/:id/usage", s.getUsage)
	v1.POST("/tenants/:id/export", s.exportTenant)
	v1.POST(restoreRoute, s.restoreTenant)
	v1.GET("/tenants/:id/deletion", s.getDeletionReport)
	v1.GET("/tenants/:id/move", s.getTenantMove)
	v1.GET("/tenants/:id/activity", s.getTenantActivity)
	v1.POST("/tenants/:id/wake", s.wakeTenant)
	v1.GET("/usage/export", s.exportUsage)
	v1.GET("/metrics/:tenant_id", s.tenantMetrics)
	v1.POST("/tenants/:id/keys", s.createKey)
	v1.GET("/tenants/:id/keys", s.listKeys)
	v1.DELETE("/tenants/:id/keys/:key_id", s.revokeKey)
	v1.GET("/plans", s.listPlans)
	v1.GET("/plans/:name", s.getPlan)
	v1.PUT("/plans/:name", s.putPlan)
	v1.GET("/config/defaults", s.getDefaults)
	v1.PUT("/config/defaults", s.putDefaults)
	v1.POST("/signing-keys/rotate", s.rotateSigningKey)
	v1.GET("/audit", s.listAudit)
	v1.GET("/operators", s.listOperators)
	v1.POST("/operators", s.createOperator)
	v1.GET("/operators/me", s.whoami)
	v1.DELETE("/operators/:name", s.revokeOperator)
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) > 4096 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// docs serves the API reference page and its files (internal/apidocs), showing /openapi.json.
func (s *Server) docs(c echo.Context) error {
	apidocs.Viewer{WebDir: s.cfg.WebDir}.ServeHTTP(c.Response(), c.Request())
	return nil
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is ready when the catalog answers and a signing key exists.
func (s *Server) readyz(c echo.Context) error {
	ctx := c.Request().Context()
	if err := s.store.Ping(ctx); err != nil {
		return ragplane.Errorf(ragplane.EUNAVAILABLE, "The catalog database is not reachable.")
	}
	if _, err := s.issuer.signingKeys(ctx); err != nil {
		return ragplane.Errorf(ragplane.EUNAVAILABLE, "No signing key is available yet.")
	}
	return c.JSON(http.StatusOK, map[string]any{"status": "ready", "reconciler_leader": s.reconciler.IsLeader()})
}

func (s *Server) openAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/json", openAPIDocument)
}

// page is a page of a list with the cursor of the next one.
type page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

func queryLimit(c echo.Context) (int, error) {
	v := c.QueryParam("limit")
	if v == "" {
		return 50, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 500 {
		return 0, ragplane.FieldErrorf("limit", "limit must be a whole number from 1 to 500.")
	}
	return n, nil
}

// tenantID reads and validates the :id path parameter; a malformed id cannot exist, so it is 404.
func tenantID(c echo.Context) (ragplane.TenantID, error) {
	id := ragplane.TenantID(c.Param("id"))
	if id.Validate() != nil {
		return "", ragplane.Errorf(ragplane.ENOTFOUND, "Tenant %q not found.", id)
	}
	return id, nil
}
