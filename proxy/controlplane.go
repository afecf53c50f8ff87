package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/internal/problem"
	"github.com/ragplane/ragplane/internal/tenantctx"
)

// One base URL for a tenant: besides the data-plane routes, the proxy's tenant listener answers
// the token exchange, the JWKS and the tenant's own API keys, so a tenant's app needs no second
// address. The control plane still decides them (the proxy cannot sign tokens and has no
// database): the proxy forwards them to its admin listener (RAGPLANE_CONTROLPLANE_URL).
//
//   - POST /v1/auth/token carries an API key, not a JWT: it is forwarded as it came, with the
//     client's address signed (tenantctx.ClientHeader), so the control plane rate limits and
//     audits the client's address, not the proxy's.
//   - /v1/keys and /v1/keys/{id} go through the tenant pipeline (JWT, policy, rate limits, the
//     concurrency cap) and reach the control plane with the signed tenant context, which names
//     the tenant: a client value never does.
//   - GET /.well-known/jwks.json is served from the keys pushed over xDS: the same document.

// controlPlaneRoutes are the tenant routes the proxy forwards to the control plane; each is in the
// tenant API's document marked x-served-by: controlplane (a test checks both ways).
var controlPlaneRoutes = []string{"POST /v1/auth/token", "GET /v1/keys", "POST /v1/keys", "DELETE /v1/keys/{key_id}"}

// maxTokenRequestBytes bounds a token exchange's body ({user, roles, expires_in}).
const maxTokenRequestBytes = 64 << 10

// controlPlaneRoute reports whether path is a tenant route the control plane serves.
func controlPlaneRoute(path string) bool {
	return path == "/v1/keys" || strings.HasPrefix(path, "/v1/keys/")
}

// newControlPlaneProxy forwards to the control plane's admin listener at base.
func (s *Server) newControlPlaneProxy(base *url.URL) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = base.Scheme, base.Host
			pr.Out.Host = base.Host
		},
		Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: s.cfg.UpstreamTimeout,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				w.WriteHeader(499)
				return
			}
			s.log.Warn("control plane request failed", "error", err, "path", r.URL.Path, "request_id", r.Header.Get("X-Request-ID"))
			w.Header().Set("Retry-After", "1")
			problem.Write(w, r, ragplane.Errorf(ragplane.EUNAVAILABLE, "The control plane could not be reached."), nil)
		},
		ModifyResponse: ownHeaders,
	}
}

// exchangeToken forwards POST /v1/auth/token to the control plane with the client's address
// signed. Nothing here reads the key: the control plane authenticates, rate limits and audits.
func (s *Server) exchangeToken(w *statusRecorder, r *http.Request, rid string) {
	for _, h := range internalHeaders {
		r.Header.Del(h)
	}
	if !s.xds.Ready() {
		s.fail(w, r, "", ragplane.Errorf(ragplane.EUNAVAILABLE, "The proxy has no configuration yet."))
		return
	}
	if r.ContentLength > maxTokenRequestBytes {
		s.fail(w, r, "", ragplane.Errorf(ragplane.ETOOLARGE, "The request body is over %d bytes.", maxTokenRequestBytes))
		return
	}
	r.Body = http.MaxBytesReader(w.ResponseWriter, r.Body, maxTokenRequestBytes)
	client, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		client = r.RemoteAddr
	}
	r.Header.Set(tenantctx.ClientHeader, s.codec.SignClient(client, r.Method, r.URL.Path, time.Now()))
	r.Header.Set("X-Request-ID", rid)
	s.cprp.ServeHTTP(w, r)
	s.metrics.requests.WithLabelValues("none", strconv.Itoa(w.status())).Inc()
}

// serveJWKS answers GET /.well-known/jwks.json with the JWK Set pushed over xDS; 503 until the
// proxy has one.
func (s *Server) serveJWKS(w http.ResponseWriter, r *http.Request) {
	ks := s.state.keys()
	if len(ks.jwks) == 0 {
		w.Header().Set("Retry-After", "1")
		problem.Write(w, r, ragplane.Errorf(ragplane.EUNAVAILABLE, "The proxy has no verification keys yet."), nil)
		return
	}
	// As the control plane's: public keys, cacheable for a minute.
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.Header().Set("Content-Type", "application/json")
	w.Write(ks.jwks)
}
