package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/retrieve"
)

// searchQuestion is a question with its embedding and what it matches.
type searchQuestion struct {
	question
	Embedding  []float32
	MatchesOR  int // chunks matching any of its words (what Keyword scores)
	MatchesAND int // chunks matching all of them (websearch_to_tsquery, the old keyword search)
}

// mode is one way of searching, timed per question.
type mode struct {
	Name string
	TopK int
	run  func(ctx context.Context, q searchQuestion) (int, error)
}

// facts is a tiny in-memory knowledge graph for Graph: every DBpedia article's title is an
// entity with one fact pointing at each of the article's first chunks. It stands in for the
// tenant's graph store, whose own cost is not measured here; what Graph adds to Hybrid in the
// database (the supporting chunks' rows) is.
type facts struct {
	byName map[string][]retrieve.GraphFact
}

func newFacts(docs []*loadedDoc) *facts {
	f := &facts{byName: map[string][]retrieve.GraphFact{}}
	for _, d := range docs {
		if d.src.Kind != "dbpedia" {
			continue
		}
		name := strings.ToLower(strings.TrimSpace(parenthesised.ReplaceAllString(d.src.Title, "")))
		for _, c := range d.chunks[:min(3, len(d.chunks))] {
			f.byName[name] = append(f.byName[name], retrieve.GraphFact{Fact: d.src.Title + " is described here.",
				ChunkID: c.id.String(), DocumentID: d.id.String()})
		}
	}
	return f
}

// EntitiesInText finds known names among the text's runs of one to five words.
func (f *facts) EntitiesInText(_ context.Context, text string, limit int) ([]retrieve.GraphEntity, error) {
	words := strings.Fields(strings.ToLower(strings.Trim(text, "?!. ")))
	var out []retrieve.GraphEntity
	for n := min(5, len(words)); n >= 1; n-- {
		for i := 0; i+n <= len(words); i++ {
			name := strings.Join(words[i:i+n], " ")
			if _, ok := f.byName[name]; ok && len(out) < limit {
				out = append(out, retrieve.GraphEntity{Name: name})
			}
		}
	}
	return out, nil
}

func (f *facts) FactsForEntities(_ context.Context, names []string, limit int) ([]retrieve.GraphFact, error) {
	var out []retrieve.GraphFact
	for _, n := range names {
		out = append(out, f.byName[n]...)
	}
	return out[:min(limit, len(out))], nil
}

// oldKeywordSQL is the keyword search before BM25: every word must match (websearch_to_tsquery),
// ranked by ts_rank_cd. It is the baseline of the keyword figures.
const oldKeywordSQL = `select id from chunks where tsv @@ websearch_to_tsquery('english', $1)
	order by ts_rank_cd(tsv, websearch_to_tsquery('english', $1), 32) desc limit $2`

// modes returns the searches to time at each top_k: the four retrieval modes and the old keyword
// search as the baseline (the vector search is the baseline of hybrid).
func modes(pool *pgxpool.Pool, f retrieve.FactSource, topKs []int, vectorConfigs []string) []mode {
	req := func(q searchQuestion, k int) retrieve.Request {
		return retrieve.Request{Query: q.Text, Embedding: q.Embedding, TopK: k, VectorConfigs: vectorConfigs}
	}
	var out []mode
	for _, k := range topKs {
		out = append(out,
			mode{Name: "keyword (BM25, any word)", TopK: k, run: func(ctx context.Context, q searchQuestion) (int, error) {
				h, err := retrieve.Keyword(ctx, pool, req(q, k))
				return len(h), err
			}},
			mode{Name: "vector (HNSW)", TopK: k, run: func(ctx context.Context, q searchQuestion) (int, error) {
				h, err := retrieve.Vector(ctx, pool, req(q, k))
				return len(h), err
			}},
			mode{Name: "hybrid", TopK: k, run: func(ctx context.Context, q searchQuestion) (int, error) {
				h, err := retrieve.Hybrid(ctx, pool, req(q, k))
				return len(h), err
			}},
			mode{Name: "graph", TopK: k, run: func(ctx context.Context, q searchQuestion) (int, error) {
				h, _, err := retrieve.Graph(ctx, pool, f, req(q, k))
				return len(h), err
			}},
			mode{Name: "baseline: old keyword (all words, ts_rank_cd)", TopK: k, run: func(ctx context.Context, q searchQuestion) (int, error) {
				rows, err := pool.Query(ctx, oldKeywordSQL, q.Text, k)
				if err != nil {
					return 0, err
				}
				ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
				return len(ids), err
			}},
		)
	}
	return out
}

// modeResult is the latency of one mode over the questions.
type modeResult struct {
	Mode     string  `json:"mode"`
	TopK     int     `json:"top_k"`
	P50ms    float64 `json:"p50_ms"`
	P95ms    float64 `json:"p95_ms"`
	P99ms    float64 `json:"p99_ms"`
	MeanHits float64 `json:"mean_hits"`
	N        int     `json:"n"`
	lat      []time.Duration
}

// measure runs every mode on every question: one warm-up pass (keyword, vector and the old
// keyword search at the first top_k: the pages a search touches depend on the question, not on
// the mode), then rounds timed passes. Within a pass the modes take turns on each question, so a
// noisy moment of the machine falls on all of them alike; searches run one at a time.
func measure(ctx context.Context, qs []searchQuestion, ms []mode, rounds int) ([]modeResult, error) {
	res := make([]modeResult, len(ms))
	for i, m := range ms {
		res[i] = modeResult{Mode: m.Name, TopK: m.TopK}
	}
	hits := make([]int, len(ms))
	for pass := 0; pass <= rounds; pass++ {
		start := time.Now()
		for j, q := range qs {
			for i, m := range ms {
				if pass == 0 && (m.TopK != ms[0].TopK || m.Name == "hybrid" || m.Name == "graph") {
					continue
				}
				start := time.Now()
				n, err := m.run(ctx, q)
				d := time.Since(start)
				if err != nil {
					return nil, fmt.Errorf("%s top_k %d, %q: %w", m.Name, m.TopK, q.Text, err)
				}
				if pass > 0 {
					res[i].lat = append(res[i].lat, d)
					hits[i] += n
				}
			}
			if (j+1)%50 == 0 {
				fmt.Fprintf(os.Stderr, "pass %d: %d questions in %.0f s\n", pass, j+1, time.Since(start).Seconds())
			}
		}
	}
	for i := range res {
		r := &res[i]
		r.P50ms, r.P95ms, r.P99ms = pct(r.lat, 50), pct(r.lat, 95), pct(r.lat, 99)
		r.N = len(r.lat)
		r.MeanHits = float64(hits[i]) / float64(max(r.N, 1))
	}
	return res, nil
}

// pct is the p-th percentile (nearest rank) of ds, in milliseconds.
func pct(ds []time.Duration, p int) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return float64(s[max(i-1, 0)].Microseconds()) / 1000
}

// ipct is the p-th percentile (nearest rank) of xs.
func ipct(xs []int, p int) int {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)]
}

// quoteLexeme writes a lexeme as a tsquery operand (as dataplane/retrieve does).
func quoteLexeme(l string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(l, `\`, `\\`), `'`, `''`) + "'"
}

// orQuery is the tsquery of any of the question's English lexemes; "" for stop words only.
func orQuery(ctx context.Context, pool *pgxpool.Pool, text string) (string, error) {
	var lx []string
	if err := pool.QueryRow(ctx, `select coalesce(tsvector_to_array(to_tsvector('english', $1)), '{}')`, text).Scan(&lx); err != nil {
		return "", err
	}
	for i := range lx {
		lx[i] = quoteLexeme(lx[i])
	}
	return strings.Join(lx, " | "), nil
}

// countMatches sets each question's match counts and returns how long counting the OR matches
// took (the GIN index scan and recheck alone, without any scoring).
func countMatches(ctx context.Context, pool *pgxpool.Pool, qs []searchQuestion) ([]time.Duration, error) {
	var lat []time.Duration
	for i := range qs {
		q := &qs[i]
		or, err := orQuery(ctx, pool, q.Text)
		if err != nil {
			return nil, err
		}
		if or != "" {
			// Twice: the first warms the cache, the second is timed.
			var d time.Duration
			for range 2 {
				start := time.Now()
				if err := pool.QueryRow(ctx, `select count(*) from chunks where tsv @@ $1::tsquery`, or).Scan(&q.MatchesOR); err != nil {
					return nil, err
				}
				d = time.Since(start)
			}
			lat = append(lat, d)
		}
		if err := pool.QueryRow(ctx, `select count(*) from chunks where tsv @@ websearch_to_tsquery('english', $1)`, q.Text).Scan(&q.MatchesAND); err != nil {
			return nil, err
		}
	}
	return lat, nil
}

// tenantContext is a context with a tenant, as the worker's requests carry one.
func tenantContext(ctx context.Context) context.Context {
	return ragplane.NewContextWithIdentity(ctx, ragplane.Identity{TenantID: "bench-search", Subject: "bench"})
}
