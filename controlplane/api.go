package controlplane

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/internal/httpjson"
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
// not even the token's length leaks).
func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	want := sha256.Sum256([]byte(s.cfg.AdminToken))
	return func(c echo.Context) error {
		tok, ok := bearer(c.Request())
		got := sha256.Sum256([]byte(tok))
		if !ok || subtle.ConstantTimeCompare(want[:], got[:]) != 1 {
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

// createTenantRequest is the body of POST /v1/tenants.
type createTenantRequest = catalog.NewTenant

func (s *Server) createTenant(c echo.Context) error {
	body, err := httpjson.ReadBody(c)
	if err != nil {
		return err
	}
	var req createTenantRequest
	if err := httpjson.Decode(c, body, &req); err != nil {
		return err
	}
	if req.Provider == "" {
		req.Provider = ragplane.Provider(s.cfg.Provision.DefaultProvider)
	}
	if req.Region == "" {
		req.Region = s.cfg.Provision.DefaultRegion
	}
	if _, ok := s.provisioners[req.Provider]; !ok && req.Provider.Valid() {
		return ragplane.FieldErrorf("provider", "Provider %q is not configured on this control plane.", req.Provider)
	}
	var idem *catalog.Idempotency
	if key := c.Request().Header.Get("Idempotency-Key"); key != "" {
		idem = &catalog.Idempotency{Key: key, Body: body}
	}
	t, replay, err := s.store.CreateTenant(c.Request().Context(), req, idem, s.actor(c, "admin"))
	if err != nil {
		return err
	}
	s.reconciler.Kick()
	c.Response().Header().Set("Location", "/v1/tenants/"+string(t.ID))
	if replay {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	return c.JSON(http.StatusAccepted, t)
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

func (s *Server) listTenants(c echo.Context) error {
	limit, err := queryLimit(c)
	if err != nil {
		return err
	}
	status := ragplane.TenantStatus(c.QueryParam("status"))
	if status != "" && !status.Valid() {
		return ragplane.FieldErrorf("status", "Unknown status %q.", status)
	}
	after := ragplane.TenantID(c.QueryParam("cursor"))
	if after != "" && after.Validate() != nil {
		return ragplane.FieldErrorf("cursor", "The cursor is not valid.")
	}
	ts, next, err := s.store.ListTenants(c.Request().Context(), catalog.TenantFilter{Status: status, After: after, Limit: limit})
	if err != nil {
		return err
	}
	if ts == nil {
		ts = []*ragplane.Tenant{}
	}
	return c.JSON(http.StatusOK, page[*ragplane.Tenant]{Items: ts, NextCursor: string(next)})
}

// tenantID reads and validates the :id path parameter; a malformed id cannot exist, so it is 404.
func tenantID(c echo.Context) (ragplane.TenantID, error) {
	id := ragplane.TenantID(c.Param("id"))
	if id.Validate() != nil {
		return "", ragplane.Errorf(ragplane.ENOTFOUND, "Tenant %q not found.", id)
	}
	return id, nil
}

func (s *Server) getTenant(c echo.Context) error {
	id, err := tenantID(c)
	if err != nil {
		return err
	}
	t, err := s.store.GetTenant(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, t)
}

func (s *Server) patchTenant(c echo.Context) error {
	id, err := tenantID(c)
	if err != nil {
		return err
	}
	body, err := httpjson.ReadBody(c)
	if err != nil {
		return err
	}
	var p catalog.TenantPatch
	if err := httpjson.Decode(c, body, &p); err != nil {
		return err
	}
	t, err := s.store.UpdateTenant(c.Request().Context(), id, p, s.actor(c, "admin"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, t)
}

// statusRequest is the optional body of suspend, resume and delete.
type statusRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) setStatus(c echo.Context, to ragplane.TenantStatus, code int) error {
	id, err := tenantID(c)
	if err != nil {
		return err
	}
	body, err := httpjson.ReadBody(c)
	if err != nil {
		return err
	}
	var req statusRequest
	if len(body) > 0 {
		if err := httpjson.Decode(c, body, &req); err != nil {
			return err
		}
		if len(req.Reason) > 500 {
			return ragplane.FieldErrorf("reason", "reason must be at most 500 characters.")
		}
	}
	t, err := s.store.SetStatus(c.Request().Context(), id, to, req.Reason, s.actor(c, "admin"))
	if err != nil {
		return err
	}
	if to == ragplane.StatusDeleting {
		s.reconciler.Kick()
	}
	return c.JSON(code, t)
}

func (s *Server) suspendTenant(c echo.Context) error {
	return s.setStatus(c, ragplane.StatusSuspended, http.StatusOK)
}

func (s *Server) resumeTenant(c echo.Context) error {
	return s.setStatus(c, ragplane.StatusActive, http.StatusOK)
}

func (s *Server) deleteTenant(c echo.Context) error {
	return s.setStatus(c, ragplane.StatusDeleting, http.StatusAccepted)
}

// configResponse is a tenant's effective config with the layer of each value.
type configResponse struct {
	TenantID      ragplane.TenantID           `json:"tenant_id"`
	Plan          string                      `json:"plan"`
	ConfigVersion int64                       `json:"config_version"`
	Settings      map[string]ragplane.Sourced `json:"settings"`
	Limits        map[string]ragplane.Sourced `json:"limits"`
}

func (s *Server) getTenantConfig(c echo.Context) error {
	id, err := tenantID(c)
	if err != nil {
		return err
	}
	cfg, t, err := s.store.TenantConfig(c.Request().Context(), id, nil)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, configResponse{TenantID: t.ID, Plan: t.Plan, ConfigVersion: t.ConfigVersion,
		Settings: cfg.SettingSources, Limits: cfg.LimitSources})
}

func (s *Server) listOperations(c echo.Context) error {
	id, err := tenantID(c)
	if err != nil {
		return err
	}
	if _, err := s.store.GetTenant(c.Request().Context(), id); err != nil {
		return err
	}
	ops, err := s.store.ListOperations(c.Request().Context(), id)
	if err != nil {
		return err
	}
	if ops == nil {
		ops = []catalog.Operation{}
	}
	return c.JSON(http.StatusOK, page[catalog.Operation]{Items: ops})
}

// createKeyResponse carries the new key's secret, shown this once.
type createKeyResponse struct {
	Key string `json:"key"`
	ragplane.APIKey
}

func (s *Server) createKey(c echo.Context) error {
	id, err := tenantID(c)
	if err != nil {
		return err
	}
	body, err := httpjson.ReadBody(c)
	if err != nil {
		return err
	}
	var req catalog.NewAPIKey
	if err := httpjson.Decode(c, body, &req); err != nil {
		return err
	}
	k, secret, err := s.store.CreateAPIKey(c.Request().Context(), id, req, s.actor(c, "admin"))
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, createKeyResponse{Key: secret, APIKey: k})
}

func (s *Server) listKeys(c echo.Context) error {
	id, err := tenantID(c)
	if err != nil {
		return err
	}
	keys, err := s.store.ListAPIKeys(c.Request().Context(), id)
	if err != nil {
		return err
	}
	if keys == nil {
		keys = []ragplane.APIKey{}
	}
	return c.JSON(http.StatusOK, page[ragplane.APIKey]{Items: keys})
}

func (s *Server) revokeKey(c echo.Context) error {
	id, err := tenantID(c)
	if err != nil {
		return err
	}
	k, err := s.store.RevokeAPIKey(c.Request().Context(), id, c.Param("key_id"), s.actor(c, "admin"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, k)
}

func (s *Server) listPlans(c echo.Context) error {
	plans, err := s.store.ListPlans(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page[ragplane.Plan]{Items: plans})
}

func (s *Server) getPlan(c echo.Context) error {
	p, err := s.store.GetPlan(c.Request().Context(), c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, p)
}

// putPlanRequest is the body of PUT /v1/plans/{name}.
type putPlanRequest struct {
	Description string             `json:"description"`
	Limits      ragplane.Overrides `json:"limits"`
	Settings    ragplane.Overrides `json:"settings"`
}

func (s *Server) putPlan(c echo.Context) error {
	body, err := httpjson.ReadBody(c)
	if err != nil {
		return err
	}
	var req putPlanRequest
	if err := httpjson.Decode(c, body, &req); err != nil {
		return err
	}
	if req.Limits == nil {
		req.Limits = ragplane.Overrides{}
	}
	if req.Settings == nil {
		req.Settings = ragplane.Overrides{}
	}
	for _, k := range ragplane.FixedSettingKeys() {
		if _, ok := req.Settings[k]; ok {
			return ragplane.FieldErrorf("settings."+k, "%s is fixed per tenant at provisioning; set it in the system defaults or on tenant creation.", k)
		}
	}
	p, err := s.store.PutPlan(c.Request().Context(), ragplane.Plan{Name: c.Param("name"), Description: req.Description,
		Limits: req.Limits, Settings: req.Settings}, s.actor(c, "admin"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, p)
}

// defaultsResponse shows the system layer: the operator's overrides, the effective defaults and
// the schema of every key.
type defaultsResponse struct {
	Overrides ragplane.ConfigLayer `json:"overrides"`
	Effective ragplane.ConfigLayer `json:"effective"`
	Schema    struct {
		Settings []ragplane.FieldDoc `json:"settings"`
		Limits   []ragplane.FieldDoc `json:"limits"`
	} `json:"schema"`
}

func (s *Server) getDefaults(c echo.Context) error {
	o, eff, err := s.store.SystemConfig(c.Request().Context())
	if err != nil {
		return err
	}
	resp := defaultsResponse{Overrides: o, Effective: eff}
	resp.Schema.Settings, resp.Schema.Limits = ragplane.SettingDocs(), ragplane.LimitDocs()
	return c.JSON(http.StatusOK, resp)
}

func (s *Server) putDefaults(c echo.Context) error {
	body, err := httpjson.ReadBody(c)
	if err != nil {
		return err
	}
	var req ragplane.ConfigLayer
	if err := httpjson.Decode(c, body, &req); err != nil {
		return err
	}
	if err := s.store.PutSystemConfig(c.Request().Context(), req, s.actor(c, "admin")); err != nil {
		return err
	}
	return s.getDefaults(c)
}

func (s *Server) rotateSigningKey(c echo.Context) error {
	if err := s.store.RotateSigningKey(c.Request().Context(), s.keyOverlap()); err != nil {
		return err
	}
	s.issuer.invalidate()
	return s.getJWKS(c)
}

func (s *Server) getJWKS(c echo.Context) error {
	keys, err := s.issuer.jwks(c.Request().Context())
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=60")
	return c.JSON(http.StatusOK, map[string]any{"keys": keys})
}

func (s *Server) listAudit(c echo.Context) error {
	limit, err := queryLimit(c)
	if err != nil {
		return err
	}
	var before int64
	if v := c.QueryParam("cursor"); v != "" {
		if before, err = strconv.ParseInt(v, 10, 64); err != nil || before < 1 {
			return ragplane.FieldErrorf("cursor", "The cursor is not valid.")
		}
	}
	entries, next, err := s.store.ListAudit(c.Request().Context(), catalog.AuditFilter{
		Target: c.QueryParam("target"), Action: c.QueryParam("action"), Before: before, Limit: limit})
	if err != nil {
		return err
	}
	if entries == nil {
		entries = []ragplane.AuditEntry{}
	}
	resp := page[ragplane.AuditEntry]{Items: entries}
	if next > 0 {
		resp.NextCursor = strconv.FormatInt(next, 10)
	}
	return c.JSON(http.StatusOK, resp)
}

// tokenRequest is the optional body of POST /v1/auth/token.
type tokenRequest struct {
	// User is the subject inside the tenant; default the key's id.
	User string `json:"user"`
	// Roles requested; must be a subset of the key's roles; default all of them.
	Roles []string `json:"roles"`
	// ExpiresIn in seconds; at most the configured TTL.
	ExpiresIn int `json:"expires_in"`
}

// tokenResponse follows OAuth 2.0's token response (RFC 6749 section 5.1).
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
}

// issueToken exchanges a tenant API key (the bearer credential) for a short-lived JWT.
func (s *Server) issueToken(c echo.Context) error {
	presented, ok := bearer(c.Request())
	if !ok {
		return ragplane.Errorf(ragplane.EUNAUTHORIZED, "Send the tenant API key as Authorization: Bearer <key>.")
	}
	body, err := httpjson.ReadBody(c)
	if err != nil {
		return err
	}
	var req tokenRequest
	if len(body) > 0 {
		if err := httpjson.Decode(c, body, &req); err != nil {
			return err
		}
	}
	ctx := c.Request().Context()
	key, t, err := s.store.AuthenticateAPIKey(ctx, presented)
	if err != nil {
		return err
	}
	switch t.Status {
	case ragplane.StatusActive:
	case ragplane.StatusSuspended:
		return ragplane.Errorf(ragplane.EFORBIDDEN, "The tenant is suspended.")
	case ragplane.StatusProvisioning:
		return ragplane.Errorf(ragplane.ECONFLICT, "The tenant is still being provisioned; try again shortly.")
	default:
		return ragplane.Errorf(ragplane.EUNAUTHORIZED, "Invalid API key.")
	}
	roles := key.Roles
	if len(req.Roles) > 0 {
		for i, r := range req.Roles {
			if !ragplane.ValidRole(r) {
				return ragplane.FieldErrorf("roles["+strconv.Itoa(i)+"]", "Unknown role %q.", r)
			}
			if !contains(key.Roles, r) {
				return ragplane.Errorf(ragplane.EFORBIDDEN, "This API key may not grant role %q.", r)
			}
		}
		roles = req.Roles
	}
	subject := "apikey:" + key.ID
	if req.User != "" {
		if len(req.User) > 200 || ragplane.ValidateName("user", req.User) != nil {
			return ragplane.FieldErrorf("user", "user must be 1-200 printable characters.")
		}
		subject = req.User
	}
	ttl := s.cfg.Tokens.TTL
	if req.ExpiresIn != 0 {
		if req.ExpiresIn < 60 || time.Duration(req.ExpiresIn)*time.Second > ttl {
			return ragplane.FieldErrorf("expires_in", "expires_in must be from 60 to %d seconds.", int(ttl.Seconds()))
		}
		ttl = time.Duration(req.ExpiresIn) * time.Second
	}
	tok, err := s.issuer.issue(ctx, t.ID, subject, roles, ttl)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, tokenResponse{AccessToken: tok, TokenType: "Bearer", ExpiresIn: int(ttl.Seconds())})
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
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
