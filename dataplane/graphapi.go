package dataplane

import (
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/dataplane/graph"
)

func entityName(c echo.Context) (string, error) {
	name := c.Param("name")
	if name == "" || len(name) > 200 || !utf8.ValidString(name) || strings.ContainsRune(name, 0) {
		return "", ragplane.Errorf(ragplane.ENOTFOUND, "Entity not found.")
	}
	return name, nil
}

// searchEntities answers GET /v1/graph/entities?q=&limit=.
func (s *Server) searchEntities(c echo.Context) error {
	q := c.QueryParam("q")
	if len(q) > 200 || !utf8.ValidString(q) || strings.ContainsRune(q, 0) {
		return ragplane.FieldErrorf("q", "q must be valid UTF-8 of at most 200 bytes.")
	}
	limit := 50
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			return ragplane.FieldErrorf("limit", "limit must be a whole number from 1 to 500.")
		}
		limit = n
	}
	ctx := c.Request().Context()
	sc, err := s.open(ctx, nil)
	if err != nil {
		return err
	}
	defer sc.release()
	es, err := s.graph(sc.pool).SearchEntities(ctx, q, limit)
	if err != nil {
		return dbError(err)
	}
	if es == nil {
		es = []graph.Entity{}
	}
	return c.JSON(http.StatusOK, map[string]any{"items": es})
}

// entityRelations answers GET /v1/graph/entities/{name}: the entity's current relations.
func (s *Server) entityRelations(c echo.Context) error {
	return s.relations(c, false)
}

// entityTimeline answers GET /v1/graph/entities/{name}/timeline: every fact, valid or not, in time order.
func (s *Server) entityTimeline(c echo.Context) error {
	return s.relations(c, true)
}

func (s *Server) relations(c echo.Context, timeline bool) error {
	name, err := entityName(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	sc, err := s.open(ctx, nil)
	if err != nil {
		return err
	}
	defer sc.release()
	store := s.graph(sc.pool)
	var rs []graph.Relation
	if timeline {
		rs, err = store.EntityTimeline(ctx, name)
	} else {
		rs, err = store.EntityRelations(ctx, name, 200)
	}
	if err != nil {
		if ragplane.ErrorCode(err) == ragplane.ENOTFOUND {
			return ragplane.Errorf(ragplane.ENOTFOUND, "Entity not found.")
		}
		return dbError(err)
	}
	if rs == nil {
		rs = []graph.Relation{}
	}
	return c.JSON(http.StatusOK, map[string]any{"entity": name, "relations": rs})
}

// tenantUsage answers GET /v1/usage: the caller's own usage rollups (?granularity=hour|day,
// ?from=&to= RFC 3339, default the last 24 hours).
func (s *Server) tenantUsage(c echo.Context) error {
	tenant, err := ragplane.TenantFromContext(c.Request().Context())
	if err != nil {
		return err
	}
	to, from, gran := time.Now().UTC(), time.Now().UTC().Add(-24*time.Hour), "hour"
	if v := c.QueryParam("granularity"); v != "" {
		gran = v
	}
	for name, dst := range map[string]*time.Time{"from": &from, "to": &to} {
		if v := c.QueryParam(name); v != "" {
			t, perr := time.Parse(time.RFC3339, v)
			if perr != nil {
				return ragplane.FieldErrorf(name, "%s must be an RFC 3339 time like 2026-11-01T00:00:00Z.", name)
			}
			*dst = t
		}
	}
	pts, err := s.store.Usage(c.Request().Context(), tenant, gran, from, to)
	if err != nil {
		return err
	}
	if pts == nil {
		pts = []catalog.UsagePoint{}
	}
	return c.JSON(http.StatusOK, map[string]any{"tenant_id": tenant, "granularity": gran, "from": from, "to": to, "items": pts})
}

// tenantMetrics answers GET /v1/metrics/{tenant_id} for a tenant's own token: the compliance
// seed's metrics (catalog.TenantMetrics) over the last ?hours= (default 24). Another tenant's id
// is 404, as any other tenant's object.
func (s *Server) tenantMetrics(c echo.Context) error {
	tenant, err := ragplane.TenantFromContext(c.Request().Context())
	if err != nil {
		return err
	}
	if c.Param("tenant_id") != string(tenant) {
		return ragplane.Errorf(ragplane.ENOTFOUND, "Tenant not found.")
	}
	hours := 24
	if v := c.QueryParam("hours"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 24*366 {
			return ragplane.FieldErrorf("hours", "hours must be a whole number from 1 to 8784.")
		}
		hours = n
	}
	m, err := s.store.TenantMetrics(c.Request().Context(), tenant, hours, time.Now().UTC(), s.cfg.Prices)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, m)
}
