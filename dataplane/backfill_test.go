package dataplane_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane/dataplane"
	"github.com/ragplane/ragplane/e2etest"
)

// A large ingestion answers at once: the document is stored and keyword-searchable with status
// "embedding", its chunks get their vectors in the background, and then it is "ready" and found
// by vector search. Chunks a stopped worker left without vectors are embedded after the tenant's
// next ingestion.
func TestLargeIngestionEmbedsInTheBackground(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{Worker: func(c *dataplane.Config) { c.SyncEmbedChunks = 2 }})
	st.CreateTenant("bulk", "pro", map[string]any{"embedding_model": "ragplane-hash-v1", "embedding_dimension": 64, "chunk_size": 32, "chunk_overlap": 0})
	c := st.Tenant("bulk")
	var paras []string
	for i := range 8 {
		paras = append(paras, fmt.Sprintf("Paragraph %d of the handbook explains how the aurora borealis lights the polar sky over Tromsø in winter nights.", i))
	}
	r := c.Do("POST", "/v1/documents", map[string]any{"title": "Aurora handbook", "content": strings.Join(paras, "\n\n")})
	mustStatus(t, r, http.StatusCreated)
	var doc struct {
		ID         string `json:"id"`
		ChunkCount int    `json:"chunk_count"`
		Status     string `json:"status"`
	}
	r.Decode(t, &doc)
	if doc.ChunkCount <= 2 || doc.Status != "embedding" {
		t.Fatalf("created %+v: want more than 2 chunks, status embedding", doc)
	}
	// Keyword search finds it at once, whatever the background has done.
	r = c.Do("POST", "/v1/search", map[string]any{"query": "aurora borealis", "retrieval_mode": "keyword", "top_k": 3})
	mustStatus(t, r, http.StatusOK)
	if !strings.Contains(string(r.Body), doc.ID) {
		t.Fatalf("keyword search does not find the new document: %s", r.Body)
	}
	waitReady := func(id string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var d struct {
				Status string `json:"status"`
			}
			c.Do("GET", "/v1/documents/"+id, nil).Decode(t, &d)
			if d.Status == "ready" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("document %s is still %q", id, d.Status)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitReady(doc.ID)
	r = c.Do("POST", "/v1/search", map[string]any{"query": "aurora borealis polar sky", "retrieval_mode": "vector", "top_k": 100})
	mustStatus(t, r, http.StatusOK)
	var res struct {
		Results []struct {
			DocumentID string `json:"document_id"`
		} `json:"results"`
	}
	r.Decode(t, &res)
	if len(res.Results) != doc.ChunkCount {
		t.Fatalf("vector search found %d chunks, want all %d", len(res.Results), doc.ChunkCount)
	}

	// A worker stopped mid-way leaves chunks without vectors: the next ingestion picks them up.
	rt, err := st.Store().TenantRuntime(context.Background(), "bulk")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(context.Background(), rt.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	// Row level security: the tenant's rows only, as the worker sees them.
	if _, err := conn.Exec(context.Background(), `select set_config('ragplane.tenant_id', 'bulk', false)`); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`update chunks set embedding = null where document_id = $1`,
		`update documents set status = 'embedding' where id = $1`} {
		if _, err := conn.Exec(context.Background(), q, doc.ID); err != nil {
			t.Fatal(err)
		}
	}
	mustStatus(t, c.Do("POST", "/v1/documents", map[string]any{"title": "Small", "content": "A short note."}), http.StatusCreated)
	waitReady(doc.ID)
	var nulls int
	if err := conn.QueryRow(context.Background(), `select count(*) from chunks where embedding is null`).Scan(&nulls); err != nil || nulls != 0 {
		t.Fatalf("%d chunks without a vector (%v)", nulls, err)
	}
}
