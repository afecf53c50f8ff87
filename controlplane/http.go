package controlplane

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragplane/ragplane/internal/problem"
)

// newEcho builds the admin API's router with its middleware, outermost first: request id, panic
// recovery, access log and metrics, body limit, then the routes.
func (s *Server) newEcho(reg prometheus.Registerer) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = problem.EchoHandler(s.log)
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ragplane_controlplane_http_requests_total",
		Help: "Admin API requests by route, method and status.",
	}, []string{"route", "method", "code"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "ragplane_controlplane_http_request_duration_seconds",
		Help:    "Admin API request latency by route and method.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route", "method"})
	reg.MustRegister(requests, latency)
	s.authAudit = newAuthAuditor(s.store, s.log, reg)

	e.Use(middleware.RequestID())
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisableStackAll: true, DisablePrintStack: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.log.Error("panic in handler", "error", err, "stack", string(stack),
				"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
			return err
		},
	}))
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			status := c.Response().Status
			if err != nil {
				status = problem.From(err).Status
				c.Error(err) // render now, so the status below is the one sent
			}
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			requests.WithLabelValues(route, c.Request().Method, strconv.Itoa(status)).Inc()
			latency.WithLabelValues(route, c.Request().Method).Observe(time.Since(start).Seconds())
			level := slog.LevelInfo
			if route == "/healthz" || route == "/readyz" || route == "/metrics" {
				level = slog.LevelDebug
			}
			s.log.Log(context.Background(), level, "request", "method", c.Request().Method, "route", route,
				"status", status, "duration_ms", time.Since(start).Milliseconds(),
				"request_id", c.Response().Header().Get(echo.HeaderXRequestID))
			return nil
		}
	})
	e.Use(middleware.BodyLimitWithConfig(middleware.BodyLimitConfig{
		Limit:   strconv.FormatInt(s.cfg.MaxBodyBytes, 10) + "B",
		Skipper: func(c echo.Context) bool { return c.Path() == "/v1"+restoreRoute }, // streamed, see archive.go
	}))
	s.routes(e)
	return e
}
