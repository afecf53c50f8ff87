package dataplane_test

import (
	"net/http"
	"testing"

	"github.com/ragplane/ragplane/dataplane"
	"github.com/ragplane/ragplane/e2etest"
	"github.com/ragplane/ragplane/internal/openaitest"
)

// Embedding tokens a tenant pays per token count against monthly_tokens like a model's: once the
// quota is used up, searches that embed the question and ingestions get 429 naming the quota,
// while keyword search, which embeds nothing, is still served.
func TestMonthlyTokensBoundPaidEmbeddings(t *testing.T) {
	ai := openaitest.New(t, openaitest.Config{})
	st := e2etest.Start(t, e2etest.Options{Worker: func(c *dataplane.Config) {
		c.OpenAI.BaseURL, c.OpenAI.APIKey = ai.URL, ai.APIKey
	}})
	st.CreateTenant("paid_co", "pro", map[string]any{"embedding_provider": "openai",
		"embedding_model": "text-embedding-3-small", "embedding_dimension": 64})
	mustStatus(t, st.Admin("PATCH", "/v1/tenants/paid_co", map[string]any{"limits": map[string]any{"monthly_tokens": 5}}), http.StatusOK)
	waitWorkerConfig(t, st, "paid_co")
	c := st.Tenant("paid_co")
	mustStatus(t, c.Do("POST", "/v1/documents", map[string]any{"content": "Backups are encrypted with AES-256 every night."}), http.StatusCreated)
	waitUsage(t, st, "paid_co", 1) // the ingestion's embedding tokens (more than 5) are counted now
	calls := len(ai.EmbeddingRequests())

	for _, r := range []struct {
		path string
		body map[string]any
	}{
		{"/v1/search", map[string]any{"query": "backups", "retrieval_mode": "hybrid"}},
		{"/v1/documents", map[string]any{"content": "Laptops use full-disk encryption."}},
	} {
		resp := c.Do("POST", r.path, r.body)
		mustStatus(t, resp, http.StatusTooManyRequests)
		if p := resp.Problem(t); p["field"] != "monthly_tokens" {
			t.Fatalf("%s: 429 for %v, want monthly_tokens", r.path, p["field"])
		}
	}
	if n := len(ai.EmbeddingRequests()); n != calls {
		t.Fatalf("the refused requests called the embeddings API %d times", n-calls)
	}
	mustStatus(t, c.Do("POST", "/v1/search", map[string]any{"query": "backups", "retrieval_mode": "keyword"}), http.StatusOK)
}
