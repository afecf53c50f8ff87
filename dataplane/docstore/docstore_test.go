package docstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/catalog/tenantdb"
	"github.com/ragplane/ragplane/dataplane/docstore"
	"github.com/ragplane/ragplane/dataplane/graph"
	"github.com/ragplane/ragplane/dataplane/graph/postgres"
)

const dimension = 4

// MustStore returns a store on a fresh, migrated tenant database with the PostgreSQL graph store.
func MustStore(tb testing.TB) (*docstore.Store, *pgxpool.Pool) {
	tb.Helper()
	url := catalogtest.NewDatabase(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := tenantdb.MigrateSilo(ctx, conn, dimension, "acme"); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		tb.Fatalf("pool config: %v", err)
	}
	cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error { return pgxvec.RegisterTypes(ctx, c) }
	// The test's own SQL runs as a superuser, whom row level security does not confine; the
	// tenant set for the session fills the rows' tenant_id.
	cfg.ConnConfig.RuntimeParams["ragplane.tenant_id"] = "acme"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		tb.Fatalf("pool: %v", err)
	}
	tb.Cleanup(pool.Close)
	return docstore.New(docstore.Config{DB: tenantdb.Scope(pool, "acme"), Graph: func(tx pgx.Tx) graph.Store { return postgres.New(tx) }}), pool
}

// MustNewDocument returns a document of text with one chunk and one fact.
func MustNewDocument(tb testing.TB, text string) docstore.NewDocument {
	tb.Helper()
	doc, chunk := uuid.NewString(), uuid.NewString()
	return docstore.NewDocument{Title: "t " + text, Source: "s", Metadata: map[string]any{"k": "v"}, Text: text, Hash: []byte(text),
		Chunks: []ragplane.Chunk{{ID: chunk, DocumentID: doc, Content: text, Tokens: 1, Embedding: make([]float32, dimension)}},
		Facts:  []graph.Fact{{Source: "Acme", Target: "AWS", Relation: "uses", Fact: "Acme uses AWS.", ChunkID: chunk}}}
}

func tenantContext() context.Context {
	return ragplane.NewContextWithIdentity(context.Background(), ragplane.Identity{TenantID: "acme", Subject: "test"})
}

var limits = ragplane.Limits{MaxDocuments: 2, MaxStorageMB: 1}

func TestWrite(t *testing.T) {
	tests := []struct {
		name   string
		given  []docstore.Write // written first, each must succeed
		when   docstore.Write
		expect string // an error code, or "" for success
	}{
		{name: "quota of documents", given: []docstore.Write{{Documents: []docstore.NewDocument{MustNewDocument(t, "a"), MustNewDocument(t, "b")}}},
			when: docstore.Write{Documents: []docstore.NewDocument{MustNewDocument(t, "c")}}, expect: ragplane.EQUOTA},
		{name: "duplicate within quota", given: []docstore.Write{{Documents: []docstore.NewDocument{MustNewDocument(t, "a"), MustNewDocument(t, "b")}}},
			when: docstore.Write{Documents: []docstore.NewDocument{MustNewDocument(t, "a")}}},
		{name: "quota of storage", when: docstore.Write{Documents: []docstore.NewDocument{MustNewDocument(t, string(make([]byte, 2<<20)))}}, expect: ragplane.ETOOLARGE},
		{name: "idempotency key of another request", given: []docstore.Write{{Documents: []docstore.NewDocument{MustNewDocument(t, "a")}, IdempotencyKey: "k", RequestHash: []byte("1")}},
			when: docstore.Write{Documents: []docstore.NewDocument{MustNewDocument(t, "b")}, IdempotencyKey: "k", RequestHash: []byte("2")}, expect: ragplane.ECONFLICT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := MustStore(t)
			ctx := tenantContext()
			for _, w := range tt.given {
				w.Limits = limits
				if _, _, err := s.Write(ctx, w); err != nil {
					t.Fatalf("given write: %v", err)
				}
			}
			tt.when.Limits = limits
			_, _, err := s.Write(ctx, tt.when)
			if got := ragplane.ErrorCode(err); err != nil && got != tt.expect || err == nil && tt.expect != "" {
				t.Fatalf("Write() error = %v (%s), want %q", err, got, tt.expect)
			}
		})
	}
}

func TestDocumentLifecycle(t *testing.T) {
	s, pool := MustStore(t)
	ctx := tenantContext()
	w := docstore.Write{Documents: []docstore.NewDocument{MustNewDocument(t, "a"), MustNewDocument(t, "a")}, Limits: limits,
		IdempotencyKey: "k", RequestHash: []byte("h")}
	results, replayed, err := s.Write(ctx, w)
	if err != nil || replayed || len(results) != 2 || results[0].Duplicate || !results[1].Duplicate || results[0].ID != results[1].ID {
		t.Fatalf("Write = %+v, %v, %v; want a document and its duplicate", results, replayed, err)
	}
	id := results[0].ID
	again, replayed, err := s.Write(ctx, w)
	// A replay answers the documents of the first results again, without their Duplicate marks.
	if err != nil || !replayed || len(again) != 2 || again[0].ID != id || again[1].ID != id {
		t.Fatalf("replayed Write = %+v, %v, %v; want the stored document twice", again, replayed, err)
	}
	if d, err := s.Get(ctx, id); err != nil || d.Content != "a" || d.ChunkCount != 1 || d.Metadata["k"] != "v" {
		t.Fatalf("Get = %+v, %v", d, err)
	}
	if d, err := s.Excerpt(ctx, id, 0); err != nil || d.Content != "" || d.Title != "t a" {
		t.Fatalf("Excerpt = %+v, %v", d, err)
	}
	if docs, err := s.List(ctx, docstore.Page{Limit: 10}); err != nil || len(docs) != 1 || docs[0].ID != id || docs[0].Content != "" {
		t.Fatalf("List = %+v, %v", docs, err)
	}
	if docs, err := s.Recent(ctx, 10); err != nil || len(docs) != 1 || docs[0].ID != id {
		t.Fatalf("Recent = %+v, %v", docs, err)
	}
	if rels, err := postgres.New(pool).EntityRelations(ctx, "Acme", 10); err != nil || len(rels) != 1 {
		t.Fatalf("facts after Write = %+v, %v", rels, err)
	}
	if err := s.Delete(ctx, id); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := postgres.New(pool).EntityRelations(ctx, "Acme", 10); ragplane.ErrorCode(err) != ragplane.ENOTFOUND {
		t.Fatalf("facts after Delete: %v, want ENOTFOUND", err)
	}
	for name, err := range map[string]error{"Delete": s.Delete(ctx, id), "Get": func() error { _, err := s.Get(ctx, id); return err }()} {
		if ragplane.ErrorCode(err) != ragplane.ENOTFOUND {
			t.Errorf("%s of a deleted document: %v, want ENOTFOUND", name, err)
		}
	}
}

// Without a tenant in the context nothing is read or written.
func TestFailsClosedWithoutTenant(t *testing.T) {
	s, _ := MustStore(t)
	ctx := context.Background()
	_, _, werr := s.Write(ctx, docstore.Write{Documents: []docstore.NewDocument{MustNewDocument(t, "a")}, Limits: limits})
	_, lerr := s.List(ctx, docstore.Page{Limit: 1})
	_, gerr := s.Get(ctx, uuid.NewString())
	_, eerr := s.Excerpt(ctx, uuid.NewString(), 1)
	_, rerr := s.Recent(ctx, 1)
	_, _, perr := s.Replay(ctx, "k", []byte("h"))
	_, _, aerr := s.StoredAnswer(ctx, "k", []byte("h"))
	_, _, serr := s.StoreAnswer(ctx, "k", []byte("h"), []byte("{}"))
	for i, err := range []error{werr, lerr, gerr, eerr, rerr, s.Delete(ctx, uuid.NewString()), perr, aerr, serr} {
		if ragplane.ErrorCode(err) != ragplane.EUNAUTHORIZED {
			t.Errorf("call %d: %v, want EUNAUTHORIZED", i, err)
		}
	}
}

// Replay reads an ingestion's record without writing: the key's documents, nothing for a new key,
// ECONFLICT for another request's hash.
func TestReplay(t *testing.T) {
	s, _ := MustStore(t)
	ctx := tenantContext()
	if _, found, err := s.Replay(ctx, "k", []byte("h")); err != nil || found {
		t.Fatalf("Replay of a new key = %v, %v; want not found", found, err)
	}
	w := docstore.Write{Documents: []docstore.NewDocument{MustNewDocument(t, "a")}, Limits: limits, IdempotencyKey: "k", RequestHash: []byte("h")}
	results, _, err := s.Write(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	got, found, err := s.Replay(ctx, "k", []byte("h"))
	if err != nil || !found || len(got) != 1 || got[0].ID != results[0].ID {
		t.Fatalf("Replay = %+v, %v, %v; want %s", got, found, err, results[0].ID)
	}
	if _, _, err := s.Replay(ctx, "k", []byte("other")); ragplane.ErrorCode(err) != ragplane.ECONFLICT {
		t.Fatalf("Replay with another hash: %v, want ECONFLICT", err)
	}
}

// Query answers are kept byte for byte under their key for docstore.AnswerTTL; the first of two
// writers of a key wins; expired answers are ignored, replaced and pruned.
func TestStoredAnswers(t *testing.T) {
	s, pool := MustStore(t)
	ctx := tenantContext()
	body := []byte(`{"b":1,  "a":"x"}`) // not jsonb's normal form
	if _, found, err := s.StoredAnswer(ctx, "q", []byte("h")); err != nil || found {
		t.Fatalf("StoredAnswer of a new key = %v, %v", found, err)
	}
	if out, stored, err := s.StoreAnswer(ctx, "q", []byte("h"), body); err != nil || !stored || string(out) != string(body) {
		t.Fatalf("StoreAnswer = %s, %v, %v", out, stored, err)
	}
	if out, found, err := s.StoredAnswer(ctx, "q", []byte("h")); err != nil || !found || string(out) != string(body) {
		t.Fatalf("StoredAnswer = %s, %v, %v; want %s", out, found, err, body)
	}
	// A second writer of the key (a racing request) gets the first one's answer.
	if out, stored, err := s.StoreAnswer(ctx, "q", []byte("h"), []byte(`{"late":true}`)); err != nil || stored || string(out) != string(body) {
		t.Fatalf("second StoreAnswer = %s, %v, %v; want the first answer, not stored", out, stored, err)
	}
	if _, _, err := s.StoredAnswer(ctx, "q", []byte("other")); ragplane.ErrorCode(err) != ragplane.ECONFLICT {
		t.Fatalf("StoredAnswer with another hash: %v, want ECONFLICT", err)
	}
	if _, _, err := s.StoreAnswer(ctx, "q", []byte("other"), body); ragplane.ErrorCode(err) != ragplane.ECONFLICT {
		t.Fatalf("StoreAnswer with another hash: %v, want ECONFLICT", err)
	}

	// Past the TTL the key is free again, and a later write prunes other expired answers.
	if _, _, err := s.StoreAnswer(ctx, "old", []byte("h"), body); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `update query_results set created_at = now() - interval '25 hours'`); err != nil {
		t.Fatal(err)
	}
	if _, found, err := s.StoredAnswer(ctx, "q", []byte("h")); err != nil || found {
		t.Fatalf("StoredAnswer of an expired key = %v, %v; want not found", found, err)
	}
	if _, stored, err := s.StoreAnswer(ctx, "q", []byte("other"), []byte(`{}`)); err != nil || !stored {
		t.Fatalf("StoreAnswer on an expired key = %v, %v; want stored", stored, err)
	}
	var n int
	if err := pool.QueryRow(ctx, `select count(*) from query_results`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d answers kept (%v), want 1: the expired ones are pruned", n, err)
	}
}
