package main

import (
	"fmt"
	"strings"
)

func printQuestions(qs []searchQuestion) {
	kinds := map[string]int{}
	for _, q := range qs {
		kinds[q.Kind]++
	}
	fmt.Printf("\nquestions: %d %v; for example:\n", len(qs), kinds)
	seen := map[string]int{}
	for _, q := range qs {
		if seen[q.Kind] < 3 {
			seen[q.Kind]++
			fmt.Printf("  %-14s %q matches %d chunks (any word), %d (all words)\n", q.Kind, q.Text, q.MatchesOR, q.MatchesAND)
		}
	}
}

func printSearch(cfg config, st *corpusStats, ms *matchSummary, rs []modeResult, embedMs float64) {
	fmt.Printf("\n## Search, %d chunks, %s embeddings, %d questions, one at a time, pool of %d connections\n\n",
		st.Chunks, cfg.embedder, len(rs[0].lat)/max(cfg.rounds, 1), cfg.conns)
	fmt.Printf("chunks matched per question: any word (BM25 keyword) median %d, p95 %d, max %d; all words (old keyword) median %d, p95 %d, max %d\n",
		ms.ORMedian, ms.ORP95, ms.ORMax, ms.ANDMedian, ms.ANDP95, ms.ANDMax)
	fmt.Printf("finding the any-word matches alone (count(*), no scoring): p50 %.1f ms, p95 %.1f ms; embedding a question: p50 %.3f ms (not in the figures below)\n\n",
		ms.CountORP50, ms.CountORP95, embedMs)
	fmt.Println("| mode | top_k | p50 ms | p95 ms | p99 ms | hits/question |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range rs {
		fmt.Printf("| %s | %d | %.1f | %.1f | %.1f | %.1f |\n", r.Mode, r.TopK, r.P50ms, r.P95ms, r.P99ms, r.MeanHits)
	}
	find := func(prefix string, k int) *modeResult {
		for i := range rs {
			if strings.HasPrefix(rs[i].Mode, prefix) && rs[i].TopK == k {
				return &rs[i]
			}
		}
		return nil
	}
	fmt.Println()
	for _, k := range cfg.topKs {
		kw, old, vec, hy := find("keyword", k), find("baseline", k), find("vector", k), find("hybrid", k)
		if kw != nil && old != nil && vec != nil && hy != nil {
			fmt.Printf("top_k %d: keyword p50 %.1fx, p95 %.1fx the old keyword search; hybrid p50 %.1fx, p95 %.1fx the vector search alone\n",
				k, kw.P50ms/old.P50ms, kw.P95ms/old.P95ms, hy.P50ms/vec.P50ms, hy.P95ms/vec.P95ms)
		}
	}
	if kw, hy := find("keyword", 10), find("hybrid", 10); kw != nil && hy != nil {
		fmt.Printf("goals at top_k 10: keyword p95 %.1f ms (goal <= 10: %s), hybrid p95 %.1f ms (goal <= 15: %s)\n",
			kw.P95ms, met(kw.P95ms <= 10), hy.P95ms, met(hy.P95ms <= 15))
	}
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}

func printProfile(p keywordProfile) {
	fmt.Printf("\n## Where keyword search's time goes (top_k %d; client-side time per statement of its transaction)\n\n", p.TopK)
	fmt.Println("| step | p50 ms | p95 ms | share of total |")
	fmt.Println("| --- | ---: | ---: | ---: |")
	for _, s := range p.Steps {
		fmt.Printf("| %s | %.2f | %.2f | %.0f%% |\n", s.Step, s.P50ms, s.P95ms, 100*s.Share)
	}
	fmt.Printf("| total (Keyword call) | %.2f | %.2f | 100%% |\n", p.TotalP50, p.TotalP95)
	for _, e := range p.Explained {
		fmt.Printf("\n### EXPLAIN ANALYZE, %s question: %q (%.1f ms, %d chunks match any word)\n", e.Why, e.Question, e.Ms, e.MatchesOR)
		for _, pl := range e.Plans {
			fmt.Printf("\n-- %s\n%s\n", pl.Step, pl.Plan)
		}
	}
}

func printWhatIf(ws []whatIfResult) {
	if len(ws) == 0 {
		return
	}
	fmt.Println("\n## What-if: keyword search matching on rare terms only, scoring candidates with every term (whatif.go; one SQL statement, statistics precomputed)")
	fmt.Println()
	fmt.Println("| cutoff (df/N) | top_k | p50 ms | p95 ms | p99 ms | candidates median | candidates p95 | Keyword's top_k kept |")
	fmt.Println("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, w := range ws {
		fmt.Printf("| %.3f | %d | %.1f | %.1f | %.1f | %d | %d | %.0f%% |\n", w.Cutoff, w.TopK, w.P50ms, w.P95ms, w.P99ms, w.MatchMedian, w.MatchP95, 100*w.Overlap)
	}
}
