package controlplane

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/internal/httpjson"
)

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
		Limits: req.Limits, Settings: req.Settings}, s.actor(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, p)
}
