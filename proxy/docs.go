package proxy

import (
	"net/http"
	"strings"

	"github.com/ragplane/ragplane/internal/apidocs"
)

// ownRoutes are the routes of the tenant listener that the proxy answers itself; it forwards
// every other /v1/ path to a worker and answers anything else 404. Each is in the tenant API's
// OpenAPI document marked x-served-by: proxy (a test checks both ways, and that each is served).
var ownRoutes = []string{"GET /healthz", "GET /readyz", "GET /openapi.json", "GET /docs", "GET /docs/{file}",
	"GET /.well-known/jwks.json"}

// serveDocs answers GET /openapi.json (the tenant API's OpenAPI document) and the API reference
// page, GET /docs and /docs/{file}; it reports whether it answered. Neither needs a token.
func (s *Server) serveDocs(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	switch p := r.URL.Path; {
	case p == "/openapi.json":
		w.Header().Set("Content-Type", "application/json")
		w.Write(apidocs.TenantOpenAPI)
	case p == "/docs" || strings.HasPrefix(p, "/docs/"):
		apidocs.Viewer{WebDir: s.cfg.WebDir}.ServeHTTP(w, r)
	default:
		return false
	}
	return true
}
