package dataplane_test

import (
	"bytes"
	"context"
	"fmt"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane/e2etest"
)

func TestBadInput(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("acme_corp", "pro", nil)
	c := st.Tenant("acme_corp")
	tests := []struct {
		name   string
		method string
		path   string
		given  any
		expect int
		field  string
	}{
		{name: "malformed json", method: "POST", path: "/v1/documents", given: `{"content": `, expect: 400},
		{name: "unknown field", method: "POST", path: "/v1/documents", given: map[string]any{"content": "x", "colour": "b"}, expect: 400, field: "colour"},
		{name: "another tenant's tenant_id", method: "POST", path: "/v1/documents", given: map[string]any{"content": "x", "tenant_id": "b"}, expect: 403, field: "tenant_id"},
		{name: "empty content", method: "POST", path: "/v1/documents", given: map[string]any{"content": "   "}, expect: 422, field: "content"},
		{name: "nul byte", method: "POST", path: "/v1/documents", given: map[string]any{"content": "a\x00b"}, expect: 422, field: "content"},
		{name: "invalid utf-8", method: "POST", path: "/v1/documents", given: []byte("{\"content\": \"\xff\xfe\"}"), expect: 422},
		{name: "document over the size limit", method: "POST", path: "/v1/documents", given: map[string]any{"content": strings.Repeat("word ", 1_100_000)}, expect: 413, field: "content"},
		{name: "metadata not an object", method: "POST", path: "/v1/documents", given: map[string]any{"content": "x", "metadata": []int{1}}, expect: 422, field: "metadata"},
		{name: "batch empty", method: "POST", path: "/v1/documents/batch", given: map[string]any{"documents": []any{}}, expect: 422, field: "documents"},
		{name: "batch bad item", method: "POST", path: "/v1/documents/batch", given: map[string]any{"documents": []any{map[string]any{"content": "ok"}, map[string]any{"content": ""}}}, expect: 422, field: "documents[1].content"},
		{name: "ingest without text", method: "POST", path: "/v1/ingest", given: map[string]any{"documents": []any{map[string]any{"metadata": map[string]any{}}}}, expect: 422, field: "documents[0].text"},
		{name: "empty query", method: "POST", path: "/v1/search", given: map[string]any{"query": ""}, expect: 422, field: "query"},
		{name: "query over 8 KB", method: "POST", path: "/v1/search", given: map[string]any{"query": strings.Repeat("q", 9000)}, expect: 413, field: "query"},
		{name: "top_k zero", method: "POST", path: "/v1/search", given: map[string]any{"query": "x", "top_k": 0}, expect: 422, field: "top_k"},
		{name: "top_k huge", method: "POST", path: "/v1/search", given: map[string]any{"query": "x", "top_k": 100000}, expect: 422, field: "top_k"},
		{name: "top_k of the wrong type in a query", method: "POST", path: "/v1/query", given: map[string]any{"query": "x", "top_k": "three"}, expect: 422, field: "top_k"},
		{name: "unknown mode", method: "POST", path: "/v1/search", given: map[string]any{"query": "x", "retrieval_mode": "psychic"}, expect: 422, field: "retrieval_mode"},
		{name: "override not allowed", method: "POST", path: "/v1/query", given: map[string]any{"query": "x", "override_config": map[string]any{"chunk_size": 10}}, expect: 422, field: "override_config.chunk_size"},
		{name: "unknown filter op", method: "POST", path: "/v1/search", given: map[string]any{"query": "x", "filters": []any{map[string]any{"field": "team", "op": "regex", "value": ".*"}}}, expect: 422, field: "filters[0].op"},
		{name: "filter field injection", method: "POST", path: "/v1/search", given: map[string]any{"query": "x", "filters": []any{map[string]any{"field": "a'); drop table chunks;--", "op": "eq", "value": "x"}}}, expect: 422, field: "filters[0].field"},
		{name: "agentic search", method: "POST", path: "/v1/search", given: map[string]any{"query": "x", "retrieval_mode": "agentic"}, expect: 422, field: "retrieval_mode"},
		{name: "agentic without a model", method: "POST", path: "/v1/query", given: map[string]any{"query": "x", "retrieval_mode": "agentic"}, expect: 422, field: "retrieval_mode"},
		{name: "both seed flags false", method: "POST", path: "/v1/query", given: map[string]any{"query": "x", "use_vector": false, "use_graph": false}, expect: 422, field: "use_vector"},
		{name: "bad document id", method: "GET", path: "/v1/documents/not-a-uuid", expect: 404},
		{name: "bad list limit", method: "GET", path: "/v1/documents?limit=0", expect: 422, field: "limit"},
		{name: "bad list cursor", method: "GET", path: "/v1/documents?cursor=%27%20or%201%3D1", expect: 422, field: "cursor"},
		{name: "idempotency key too long", method: "POST", path: "/v1/documents", given: map[string]any{"content": "x"}, expect: 422, field: "Idempotency-Key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var headers []string
			if tt.field == "Idempotency-Key" {
				headers = []string{"Idempotency-Key", strings.Repeat("k", 300)}
			}
			r := c.Do(tt.method, tt.path, tt.given, headers...)
			mustStatus(t, r, tt.expect)
			p := r.Problem(t)
			if tt.field != "" && p["field"] != tt.field {
				t.Fatalf("field = %v, want %s (%s)", p["field"], tt.field, r.Body)
			}
			delete(p, "request_id") // random; it may spell anything
			for _, leak := range []string{"select ", "insert ", "goroutine", ".go:", "pgx", "postgres://"} {
				if strings.Contains(strings.ToLower(fmt.Sprint(p)), leak) {
					t.Fatalf("response leaks %q: %s", leak, r.Body)
				}
			}
		})
	}
	// An unsupported upload type is refused, naming the type.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("file", "malware.exe")
	fw.Write([]byte("MZ\x90\x00\x03\x00\x00\x00binary"))
	mw.Close()
	r := c.Do("POST", "/v1/documents", buf.Bytes(), "Content-Type", mw.FormDataContentType())
	mustStatus(t, r, http.StatusUnprocessableEntity)
	if p := r.Problem(t); p["field"] != "file" {
		t.Fatalf("upload problem %v", p)
	}

	// Nothing was stored by any of it.
	url, err := st.Store().TenantDatabaseURL(context.Background(), "acme_corp")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// Row level security: the tenant's rows only, as the worker sees them.
	if _, err := conn.Exec(context.Background(), `select set_config('ragplane.tenant_id', 'acme_corp', false)`); err != nil {
		t.Fatal(err)
	}
	var docs, chunks int
	conn.QueryRow(context.Background(), `select (select count(*) from documents), (select count(*) from chunks)`).Scan(&docs, &chunks)
	if docs != 0 || chunks != 0 {
		t.Fatalf("bad input stored %d documents, %d chunks", docs, chunks)
	}
}

func TestUploadsAndQuotas(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("small_co", "free", nil)
	// Tight quotas through the control plane; the worker sees them within its cache TTL.
	mustStatus(t, st.Admin("PATCH", "/v1/tenants/small_co", map[string]any{"limits": map[string]any{"max_documents": 2, "max_storage_mb": 1}}), http.StatusOK)
	waitWorkerConfig(t, st, "small_co")
	c := st.Tenant("small_co")

	upload := func(name, ctype, content string) e2etest.Response {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		h := make(map[string][]string)
		h["Content-Disposition"] = []string{`form-data; name="file"; filename="` + name + `"`}
		h["Content-Type"] = []string{ctype}
		fw, _ := mw.CreatePart(h)
		fw.Write([]byte(content))
		mw.WriteField("metadata", `{"kind":"upload"}`)
		mw.Close()
		return c.Do("POST", "/v1/documents", buf.Bytes(), "Content-Type", mw.FormDataContentType())
	}
	r := upload("handbook.html", "text/html", "<html><head><script>evil()</script></head><body><h1>Handbook</h1><p>Laptops must use disk encryption.</p></body></html>")
	mustStatus(t, r, http.StatusCreated)
	var d docResp
	r.Decode(t, &d)
	r = c.Do("GET", "/v1/documents/"+d.ID, nil)
	r.Decode(t, &d)
	if !strings.Contains(d.Content, "disk encryption") || strings.Contains(d.Content, "evil") || d.Title != "handbook.html" || d.Metadata["kind"] != "upload" {
		t.Fatalf("uploaded HTML stored as %+v", d)
	}
	mustStatus(t, upload("notes.md", "text/markdown", "# Notes\n\nVisitors **must** sign in at reception."), http.StatusCreated)

	// The third document is over max_documents: 429 naming the quota, nothing stored.
	r = c.Do("POST", "/v1/documents", map[string]any{"content": "A third document."})
	mustStatus(t, r, http.StatusTooManyRequests)
	if p := r.Problem(t); p["field"] != "max_documents" {
		t.Fatalf("quota problem %v", p)
	}
	// Storage: raise the document cap, then go over 1 MB.
	mustStatus(t, st.Admin("PATCH", "/v1/tenants/small_co", map[string]any{"limits": map[string]any{"max_documents": 100}}), http.StatusOK)
	waitWorkerConfig(t, st, "small_co")
	big := strings.Repeat("Storage quota filler sentence number one. ", 30000) // ~1.2 MB
	r = c.Do("POST", "/v1/documents", map[string]any{"content": big})
	mustStatus(t, r, http.StatusRequestEntityTooLarge)
	if p := r.Problem(t); p["field"] != "max_storage_mb" {
		t.Fatalf("storage problem %v", p)
	}
	r = c.Do("GET", "/v1/documents", nil)
	var list struct {
		Items []docResp `json:"items"`
	}
	r.Decode(t, &list)
	if len(list.Items) != 2 {
		t.Fatalf("%d documents after refused ones, want 2", len(list.Items))
	}
}

func TestSuspendedAndDeletedTenants(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("acme_corp", "pro", nil)
	c := st.Tenant("acme_corp")
	mustStatus(t, c.Do("POST", "/v1/search", map[string]any{"query": "anything"}), http.StatusOK)
	mustStatus(t, st.Admin("POST", "/v1/tenants/acme_corp/suspend", nil), http.StatusOK)
	waitStatus(t, c, http.StatusForbidden)
	mustStatus(t, st.Admin("POST", "/v1/tenants/acme_corp/resume", nil), http.StatusOK)
	waitStatus(t, c, http.StatusOK)
	mustStatus(t, st.Admin("DELETE", "/v1/tenants/acme_corp", nil), http.StatusAccepted)
	waitStatus(t, c, http.StatusGone)
}

// waitStatus polls a search until it answers want; the worker's cache TTL in tests is 200 ms,
// so a change must show within a couple of seconds.
func waitStatus(t *testing.T, c *e2etest.Client, want int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		r := c.Do("POST", "/v1/search", map[string]any{"query": "anything"})
		if r.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %d after 3s, want %d: %s", r.Status, want, r.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
