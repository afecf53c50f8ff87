package controlplane

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/internal/httpjson"
	"github.com/ragplane/ragplane/internal/tenantctx"
)

// The tenant's side of the control plane, reached through the proxy so that a tenant needs one
// base URL: the token exchange (tokens.go) with the client's address, and the tenant's own API
// keys (GET/POST /v1/keys, DELETE /v1/keys/{key_id}) for tokens with the admin role. The proxy
// proves both with the internal key (RAGPLANE_INTERNAL_KEY, shared with proxies and workers):
// a signed client address (tenantctx.ClientHeader), and the signed tenant context
// (tenantctx.Header), which alone names the tenant.

// proxyContextSkew is how far a proxy's signature time may be from this replica's clock.
const proxyContextSkew = 30 * time.Second

// proxyCodec verifies what proxies sign; nil when no internal key is configured (then nothing a
// proxy forwards is trusted: the key routes answer 503 and the client's address is the peer's).
func (s *Server) proxyCodec() *tenantctx.Codec {
	s.codecOnce.Do(func() {
		if s.cfg.InternalKey != "" {
			s.codec, _ = tenantctx.New(s.cfg.InternalKey) // length checked by Validate
		}
	})
	return s.codec
}

// source is the address a request came from: the client's, when a proxy signed it, else the
// connection's peer. X-Forwarded-For and X-Real-IP are never believed: the caller chooses them.
func (s *Server) source(c echo.Context) string {
	req := c.Request()
	if v := req.Header.Get(tenantctx.ClientHeader); v != "" {
		if codec := s.proxyCodec(); codec != nil {
			if addr, ok := codec.VerifyClient(v, req.Method, req.URL.Path, time.Now(), proxyContextSkew); ok {
				return addr
			}
		}
	}
	return echo.ExtractIPDirect()(req)
}

// exchangeLimiter bounds token exchanges per source address on this replica: every exchange
// counts, good key or bad, so that nobody can try keys faster than the limit. Sources are kept
// in an LRU, so a flood of addresses costs bounded memory (a source pushed out starts afresh).
type exchangeLimiter struct {
	perMinute int
	mu        sync.Mutex
	sources   *lru.Cache[string, *rate.Limiter]
}

// exchangeSources is how many source addresses the limiter remembers.
const exchangeSources = 100_000

func newExchangeLimiter(perMinute int) *exchangeLimiter {
	c, _ := lru.New[string, *rate.Limiter](exchangeSources) // size > 0: cannot fail
	return &exchangeLimiter{perMinute: perMinute, sources: c}
}

// allow takes one exchange of src's budget; when none is left it returns the wait until one is.
func (l *exchangeLimiter) allow(src string, now time.Time) (bool, time.Duration) {
	if l.perMinute <= 0 {
		return true, 0
	}
	l.mu.Lock()
	lim, ok := l.sources.Get(src)
	if !ok {
		lim = rate.NewLimiter(rate.Limit(float64(l.perMinute)/60), l.perMinute)
		l.sources.Add(src, lim)
	}
	l.mu.Unlock()
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// requireTenantContext admits requests a proxy forwarded for a verified tenant token with the
// admin role, and puts the identity in the request's context.
func (s *Server) requireTenantContext(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		codec := s.proxyCodec()
		if codec == nil {
			return ragplane.Errorf(ragplane.EUNAVAILABLE, "Tenant routes are not configured (RAGPLANE_INTERNAL_KEY).")
		}
		req := c.Request()
		tc, err := codec.Verify(req.Header.Get(tenantctx.Header), req.Method, req.URL.Path, time.Now(), proxyContextSkew)
		if err != nil {
			return ragplane.Errorf(ragplane.EUNAUTHORIZED, "This route is served through the Ragplane proxy with a tenant token.")
		}
		if !slices.Contains(tc.Identity.Roles, ragplane.RoleAdmin) {
			return ragplane.Errorf(ragplane.EFORBIDDEN, "This token lacks the %q role.", ragplane.RoleAdmin)
		}
		c.SetRequest(req.WithContext(ragplane.NewContextWithIdentity(req.Context(), tc.Identity)))
		return next(c)
	}
}

// tenantCaller returns the caller's identity and its name in the audit log: "apikey:<key id>"
// for a token minted for no named user, else "user:<subject>", of the tenant.
func (s *Server) tenantCaller(c echo.Context) (ragplane.Identity, catalog.Actor) {
	id, _ := ragplane.IdentityFromContext(c.Request().Context()) // requireTenantContext put it there
	name := "user:" + id.Subject
	if strings.HasPrefix(id.Subject, "apikey:") {
		name = id.Subject
	}
	return id, catalog.Actor{Name: "tenant:" + string(id.TenantID) + " " + name, RequestID: c.Response().Header().Get(echo.HeaderXRequestID)}
}

// tenantListKeys answers GET /v1/keys: the caller's tenant's keys, without secrets.
func (s *Server) tenantListKeys(c echo.Context) error {
	id, _ := s.tenantCaller(c)
	keys, err := s.store.ListAPIKeys(c.Request().Context(), id.TenantID)
	if err != nil {
		return err
	}
	if keys == nil {
		keys = []ragplane.APIKey{}
	}
	return c.JSON(http.StatusOK, page[ragplane.APIKey]{Items: keys})
}

// tenantCreateKey answers POST /v1/keys. A key may carry only roles the caller's token carries
// (default reader and writer, which the token must then carry too).
func (s *Server) tenantCreateKey(c echo.Context) error {
	id, actor := s.tenantCaller(c)
	body, err := httpjson.ReadBody(c)
	if err != nil {
		return err
	}
	var req catalog.NewAPIKey
	if err := httpjson.Decode(c, body, &req); err != nil {
		return err
	}
	roles := req.Roles
	if len(roles) == 0 {
		roles = []string{ragplane.RoleReader, ragplane.RoleWriter}
	}
	for i, r := range roles {
		if !ragplane.ValidRole(r) {
			return ragplane.FieldErrorf("roles["+strconv.Itoa(i)+"]", "Unknown role %q.", r)
		}
		if !slices.Contains(id.Roles, r) {
			return &ragplane.Error{Code: ragplane.EFORBIDDEN, Field: "roles",
				Message: "This token may not grant role \"" + r + "\": a key's roles must be among the token's (" + strings.Join(id.Roles, ", ") + ")."}
		}
	}
	req.Roles = roles
	k, secret, err := s.store.CreateAPIKey(c.Request().Context(), id.TenantID, req, actor)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, createKeyResponse{Key: secret, APIKey: k})
}

// tenantRevokeKey answers DELETE /v1/keys/{key_id}; another tenant's key is 404.
func (s *Server) tenantRevokeKey(c echo.Context) error {
	id, actor := s.tenantCaller(c)
	k, err := s.store.RevokeAPIKey(c.Request().Context(), id.TenantID, c.Param("key_id"), actor)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, k)
}
