package controlplane

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/internal/httpjson"
)

// bootstrapOperator is the identity of RAGPLANE_ADMIN_TOKEN: an admin, audited as "admin".
var bootstrapOperator = catalog.Operator{Name: "admin", Role: catalog.OperatorAdmin}

// operatorKey is where requireAdmin leaves the authenticated operator in the echo context.
const operatorKey = "ragplane.operator"

// billingRoutes are what the billing role may call (all reads): tenants, plans, usage and metrics.
var billingRoutes = map[string]bool{
	"GET /v1/tenants":                 true,
	"GET /v1/tenants/:id":             true,
	"GET /v1/tenants/:id/usage":       true,
	"GET /v1/usage/export":            true,
	"GET /v1/metrics/:tenant_id":      true,
	"GET /v1/plans":                   true,
	"GET /v1/plans/:name":             true,
	"GET /v1/config/defaults":         true,
	"GET /v1/tenants/:id/config":      true,
	"GET /v1/tenants/:id/operations":  true,
	"GET /v1/operators/me":            true,
	"HEAD /v1/tenants":                true,
	"HEAD /v1/usage/export":           true,
	"HEAD /v1/metrics/:tenant_id":     true,
	"HEAD /v1/tenants/:id/usage":      true,
	"HEAD /v1/plans":                  true,
	"HEAD /v1/tenants/:id":            true,
	"HEAD /v1/plans/:name":            true,
	"HEAD /v1/tenants/:id/config":     true,
	"HEAD /v1/tenants/:id/operations": true,
}

// permits reports whether an operator of role may call method on the route template path.
func permits(role, method, path string) bool {
	switch role {
	case catalog.OperatorAdmin:
		return true
	case catalog.OperatorViewer:
		return method == http.MethodGet || method == http.MethodHead
	case catalog.OperatorBilling:
		return billingRoutes[method+" "+path]
	}
	return false
}

// requireAdmin authenticates the operator: the bootstrap admin token (compared in constant time
// over fixed-size digests, so not even its length leaks) or a named operator's token (found by
// its hash), then checks the operator's role against the route. A failed authentication is
// audited, within caps (see authAuditor); a role that may not call the route gets 403.
func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	want := sha256.Sum256([]byte(s.cfg.AdminToken))
	return func(c echo.Context) error {
		tok, ok := bearer(c.Request())
		got := sha256.Sum256([]byte(tok))
		op := bootstrapOperator
		if !ok || subtle.ConstantTimeCompare(want[:], got[:]) != 1 {
			var err error
			op, err = s.namedOperator(c, tok, ok)
			if err != nil {
				return err
			}
		}
		if !permits(op.Role, c.Request().Method, c.Path()) {
			return ragplane.Errorf(ragplane.EFORBIDDEN, "Operator %q has the %s role, which may not %s %s.", op.Name, op.Role, c.Request().Method, c.Path())
		}
		c.Set(operatorKey, op)
		return next(c)
	}
}

// namedOperator finds the operator whose token tok is; anything else is a failed authentication.
func (s *Server) namedOperator(c echo.Context, tok string, ok bool) (catalog.Operator, error) {
	if ok && strings.HasPrefix(tok, "rpo_") && len(tok) < 100 {
		op, err := s.store.OperatorByToken(c.Request().Context(), tok)
		if err == nil {
			return op, nil
		}
		if ragplane.ErrorCode(err) != ragplane.ENOTFOUND {
			return op, err // the catalog is away: 503, not a failed authentication
		}
	}
	s.authAudit.record(c, tok, s.source(c))
	return catalog.Operator{}, ragplane.Errorf(ragplane.EUNAUTHORIZED, "A valid admin bearer token is required.")
}

// operator is the operator requireAdmin authenticated for this request.
func operator(c echo.Context) catalog.Operator {
	if op, ok := c.Get(operatorKey).(catalog.Operator); ok {
		return op
	}
	return catalog.Operator{}
}

// actor names the request's operator in the audit log: "admin" for the bootstrap token,
// "operator:<name>" for a named operator.
func (s *Server) actor(c echo.Context) catalog.Actor {
	name := "admin"
	if op := operator(c); op.Name != "" && op != bootstrapOperator {
		name = "operator:" + op.Name
	}
	return catalog.Actor{Name: name, RequestID: c.Response().Header().Get(echo.HeaderXRequestID)}
}

func (s *Server) createOperator(c echo.Context) error {
	body, err := httpjson.ReadBody(c)
	if err != nil {
		return err
	}
	var req catalog.NewOperator
	if err := httpjson.Decode(c, body, &req); err != nil {
		return err
	}
	op, token, err := s.store.CreateOperator(c.Request().Context(), req, s.actor(c))
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, struct {
		catalog.Operator
		Token string `json:"token"`
	}{op, token})
}

func (s *Server) listOperators(c echo.Context) error {
	ops, err := s.store.ListOperators(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page[catalog.Operator]{Items: ops})
}

// whoami answers GET /v1/operators/me: the operator the request authenticated as.
func (s *Server) whoami(c echo.Context) error {
	return c.JSON(http.StatusOK, operator(c))
}

func (s *Server) revokeOperator(c echo.Context) error {
	op, err := s.store.RevokeOperator(c.Request().Context(), c.Param("name"), s.actor(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, op)
}
