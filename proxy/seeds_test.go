package proxy_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/ragplane/ragplane/e2etest"
)

// The two seed documents (the deployment guide and the compliance README) show curl examples and
// request and response shapes. TestSeedClientsReplay sends each of them, as written, with at most
// the /v1 prefix and a real token: the operator creates tenants on the admin API (the guide's
// POST /tenants); everything a tenant does goes to ONE base URL, the proxy, the token exchange
// included. Responses are checked against the seeds' shapes: every field the seed shows is there
// with the same JSON type (the metrics' exactly, and nothing more).

// The deployment guide's examples ("Testing Your Deployment").
const (
	guideCreateTenant = `{
    "id": "test_corp",
    "name": "Test Corporation",
    "email": "test@corp.com",
    "max_documents": 100,
    "max_storage_mb": 50
  }`
	guideDocument = `{
    "title": "Test Document",
    "source": "test.md",
    "content": "This is a test document for the multi-tenant RAG system."
  }`
	guideQuery = `{
    "query": "What is this document about?",
    "use_vector": true,
    "use_graph": true,
    "max_results": 5
  }`
)

// The compliance README's API reference.
const (
	complianceQuery = `{
  "tenant_id": "acme_corp",
  "query": "What are our data encryption requirements?",
  "model_tier": "gpt-4",
  "retrieval_mode": "hybrid"
}`
	complianceQueryResponse = `{
  "answer": "Based on your policies...",
  "sources": [{"id": 0, "score": 0.9}],
  "metadata": {
    "tenant_id": "acme_corp",
    "model": "gpt-4",
    "tokens_used": 250,
    "latency_ms": 1800,
    "retrieval_mode": "hybrid"
  }
}`
	complianceIngest = `{
  "tenant_id": "acme_corp",
  "documents": [
    {
      "text": "ACME Data Protection Policy: customer data is encrypted at rest with AES-256 and in transit with TLS 1.2 or later.",
      "metadata": {
        "source": "internal_policy",
        "category": "data_protection"
      }
    }
  ]
}`
	complianceMetrics = `{
  "tenant_id": "acme_corp",
  "time_window_hours": 24,
  "total_queries": 150,
  "successful_queries": 148,
  "avg_latency_ms": 1250.5,
  "costs": {
    "total_tokens": 50000,
    "estimated_llm_cost": 0.5,
    "total_requests": 150,
    "success_rate": 0.987
  }
}`
)

func TestSeedClientsReplay(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	// Operator setup the seeds do not show: tenants embed with the fast hashing embedder (the
	// default model is slow under the race detector; the API is the same).
	if r := st.Admin("PUT", "/v1/config/defaults", map[string]any{"settings": map[string]any{
		"embedding_model": "ragplane-hash-v1", "embedding_dimension": 384}}); r.Status != http.StatusOK {
		t.Fatalf("PUT /v1/config/defaults: %d %s", r.Status, r.Body)
	}
	px := st.StartProxy(t)

	t.Run("deployment guide", func(t *testing.T) {
		// 1. Create a test tenant: the operator, on the admin API, with the guide's flat limits.
		r := st.Admin("POST", "/v1/tenants", guideCreateTenant)
		if r.Status != http.StatusAccepted {
			t.Fatalf("POST /v1/tenants: %d %s", r.Status, r.Body)
		}
		waitActive(t, st, "test_corp")
		var cfg struct {
			Plan   string `json:"plan"`
			Limits map[string]struct {
				Value any `json:"value"`
			} `json:"limits"`
		}
		st.Admin("GET", "/v1/tenants/test_corp/config", nil).Decode(t, &cfg)
		if cfg.Plan != "free" || cfg.Limits["max_documents"].Value != float64(100) || cfg.Limits["max_storage_mb"].Value != float64(50) {
			t.Fatalf("test_corp config %+v, want plan free, max_documents 100, max_storage_mb 50", cfg)
		}
		st.WaitPolicies(t, "test_corp")

		// 2. Get an authentication token. The guide's call names a tenant and a user and carries
		// no credential: it would let anyone mint a token for any tenant. Ragplane refuses it (401)
		// and mints tokens only for an API key, exchanged on the same base URL.
		if r := e2etest.Send(t, "POST", px+"/v1/auth/token?tenant_id=test_corp&user_id=test_user", nil); r.Status != http.StatusUnauthorized {
			t.Fatalf("the guide's unauthenticated token call = %d %s, want 401", r.Status, r.Body)
		}
		key, _ := st.APIKey("test_corp")
		token := exchange(t, px, key, map[string]any{"user": "test_user"})
		auth := []string{"Authorization", "Bearer " + token}

		// 3. Create a document.
		r = e2etest.Send(t, "POST", px+"/v1/documents", guideDocument, auth...)
		var doc map[string]any
		if r.Status != http.StatusCreated {
			t.Fatalf("POST /v1/documents: %d %s", r.Status, r.Body)
		}
		r.Decode(t, &doc)
		if doc["id"] == "" || doc["title"] != "Test Document" || doc["source"] != "test.md" {
			t.Fatalf("created document %s", r.Body)
		}

		// 4. Query the system.
		r = e2etest.Send(t, "POST", px+"/v1/query", guideQuery, auth...)
		if r.Status != http.StatusOK {
			t.Fatalf("POST /v1/query: %d %s", r.Status, r.Body)
		}
		var ans struct {
			Answer  string           `json:"answer"`
			Sources []map[string]any `json:"sources"`
		}
		r.Decode(t, &ans)
		if ans.Answer == "" || len(ans.Sources) == 0 || len(ans.Sources) > 5 || ans.Sources[0]["document_id"] != doc["id"] {
			t.Fatalf("answer %s, want the test document among at most 5 sources", r.Body)
		}
	})

	t.Run("compliance README", func(t *testing.T) {
		// The README shows no tenant creation: the operator creates acme_corp like the guide.
		if r := st.Admin("POST", "/v1/tenants", `{"id": "acme_corp", "name": "ACME Corp", "email": "it@acme.example", "plan": "pro"}`); r.Status != http.StatusAccepted {
			t.Fatalf("POST /v1/tenants: %d %s", r.Status, r.Body)
		}
		waitActive(t, st, "acme_corp")
		st.WaitPolicies(t, "acme_corp")
		key, _ := st.APIKey("acme_corp")
		auth := []string{"Authorization", "Bearer " + exchange(t, px, key, nil)}

		// POST /ingest
		r := e2etest.Send(t, "POST", px+"/v1/ingest", complianceIngest, auth...)
		if r.Status != http.StatusOK {
			t.Fatalf("POST /v1/ingest: %d %s", r.Status, r.Body)
		}
		var ingested struct {
			Status             string `json:"status"`
			DocumentsProcessed int    `json:"documents_processed"`
		}
		r.Decode(t, &ingested)
		if ingested.Status != "success" || ingested.DocumentsProcessed != 1 {
			t.Fatalf("ingest answered %s", r.Body)
		}

		// POST /query, and its response's shape.
		r = e2etest.Send(t, "POST", px+"/v1/query", complianceQuery, auth...)
		if r.Status != http.StatusOK {
			t.Fatalf("POST /v1/query: %d %s", r.Status, r.Body)
		}
		mustSeedShape(t, r.Body, complianceQueryResponse, false)
		var ans struct {
			Sources  []map[string]any `json:"sources"`
			Metadata map[string]any   `json:"metadata"`
		}
		r.Decode(t, &ans)
		if len(ans.Sources) == 0 || ans.Metadata["tenant_id"] != "acme_corp" || ans.Metadata["retrieval_mode"] != "hybrid" {
			t.Fatalf("answer %s, want sources and acme_corp's hybrid retrieval", r.Body)
		}
		// The seed's tenant_id names the caller's tenant; another tenant's is refused.
		if r := e2etest.Send(t, "POST", px+"/v1/query", `{"tenant_id": "test_corp", "query": "What are our data encryption requirements?"}`, auth...); r.Status != http.StatusForbidden {
			t.Fatalf("query naming another tenant = %d %s, want 403", r.Status, r.Body)
		}

		// GET /metrics/{tenant_id}, field for field, once the query's usage is counted.
		deadline := time.Now().Add(30 * time.Second)
		for {
			r = e2etest.Send(t, "GET", px+"/v1/metrics/acme_corp", nil, auth...)
			if r.Status != http.StatusOK {
				t.Fatalf("GET /v1/metrics/acme_corp: %d %s", r.Status, r.Body)
			}
			var m struct {
				TenantID     string `json:"tenant_id"`
				TotalQueries int    `json:"total_queries"`
			}
			r.Decode(t, &m)
			if m.TenantID != "acme_corp" {
				t.Fatalf("metrics %s", r.Body)
			}
			if m.TotalQueries >= 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("metrics never counted the query: %s", r.Body)
			}
			time.Sleep(50 * time.Millisecond)
		}
		mustSeedShape(t, r.Body, complianceMetrics, true)
	})
}

// waitActive polls the admin API until tenant is active.
func waitActive(tb testing.TB, st *e2etest.Stack, tenant string) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var tn struct{ Status, StatusReason string }
		st.Admin("GET", "/v1/tenants/"+tenant, nil).Decode(tb, &tn)
		if tn.Status == "active" {
			return
		}
		if tn.Status == "failed" || time.Now().After(deadline) {
			tb.Fatalf("tenant %s is %s: %s", tenant, tn.Status, tn.StatusReason)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mustSeedShape checks a response body against a seed's example: every field the example shows
// is there with the same JSON type, recursively (each element of an array against the example's
// first). exact also refuses fields the example does not show.
func mustSeedShape(tb testing.TB, body []byte, seed string, exact bool) {
	tb.Helper()
	var got, want any
	if err := json.Unmarshal(body, &got); err != nil {
		tb.Fatalf("response %q: %v", body, err)
	}
	if err := json.Unmarshal([]byte(seed), &want); err != nil {
		tb.Fatalf("seed: %v", err)
	}
	for _, p := range shapeProblems("", got, want, exact) {
		tb.Errorf("response %s differs from the seed's shape: %s", body, p)
	}
}

func shapeProblems(path string, got, want any, exact bool) []string {
	kind := func(v any) string { return fmt.Sprintf("%T", v) }
	if kind(got) != kind(want) {
		return []string{fmt.Sprintf("%s is %s, the seed's %s", path, kind(got), kind(want))}
	}
	var out []string
	switch w := want.(type) {
	case map[string]any:
		g := got.(map[string]any)
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				out = append(out, fmt.Sprintf("%s.%s is missing", path, k))
				continue
			}
			out = append(out, shapeProblems(path+"."+k, gv, wv, exact)...)
		}
		if exact {
			for k := range g {
				if _, ok := w[k]; !ok {
					out = append(out, fmt.Sprintf("%s.%s is not in the seed", path, k))
				}
			}
		}
	case []any:
		g := got.([]any)
		if len(w) > 0 && len(g) == 0 {
			out = append(out, path+" is empty")
		}
		for i, gv := range g {
			if len(w) > 0 {
				out = append(out, shapeProblems(fmt.Sprintf("%s[%d]", path, i), gv, w[0], exact)...)
			}
		}
	}
	slices.Sort(out)
	return out
}
