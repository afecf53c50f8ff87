package main

import (
	"math"
	"sort"
)

// NDCG is nDCG@k as BEIR (pytrec_eval) computes it: linear gains (the qrel grade), discount
// log2(rank+1) with ranks from 1, the ideal DCG from the query's qrels. ranked holds corpus ids,
// best first, without repeats.
func NDCG(ranked []string, judged map[string]int, k int) float64 {
	var dcg float64
	for i, id := range ranked {
		if i >= k {
			break
		}
		if g := judged[id]; g > 0 {
			dcg += float64(g) / math.Log2(float64(i+2))
		}
	}
	var grades []int
	for _, g := range judged {
		if g > 0 {
			grades = append(grades, g)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(grades)))
	var ideal float64
	for i, g := range grades {
		if i >= k {
			break
		}
		ideal += float64(g) / math.Log2(float64(i+2))
	}
	if ideal == 0 {
		return 0
	}
	return dcg / ideal
}

// Recall is Recall@k over documents of grade >= 1.
func Recall(ranked []string, judged map[string]int, k int) float64 {
	relevant, found := 0, 0
	for _, g := range judged {
		if g >= 1 {
			relevant++
		}
	}
	if relevant == 0 {
		return 0
	}
	for i, id := range ranked {
		if i >= k {
			break
		}
		if judged[id] >= 1 {
			found++
		}
	}
	return float64(found) / float64(relevant)
}

// Dedupe keeps the first occurrence of each id: a document is ranked at its best chunk.
func Dedupe(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, id)
	}
	return out
}

// Percentile returns the p-th percentile (0..100) of xs by the nearest-rank method; 0 for none.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	if rank < 1 {
		rank = 1
	}
	return s[rank-1]
}
