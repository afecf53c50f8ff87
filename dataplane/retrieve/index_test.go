package retrieve_test

import (
	"cmp"
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/pgvector/pgvector-go"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/retrieve"
)

// TestIndexes checks, on a few thousand chunks, the plans of the production queries (EXPLAIN run
// inside the search transaction, with its settings) and that filtered vector searches still
// fill top_k through pgvector's iterative index scan.
func TestIndexes(t *testing.T) {
	const n, d = 4000, 64
	pool := MustTenantDB(t, d)
	c := seedCorpus(t, pool, corpusConfig{chunks: n, dim: d, chunksPerDoc: 10, groups: 20, seed: 1})
	ctx := context.Background()
	r := rand.New(rand.NewPCG(2, 2))

	t.Run("vector uses the HNSW index", func(t *testing.T) {
		db := &recordingDB{Pool: pool, explain: true}
		hits, err := retrieve.Vector(ctx, db, retrieve.Request{Embedding: randomUnit(r, d), TopK: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(hits) != 10 {
			t.Errorf("%d hits, expect 10", len(hits))
		}
		plan := db.recorded()[0].plan
		if !strings.Contains(plan, "Index Scan using chunks_embedding") {
			t.Errorf("vector search does not use the HNSW index:\n%s", plan)
		}
	})

	t.Run("prepared searches keep custom plans", func(t *testing.T) {
		// pgx prepares each query; without plan_cache_mode=force_custom_plan PostgreSQL would
		// switch to a generic plan after five runs, which does not know the limit.
		conn, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		for range 8 {
			if _, err := retrieve.Vector(ctx, conn, retrieve.Request{Embedding: randomUnit(r, d), TopK: 10}); err != nil {
				t.Fatal(err)
			}
		}
		var generic, custom int64
		err = conn.QueryRow(ctx, `select coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0)
			from pg_prepared_statements where starts_with(statement, 'select c.id::text') and strpos(statement, '<=>') > 0`).Scan(&generic, &custom)
		if err != nil {
			t.Fatal(err)
		}
		if generic != 0 || custom < 8 {
			t.Errorf("%d generic and %d custom plans, expect 0 and at least 8", generic, custom)
		}
	})

	t.Run("hybrid uses both indexes", func(t *testing.T) {
		db := &recordingDB{Pool: pool, explain: true}
		if _, err := retrieve.Hybrid(ctx, db, retrieve.Request{Query: c.words[300] + " " + c.words[120], Embedding: randomUnit(r, d), TopK: 10}); err != nil {
			t.Fatal(err)
		}
		// The halves run concurrently, so they are told apart by their plans, not their order.
		var vector, keyword string
		for _, call := range db.recorded() {
			if strings.Contains(call.plan, "<=>") {
				vector = call.plan
			} else if strings.Contains(call.sql, "ts_rank(") {
				keyword = call.plan
			}
		}
		if !strings.Contains(vector, "Index Scan using chunks_embedding") {
			t.Errorf("vector half does not use the HNSW index:\n%s", vector)
		}
		if !strings.Contains(keyword, "chunks_tsv") {
			t.Errorf("keyword half does not use the GIN index:\n%s", keyword)
		}
	})

	t.Run("filtered vector search fills top_k", func(t *testing.T) {
		// lang "en" is a third of the chunks: too many for an exact scan, so the HNSW index is
		// used. With ef_search 10 a plain HNSW scan would find about three matching chunks; the
		// iterative scan keeps going.
		filters := []ragplane.Filter{{Field: "lang", Op: "eq", Value: "en"}}
		var q recordedQuery
		for range 5 {
			db := &recordingDB{Pool: pool, explain: true}
			hits, err := retrieve.Vector(ctx, db, retrieve.Request{Embedding: randomUnit(r, d), TopK: 10, EFSearch: 10, Filters: filters})
			if err != nil {
				t.Fatal(err)
			}
			q = db.recorded()[0]
			if len(hits) != 10 {
				t.Errorf("%d hits, expect 10; plan:\n%s", len(hits), q.plan)
			}
			for _, h := range hits {
				if c.docLang[h.DocumentID] != "en" {
					t.Errorf("hit in %q", c.docLang[h.DocumentID])
				}
			}
			for i := 1; i < len(hits); i++ {
				if hits[i].Score > hits[i-1].Score {
					t.Errorf("hits out of order: %v after %v", hits[i].Score, hits[i-1].Score)
				}
			}
			if !strings.Contains(q.plan, "Index Scan using chunks_embedding") {
				t.Errorf("filtered search does not use the HNSW index:\n%s", q.plan)
			}
		}
		// Control: the same query without the iterative scan comes back short.
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, "set local hnsw.ef_search = 10; set local hnsw.iterative_scan = off; set local plan_cache_mode = force_custom_plan"); err != nil {
			t.Fatal(err)
		}
		rows, err := tx.Query(ctx, q.sql, q.args...)
		if err != nil {
			t.Fatal(err)
		}
		short := 0
		for rows.Next() {
			short++
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
		t.Logf("without the iterative scan: %d of 10 rows", short)
		if short >= 10 {
			t.Errorf("the control query found %d rows: the test does not exercise the iterative scan", short)
		}
	})

	t.Run("selective filters scan exactly", func(t *testing.T) {
		// Group 3 is 5% of the chunks (200): below the cutoff, so every one is compared.
		filters := []ragplane.Filter{{Field: "group", Op: "eq", Value: 3}}
		emb := randomUnit(r, d)
		db := &recordingDB{Pool: pool, explain: true}
		hits, err := retrieve.Vector(ctx, db, retrieve.Request{Embedding: emb, TopK: 10, EFSearch: 10, Filters: filters})
		if err != nil {
			t.Fatal(err)
		}
		if plan := db.recorded()[0].plan; strings.Contains(plan, "chunks_embedding") {
			t.Errorf("selective filter uses the HNSW index:\n%s", plan)
		}
		// Brute force in Go.
		rows, err := pool.Query(ctx, `select c.id::text, c.embedding from chunks c join documents d on d.id = c.document_id
			where d.metadata @> '{"group": 3}'`)
		if err != nil {
			t.Fatal(err)
		}
		type cand struct {
			id   string
			dist float64
		}
		var all []cand
		for rows.Next() {
			var id string
			var v pgvector.Vector
			if err := rows.Scan(&id, &v); err != nil {
				t.Fatal(err)
			}
			all = append(all, cand{id, cosineDistance(emb, v.Slice())})
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
		slices.SortFunc(all, func(a, b cand) int { return cmp.Compare(a.dist, b.dist) })
		if len(hits) != 10 {
			t.Fatalf("%d hits, expect 10", len(hits))
		}
		for i, h := range hits {
			if h.ChunkID != all[i].id || math.Abs(h.Score-(1-all[i].dist)) > 1e-5 {
				t.Errorf("hit %d: %s %.6f, expect %s %.6f", i, h.ChunkID, h.Score, all[i].id, 1-all[i].dist)
			}
		}
	})
}

func cosineDistance(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return 1 - dot/math.Sqrt(na*nb)
}
