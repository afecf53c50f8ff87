package dataplane

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/catalog/tenantdb"
	"github.com/ragplane/ragplane/internal/pgerr"
	"github.com/ragplane/ragplane/internal/problem"
	"github.com/ragplane/ragplane/internal/tenantctx"
	"github.com/ragplane/ragplane/internal/tracing"
)

// newEcho builds the worker's router: request id, panic recovery, metrics and access log, then
// the tenant routes behind the signed-context check.
func (s *Server) newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	render := problem.EchoHandler(s.log)
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		// A database the tenant has moved out of refused it (503, Retry-After): read its catalog
		// entry again at once, so the retry reaches the database it moved to.
		if pgerr.Moved(err) {
			if tenant, terr := ragplane.TenantFromContext(c.Request().Context()); terr == nil {
				s.tenants.expire(tenant)
			}
		}
		render(err, c)
	}
	e.Use(middleware.RequestIDWithConfig(middleware.RequestIDConfig{
		// The proxy's request id, when it signed one, ties the logs of both together.
		Generator: func() string { return ragplane.NewRequestID() },
	}))
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisableStackAll: true, DisablePrintStack: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.log.Error("panic in handler", "error", err, "stack", string(stack))
			return err
		},
	}))
	e.Use(s.observe)
	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(s.metricsHandler))

	v1 := e.Group("/v1", s.verifyContext, middleware.BodyLimit(strconv.FormatInt(s.cfg.MaxUploadBytes, 10)+"B"), s.tenantField)
	v1.POST("/documents", s.createDocument, need(ragplane.RoleWriter))
	v1.POST("/documents/batch", s.createDocuments, need(ragplane.RoleWriter))
	v1.POST("/ingest", s.ingest, need(ragplane.RoleWriter))
	v1.GET("/documents", s.listDocuments, need(ragplane.RoleReader))
	v1.GET("/documents/:id", s.getDocument, need(ragplane.RoleReader))
	v1.DELETE("/documents/:id", s.deleteDocument, need(ragplane.RoleWriter))
	v1.POST("/search", s.search, need(ragplane.RoleReader))
	v1.POST("/query", s.query, need(ragplane.RoleReader))
	v1.GET("/graph/entities", s.searchEntities, need(ragplane.RoleReader))
	v1.GET("/graph/entities/:name", s.entityRelations, need(ragplane.RoleReader))
	v1.GET("/graph/entities/:name/timeline", s.entityTimeline, need(ragplane.RoleReader))
	v1.GET("/usage", s.tenantUsage, need(ragplane.RoleReader))
	v1.GET("/metrics/:tenant_id", s.tenantMetrics, need(ragplane.RoleReader))
	v1.GET("/export", s.exportOwn, need(ragplane.RoleAdmin))
	v1.GET("/me", s.me) // any role: a token may always see its own tenant
	return e
}

// verifyContext admits only requests whose tenant context the proxy signed, and puts the
// identity in the request's context. Nothing a client sends (X-Tenant-ID, a tenant_id in the
// body or query) ever selects a tenant.
func (s *Server) verifyContext(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		tc, err := s.codec.Verify(r.Header.Get(tenantctx.Header), r.Method, r.URL.Path, time.Now(), s.cfg.MaxClockSkew)
		if err != nil {
			return err
		}
		if tc.RequestID != "" {
			c.Response().Header().Set(echo.HeaderXRequestID, tc.RequestID)
		}
		c.Set("tenant", tc.Identity.TenantID)
		c.Set("queries_left", tc.QueriesLeft) // the proxy's admission decision, for GET /v1/me
		r = r.WithContext(tracing.WithTenant(ragplane.NewContextWithIdentity(r.Context(), tc.Identity), tc.Identity.TenantID))
		r.Header.Set(echo.HeaderXRequestID, c.Response().Header().Get(echo.HeaderXRequestID))
		c.SetRequest(r)
		// Meter the request: the record is written to the spool as the response starts.
		rec := &usageRecord{}
		c.Set("usage", rec)
		c.Response().Writer = &usageWriter{ResponseWriter: c.Response().Writer, s: s, r: r, rec: rec, start: time.Now()}
		return next(c)
	}
}

// usageOf returns the request's usage record (a throwaway one outside metered routes).
func usageOf(c echo.Context) *usageRecord {
	if rec, ok := c.Get("usage").(*usageRecord); ok {
		return rec
	}
	return &usageRecord{}
}

// need refuses callers whose token lacks role (admin implies every role).
func need(role string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			id, _ := ragplane.IdentityFromContext(c.Request().Context())
			if !slices.Contains(id.Roles, role) && !slices.Contains(id.Roles, ragplane.RoleAdmin) {
				return ragplane.Errorf(ragplane.EFORBIDDEN, "This token lacks the %q role.", role)
			}
			return next(c)
		}
	}
}

// observe counts and times every request by tenant and route, renders errors, and logs.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		status := c.Response().Status
		if ragplane.ErrorCode(err) == ragplane.EINTERNAL && pgerr.FromDriver(err) && pgerr.Unavailable(err) {
			// A tenant-database error a handler returned untranslated is still a lost or refused
			// connection: 503 with Retry-After, not 500.
			err = dbError(err)
		}
		if err != nil {
			status = problem.From(err).Status
			c.Error(err)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		tenant, _ := c.Get("tenant").(ragplane.TenantID)
		label := s.metrics.tenant(tenant)
		if route != "/metrics" && route != "/healthz" && route != "/readyz" {
			s.metrics.requests.WithLabelValues(label, route, strconv.Itoa(status)).Inc()
			s.metrics.latency.WithLabelValues(label, route).Observe(time.Since(start).Seconds())
			s.log.Info("request", "method", c.Request().Method, "route", route, "status", status,
				"tenant_id", tenant, "request_id", c.Response().Header().Get(echo.HeaderXRequestID),
				"trace_id", tracing.TraceID(c.Request().Context()),
				"duration_ms", time.Since(start).Milliseconds())
		}
		return nil
	}
}

func (s *Server) readyz(c echo.Context) error {
	if err := s.store.Ping(c.Request().Context()); err != nil {
		return ragplane.Errorf(ragplane.EUNAVAILABLE, "The catalog is not reachable.")
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// scope is one request's hold on its tenant: the catalog entry, the resolved config and the
// tenant's view of its database (its own, or its pool: the same code either way).
type scope struct {
	tenant  ragplane.TenantID
	rt      *catalog.Runtime
	cfg     *ragplane.Config
	pool    *tenantdb.Scoped
	release func()
}

// acquire takes the tenant's pool (and its Scoped view) and wakes the tenant if it is idle. A
// tenant found offloaded to an archive is restored first (see runtime): rt is then the restored
// tenant's entry. The caller must call release.
func (s *Server) acquire(ctx context.Context, tenant ragplane.TenantID, rt *catalog.Runtime) (*catalog.Runtime, *pgxpool.Pool, *tenantdb.Scoped, func(), error) {
	pool, db, release, err := s.pools.acquire(ctx, tenant, rt.DatabaseURL, pooledTenant(rt))
	if err != nil {
		return nil, nil, nil, nil, err
	}
	restoring := s.wake(ctx, tenant, rt, pool)
	if !restoring && rt.Tenant.Tier() == ragplane.TierSiloed && pool.Stat().TotalConns() == 0 {
		// A pool without connections (just opened) connects now, not at the handler's first
		// statement: an offload then sees the request (it leaves a database with sessions alone),
		// and a database an offload dropped after this worker read the catalog is found here,
		// before the request did anything. A pool with connections needs neither: an offload
		// would have seen them.
		actx, cancel := context.WithTimeout(ctx, s.cfg.DB.Wait)
		conn, err := pool.Acquire(actx)
		cancel()
		if err == nil {
			conn.Release()
		} else if pgerr.Code(err) == pgerr.InvalidCatalogName {
			s.tenants.drop(tenant)
			restoring = true
		}
	}
	if !restoring {
		return rt, pool, db, release, nil
	}
	release()
	s.pools.forget(tenant)
	if rt, err = s.runtime(ctx, tenant); err != nil {
		return nil, nil, nil, nil, err
	}
	pool, db, release, err = s.pools.acquire(ctx, tenant, rt.DatabaseURL, pooledTenant(rt))
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return rt, pool, db, release, nil
}

// open resolves the caller's tenant and takes its pool; the caller must call release.
func (s *Server) open(ctx context.Context, request ragplane.Overrides) (*scope, error) {
	tenant, err := ragplane.TenantFromContext(ctx)
	if err != nil {
		return nil, err
	}
	rt, err := s.runtime(ctx, tenant)
	if err != nil {
		if code := ragplane.ErrorCode(err); code == ragplane.EGONE || code == ragplane.EFORBIDDEN {
			s.pools.forget(tenant)
		}
		return nil, err
	}
	rt, _, db, release, err := s.acquire(ctx, tenant, rt)
	if err != nil {
		return nil, err
	}
	cfg, err := rt.Resolve(request)
	if err != nil {
		release()
		return nil, err
	}
	return &scope{tenant: tenant, rt: rt, cfg: cfg, pool: db, release: release}, nil
}
