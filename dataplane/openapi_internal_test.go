package dataplane

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane/internal/apidocs"
)

var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// workerTenantRoutes returns the worker's tenant routes (the /v1 ones the proxy forwards) as
// "METHOD /path/{param}". Building the router needs no database.
func workerTenantRoutes(tb testing.TB) map[string]bool {
	tb.Helper()
	s := &Server{cfg: DefaultConfig()}
	got := map[string]bool{}
	for _, r := range s.newEcho().Routes() {
		// Group middleware registers catch-all not-found routes; they are not API operations.
		if r.Method == echo.RouteNotFound || !strings.HasPrefix(r.Path, "/v1/") {
			continue
		}
		got[r.Method+" "+echoParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	return got
}

// tenantOperations returns the tenant API document's operations by "METHOD /path", and those
// the proxy answers itself (x-served-by: proxy).
func tenantOperations(tb testing.TB) (worker, proxy map[string]bool) {
	tb.Helper()
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(apidocs.TenantOpenAPI, &doc); err != nil {
		tb.Fatalf("tenant.openapi.json: %v", err)
	}
	worker, proxy = map[string]bool{}, map[string]bool{}
	for path, item := range doc.Paths {
		for _, m := range []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"} {
			raw, ok := item[m]
			if !ok {
				continue
			}
			var op struct {
				ServedBy string `json:"x-served-by"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				tb.Fatalf("%s %s: %v", m, path, err)
			}
			name := strings.ToUpper(m) + " " + path
			switch op.ServedBy {
			case "":
				worker[name] = true
			case "proxy":
				proxy[name] = true
			case "controlplane":
				// The token exchange and the tenant's keys: the proxy forwards them to the
				// control plane (proxy/controlplane.go), never to a worker.
			default:
				tb.Errorf("%s: x-served-by %q, want proxy, controlplane or none", name, op.ServedBy)
			}
		}
	}
	return worker, proxy
}

// TestTenantOpenAPIMatchesWorkerRoutes checks the tenant API's document against the worker's
// router both ways: every route the proxy forwards to a worker is documented, and every
// documented operation that the proxy does not answer itself is a worker route.
func TestTenantOpenAPIMatchesWorkerRoutes(t *testing.T) {
	routes := workerTenantRoutes(t)
	documented, _ := tenantOperations(t)
	var undocumented, unserved []string
	for r := range routes {
		if !documented[r] {
			undocumented = append(undocumented, r)
		}
	}
	for o := range documented {
		if !routes[o] {
			unserved = append(unserved, o)
		}
	}
	sort.Strings(undocumented)
	sort.Strings(unserved)
	if len(undocumented) > 0 {
		t.Errorf("worker routes missing from internal/apidocs/tenant.openapi.json:\n  %s", strings.Join(undocumented, "\n  "))
	}
	if len(unserved) > 0 {
		t.Errorf("tenant.openapi.json operations (not x-served-by: proxy) that no worker route serves:\n  %s", strings.Join(unserved, "\n  "))
	}
	if len(routes) < 10 {
		t.Errorf("only %d worker routes found", len(routes))
	}
}
