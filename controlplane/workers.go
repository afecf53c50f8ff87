package controlplane

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"regexp"

	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/internal/httpjson"
	"github.com/ragplane/ragplane/internal/tenantctx"
)

var workerIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$`)

// requireWorker admits requests bearing the worker token.
func (s *Server) requireWorker(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfg.InternalKey == "" {
			return ragplane.Errorf(ragplane.EUNAVAILABLE, "Worker registration is not configured (RAGPLANE_INTERNAL_KEY).")
		}
		want := sha256.Sum256([]byte(tenantctx.WorkerToken(s.cfg.InternalKey)))
		tok, ok := bearer(c.Request())
		got := sha256.Sum256([]byte(tok))
		if !ok || subtle.ConstantTimeCompare(want[:], got[:]) != 1 {
			return ragplane.Errorf(ragplane.EUNAUTHORIZED, "A valid worker token is required.")
		}
		return next(c)
	}
}

// workerRequest is the body of PUT /v1/workers/{id}.
type workerRequest struct {
	Addr string `json:"addr"`
}

// putWorker registers a worker or renews its lease (its heartbeat).
func (s *Server) putWorker(c echo.Context) error {
	id := c.Param("id")
	if !workerIDPattern.MatchString(id) {
		return ragplane.FieldErrorf("id", "A worker id is 1-100 characters of letters, digits and _.:-")
	}
	body, err := httpjson.ReadBody(c)
	if err != nil {
		return err
	}
	var req workerRequest
	if err := httpjson.Decode(c, body, &req); err != nil {
		return err
	}
	w := ragplane.Worker{ID: id, Addr: req.Addr}
	if err := s.store.RegisterWorker(c.Request().Context(), w, s.cfg.WorkerLeaseTTL); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"id": id, "addr": req.Addr, "lease_seconds": s.cfg.WorkerLeaseTTL.Seconds()})
}

// deleteWorker removes a worker that shuts down cleanly.
func (s *Server) deleteWorker(c echo.Context) error {
	if err := s.store.RemoveWorker(c.Request().Context(), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// listWorkers shows the live workers (admin).
func (s *Server) listWorkers(c echo.Context) error {
	ws, err := s.store.LiveWorkers(c.Request().Context())
	if err != nil {
		return err
	}
	if ws == nil {
		ws = []ragplane.Worker{}
	}
	return c.JSON(http.StatusOK, page[ragplane.Worker]{Items: ws})
}
