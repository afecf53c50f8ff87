package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// ModeResult is one retrieval mode's (or the baseline's) figures, averaged over the queries.
type ModeResult struct {
	Mode    string  `json:"mode"`
	Queries int     `json:"queries"`
	NDCG    float64 `json:"ndcg_at_10"`
	Recall  float64 `json:"recall_at_100"`
	// NDCGRatio and RecallRatio are the figures over BM25's.
	NDCGRatio   float64 `json:"ndcg_ratio_to_bm25"`
	RecallRatio float64 `json:"recall_ratio_to_bm25"`
	P50MS       float64 `json:"latency_p50_ms"`
	P95MS       float64 `json:"latency_p95_ms"`
	// ShortQueries counts searches that returned fewer than top_k hits though the tenant holds at
	// least top_k chunks.
	ShortQueries int `json:"short_queries"`
	// ShortWithMatches counts the short ones for which the in-memory BM25 finds at least top_k
	// documents sharing a word with the query (so a keyword search could have found that many).
	ShortWithMatches int `json:"short_queries_with_top_k_word_matches"`
	// GraphFallbacks counts graph searches that fell back to another mode (graph_fallback).
	GraphFallbacks int `json:"graph_fallbacks"`

	ndcgSum, recallSum float64
	latencies          []float64
}

func (r *ModeResult) add(ranked []string, judged map[string]int, ms float64) {
	r.Queries++
	r.ndcgSum += NDCG(ranked, judged, ndcgAt)
	r.recallSum += Recall(ranked, judged, recallAt)
	if ms > 0 {
		r.latencies = append(r.latencies, ms)
	}
}

// finish averages the sums and, given the baseline, computes the ratios.
func (r *ModeResult) finish(base *ModeResult) {
	if r.Queries > 0 {
		r.NDCG, r.Recall = r.ndcgSum/float64(r.Queries), r.recallSum/float64(r.Queries)
	}
	r.P50MS, r.P95MS = Percentile(r.latencies, 50), Percentile(r.latencies, 95)
	r.NDCGRatio, r.RecallRatio = 1, 1
	if base != nil {
		r.NDCGRatio, r.RecallRatio = ratio(r.NDCG, base.NDCG), ratio(r.Recall, base.Recall)
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// IngestResult is the ingestion's figures.
type IngestResult struct {
	Documents     int     `json:"documents"`
	Chunks        int     `json:"chunks"`
	Duplicates    int     `json:"duplicates"`
	Seconds       float64 `json:"seconds"`
	DocsPerSecond float64 `json:"docs_per_second"`
}

// Report is a run's results.
type Report struct {
	Data           string         `json:"data"`
	Revision       string         `json:"revision"`
	Tenant         string         `json:"tenant"`
	Plan           string         `json:"plan"`
	Settings       map[string]any `json:"settings,omitempty"`
	Override       map[string]any `json:"override,omitempty"`
	TitleInContent bool           `json:"title_in_content"`
	Documents      int            `json:"documents"`
	Queries        int            `json:"queries"`
	TopK           int            `json:"top_k"`
	Started        time.Time      `json:"started"`
	Finished       time.Time      `json:"finished"`
	Ingest         IngestResult   `json:"ingest"`
	BM25           ModeResult     `json:"bm25"`
	Modes          []ModeResult   `json:"modes"`
}

// Print writes the results table and a warning line per mode that returned short result lists.
func (rep *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "\nRetrieval quality: %d queries, top_k %d, revision %s\n", rep.Queries, rep.TopK, rep.Revision)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tnDCG@10\tx BM25\tRecall@100\tx BM25\tp50 ms\tp95 ms\t")
	fmt.Fprintf(tw, "bm25 (in memory)\t%.3f\t1.00\t%.3f\t1.00\t-\t-\t\n", rep.BM25.NDCG, rep.BM25.Recall)
	for _, m := range rep.Modes {
		fmt.Fprintf(tw, "%s\t%.3f\t%.2f\t%.3f\t%.2f\t%.1f\t%.1f\t\n", m.Mode, m.NDCG, m.NDCGRatio, m.Recall, m.RecallRatio, m.P50MS, m.P95MS)
	}
	tw.Flush()
	fmt.Fprintf(w, "ingestion: %d documents, %d chunks in %.1f s (%.0f docs/s)\n", rep.Ingest.Documents, rep.Ingest.Chunks, rep.Ingest.Seconds, rep.Ingest.DocsPerSecond)
	for _, m := range rep.Modes {
		if m.ShortQueries > 0 {
			fmt.Fprintf(w, "warning: mode %s returned < top_k for %d queries (%d of them have >= top_k documents sharing a word with the query)\n",
				m.Mode, m.ShortQueries, m.ShortWithMatches)
		}
		if m.GraphFallbacks > 0 {
			fmt.Fprintf(w, "note: mode %s fell back (graph_fallback) for %d queries\n", m.Mode, m.GraphFallbacks)
		}
	}
}
