package controlplane

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/internal/httpjson"
)

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
	if err := s.store.PutSystemConfig(c.Request().Context(), req, s.actor(c)); err != nil {
		return err
	}
	return s.getDefaults(c)
}
