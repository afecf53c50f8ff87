// Package apidocs holds the tenant API's OpenAPI document, which the proxy serves, and the API
// reference page at /docs that the control plane and the proxy both serve: a viewer from the npm
// registry (swagger-ui-dist, installed by ops/web.sh outside the clone) showing the service's own
// /openapi.json, with no request leaving the host.
package apidocs

import (
	_ "embed"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/internal/problem"
)

// TenantOpenAPI is the OpenAPI 3.1 document of the tenant API (the proxy's listener). Every route
// must be in it: dataplane's and proxy's tests check both ways, and e2e tests validate real
// requests and responses against it.
//
//go:embed tenant.openapi.json
var TenantOpenAPI []byte

// viewerPackage is the npm package, under the web directory, whose files the page loads.
const viewerPackage = "swagger-ui-dist"

// assets are the files served under /docs/: the viewer's, from the web directory, and the page's
// own script (a file, not inline, so the page's Content-Security-Policy needs no 'unsafe-inline'
// for scripts).
var assets = map[string]string{
	"swagger-ui-bundle.js": "text/javascript; charset=utf-8",
	"swagger-ui.css":       "text/css; charset=utf-8",
	"favicon-32x32.png":    "image/png",
}

//go:embed page.html
var page []byte

// plainPage is /docs when no viewer is installed.
//
//go:embed plain.html
var plainPage []byte

//go:embed init.js
var initScript []byte

// csp lets the page load only its own files and fetch only its own origin's /openapi.json (the
// viewer sets inline styles and draws icons from data: URLs).
const csp = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Viewer serves GET /docs (the page) and GET /docs/{file} (its files) from the viewer installed
// under WebDir (RAGPLANE_WEB_DIR, a directory holding swagger-ui-dist/; ops/web.sh prints it).
// An empty WebDir is allowed: /docs is then a plain page that links /openapi.json, and
// /docs/{file} is 404. Services check a non-empty WebDir with CheckWebDir when they start.
type Viewer struct {
	WebDir string
}

// CheckWebDir reports a non-empty web directory without the viewer's files.
func CheckWebDir(webDir string) error {
	if webDir == "" {
		return nil
	}
	for name := range assets {
		if _, err := os.Stat(filepath.Join(webDir, viewerPackage, name)); err != nil {
			return fmt.Errorf("RAGPLANE_WEB_DIR: %s has no %s/%s (ops/web.sh installs the viewer and prints the directory; unset it to serve a plain /docs page)", webDir, viewerPackage, name)
		}
	}
	return nil
}

// ServeHTTP answers /docs and /docs/{file}; any other path is 404.
func (v Viewer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		problem.Write(w, r, &ragplane.Error{Code: ragplane.ENOTFOUND, Message: "No such route."}, nil)
		return
	}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	dir := ""
	if v.WebDir != "" {
		dir = filepath.Join(v.WebDir, viewerPackage)
	}
	switch name := r.URL.Path; {
	case name == "/docs" || name == "/docs/":
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", csp)
		h.Set("Referrer-Policy", "no-referrer")
		if dir == "" {
			// Without the viewer the page still works offline: it links the document itself.
			w.Write(plainPage)
			return
		}
		w.Write(page)
		return
	case dir == "":
		problem.Write(w, r, ragplane.Errorf(ragplane.ENOTFOUND, "No such file: the API reference viewer is not installed here."), nil)
		return
	case name == "/docs/init.js":
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		w.Write(initScript)
		return
	default:
		file, under := strings.CutPrefix(name, "/docs/")
		ctype, ok := assets[file]
		if !under || !ok {
			problem.Write(w, r, ragplane.Errorf(ragplane.ENOTFOUND, "No such file."), nil)
			return
		}
		f, err := os.Open(filepath.Join(dir, file))
		if err != nil {
			problem.Write(w, r, ragplane.Errorf(ragplane.EUNAVAILABLE, "The API reference viewer's files cannot be read."), nil)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			problem.Write(w, r, ragplane.Errorf(ragplane.EUNAVAILABLE, "The API reference viewer's files cannot be read."), nil)
			return
		}
		h.Set("Content-Type", ctype)
		http.ServeContent(w, r, file, st.ModTime(), f)
	}
}
