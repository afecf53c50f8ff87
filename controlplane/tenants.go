package controlplane

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/internal/httpjson"
)

// createTenantRequest is the body of POST /v1/tenants: a catalog.NewTenant, plus the deployment
// guide's flat max_documents and max_storage_mb, which are the limits of those names.
type createTenantRequest struct {
	catalog.NewTenant
	MaxDocuments any `json:"max_documents"`
	MaxStorageMB any `json:"max_storage_mb"`
}

// flatLimits moves the flat limits into Limits; a limit given both ways is refused.
func (r *createTenantRequest) flatLimits() error {
	for _, f := range []struct {
		key string
		v   any
	}{{"max_documents", r.MaxDocuments}, {"max_storage_mb", r.MaxStorageMB}} {
		if f.v == nil {
			continue
		}
		if _, dup := r.Limits[f.key]; dup {
			return ragplane.FieldErrorf(f.key, "%s is given both at the top level and in limits; give it once.", f.key)
		}
		if r.Limits == nil {
			r.Limits = ragplane.Overrides{}
		}
		r.Limits[f.key] = f.v
	}
	return nil
}

// asSent names a flat limit in an error as the client sent it (max_documents, not
// limits.max_documents).
func (r *createTenantRequest) asSent(err error) error {
	var e *ragplane.Error
	if errors.As(err, &e) {
		for key, v := range map[string]any{"max_documents": r.MaxDocuments, "max_storage_mb": r.MaxStorageMB} {
			if v != nil && e.Field == "limits."+key {
				c := *e
				c.Field = key
				return &c
			}
		}
	}
	return err
}

// defaultPlan is the plan of a tenant created without one.
const defaultPlan = "free"

func (s *Server) createTenant(c echo.Context) error {
	body, err := httpjson.ReadBody(c)
	if err != nil {
		return err
	}
	var flat createTenantRequest
	if err := httpjson.Decode(c, body, &flat); err != nil {
		return err
	}
	if err := flat.flatLimits(); err != nil {
		return err
	}
	req := flat.NewTenant
	if req.Plan == "" {
		req.Plan = defaultPlan
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
	t, replay, err := s.store.CreateTenant(c.Request().Context(), req, idem, s.actor(c))
	if err != nil {
		return flat.asSent(err)
	}
	s.reconciler.Kick()
	c.Response().Header().Set("Location", "/v1/tenants/"+string(t.ID))
	if replay {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	return c.JSON(http.StatusAccepted, t)
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
	t, err := s.store.UpdateTenant(c.Request().Context(), id, p, s.actor(c))
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
	t, err := s.store.SetStatus(c.Request().Context(), id, to, req.Reason, s.actor(c))
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

// tierResponse is what GET /v1/tenants/{id}/move answers.
type tierResponse struct {
	TenantID ragplane.TenantID `json:"tenant_id"`
	// Tier is where the tenant's data is now; ConfiguredTier is where its config (plan, then
	// tenant isolation_tier) puts it. They differ while a move is in progress.
	Tier           *string       `json:"tier"` // null while the tenant has no database
	ConfiguredTier string        `json:"configured_tier"`
	Move           *catalog.Move `json:"move"`
}

// getTenantMove answers GET /v1/tenants/{id}/move: the tenant's tier and its move in progress,
// if any (a plan or isolation_tier change starts one; the audit log has tenant.move.* entries).
func (s *Server) getTenantMove(c echo.Context) error {
	id, err := tenantID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	cfg, t, err := s.store.TenantConfig(ctx, id, nil)
	if err != nil {
		return err
	}
	out := tierResponse{TenantID: id, ConfiguredTier: cfg.Settings.IsolationTier}
	if t.ProviderProjectID != "" && (t.Status == ragplane.StatusActive || t.Status == ragplane.StatusSuspended) {
		tier := t.Tier()
		out.Tier = &tier
	}
	m, err := s.store.GetMove(ctx, id)
	switch {
	case err == nil:
		out.Move = m
	case ragplane.ErrorCode(err) != ragplane.ENOTFOUND:
		return err
	}
	return c.JSON(http.StatusOK, out)
}
