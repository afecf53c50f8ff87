package proxy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/ragplane/ragplane/internal/apidocs"
)

// TestOwnRoutesDocumented checks the routes the proxy answers itself against the tenant API's
// document both ways: each is documented with x-served-by: proxy, and every operation so marked
// is one of them. (The worker's routes are checked in dataplane; e2e tests check that each
// documented operation is served, through a real proxy.)
func TestOwnRoutesDocumented(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(apidocs.TenantOpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	marked := map[string][]string{}
	for path, item := range doc.Paths {
		for m, raw := range item {
			var op struct {
				ServedBy string `json:"x-served-by"`
			}
			if json.Unmarshal(raw, &op) == nil && op.ServedBy != "" {
				marked[op.ServedBy] = append(marked[op.ServedBy], strings.ToUpper(m)+" "+path)
			}
		}
	}
	for _, ops := range marked {
		sort.Strings(ops)
	}
	own := slices.Sorted(slices.Values(ownRoutes))
	if !slices.Equal(marked["proxy"], own) {
		t.Errorf("operations marked x-served-by: proxy = %v, want the proxy's own routes %v", marked["proxy"], own)
	}
	forwarded := slices.Sorted(slices.Values(controlPlaneRoutes))
	if !slices.Equal(marked["controlplane"], forwarded) {
		t.Errorf("operations marked x-served-by: controlplane = %v, want the routes the proxy forwards there %v", marked["controlplane"], forwarded)
	}
	for _, r := range controlPlaneRoutes {
		_, path, _ := strings.Cut(r, " ")
		if path != "/v1/auth/token" && !controlPlaneRoute(strings.ReplaceAll(path, "{key_id}", "k")) {
			t.Errorf("%s is not forwarded to the control plane", r)
		}
	}
}

// TestServeDocs checks the proxy's answers to GET /openapi.json and /docs, which need no token
// and no configuration.
func TestServeDocs(t *testing.T) {
	tests := []struct {
		name   string
		given  string // web dir
		when   string
		expect int
		ctype  string
		body   string // a substring of the body
	}{
		{name: "openapi document", when: "/openapi.json", expect: 200, ctype: "application/json", body: string(apidocs.TenantOpenAPI)},
		{name: "plain page without a viewer", when: "/docs", expect: 200, ctype: "text/html; charset=utf-8", body: `<a href="/openapi.json">`},
		{name: "no viewer files without a viewer", when: "/docs/swagger-ui-bundle.js", expect: 404, ctype: "application/problem+json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{cfg: DefaultConfig()}
			s.cfg.WebDir = tt.given
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.when, nil))
			if rec.Code != tt.expect || rec.Header().Get("Content-Type") != tt.ctype || !strings.Contains(rec.Body.String(), tt.body) {
				t.Errorf("GET %s = %d %q %.200s, want %d %q containing %.100q", tt.when, rec.Code, rec.Header().Get("Content-Type"), rec.Body, tt.expect, tt.ctype, tt.body)
			}
			if rec.Header().Get("X-Request-ID") == "" || rec.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("GET %s lacks the proxy's X-Request-ID and Cache-Control", tt.when)
			}
		})
	}
}
