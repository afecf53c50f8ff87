package controlplane

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/internal/httpjson"
)

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
	k, secret, err := s.store.CreateAPIKey(c.Request().Context(), id, req, s.actor(c))
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
	k, err := s.store.RevokeAPIKey(c.Request().Context(), id, c.Param("key_id"), s.actor(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, k)
}
