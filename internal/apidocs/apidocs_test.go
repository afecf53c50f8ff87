package apidocs_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ragplane/ragplane/internal/apidocs"
)

// webDir makes a web directory holding a viewer package with the given files.
func webDir(tb testing.TB, files ...string) string {
	tb.Helper()
	dir := tb.TempDir()
	pkg := filepath.Join(dir, "swagger-ui-dist")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		tb.Fatal(err)
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(pkg, f), []byte("content of "+f), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

var viewerFiles = []string{"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "index.html"}

func TestViewer(t *testing.T) {
	dir := webDir(t, viewerFiles...)
	tests := []struct {
		name   string
		given  string // web dir
		method string
		when   string
		expect int
		ctype  string
		body   string
	}{
		{name: "page", given: dir, when: "/docs", expect: 200, ctype: "text/html; charset=utf-8", body: `<script src="/docs/swagger-ui-bundle.js">`},
		{name: "page with slash", given: dir, when: "/docs/", expect: 200, ctype: "text/html; charset=utf-8", body: `<script src="/docs/init.js">`},
		{name: "init script", given: dir, when: "/docs/init.js", expect: 200, ctype: "text/javascript; charset=utf-8", body: `url: "/openapi.json"`},
		{name: "bundle", given: dir, when: "/docs/swagger-ui-bundle.js", expect: 200, ctype: "text/javascript; charset=utf-8", body: "content of swagger-ui-bundle.js"},
		{name: "css", given: dir, when: "/docs/swagger-ui.css", expect: 200, ctype: "text/css; charset=utf-8", body: "content of swagger-ui.css"},
		{name: "a file of the package that is not served", given: dir, when: "/docs/index.html", expect: 404, ctype: "application/problem+json"},
		{name: "traversal", given: dir, when: "/docs/../swagger-ui-dist/index.html", expect: 404, ctype: "application/problem+json"},
		{name: "not GET", given: dir, method: http.MethodPost, when: "/docs", expect: 404, ctype: "application/problem+json"},
		{name: "plain page without a viewer", when: "/docs", expect: 200, ctype: "text/html; charset=utf-8", body: `<a href="/openapi.json">/openapi.json</a>`},
		{name: "no files without a viewer", when: "/docs/init.js", expect: 404, ctype: "application/problem+json", body: `"code":"not_found"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			rec := httptest.NewRecorder()
			apidocs.Viewer{WebDir: tt.given}.ServeHTTP(rec, httptest.NewRequest(method, tt.when, nil))
			if rec.Code != tt.expect || rec.Header().Get("Content-Type") != tt.ctype || !strings.Contains(rec.Body.String(), tt.body) {
				t.Errorf("%s %s = %d %q %.200s, want %d %q containing %q", method, tt.when, rec.Code, rec.Header().Get("Content-Type"), rec.Body, tt.expect, tt.ctype, tt.body)
			}
			if tt.expect == 200 && strings.HasPrefix(tt.ctype, "text/html") {
				if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") {
					t.Errorf("Content-Security-Policy = %q, want only the page's own scripts", csp)
				}
			}
		})
	}
}

func TestCheckWebDir(t *testing.T) {
	tests := []struct {
		name   string
		given  string
		expect bool // ok
	}{
		{name: "unset", given: "", expect: true},
		{name: "installed", given: webDir(t, viewerFiles...), expect: true},
		{name: "missing the bundle", given: webDir(t, "swagger-ui.css", "favicon-32x32.png"), expect: false},
		{name: "no such directory", given: filepath.Join(t.TempDir(), "absent"), expect: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := apidocs.CheckWebDir(tt.given)
			if (err == nil) != tt.expect {
				t.Errorf("CheckWebDir(%q) = %v, want ok %v", tt.given, err, tt.expect)
			}
			if err != nil && !strings.Contains(err.Error(), "RAGPLANE_WEB_DIR") {
				t.Errorf("error %q does not name RAGPLANE_WEB_DIR", err)
			}
		})
	}
}
