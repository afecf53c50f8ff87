package proxy_test

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ragplane/ragplane/e2etest"
	"github.com/ragplane/ragplane/internal/apidocs"
)

// TestTenantAPIConformsToOpenAPI exercises every operation of the tenant API's OpenAPI document
// through a real proxy and worker, and checks each request and response against the document
// (schemas of bodies, statuses, media types, and the events of a streamed query). Every
// documented operation must be served and checked at least once.
func TestTenantAPIConformsToOpenAPI(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("openapi_co", "pro", nil)
	px := st.StartProxy(t)
	token := st.Token("openapi_co")
	doc := e2etest.TenantAPI(t)
	auth := []string{"Authorization", "Bearer " + token}
	check := func(r e2etest.Response, method, path string, want int) e2etest.Response {
		t.Helper()
		if r.Status != want {
			t.Fatalf("%s %s = %d, want %d: %.500s", method, path, r.Status, want, r.Body)
		}
		return r
	}
	send := func(method, path string, body any, want int, headers ...string) e2etest.Response {
		t.Helper()
		return check(doc.Send(t, px, method, path, body, append(append([]string{}, auth...), headers...)...), method, path, want)
	}
	// sendInvalid sends a body the document says is invalid.
	sendInvalid := func(method, path string, body any, want int) e2etest.Response {
		t.Helper()
		return check(doc.SendInvalid(t, px, method, path, body, auth...), method, path, want)
	}

	// The proxy's own routes, without a token.
	for _, p := range []string{"/healthz", "/readyz", "/docs"} {
		if r := doc.Send(t, px, "GET", p, nil); r.Status != http.StatusOK {
			t.Fatalf("GET %s = %d", p, r.Status)
		}
	}
	if r := doc.Send(t, px, "GET", "/openapi.json", nil); r.Status != http.StatusOK || !bytes.Equal(r.Body, apidocs.TenantOpenAPI) {
		t.Fatalf("GET /openapi.json = %d, not the embedded document", r.Status)
	}
	// This proxy has no viewer installed (RAGPLANE_WEB_DIR unset): no files under /docs/.
	if r := doc.Send(t, px, "GET", "/docs/swagger-ui-bundle.js", nil); r.Status != http.StatusNotFound {
		t.Fatalf("GET /docs/swagger-ui-bundle.js without a viewer = %d, want 404", r.Status)
	}

	// The token exchange, the JWKS and the tenant's own keys, on the same base URL.
	if r := doc.Send(t, px, "GET", "/.well-known/jwks.json", nil); r.Status != http.StatusOK {
		t.Fatalf("GET /.well-known/jwks.json = %d", r.Status)
	}
	adminKey, _ := st.APIKey("openapi_co", "reader", "writer", "admin")
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	check(doc.Send(t, px, "POST", "/v1/auth/token", map[string]any{"roles": []string{"reader", "admin"}, "expires_in": 300},
		"Authorization", "Bearer "+adminKey), "POST", "/v1/auth/token", http.StatusOK).Decode(t, &tok)
	check(doc.Send(t, px, "POST", "/v1/auth/token", nil, "Authorization", "Bearer rpk_abcdefghijkl_nosuchkey"), "POST", "/v1/auth/token", http.StatusUnauthorized)
	admin := []string{"Authorization", "Bearer " + tok.AccessToken}
	check(doc.Send(t, px, "GET", "/v1/keys", nil, admin...), "GET", "/v1/keys", http.StatusOK)
	var key struct {
		ID string `json:"id"`
	}
	check(doc.Send(t, px, "POST", "/v1/keys", map[string]any{"name": "ci", "roles": []string{"reader"}}, admin...), "POST", "/v1/keys", http.StatusCreated).Decode(t, &key)
	check(doc.SendInvalid(t, px, "POST", "/v1/keys", map[string]any{"roles": []string{"reader"}}, admin...), "POST", "/v1/keys", http.StatusUnprocessableEntity)
	check(doc.Send(t, px, "DELETE", "/v1/keys/"+key.ID, nil, admin...), "DELETE", "/v1/keys/{key_id}", http.StatusOK)
	send("GET", "/v1/keys", nil, http.StatusForbidden) // a token without the admin role
	send("GET", "/v1/me", nil, http.StatusOK)

	// Ingestion, in each shape.
	var created struct {
		ID string `json:"id"`
	}
	send("POST", "/v1/documents", map[string]any{"title": "Vendors", "source": "handbook.md", "metadata": map[string]any{"year": 2026},
		"content": "Globex Inc supplies the payroll system. Globex Inc complies with SOC 2. Vendors are assessed every year by the risk office."},
		http.StatusCreated, "Idempotency-Key", "openapi-1").Decode(t, &created)
	send("POST", "/v1/documents", map[string]any{"title": "Vendors", "source": "handbook.md", "metadata": map[string]any{"year": 2026},
		"content": "Globex Inc supplies the payroll system. Globex Inc complies with SOC 2. Vendors are assessed every year by the risk office."},
		http.StatusOK, "Idempotency-Key", "openapi-1")
	var upload bytes.Buffer
	mw := multipart.NewWriter(&upload)
	fw, _ := mw.CreateFormFile("file", "retention.txt")
	fw.Write([]byte("Records are retained for seven years after the contract ends."))
	mw.WriteField("metadata", `{"kind":"policy"}`)
	mw.Close()
	send("POST", "/v1/documents", upload.Bytes(), http.StatusCreated, "Content-Type", mw.FormDataContentType())
	send("POST", "/v1/documents/batch", map[string]any{"documents": []any{
		map[string]any{"title": "Travel", "content": "Travel is booked through the travel desk."},
		map[string]any{"title": "Laptops", "content": "Laptops are encrypted with full-disk encryption."}}}, http.StatusCreated)
	send("POST", "/v1/ingest", map[string]any{"documents": []any{map[string]any{"text": "Passwords rotate every ninety days.", "metadata": map[string]any{"title": "Passwords"}}}}, http.StatusOK)

	// Reading documents, a page at a time.
	var page struct {
		NextCursor string `json:"next_cursor"`
	}
	send("GET", "/v1/documents?limit=2", nil, http.StatusOK).Decode(t, &page)
	if page.NextCursor == "" {
		t.Fatal("no next_cursor with 5 documents and limit 2")
	}
	send("GET", "/v1/documents?limit=2&cursor="+url.QueryEscape(page.NextCursor), nil, http.StatusOK)
	send("GET", "/v1/documents/"+created.ID, nil, http.StatusOK)
	send("GET", "/v1/documents/00000000-0000-4000-8000-000000000000", nil, http.StatusNotFound)

	// Search and answers, as JSON and as a stream, and bad input.
	send("POST", "/v1/search", map[string]any{"query": "Who complies with SOC 2?", "top_k": 3,
		"filters": []any{map[string]any{"field": "year", "op": "exists", "value": true}}}, http.StatusOK)
	send("POST", "/v1/search", map[string]any{"query": "SOC 2", "retrieval_mode": "graph"}, http.StatusOK)
	sendInvalid("POST", "/v1/search", `{"query":"SOC 2","top_k":"three"}`, http.StatusUnprocessableEntity)
	send("POST", "/v1/search", map[string]any{"query": "Who supplies the payroll system?", "max_results": 100}, http.StatusOK)
	send("POST", "/v1/search", map[string]any{"query": "the weather tomorrow", "retrieval_mode": "graph"}, http.StatusOK)
	send("POST", "/v1/search", map[string]any{"query": "SOC 2", "tenant_id": "openapi_co"}, http.StatusOK)
	send("POST", "/v1/search", map[string]any{"query": "SOC 2", "tenant_id": "someone_else"}, http.StatusForbidden)
	send("POST", "/v1/query", map[string]any{"query": "Who complies with SOC 2?", "model_tier": "gpt-4o-mini"}, http.StatusOK)
	sendInvalid("POST", "/v1/documents/batch", map[string]any{"documents": []any{}}, http.StatusUnprocessableEntity)
	send("POST", "/v1/query", map[string]any{"query": "How often are vendors assessed?"}, http.StatusOK)
	r := send("POST", "/v1/query", map[string]any{"query": "How often are vendors assessed?", "stream": true}, http.StatusOK)
	events, err := e2etest.ParseEvents(r.Body)
	if err != nil || len(events) < 2 || events[len(events)-1].Name != "done" {
		t.Fatalf("stream: %v, events %+v, want deltas then done", err, events)
	}

	// The graph.
	send("GET", "/v1/graph/entities?q=globex&limit=5", nil, http.StatusOK)
	r = send("GET", "/v1/graph/entities/Globex%20Inc", nil, http.StatusOK)
	if !strings.Contains(string(r.Body), "SOC 2") {
		t.Fatalf("Globex Inc's relations lack SOC 2: %s", r.Body)
	}
	send("GET", "/v1/graph/entities/Globex%20Inc/timeline", nil, http.StatusOK)
	send("GET", "/v1/graph/entities/Nobody%20Ltd", nil, http.StatusNotFound)

	// Usage, and a bad query parameter.
	send("GET", "/v1/usage?granularity=day", nil, http.StatusOK)
	send("GET", "/v1/usage?from=yesterday", nil, http.StatusUnprocessableEntity)
	send("GET", "/v1/metrics/openapi_co?hours=48", nil, http.StatusOK)
	send("GET", "/v1/metrics/someone_else", nil, http.StatusNotFound)

	// The tenant's own export: a token with the admin role; 403 without it.
	r = check(doc.Send(t, px, "GET", "/v1/export", nil, "Authorization", "Bearer "+st.Token("openapi_co", "admin")), "GET", "/v1/export", http.StatusOK)
	if lines := strings.Split(strings.TrimSpace(string(r.Body)), "\n"); len(lines) < 3 ||
		!strings.Contains(lines[0], `"type":"manifest"`) || !strings.Contains(lines[0], `"tenant_id":"openapi_co"`) ||
		!strings.Contains(string(r.Body), `"type":"document"`) || !strings.Contains(lines[len(lines)-1], `"type":"end"`) {
		t.Fatalf("self-export: %.500s", r.Body)
	}
	send("GET", "/v1/export", nil, http.StatusForbidden)

	send("DELETE", "/v1/documents/"+created.ID, nil, http.StatusNoContent)
	send("DELETE", "/v1/documents/"+created.ID, nil, http.StatusNotFound)

	// Without a token: 401, as documented.
	if r := doc.Send(t, px, "GET", "/v1/documents", nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("no token: %d, want 401", r.Status)
	}
	if left := doc.Unchecked(); len(left) > 0 {
		t.Errorf("documented operations this test did not exercise:\n  %s", strings.Join(left, "\n  "))
	}
}
