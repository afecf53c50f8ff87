package dataplane_test

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/dataplane"
	"github.com/ragplane/ragplane/e2etest"
)

// An operator moves a tenant from the hashing embedder onto GloVe: the vectors are rewritten, the
// catalog's fixed settings follow, the worker searches with the new model, and a second run
// changes nothing.
func TestReembed(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("reemb", "pro", map[string]any{"embedding_model": "ragplane-hash-v1", "embedding_dimension": 64})
	c := st.Tenant("reemb")
	docs := []map[string]any{
		{"title": "Volcanoes", "content": "Lava flows from the crater of an active volcano during an eruption."},
		{"title": "Bakery", "content": "The baker kneads dough and bakes fresh bread every morning."},
		{"title": "Football", "content": "The striker scored a goal in the final minute of the match."},
	}
	mustStatus(t, c.Do("POST", "/v1/documents/batch", map[string]any{"documents": docs}), http.StatusCreated)

	cfg := dataplane.DefaultConfig()
	cfg.DatabaseURL, cfg.SecretKey = st.CatalogURL, catalogtest.SecretKey
	ctx := context.Background()
	var done, total int64
	to := dataplane.EmbeddingTarget{Provider: "local", Model: "glove-6b-100d-sif", Dimension: 100}
	if err := dataplane.Reembed(ctx, cfg, "reemb", to, func(d, n int64) { done, total = d, n }, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if done != 3 || total != 3 {
		t.Errorf("progress %d of %d, want 3 of 3", done, total)
	}
	store := st.Store()
	rt, err := store.TenantRuntime(ctx, "reemb")
	if err != nil {
		t.Fatal(err)
	}
	if rt.Tenant.Settings["embedding_model"] != "glove-6b-100d-sif" {
		t.Errorf("catalog settings %v", rt.Tenant.Settings)
	}
	conn, err := pgx.Connect(ctx, rt.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Row level security: the tenant's rows only, as the worker sees them.
	if _, err := conn.Exec(ctx, `select set_config('ragplane.tenant_id', 'reemb', false)`); err != nil {
		t.Fatal(err)
	}
	var typ, comment string
	var nulls int
	if err := conn.QueryRow(ctx, `select format_type(atttypid, atttypmod), coalesce(col_description(attrelid, attnum), ''),
		(select count(*) from chunks where embedding is null)
		from pg_attribute where attrelid = 'chunks'::regclass and attname = 'embedding'`).Scan(&typ, &comment, &nulls); err != nil {
		t.Fatal(err)
	}
	if typ != "vector(100)" || comment != "local/glove-6b-100d-sif" || nulls != 0 {
		t.Errorf("embedding column %s, comment %q, %d nulls", typ, comment, nulls)
	}

	// The worker follows the catalog: a semantic question finds the volcano by meaning.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := c.Do("POST", "/v1/search", map[string]any{"query": "magma erupting mountain", "retrieval_mode": "vector", "top_k": 1})
		var out struct {
			Results []struct {
				Title string `json:"title"`
			} `json:"results"`
		}
		if r.Status == http.StatusOK {
			r.Decode(t, &out)
			if len(out.Results) == 1 && out.Results[0].Title == "Volcanoes" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("search after re-embedding: %d %s", r.Status, r.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// New documents are embedded with the new model.
	mustStatus(t, c.Do("POST", "/v1/documents", map[string]any{"title": "Ocean", "content": "Whales swim in the deep sea."}), http.StatusCreated)

	// Again: nothing left to do.
	done = 0
	if err := dataplane.Reembed(ctx, cfg, "reemb", to, func(d, n int64) { done = d }, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if done != 0 {
		t.Errorf("a second run re-embedded %d chunks", done)
	}
}
