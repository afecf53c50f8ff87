package retrieve_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/catalog/tenantdb"
	"github.com/ragplane/ragplane/dataplane/retrieve"
)

// MustPoolDB returns a pool database shared by tenants, reached as a role that is neither its
// tables' owner nor a superuser (row level security applies to it), as provision/local makes it.
func MustPoolDB(tb testing.TB, dim int) *pgxpool.Pool {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	server := catalogtest.ServerURL(tb)
	role := catalogtest.RandomName("rpt_app_")
	sc, err := pgx.Connect(ctx, server)
	if err != nil {
		tb.Fatal(err)
	}
	defer sc.Close(ctx)
	if _, err := sc.Exec(ctx, fmt.Sprintf(`create role %s login password 'app' nosuperuser nobypassrls`, role)); err != nil {
		tb.Fatal(err)
	}
	// Registered before the database, so it runs after the database is dropped.
	tb.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), server)
		if err == nil {
			c.Exec(context.Background(), "drop role if exists "+role)
			c.Close(context.Background())
		}
	})
	dbURL := catalogtest.NewDatabase(tb)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "create extension if not exists vector"); err != nil {
		tb.Fatal(err)
	}
	if _, err := tenantdb.Migrate(ctx, conn, dim); err != nil {
		tb.Fatal(err)
	}
	for _, t := range tenantdb.TenantTables {
		if _, err := conn.Exec(ctx, fmt.Sprintf("grant select, insert, update, delete on %s to %s", t, role)); err != nil {
			tb.Fatal(err)
		}
	}
	u, _ := url.Parse(dbURL)
	u.User = url.UserPassword(role, "app")
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		tb.Fatal(err)
	}
	cfg.AfterConnect = pgxvec.RegisterTypes
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// mustPooledDoc writes a document of n chunks as tenant, each chunk's embedding from emb.
func mustPooledDoc(tb testing.TB, db *tenantdb.Scoped, meta string, content string, n int, emb func(i int) []float32) []string {
	tb.Helper()
	ctx := context.Background()
	doc := uuid.NewString()
	hash := sha256.Sum256([]byte(doc))
	b := &pgx.Batch{}
	b.Queue(`insert into text_configs (config) values ('english') on conflict do nothing`)
	b.Queue(`insert into documents (id, title, content_hash, metadata) values ($1, 'd', $2, $3)`, doc, hash[:], meta)
	var ids []string
	for i := range n {
		id := uuid.NewString()
		ids = append(ids, id)
		b.Queue(`insert into chunks (id, document_id, ordinal, content, tokens, embedding) values ($1, $2, $3, $4, 3, $5)`,
			id, doc, i, content, pgvector.NewVector(emb(i)))
	}
	if err := db.SendBatch(ctx, b).Close(); err != nil {
		tb.Fatalf("write document: %v", err)
	}
	return ids
}

// TestPooledTenantSeesOnlyItsOwn: in a pool where another tenant's 1,000 chunks are all nearer to
// the query (and richer in its words) than any of ours, every retrieval mode returns our own
// top_k, with and without a selective filter.
func TestPooledTenantSeesOnlyItsOwn(t *testing.T) {
	const dim = 32
	pool := MustPoolDB(t, dim)
	mine, theirs := tenantdb.Scope(pool, "mine"), tenantdb.Scope(pool, "theirs")
	query := axis(dim, 1, map[int]float32{0: 1})
	r := rand.New(rand.NewPCG(3, 4))
	near := func(int) []float32 { // within a hair of the query
		v := slices.Clone(query)
		v[1+r.IntN(dim-1)] += 0.01
		return normalize(v)
	}
	far := func(int) []float32 { return axis(dim, r.Uint64(), map[int]float32{0: 0.3, 1 + r.IntN(dim-1): 1}) }
	var foreign []string
	for range 10 {
		foreign = append(foreign, mustPooledDoc(t, theirs, `{"team": "core"}`, "quarterly revenue report revenue revenue", 100, near)...)
	}
	own := map[string]bool{}
	var ownCore []string
	for d := range 5 {
		meta := `{"team": "other"}`
		if d == 0 {
			meta = `{"team": "core"}` // the selective filter's 4 chunks
		}
		ids := mustPooledDoc(t, mine, meta, "the revenue report for the quarter", 4, far)
		for _, id := range ids {
			own[id] = true
		}
		if d == 0 {
			ownCore = ids
		}
	}
	if _, err := pool.Exec(context.Background(), "analyze"); err != nil {
		t.Logf("analyze: %v", err) // not the owner: statistics come from autovacuum, as in production
	}
	ctx := context.Background()
	// Graph facts naming the other tenant's chunks, as a graph store shared by tenants would
	// return if it forgot a filter: they must not turn into hits.
	facts := &fakeFacts{
		entities: func(context.Context, string, int) ([]retrieve.GraphEntity, error) {
			return []retrieve.GraphEntity{{Name: "revenue"}}, nil
		},
		facts: func(context.Context, []string, int) ([]retrieve.GraphFact, error) {
			var out []retrieve.GraphFact
			for _, id := range foreign[:20] {
				out = append(out, retrieve.GraphFact{Fact: "Revenue grew.", ChunkID: id})
			}
			return append(out, retrieve.GraphFact{Fact: "Revenue is reported.", ChunkID: ownCore[0]}), nil
		},
	}
	modes := map[string]func(retrieve.Request) ([]ragplane.SearchHit, error){
		"vector":  func(q retrieve.Request) ([]ragplane.SearchHit, error) { return retrieve.Vector(ctx, mine, q) },
		"keyword": func(q retrieve.Request) ([]ragplane.SearchHit, error) { return retrieve.Keyword(ctx, mine, q) },
		"hybrid":  func(q retrieve.Request) ([]ragplane.SearchHit, error) { return retrieve.Hybrid(ctx, mine, q) },
		"graph": func(q retrieve.Request) ([]ragplane.SearchHit, error) {
			h, _, err := retrieve.Graph(ctx, mine, facts, q)
			return h, err
		},
	}
	tests := []struct {
		name    string
		filters []ragplane.Filter
		expect  int
	}{
		{name: "no filter", expect: 10},
		{name: "selective filter", filters: []ragplane.Filter{{Field: "team", Op: "eq", Value: "core"}}, expect: 4},
	}
	for _, tc := range tests {
		for mode, search := range modes {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				hits, err := search(retrieve.Request{Query: "revenue report", Embedding: query, TopK: 10, EFSearch: 40, Filters: tc.filters})
				if err != nil {
					t.Fatal(err)
				}
				for _, h := range hits {
					if !own[h.ChunkID] {
						t.Fatalf("hit %s is another tenant's chunk", h.ChunkID)
					}
				}
				if len(hits) != tc.expect {
					t.Errorf("%d hits, want our own top %d", len(hits), tc.expect)
				}
			})
		}
	}
}

// TestPooledScoresMatchSiloed: a pooled tenant's keyword (BM25) and vector scores are those of
// the same documents in a database of their own, however many chunks other tenants have that use
// the same words: the statistics are the tenant's.
func TestPooledScoresMatchSiloed(t *testing.T) {
	const dim = 16
	pool, silo := MustPoolDB(t, dim), MustTenantDB(t, dim)
	texts := []string{"revenue report for the quarter", "the quarter was long", "annual revenue revenue summary", "a report on staff"}
	emb := func(seed uint64) func(int) []float32 {
		return func(i int) []float32 { return axis(dim, seed*100+uint64(i), map[int]float32{int(seed) % dim: 1}) }
	}
	for i, text := range texts {
		mustPooledDoc(t, tenantdb.Scope(pool, "mine"), `{}`, text, 3, emb(uint64(i)))
		mustPooledDoc(t, tenantdb.Scope(silo, "acme"), `{}`, text, 3, emb(uint64(i)))
	}
	// Enough chunks of another tenant that the table's size is an estimate (past exactStats).
	r := rand.New(rand.NewPCG(5, 6))
	for range 6 {
		mustPooledDoc(t, tenantdb.Scope(pool, "crowd"), `{}`, "revenue revenue report quarter", 1000, func(int) []float32 { return randomUnit(r, dim) })
	}
	mustAnalyze(t, pool)
	ctx := context.Background()
	req := retrieve.Request{Query: "quarterly revenue report", Embedding: axis(dim, 9, map[int]float32{0: 1}), TopK: 8}
	for mode, search := range map[string]func(retrieve.DB) ([]ragplane.SearchHit, error){
		"keyword": func(db retrieve.DB) ([]ragplane.SearchHit, error) { return retrieve.Keyword(ctx, db, req) },
		"vector":  func(db retrieve.DB) ([]ragplane.SearchHit, error) { return retrieve.Vector(ctx, db, req) },
	} {
		pooled, err := search(tenantdb.Scope(pool, "mine"))
		if err != nil {
			t.Fatal(err)
		}
		siloed, err := search(tenantdb.Scope(silo, "acme"))
		if err != nil {
			t.Fatal(err)
		}
		if len(pooled) != len(siloed) || len(pooled) == 0 {
			t.Fatalf("%s: %d pooled hits, %d siloed", mode, len(pooled), len(siloed))
		}
		for i := range pooled { // equal scores are ordered by chunk id, which differs
			if d := pooled[i].Score - siloed[i].Score; d > 1e-6 || d < -1e-6 {
				t.Errorf("%s hit %d: pooled %q %.6f, siloed %q %.6f", mode, i, pooled[i].Content, pooled[i].Score, siloed[i].Content, siloed[i].Score)
			}
		}
	}
}

// mustAnalyze refreshes the planner's statistics of pool's database, as its owner.
func mustAnalyze(tb testing.TB, pool *pgxpool.Pool) {
	tb.Helper()
	u, err := url.Parse(catalogtest.ServerURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	u.Path = "/" + pool.Config().ConnConfig.Database
	conn, err := pgx.Connect(context.Background(), u.String())
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "analyze"); err != nil {
		tb.Fatal(err)
	}
}
