package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ragplane/ragplane/dataplane/retrieve"
)

// A what-if of keyword search, to size a proposed change without touching dataplane/retrieve:
// match only on the question's rare terms (document frequency at most cutoff × N; the rarest
// term alone when none is that rare), score those candidates with every term exactly as
// keyword.go's BM25 does, and take the top k. The common terms still add to a candidate's score;
// a chunk that has common terms only is not considered (Lucene's "common terms" query, Elastic's
// cutoff_frequency). N, the mean length and the document frequencies are computed beforehand,
// untimed, as a cached statistic would give them; the timed part is the one statement.

// whatIfResult is the what-if's latency and how much of Keyword's ranking it keeps.
type whatIfResult struct {
	Cutoff      float64 `json:"cutoff"`
	TopK        int     `json:"top_k"`
	P50ms       float64 `json:"p50_ms"`
	P95ms       float64 `json:"p95_ms"`
	P99ms       float64 `json:"p99_ms"`
	MatchMedian int     `json:"candidates_median"`
	MatchP95    int     `json:"candidates_p95"`
	Overlap     float64 `json:"overlap_with_keyword"` // share of Keyword's top k that it also returns
}

// The BM25 constants of keyword.go.
const (
	wiK1          = 0.9
	wiB           = 0.4
	wiRankWeights = "{0.5,0.5,0.5,1.0}"
)

func whatIfRareTerms(ctx context.Context, pool *pgxpool.Pool, qs []searchQuestion, topK int, cutoff float64) (whatIfResult, error) {
	res := whatIfResult{Cutoff: cutoff, TopK: topK}
	var n, avgLen float64
	if err := pool.QueryRow(ctx, `select count(*)::float8, avg(tokens)::float8 from chunks`).Scan(&n, &avgLen); err != nil {
		return res, err
	}
	tfScale := math.Pi * math.Pi / 6 / 0.5
	var lat []time.Duration
	var cands []int
	overlap, total := 0, 0
	for pass := range 2 { // the first pass warms the cache
		for _, q := range qs {
			var lx []string
			if err := pool.QueryRow(ctx, `select coalesce(tsvector_to_array(to_tsvector('english', $1)), '{}')`, q.Text).Scan(&lx); err != nil {
				return res, err
			}
			if len(lx) == 0 {
				continue
			}
			terms := make([]string, len(lx))
			weights := make([]float64, len(lx))
			dfs := make([]float64, len(lx))
			for i, l := range lx {
				terms[i] = quoteLexeme(l)
				if err := pool.QueryRow(ctx, `select count(*)::float8 from chunks where tsv @@ $1::tsquery`, terms[i]).Scan(&dfs[i]); err != nil {
					return res, err
				}
				weights[i] = math.Log(1+(n-dfs[i]+0.5)/(dfs[i]+0.5)) * tfScale
			}
			var rare []string
			for i, d := range dfs {
				if d <= cutoff*n {
					rare = append(rare, terms[i])
				}
			}
			if len(rare) == 0 {
				rare = []string{terms[slices.Index(dfs, slices.Min(dfs))]}
			}
			match := strings.Join(rare, " | ")
			sql := `select c.id::text from chunks c where c.tsv @@ $1::tsquery
				order by (select coalesce(sum(t.w * ts_rank('` + wiRankWeights + `', c.tsv, t.q)), 0) from unnest($2::tsquery[], $3::float8[]) t(q, w))
					* $4::float8 / (1 + $5::float8 * ($6::float8 + $7::float8 * c.tokens / $8::float8)) desc, c.id limit $9`
			start := time.Now()
			rows, err := pool.Query(ctx, sql, match, terms, weights, wiK1+1, wiK1, 1-wiB, wiB, avgLen, topK)
			if err != nil {
				return res, fmt.Errorf("what-if: %w", err)
			}
			ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				return res, fmt.Errorf("what-if: %w", err)
			}
			d := time.Since(start)
			if pass == 0 {
				continue
			}
			lat = append(lat, d)
			var c int
			if err := pool.QueryRow(ctx, `select count(*) from chunks where tsv @@ $1::tsquery`, match).Scan(&c); err != nil {
				return res, err
			}
			cands = append(cands, c)
			hits, err := retrieve.Keyword(ctx, pool, retrieve.Request{Query: q.Text, TopK: topK})
			if err != nil {
				return res, err
			}
			for _, h := range hits {
				total++
				if slices.Contains(ids, h.ChunkID) {
					overlap++
				}
			}
		}
	}
	res.P50ms, res.P95ms, res.P99ms = pct(lat, 50), pct(lat, 95), pct(lat, 99)
	res.MatchMedian, res.MatchP95 = ipct(cands, 50), ipct(cands, 95)
	res.Overlap = float64(overlap) / float64(max(total, 1))
	return res, nil
}
