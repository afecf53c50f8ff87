package controlplane

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
)

// activityResponse is what GET /v1/tenants/{id}/activity and POST /v1/tenants/{id}/wake answer:
// whether the tenant sleeps (idle), and its offload to an archive, if any.
type activityResponse struct {
	TenantID  ragplane.TenantID `json:"tenant_id"`
	IdleSince *time.Time        `json:"idle_since"`
	// State is "awake", "idle", "offloading" (its archive is being written), "offloaded" (its
	// database is an archive) or "restoring" (a restore was asked for).
	State   string           `json:"state"`
	Offload *catalog.Offload `json:"offload"`
}

func (s *Server) activity(ctx context.Context, id ragplane.TenantID) (*activityResponse, error) {
	out := &activityResponse{TenantID: id, State: "awake"}
	var err error
	if out.IdleSince, err = s.store.IdleSince(ctx, id); err != nil {
		return nil, err
	}
	if out.IdleSince != nil {
		out.State = "idle"
	}
	o, err := s.store.GetOffload(ctx, id)
	switch {
	case err == nil:
		out.Offload, out.State = o, o.State
		if o.RestoreRequestedAt != nil {
			out.State = "restoring"
		}
	case ragplane.ErrorCode(err) != ragplane.ENOTFOUND:
		return nil, err
	}
	return out, nil
}

// getTenantActivity answers GET /v1/tenants/{id}/activity.
func (s *Server) getTenantActivity(c echo.Context) error {
	id, err := tenantID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := s.store.GetTenant(ctx, id); err != nil {
		return err
	}
	out, err := s.activity(ctx, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// wakeTenant answers POST /v1/tenants/{id}/wake: an idle tenant is marked awake (200); an
// offloaded one's restore is asked for (202: the reconciler's leader restores it, and
// GET /v1/tenants/{id}/activity says when it is awake). Waking an awake tenant changes nothing.
func (s *Server) wakeTenant(c echo.Context) error {
	id, err := tenantID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	t, err := s.store.GetTenant(ctx, id)
	if err != nil {
		return err
	}
	if t.Status != ragplane.StatusActive && t.Status != ragplane.StatusSuspended {
		return ragplane.Errorf(ragplane.ECONFLICT, "Tenant %q is %s: only an active or suspended tenant can be woken.", id, t.Status)
	}
	// Wake marks it awake and asks for the restore of an offloaded (or offloading) tenant in one
	// transaction, so an offload under way is cancelled and not started again by the next pass.
	w, err := s.store.Wake(ctx, id, time.Now(), s.actor(c))
	if err != nil {
		return err
	}
	if w.Woke {
		if err := s.store.Audit(ctx, s.actor(c), "tenant.wake", "tenant/"+string(id), map[string]any{"idle_since": w.IdleSince}); err != nil {
			s.log.Warn("auditing a wake failed", "tenant_id", id, "error", err)
		}
	}
	if w.Offload != nil {
		s.log.Info("restore of an offloaded tenant asked for", "tenant_id", id, "actor", s.actor(c).Name)
		out, err := s.activity(ctx, id)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusAccepted, out)
	}
	out, err := s.activity(ctx, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}
