package controlplane

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
)

// routes registers the admin API. Every route here must be in openapi.json (a test checks both ways).
func (s *Server) routes(e *echo.Echo) {
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(s.metricsHandler))
	e.GET("/openapi.json", s.openAPI)
	e.GET("/.well-known/jwks.json", s.getJWKS)
	e.POST("/v1/auth/token", s.issueToken)

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
}

// requireAdmin checks the operator's bearer token in constant time (over fixed-size digests, so
// not even the token's length leaks). A failure is audited, within caps (see authAuditor).
func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	want := sha256.Sum256([]byte(s.cfg.AdminToken))
	return func(c echo.Context) error {
		tok, ok := bearer(c.Request())
		got := sha256.Sum256([]byte(tok))
		if !ok || subtle.ConstantTimeCompare(want[:], got[:]) != 1 {
			s.authAudit.record(c, tok)
			return ragplane.Errorf(ragplane.EUNAUTHORIZED, "A valid admin bearer token is required.")
		}
		return next(c)
	}
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

func (s *Server) actor(c echo.Context, name string) catalog.Actor {
	return catalog.Actor{Name: name, RequestID: c.Response().Header().Get(echo.HeaderXRequestID)}
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
