package dataplane_test

import (
	"net/http"
	"testing"

	"github.com/ragplane/ragplane/e2etest"
)

// The seeds' clients send tenant_id in bodies: the token's own tenant is accepted (and changes
// nothing), another tenant is refused with 403 before anything is done, and it never selects one.
func TestTenantIDInRequests(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("acme_corp", "pro", nil)
	st.CreateTenant("globex", "pro", nil)
	acme := st.Tenant("acme_corp")

	// The compliance seed's ingest body, with its own tenant.
	r := acme.Do("POST", "/v1/ingest", map[string]any{"tenant_id": "acme_corp", "documents": []map[string]any{
		{"text": "ACME Data Protection Policy: customer data is encrypted at rest with AES-256.",
			"metadata": map[string]any{"source": "internal_policy", "category": "data_protection"}}}})
	if r.Status != http.StatusOK && r.Status != http.StatusCreated {
		t.Fatalf("ingest with its own tenant_id: %d %s", r.Status, r.Body)
	}
	// The compliance seed's query body, with its own tenant.
	r = acme.Do("POST", "/v1/query", map[string]any{"tenant_id": "acme_corp", "query": "How is customer data encrypted?",
		"model_tier": "gpt-4", "retrieval_mode": "hybrid"})
	mustStatus(t, r, http.StatusOK)

	// Another tenant's id: 403 naming the field, and nothing written.
	for _, c := range []struct{ method, path string }{
		{"POST", "/v1/documents"}, {"POST", "/v1/search"}, {"POST", "/v1/query"}, {"POST", "/v1/ingest"},
	} {
		r := acme.Do(c.method, c.path, map[string]any{"tenant_id": "globex", "query": "encryption", "content": "Leak into globex.",
			"documents": []map[string]any{{"text": "Leak into globex."}}})
		mustStatus(t, r, http.StatusForbidden)
		if p := r.Problem(t); p["field"] != "tenant_id" {
			t.Errorf("%s %s: problem %v does not name tenant_id", c.method, c.path, p)
		}
	}
	// The key written with a JSON escape is the same key.
	r = acme.Do("POST", "/v1/search", `{"query": "encryption", "tenant\u005fid": "globex"}`)
	mustStatus(t, r, http.StatusForbidden)
	mustStatus(t, acme.Do("POST", "/v1/search", `{"query": "encryption", "tenant\u005fid": "acme_corp"}`), http.StatusOK)
	r = acme.Do("GET", "/v1/documents?tenant_id=globex", nil)
	mustStatus(t, r, http.StatusForbidden)
	mustStatus(t, acme.Do("GET", "/v1/documents?tenant_id=acme_corp", nil), http.StatusOK)
	mustStatus(t, acme.Do("POST", "/v1/search", map[string]any{"tenant_id": 7, "query": "x"}), http.StatusUnprocessableEntity)

	var docs struct {
		Items []struct{ ID string } `json:"items"`
	}
	st.Tenant("globex").Do("GET", "/v1/documents", nil).Decode(t, &docs)
	if len(docs.Items) != 0 {
		t.Fatalf("globex has %d documents after acme's refused writes", len(docs.Items))
	}
	acme.Do("GET", "/v1/documents", nil).Decode(t, &docs)
	if len(docs.Items) != 1 {
		t.Fatalf("acme has %d documents, want the 1 ingested", len(docs.Items))
	}
}
