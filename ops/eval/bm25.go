package main

import (
	"math"
	"sort"
	"strings"
	"unicode"
)

// BM25 is an in-memory Okapi BM25 index over a corpus, the baseline every mode is compared with:
// Lucene's idf log(1 + (N - df + 0.5)/(df + 0.5)), lowercase word tokens (runs of letters and
// digits), no stemming, no stopwords.
type BM25 struct {
	K1, B    float64
	ids      []string
	lengths  []float64
	avgLen   float64
	postings map[string][]posting
}

type posting struct {
	doc int
	tf  int
}

// Tokenize lowercases s and splits it on every rune that is not a letter or a digit.
func Tokenize(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// NewBM25 indexes docs (title + " " + text) with parameters k1 and b.
func NewBM25(docs []Doc, k1, b float64) *BM25 {
	ix := &BM25{K1: k1, B: b, ids: make([]string, len(docs)), lengths: make([]float64, len(docs)), postings: map[string][]posting{}}
	var total float64
	for i, d := range docs {
		ix.ids[i] = d.ID
		toks := Tokenize(d.Title + " " + d.Text)
		ix.lengths[i] = float64(len(toks))
		total += float64(len(toks))
		tf := map[string]int{}
		for _, t := range toks {
			tf[t]++
		}
		for t, n := range tf {
			ix.postings[t] = append(ix.postings[t], posting{doc: i, tf: n})
		}
	}
	if len(docs) > 0 {
		ix.avgLen = total / float64(len(docs))
	}
	return ix
}

// IDF is Lucene's BM25 idf of a term.
func (ix *BM25) IDF(term string) float64 {
	n, df := float64(len(ix.ids)), float64(len(ix.postings[term]))
	return math.Log(1 + (n-df+0.5)/(df+0.5))
}

// Scores returns each document's score for the query; a query term that repeats counts each
// time, as repeated clauses of a Lucene boolean query do.
func (ix *BM25) Scores(query string) []float64 {
	scores := make([]float64, len(ix.ids))
	for _, t := range Tokenize(query) {
		idf := ix.IDF(t)
		for _, p := range ix.postings[t] {
			tf := float64(p.tf)
			norm := ix.K1 * (1 - ix.B + ix.B*ix.lengths[p.doc]/ix.avgLen)
			scores[p.doc] += idf * tf * (ix.K1 + 1) / (tf + norm)
		}
	}
	return scores
}

// Matches counts the documents that share at least one token with the query.
func (ix *BM25) Matches(query string) int {
	n := 0
	for _, s := range ix.Scores(query) {
		if s > 0 {
			n++
		}
	}
	return n
}

// Search returns the ids of the k best-scoring documents with a positive score, best first; ties
// keep corpus order.
func (ix *BM25) Search(query string, k int) []string {
	scores := ix.Scores(query)
	var idx []int
	for i, s := range scores {
		if s > 0 {
			idx = append(idx, i)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	if len(idx) > k {
		idx = idx[:k]
	}
	out := make([]string, len(idx))
	for i, d := range idx {
		out[i] = ix.ids[d]
	}
	return out
}
