package retrieve_test

import (
	"context"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/retrieve"
)

// BenchmarkSearch measures one search at a time on 10,000 chunks of dimension 384 (random unit
// vectors, generated Zipf-distributed English-ish text of about 110 words), top_k 10 and the
// default ef_search 100, reporting latency percentiles:
//
//	go test -run '^$' -bench Search -benchtime 400x ./dataplane/retrieve/
func BenchmarkSearch(b *testing.B) {
	benchSearch(b, 10_000)
}

// BenchmarkSearchLarge is BenchmarkSearch on 100,000 chunks; seeding and the HNSW build take a
// few minutes, so it runs only with RAGPLANE_BENCH_LARGE=1.
func BenchmarkSearchLarge(b *testing.B) {
	if os.Getenv("RAGPLANE_BENCH_LARGE") == "" {
		b.Skip("set RAGPLANE_BENCH_LARGE=1 to seed and search 100,000 chunks")
	}
	benchSearch(b, 100_000)
}

const benchDim = 384

// benchQuery is one search of the benchmark's query set.
type benchQuery struct {
	text      string
	embedding []float32
}

func benchSearch(b *testing.B, chunks int) {
	pool := MustTenantDB(b, benchDim)
	c := seedCorpus(b, pool, corpusConfig{chunks: chunks, dim: benchDim, chunksPerDoc: 10, groups: 20, seed: 7})
	queries := benchQueries(c, 200)
	common := commonQueries(c, queries)
	ctx := context.Background()

	// Keyword selectivity of the query sets, for reading the figures.
	for name, qs := range map[string][]benchQuery{"queries": queries, "common-word queries": common} {
		var matches []int
		for _, q := range qs {
			var n int
			if err := pool.QueryRow(ctx, "select count(*) from chunks where tsv @@ websearch_to_tsquery('english', $1)", q.text).Scan(&n); err != nil {
				b.Fatal(err)
			}
			matches = append(matches, n)
		}
		slices.Sort(matches)
		b.Logf("%s match %d chunks at the median, %d at p95 (of %d)", name, matches[len(matches)/2], matches[len(matches)*95/100], chunks)
	}

	filter := []ragplane.Filter{{Field: "group", Op: "eq", Value: 3}} // 5% of the documents
	modes := []struct {
		name    string
		search  func(retrieve.DB, retrieve.Request) ([]ragplane.SearchHit, error)
		filter  []ragplane.Filter
		queries []benchQuery // default: queries
	}{
		{name: "vector", search: func(db retrieve.DB, r retrieve.Request) ([]ragplane.SearchHit, error) {
			return retrieve.Vector(ctx, db, r)
		}},
		{name: "keyword", search: func(db retrieve.DB, r retrieve.Request) ([]ragplane.SearchHit, error) {
			return retrieve.Keyword(ctx, db, r)
		}},
		{name: "hybrid", search: func(db retrieve.DB, r retrieve.Request) ([]ragplane.SearchHit, error) {
			return retrieve.Hybrid(ctx, db, r)
		}},
		// The slow case of keyword search: words found in most chunks, so thousands are ranked.
		{name: "keyword_common_words", queries: common, search: func(db retrieve.DB, r retrieve.Request) ([]ragplane.SearchHit, error) {
			return retrieve.Keyword(ctx, db, r)
		}},
		{name: "hybrid_common_words", queries: common, search: func(db retrieve.DB, r retrieve.Request) ([]ragplane.SearchHit, error) {
			return retrieve.Hybrid(ctx, db, r)
		}},
		{name: "hybrid_filtered", filter: filter, search: func(db retrieve.DB, r retrieve.Request) ([]ragplane.SearchHit, error) {
			return retrieve.Hybrid(ctx, db, r)
		}},
	}
	// Warm the caches once, as a server that has been answering for a while would be.
	for i := range modes {
		if modes[i].queries == nil {
			modes[i].queries = queries
		}
	}
	for _, m := range modes {
		for _, q := range m.queries {
			if _, err := m.search(pool, benchRequest(q, m.filter)); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			runBench(b, m.queries, func(q benchQuery) (int, error) {
				hits, err := m.search(pool, benchRequest(q, m.filter))
				return len(hits), err
			})
		})
	}
}

func benchRequest(q benchQuery, filters []ragplane.Filter) retrieve.Request {
	return retrieve.Request{Query: q.text, Embedding: q.embedding, TopK: 10, EFSearch: retrieve.DefaultEFSearch, Filters: filters}
}

// runBench runs search over the queries in turn and reports latency percentiles and hits.
func runBench(b *testing.B, queries []benchQuery, search func(benchQuery) (int, error)) {
	var lat []time.Duration
	hits := 0
	i := 0
	for b.Loop() {
		start := time.Now()
		n, err := search(queries[i%len(queries)])
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		hits += n
		i++
	}
	slices.Sort(lat)
	ms := func(p int) float64 { return float64(lat[(len(lat)-1)*p/100].Microseconds()) / 1000 }
	b.ReportMetric(ms(50), "p50_ms")
	b.ReportMetric(ms(95), "p95_ms")
	b.ReportMetric(float64(hits)/float64(len(lat)), "hits/op")
}

// benchQueries makes n queries: two words drawn from the corpus' own word distribution, leaving
// out the most common words, as users type words that occur in their documents; and a vector near
// a stored chunk, as a real query embedding is near some relevant chunks.
func benchQueries(c *corpus, n int) []benchQuery {
	r := rand.New(rand.NewPCG(99, 1))
	z := rand.NewZipf(r, 1.07, 2, uint64(len(c.words)-1))
	word := func() string {
		for {
			if k := z.Uint64(); k >= 40 {
				return c.words[k]
			}
		}
	}
	out := make([]benchQuery, n)
	for i := range out {
		emb := append([]float32(nil), c.samples[i%len(c.samples)]...)
		for j := range emb {
			emb[j] += float32(r.NormFloat64()) * 0.03
		}
		out[i] = benchQuery{text: word() + " " + word(), embedding: normalize(emb)}
	}
	return out
}

// commonQueries are the queries' embeddings with two of the most frequent non-stopwords of the
// corpus (ranks 40 to 80) as text.
func commonQueries(c *corpus, queries []benchQuery) []benchQuery {
	r := rand.New(rand.NewPCG(5, 5))
	out := make([]benchQuery, len(queries))
	for i, q := range queries {
		out[i] = benchQuery{text: c.words[40+r.IntN(40)] + " " + c.words[40+r.IntN(40)], embedding: q.embedding}
	}
	return out
}
