package dataplane_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/e2etest"
	"github.com/ragplane/ragplane/internal/tenantctx"
)

const policy = `Acme Corp is headquartered in Berlin. Acme Corp requires multi-factor authentication for every administrator account.

Passwords must be rotated every 90 days under the Acme access control policy. Access reviews happen quarterly, and the security team signs them off.

Data retention: customer records are kept for seven years, then deleted. Backups are encrypted with AES-256 and stored in two regions.`

func mustStatus(tb testing.TB, r e2etest.Response, want int) {
	tb.Helper()
	if r.Status != want {
		tb.Fatalf("status %d, want %d: %s", r.Status, want, r.Body)
	}
}

type docResp struct {
	ID         string         `json:"id"`
	Title      string         `json:"title"`
	ChunkCount int            `json:"chunk_count"`
	Duplicate  bool           `json:"duplicate"`
	Content    string         `json:"content"`
	Metadata   map[string]any `json:"metadata"`
}

type searchResp struct {
	Results []ragplane.SearchHit `json:"results"`
	Mode    string               `json:"retrieval_mode"`
}

func TestOnlySignedRequestsAreServed(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("acme_corp", "pro", nil)
	c := st.Tenant("acme_corp")
	mustStatus(t, c.Do("POST", "/v1/documents", map[string]any{"title": "p", "content": policy}), http.StatusCreated)

	other, _ := tenantctx.New(strings.Repeat("k", 40))
	forged := &e2etest.Client{Base: c.Base, ID: c.ID, Codec: other}
	_ = forged
	tests := []struct {
		name    string
		headers []string
	}{
		{name: "no context"},
		{name: "tenant header only", headers: []string{"X-Tenant-ID", "acme_corp"}},
		{name: "garbage context", headers: []string{tenantctx.Header, "v1.abc.def"}},
		{name: "context signed with another key", headers: []string{tenantctx.Header,
			other.Sign(tenantctx.Context{Identity: c.ID, IssuedAt: time.Now()}, "POST", "/v1/search")}},
		{name: "context for another path", headers: []string{tenantctx.Header,
			st.Codec.Sign(tenantctx.Context{Identity: c.ID, IssuedAt: time.Now()}, "POST", "/v1/query")}},
		{name: "stale context", headers: []string{tenantctx.Header,
			st.Codec.Sign(tenantctx.Context{Identity: c.ID, IssuedAt: time.Now().Add(-time.Hour)}, "POST", "/v1/search")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e2etest.Send(t, "POST", st.WorkerURL+"/v1/search", map[string]any{"query": "passwords"}, tt.headers...)
			mustStatus(t, r, http.StatusUnauthorized)
			if p := r.Problem(t); p["code"] != ragplane.EUNAUTHORIZED {
				t.Fatalf("problem %v", p)
			}
		})
	}
	// A reader cannot write.
	reader := st.Tenant("acme_corp")
	reader.ID.Roles = []string{"reader"}
	mustStatus(t, reader.Do("POST", "/v1/documents", map[string]any{"content": "x"}), http.StatusForbidden)
	mustStatus(t, reader.Do("POST", "/v1/search", map[string]any{"query": "passwords"}), http.StatusOK)
	// A signed context for an unknown tenant is refused.
	mustStatus(t, st.Tenant("nobody_here").Do("POST", "/v1/search", map[string]any{"query": "x"}), http.StatusUnauthorized)
}

func TestDocumentsLifecycle(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("acme_corp", "pro", nil)
	c := st.Tenant("acme_corp")

	r := c.Do("POST", "/v1/documents", map[string]any{"title": "Access policy", "source": "policy.md", "content": policy,
		"metadata": map[string]any{"team": "security", "tags": []string{"iam", "mfa"}}})
	mustStatus(t, r, http.StatusCreated)
	var doc docResp
	r.Decode(t, &doc)
	if doc.ID == "" || doc.ChunkCount < 1 || r.Header.Get("Location") != "/v1/documents/"+doc.ID {
		t.Fatalf("created %+v (Location %q)", doc, r.Header.Get("Location"))
	}
	// The same text again is a duplicate: the existing document, not a second one.
	r = c.Do("POST", "/v1/documents", map[string]any{"title": "Copy", "content": policy + "\n\n"})
	mustStatus(t, r, http.StatusOK)
	var dup docResp
	r.Decode(t, &dup)
	if !dup.Duplicate || dup.ID != doc.ID {
		t.Fatalf("duplicate = %+v, want the first document", dup)
	}
	// Idempotency-Key: the same request twice creates one document; another body with the key is 409.
	body := map[string]any{"title": "Retention", "content": "Invoices are kept for ten years."}
	r1 := c.Do("POST", "/v1/documents", body, "Idempotency-Key", "k-1")
	r2 := c.Do("POST", "/v1/documents", body, "Idempotency-Key", "k-1")
	mustStatus(t, r1, http.StatusCreated)
	mustStatus(t, r2, http.StatusOK)
	var d1, d2 docResp
	r1.Decode(t, &d1)
	r2.Decode(t, &d2)
	if d1.ID != d2.ID || r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("idempotent retry created %s then %s", d1.ID, d2.ID)
	}
	mustStatus(t, c.Do("POST", "/v1/documents", map[string]any{"content": "something else"}, "Idempotency-Key", "k-1"), http.StatusConflict)

	// Batch and the seed's /v1/ingest shape.
	r = c.Do("POST", "/v1/documents/batch", map[string]any{"documents": []map[string]any{
		{"title": "A", "content": "Alpha document about encryption keys."},
		{"title": "B", "content": "Beta document about incident response."}}})
	mustStatus(t, r, http.StatusCreated)
	r = c.Do("POST", "/v1/ingest", map[string]any{"documents": []map[string]any{
		{"text": "Gamma: vendors are assessed yearly.", "metadata": map[string]any{"title": "Vendors", "source": "vendors.txt"}}}})
	mustStatus(t, r, http.StatusOK)
	var ing struct {
		Status    string   `json:"status"`
		Processed int      `json:"documents_processed"`
		IDs       []string `json:"document_ids"`
	}
	r.Decode(t, &ing)
	if ing.Status != "success" || ing.Processed != 1 || len(ing.IDs) != 1 {
		t.Fatalf("ingest = %+v", ing)
	}

	// List pages through all five, newest first.
	var seen []string
	cursor := ""
	for i := 0; ; i++ {
		if i > 10 {
			t.Fatal("pagination does not end")
		}
		r = c.Do("GET", "/v1/documents?limit=2&cursor="+cursor, nil)
		mustStatus(t, r, http.StatusOK)
		var p struct {
			Items      []docResp `json:"items"`
			NextCursor string    `json:"next_cursor"`
		}
		r.Decode(t, &p)
		for _, d := range p.Items {
			seen = append(seen, d.ID)
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if len(seen) != 5 {
		t.Fatalf("listed %d documents, want 5", len(seen))
	}

	// Get returns the text; delete removes it with its chunks and graph facts.
	r = c.Do("GET", "/v1/documents/"+doc.ID, nil)
	mustStatus(t, r, http.StatusOK)
	var full docResp
	r.Decode(t, &full)
	if !strings.Contains(full.Content, "multi-factor") || full.Metadata["team"] != "security" {
		t.Fatalf("document = %+v", full)
	}
	r = c.Do("GET", "/v1/graph/entities?q=acme", nil)
	mustStatus(t, r, http.StatusOK)
	if !strings.Contains(strings.ToLower(string(r.Body)), "acme corp") {
		t.Fatalf("graph has no Acme Corp after ingest: %s", r.Body)
	}
	mustStatus(t, c.Do("DELETE", "/v1/documents/"+doc.ID, nil), http.StatusNoContent)
	mustStatus(t, c.Do("GET", "/v1/documents/"+doc.ID, nil), http.StatusNotFound)
	mustStatus(t, c.Do("DELETE", "/v1/documents/"+doc.ID, nil), http.StatusNotFound)
	r = c.Do("POST", "/v1/search", map[string]any{"query": "multi-factor authentication administrator", "retrieval_mode": "keyword"})
	mustStatus(t, r, http.StatusOK)
	var sr searchResp
	r.Decode(t, &sr)
	for _, h := range sr.Results {
		if h.DocumentID == doc.ID {
			t.Fatal("a deleted document's chunk is still found")
		}
	}
	r = c.Do("GET", "/v1/graph/entities?q=acme", nil)
	if strings.Contains(strings.ToLower(string(r.Body)), "acme corp") {
		t.Fatalf("graph facts of a deleted document remain: %s", r.Body)
	}
}

// Two tenants with the same documents never see each other's, in any mode, by any id.
func TestTenantIsolation(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("tenant_a", "pro", nil)
	st.CreateTenant("tenant_b", "pro", nil)
	a, b := st.Tenant("tenant_a"), st.Tenant("tenant_b")
	ids := map[string]string{}
	for name, c := range map[string]*e2etest.Client{"tenant_a": a, "tenant_b": b} {
		for i, content := range []string{policy, "Secret marker of " + name + ": the vault code is kept by Acme Corp."} {
			r := c.Do("POST", "/v1/documents", map[string]any{"title": fmt.Sprintf("doc %d", i), "content": content})
			mustStatus(t, r, http.StatusCreated)
			var d docResp
			r.Decode(t, &d)
			ids[name+fmt.Sprint(i)] = d.ID
		}
	}
	for _, mode := range []string{"vector", "keyword", "hybrid", "graph"} {
		r := a.Do("POST", "/v1/search", map[string]any{"query": "secret marker vault code Acme Corp", "retrieval_mode": mode, "top_k": 20})
		mustStatus(t, r, http.StatusOK)
		var sr searchResp
		r.Decode(t, &sr)
		if len(sr.Results) == 0 {
			t.Fatalf("%s: tenant_a finds nothing", mode)
		}
		for _, h := range sr.Results {
			if h.DocumentID == ids["tenant_b0"] || h.DocumentID == ids["tenant_b1"] || strings.Contains(h.Content, "tenant_b") {
				t.Fatalf("%s: tenant_a sees tenant_b's chunk %+v", mode, h)
			}
		}
	}
	for _, id := range []string{ids["tenant_b0"], ids["tenant_b1"]} {
		mustStatus(t, a.Do("GET", "/v1/documents/"+id, nil), http.StatusNotFound)
		mustStatus(t, a.Do("DELETE", "/v1/documents/"+id, nil), http.StatusNotFound)
	}
	// A client-sent tenant header or body field selects nothing.
	r := a.Do("POST", "/v1/search", `{"query":"vault code","tenant_id":"tenant_b"}`, "X-Tenant-ID", "tenant_b")
	mustStatus(t, r, http.StatusForbidden) // another tenant's id: refused, never selected
	r = a.Do("GET", "/v1/documents/"+ids["tenant_b0"], nil, "X-Tenant-ID", "tenant_b")
	mustStatus(t, r, http.StatusNotFound)
	mustStatus(t, b.Do("GET", "/v1/documents/"+ids["tenant_b0"], nil), http.StatusOK)
}
