package main

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The expected figures are worked out by hand in the comments, not by the code under test.

func TestNDCG(t *testing.T) {
	judged := map[string]int{"a": 2, "b": 1, "c": 0}
	tests := []struct {
		name   string
		given  []string
		when   int // k
		expect float64
	}{
		// DCG = 2/log2(3) + 1/log2(5); ideal = 2/log2(2) + 1/log2(3).
		{name: "graded, at 10", given: []string{"c", "a", "x", "b"}, when: 10, expect: 0.6433224083},
		// DCG = 2/log2(3); ideal = 2 + 1/log2(3).
		{name: "cut at 2", given: []string{"c", "a", "x", "b"}, when: 2, expect: 0.4796249331},
		{name: "ideal order", given: []string{"a", "b", "c"}, when: 10, expect: 1},
		{name: "grade 0 only", given: []string{"c", "x"}, when: 10, expect: 0},
		{name: "nothing returned", given: nil, when: 10, expect: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NDCG(tt.given, judged, tt.when); math.Abs(got-tt.expect) > 1e-9 {
				t.Fatalf("NDCG = %.10f, want %.10f", got, tt.expect)
			}
		})
	}
	if got := NDCG([]string{"a"}, map[string]int{"a": 0}, 10); got != 0 {
		t.Fatalf("NDCG without a relevant document = %v, want 0", got)
	}
}

func TestRecall(t *testing.T) {
	judged := map[string]int{"a": 2, "b": 1, "c": 0}
	tests := []struct {
		name   string
		given  []string
		when   int
		expect float64
	}{
		{name: "half within k", given: []string{"c", "a", "x", "b"}, when: 2, expect: 0.5},
		{name: "all within k", given: []string{"c", "a", "x", "b"}, when: 100, expect: 1},
		{name: "grade 0 does not count", given: []string{"c"}, when: 100, expect: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Recall(tt.given, judged, tt.when); got != tt.expect {
				t.Fatalf("Recall = %v, want %v", got, tt.expect)
			}
		})
	}
}

func TestDedupe(t *testing.T) {
	got := Dedupe([]string{"a", "b", "a", "", "c", "b"})
	if want := []string{"a", "b", "c"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Dedupe = %v, want %v", got, want)
	}
}

func TestPercentile(t *testing.T) {
	xs := []float64{5, 1, 3, 2, 4}
	for p, want := range map[float64]float64{50: 3, 95: 5, 0: 1, 100: 5} {
		if got := Percentile(xs, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v, want 0", got)
	}
}

func TestTokenize(t *testing.T) {
	got := Tokenize("Hello, Wörld! 42x café-au-lait")
	if want := []string{"hello", "wörld", "42x", "café", "au", "lait"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Tokenize = %q, want %q", got, want)
	}
}

// The corpus: d1 "Apple apple pie" (3 tokens), d2 " Banana split, apple!" (3), d3 "Cherry
// cherry-cherry tart" (4); N = 3, average length 10/3.
//
//	idf(apple)  = ln(1 + (3-2+0.5)/(2+0.5)) = ln 1.6
//	idf(cherry) = ln(1 + (3-1+0.5)/(1+0.5)) = ln(8/3)
//	norm(len 3) = 0.9 * (1 - 0.4 + 0.4*3/(10/3)) = 0.864; norm(len 4) = 0.9 * (0.6 + 0.48) = 0.972
//	d1 "apple"  = ln 1.6 * 2*1.9/(2+0.864);  d2 "apple" = ln 1.6 * 1.9/(1+0.864)
//	d3 "cherry" = ln(8/3) * 3*1.9/(3+0.972)
func bm25Corpus() []Doc {
	return []Doc{
		{ID: "d1", Title: "Apple", Text: "apple pie"},
		{ID: "d2", Text: "Banana split, apple!"},
		{ID: "d3", Title: "Cherry", Text: "cherry-cherry tart"},
	}
}

func TestBM25(t *testing.T) {
	ix := NewBM25(bm25Corpus(), 0.9, 0.4)
	if got, want := ix.IDF("apple"), math.Log(1.6); math.Abs(got-want) > 1e-12 {
		t.Fatalf("idf(apple) = %v, want %v", got, want)
	}
	tests := []struct {
		name   string
		given  string
		expect []float64
	}{
		{name: "one term", given: "apple", expect: []float64{0.6236081673, 0.4790809526, 0}},
		{name: "repeated term counts twice", given: "Apple APPLE", expect: []float64{2 * 0.6236081673, 2 * 0.4790809526, 0}},
		{name: "two terms", given: "apple cherry", expect: []float64{0.6236081673, 0.4790809526, 1.4075344265}},
		{name: "unknown term", given: "durian", expect: []float64{0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ix.Scores(tt.given)
			for i := range got {
				if math.Abs(got[i]-tt.expect[i]) > 1e-9 {
					t.Fatalf("Scores(%q) = %v, want %v", tt.given, got, tt.expect)
				}
			}
		})
	}
	if got, want := ix.Search("apple cherry", 10), []string{"d3", "d1", "d2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Search = %v, want %v", got, want)
	}
	if got, want := ix.Search("apple", 10), []string{"d1", "d2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Search leaves out documents without a match: got %v, want %v", got, want)
	}
	if got := ix.Matches("apple pie"); got != 2 {
		t.Fatalf("Matches(apple pie) = %d, want 2", got)
	}
	if got, want := ix.Search("apple cherry", 1), []string{"d3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Search cut at 1 = %v, want %v", got, want)
	}
}

func TestLoadDataset(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "corpus.jsonl"), `{"_id": "d1", "title": "Apple", "text": "apple pie"}
{"_id": "d2", "title": "", "text": "banana"}
`)
	mustWrite(t, filepath.Join(dir, "queries.jsonl"), `{"_id": "q1", "text": "apple"}
{"_id": "q2", "text": "only grade 0"}
{"_id": "q3", "text": "not judged"}
{"_id": "q4", "text": "banana"}
`)
	mustWrite(t, filepath.Join(dir, "qrels", "test.tsv"), "query-id\tcorpus-id\tscore\nq1\td1\t2\nq2\td2\t0\nq4\td2\t1\n")
	ds, err := LoadDataset(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Corpus) != 2 || ds.Corpus[0].Title != "Apple" || ds.Qrels["q1"]["d1"] != 2 {
		t.Fatalf("dataset = %+v", ds)
	}
	var ids []string
	for _, q := range ds.JudgedQueries() {
		ids = append(ids, q.ID)
	}
	if want := []string{"q1", "q4"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("JudgedQueries = %v, want %v", ids, want)
	}

	mustWrite(t, filepath.Join(dir, "qrels", "test.tsv"), "query-id\tcorpus-id\tscore\nq1\td1\n")
	if _, err := LoadDataset(dir); err == nil || !strings.Contains(err.Error(), "3 tab-separated columns") {
		t.Fatalf("a short qrels line: err = %v", err)
	}
}

func TestModeResultRatios(t *testing.T) {
	judged := map[string]int{"a": 1}
	base := ModeResult{Mode: "bm25"}
	base.add([]string{"a"}, judged, 0) // nDCG 1, recall 1
	base.add([]string{"x"}, judged, 0) // nDCG 0, recall 0
	base.finish(nil)                   // 0.5, 0.5
	r := ModeResult{Mode: "keyword"}
	r.add([]string{"x", "a"}, judged, 10) // nDCG 1/log2(3), recall 1
	r.add([]string{"x"}, judged, 30)
	r.finish(&base)
	if math.Abs(r.NDCG-0.5/math.Log2(3)) > 1e-12 || r.Recall != 0.5 || r.RecallRatio != 1 ||
		math.Abs(r.NDCGRatio-1/math.Log2(3)) > 1e-12 || r.P50MS != 10 || r.P95MS != 30 {
		t.Fatalf("result = %+v", r)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name   string
		given  []string
		expect string // part of the error; "" for none
	}{
		{name: "defaults", given: nil},
		{name: "modes and settings", given: []string{"-modes", "keyword, hybrid", "-settings", `{"embedding_dimension":100}`}},
		{name: "unknown mode", given: []string{"-modes", "keyword,agentic"}, expect: "not a search mode"},
		{name: "bad settings", given: []string{"-settings", "{"}, expect: "-settings"},
		{name: "batch too big", given: []string{"-batch", "101"}, expect: "-batch"},
		{name: "half an external stack", given: []string{"-admin-url", "http://x"}, expect: "go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.given, &strings.Builder{})
			if tt.expect == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(o.modes) == 0 {
					t.Fatal("no modes")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.expect) {
				t.Fatalf("err = %v, want one naming %q", err, tt.expect)
			}
		})
	}
}

func mustWrite(tb testing.TB, path, text string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		tb.Fatal(err)
	}
}
