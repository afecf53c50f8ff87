package dataplane_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
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

// A pooled tenant cannot be re-embedded in place (its pool has one embedding dimension for all its
// tenants, and its role may not change the table): Reembed refuses with a 409-class error naming
// the tier and the way out, not PostgreSQL's permission error, and writes nothing: the catalog's
// settings, the pool's column and the tenant's vectors are as they were, and it still searches.
func TestReembedRefusesPooledTenant(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("reemb_pool", "pro", map[string]any{"isolation_tier": "pooled", "embedding_model": "ragplane-hash-v1", "embedding_dimension": 64})
	c := st.Tenant("reemb_pool")
	docs := []map[string]any{
		{"title": "Volcanoes", "content": "Lava flows from the crater of an active volcano during an eruption."},
		{"title": "Bakery", "content": "The baker kneads dough and bakes fresh bread every morning."},
	}
	mustStatus(t, c.Do("POST", "/v1/documents/batch", map[string]any{"documents": docs}), http.StatusCreated)

	ctx := context.Background()
	store := st.Store()
	rt, err := store.TenantRuntime(ctx, "reemb_pool")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rt.Tenant.ProviderProjectID, "pool:") {
		t.Fatalf("the tenant is not pooled: project %q", rt.Tenant.ProviderProjectID)
	}
	conn, err := pgx.Connect(ctx, rt.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `select set_config('ragplane.tenant_id', 'reemb_pool', false)`); err != nil {
		t.Fatal(err)
	}
	// What must not change: the vector column's type and comment, no second column, the tenant's
	// vectors (a digest), and the catalog's settings.
	state := func() string {
		t.Helper()
		var typ, comment, digest string
		var next, chunks int
		if err := conn.QueryRow(ctx, `select format_type(atttypid, atttypmod), coalesce(col_description(attrelid, attnum), ''),
			(select count(*) from pg_attribute where attrelid = 'chunks'::regclass and attname = 'embedding_next' and not attisdropped),
			(select count(*) from chunks),
			(select coalesce(md5(string_agg(id::text || embedding::text, ',' order by id)), '') from chunks)
			from pg_attribute where attrelid = 'chunks'::regclass and attname = 'embedding'`).Scan(&typ, &comment, &next, &chunks, &digest); err != nil {
			t.Fatal(err)
		}
		rt, err := store.TenantRuntime(ctx, "reemb_pool")
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("column %s %q, embedding_next %d, %d chunks %s, settings %v %v", typ, comment, next, chunks, digest,
			rt.Tenant.Settings["embedding_model"], rt.Tenant.Settings["embedding_dimension"])
	}
	before := state()
	if !strings.Contains(before, "column vector(64)") || strings.Contains(before, " 0 chunks") {
		t.Fatalf("before: %s", before)
	}

	cfg := dataplane.DefaultConfig()
	cfg.DatabaseURL, cfg.SecretKey = st.CatalogURL, catalogtest.SecretKey
	to := dataplane.EmbeddingTarget{Provider: "local", Model: "glove-6b-100d-sif", Dimension: 100}
	called := false
	err = dataplane.Reembed(ctx, cfg, "reemb_pool", to, func(int64, int64) { called = true }, slog.New(slog.DiscardHandler))
	if code := ragplane.ErrorCode(err); code != ragplane.ECONFLICT {
		t.Fatalf("Reembed of a pooled tenant: %q (%v), want %q", code, err, ragplane.ECONFLICT)
	}
	msg := err.Error()
	for _, want := range []string{`"reemb_pool"`, "pooled tier", "one embedding dimension", "siloed"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error does not say %q: %s", want, msg)
		}
	}
	for _, leak := range []string{"SQLSTATE", "permission", "alter table", "chunks"} {
		if strings.Contains(msg, leak) {
			t.Errorf("the error leaks %q: %s", leak, msg)
		}
	}
	if called {
		t.Error("progress was reported: chunks were re-embedded")
	}
	if after := state(); after != before {
		t.Fatalf("a refused re-embedding changed the tenant:\nbefore %s\nafter  %s", before, after)
	}
	r := c.Do("POST", "/v1/search", map[string]any{"query": "volcano eruption", "retrieval_mode": "vector", "top_k": 1})
	mustStatus(t, r, http.StatusOK)

	// A tenant whose role does not own its chunks table but whose project does not say pool (a
	// tier the check does not know): refused before the first ALTER, just as cleanly.
	cat, err := pgx.Connect(ctx, st.CatalogURL)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close(ctx)
	setProject := func(p string) {
		t.Helper()
		if _, err := cat.Exec(ctx, `update tenants set provider_project_id = $1 where id = 'reemb_pool'`, p); err != nil {
			t.Fatal(err)
		}
	}
	setProject("not-a-pool")
	defer setProject(rt.Tenant.ProviderProjectID)
	err = dataplane.Reembed(ctx, cfg, "reemb_pool", to, func(int64, int64) { called = true }, slog.New(slog.DiscardHandler))
	if code := ragplane.ErrorCode(err); code != ragplane.ECONFLICT || !strings.Contains(err.Error(), "does not own") || strings.Contains(err.Error(), "SQLSTATE") {
		t.Fatalf("Reembed of a tenant whose role owns nothing: %q (%v), want %q saying it does not own the table", code, err, ragplane.ECONFLICT)
	}
	if called {
		t.Error("progress was reported: chunks were re-embedded")
	}
	if after := state(); after != before {
		t.Fatalf("a refused re-embedding changed the tenant:\nbefore %s\nafter  %s", before, after)
	}
}
