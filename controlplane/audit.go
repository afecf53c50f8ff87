package controlplane

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
)

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
