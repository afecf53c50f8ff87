package controlplane

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// openAPIMethods are the operation keys of an OpenAPI path item.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// registeredRoutes builds the admin router without a database (routes only registers handlers)
// and returns its routes as "METHOD /path/{param}".
func registeredRoutes(tb testing.TB) map[string]bool {
	tb.Helper()
	s := &Server{cfg: DefaultConfig()}
	e := echo.New()
	s.routes(e)
	got := map[string]bool{}
	for _, r := range e.Routes() {
		// Group middleware registers catch-all not-found routes; they are not API operations.
		if r.Method == echo.RouteNotFound {
			continue
		}
		got[r.Method+" "+echoParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	return got
}

// mustParseOpenAPI parses the embedded document.
func mustParseOpenAPI(tb testing.TB) map[string]any {
	tb.Helper()
	var doc map[string]any
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		tb.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	return doc
}

// operations returns the document's operations by "METHOD /path".
func operations(tb testing.TB, doc map[string]any) map[string]map[string]any {
	tb.Helper()
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		tb.Fatalf("openapi.json: paths is %T, want an object", doc["paths"])
	}
	ops := map[string]map[string]any{}
	for path, item := range paths {
		item, ok := item.(map[string]any)
		if !ok {
			tb.Errorf("openapi.json: path %s is %T, want an object", path, item)
			continue
		}
		for _, m := range openAPIMethods {
			if op, ok := item[m]; ok {
				o, ok := op.(map[string]any)
				if !ok {
					tb.Errorf("openapi.json: %s %s is %T, want an object", m, path, op)
					continue
				}
				ops[strings.ToUpper(m)+" "+path] = o
			}
		}
	}
	return ops
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	routes := registeredRoutes(t)
	ops := operations(t, mustParseOpenAPI(t))

	var undocumented, unregistered []string
	for r := range routes {
		if ops[r] == nil {
			undocumented = append(undocumented, r)
		}
	}
	for o := range ops {
		if !routes[o] {
			unregistered = append(unregistered, o)
		}
	}
	sort.Strings(undocumented)
	sort.Strings(unregistered)
	if len(undocumented) > 0 {
		t.Errorf("routes missing from openapi.json:\n  %s", strings.Join(undocumented, "\n  "))
	}
	if len(unregistered) > 0 {
		t.Errorf("openapi.json operations with no registered route:\n  %s", strings.Join(unregistered, "\n  "))
	}
	if len(routes) == 0 {
		t.Error("no routes registered")
	}
}

func TestOpenAPIDocument(t *testing.T) {
	doc := mustParseOpenAPI(t)
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.") {
		t.Errorf("openapi = %q, want 3.x", v)
	}

	ids := map[string]string{}
	for name, op := range operations(t, doc) {
		id, _ := op["operationId"].(string)
		switch {
		case id == "":
			t.Errorf("%s: no operationId", name)
		case ids[id] != "":
			t.Errorf("%s: operationId %q is also used by %s", name, id, ids[id])
		default:
			ids[id] = name
		}
		if resp, _ := op["responses"].(map[string]any); len(resp) == 0 {
			t.Errorf("%s: no responses", name)
		}
	}

	components, _ := doc["components"].(map[string]any)
	for _, ref := range collectRefs(doc) {
		kind, name, ok := strings.Cut(strings.TrimPrefix(ref, "#/components/"), "/")
		if !strings.HasPrefix(ref, "#/components/") || !ok {
			t.Errorf("$ref %q does not point into components", ref)
			continue
		}
		section, _ := components[kind].(map[string]any)
		if _, ok := section[name]; !ok {
			t.Errorf("$ref %q does not resolve", ref)
		}
	}
}

// TestOpenAPIServed checks that GET /openapi.json serves the embedded document, which needs no
// database.
func TestOpenAPIServed(t *testing.T) {
	s := &Server{cfg: DefaultConfig()}
	e := echo.New()
	s.routes(e)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /openapi.json = %d, want 200", rec.Code)
	}
	if rec.Body.String() != string(openAPIDocument) {
		t.Error("GET /openapi.json did not serve the embedded document")
	}
}

// collectRefs returns every "$ref" value in v, in a stable order.
func collectRefs(v any) []string {
	var refs []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				refs = append(refs, ref)
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	sort.Strings(refs)
	return refs
}
