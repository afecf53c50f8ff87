package retrieve_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/retrieve"
)

const dim = 64

// fixture is a small tenant database with crafted documents, chunks and toy embeddings.
type fixture struct {
	db     *pgxpool.Pool
	docs   map[string]string // name -> document ID
	chunks map[string]string // name -> chunk ID
	docOf  map[string]string // chunk ID -> document name
}

// Document and chunk names of the fixture.
var fixtureDocs = []doc{
	{id: "11111111-0000-0000-0000-000000000001", title: "Refund policy", source: "policy.md", metadata: map[string]any{
		"lang": "en", "year": 2024, "tags": []string{"billing", "policy"}, "team": map[string]any{"name": "finance", "size": 3}}},
	{id: "11111111-0000-0000-0000-000000000002", title: "Kubernetes guide", source: "k8s.md", metadata: map[string]any{
		"lang": "en", "year": 2023, "tags": []string{"ops"}, "public": true}},
	{id: "11111111-0000-0000-0000-000000000003", title: "Guide de remboursement", source: "fr.md", metadata: map[string]any{
		"lang": "fr", "year": 2024, "tags": []string{"billing"}}},
	// year is stored as 2022.0: numbers compare as numbers.
	{id: "11111111-0000-0000-0000-000000000004", title: "Release notes", source: "notes.md", metadata: map[string]any{
		"lang": "de", "year": json.Number("2022.0")}},
}

var docNames = []string{"refund", "kube", "fr", "notes"}

// longText has "zebra" far from its start, to test snippet placement.
var longText = "Ragplane cluster notes. " + strings.Repeat("The cluster runs many services and each service has its own replicas and budgets. ", 20) +
	"A zebra migration happens when the herd moves north across the river. " +
	strings.Repeat("Operators watch the dashboards closely during the night shift. ", 5)

func mustFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{db: MustTenantDB(t, dim), docs: map[string]string{}, chunks: map[string]string{}, docOf: map[string]string{}}
	now := time.Now()
	for i, d := range fixtureDocs {
		// Recency order for graph ties: notes newest, then kube, refund, fr.
		d.updatedAt = now.Add(-[]time.Duration{48, 24, 72, 0}[i] * time.Hour)
		MustInsertDoc(t, f.db, d)
		f.docs[docNames[i]] = d.id
	}
	add := func(name, docName string, ordinal int, content string, emb []float32) {
		id := MustInsertChunk(t, f.db, f.docs[docName], ordinal, content, emb)
		f.chunks[name] = id
		f.docOf[id] = docName
	}
	add("refund", "refund", 0, "Ragplane billing: customers can request a refund within 30 days of purchase. Refunds go back to the original card.",
		axis(dim, 1, map[int]float32{0: 1}))
	add("invoice", "refund", 1, "Ragplane billing: invoices are issued monthly and paid by card or transfer.",
		axis(dim, 2, map[int]float32{1: 1}))
	add("helm", "kube", 0, "Ragplane deploys on a Kubernetes cluster with the Helm chart; the operator reconciles tenants.",
		axis(dim, 3, map[int]float32{2: 1}))
	add("long", "kube", 1, longText, axis(dim, 4, map[int]float32{5: 1}))
	add("quasar3", "kube", 2, "Ragplane quasar quasar quasar quasar: an unrelated astronomy note about a bright quasar.",
		axis(dim, 5, map[int]float32{8: 1}))
	add("rembours", "fr", 0, "Ragplane : les remboursements sont possibles pendant 30 jours (refund).",
		axis(dim, 6, map[int]float32{0: 0.8, 3: 0.6}))
	// Twins: equal content and embedding, so equal scores in every mode.
	add("twin1", "fr", 1, "Ragplane twin paragraph about glaciers.", axis(dim, 10, map[int]float32{9: 1}))
	add("twin2", "fr", 2, "Ragplane twin paragraph about glaciers.", axis(dim, 10, map[int]float32{9: 1}))
	add("release", "notes", 0, "Ragplane version 2 adds hybrid search and graph retrieval.",
		axis(dim, 7, map[int]float32{4: 1}))
	add("telemetry", "notes", 1, "Ragplane telemetry overview of dashboards.",
		axis(dim, 8, map[int]float32{6: 1}))
	add("quasar1", "notes", 2, "Ragplane quasar telemetry: the exporter ships metrics.",
		axis(dim, 9, map[int]float32{6: 0.9, 7: 0.45}))
	return f
}

// names maps hits to fixture chunk names.
func (f *fixture) names(hits []ragplane.SearchHit) []string {
	var out []string
	for _, h := range hits {
		for name, id := range f.chunks {
			if id == h.ChunkID {
				out = append(out, name)
			}
		}
	}
	return out
}

// docSet returns the sorted distinct document names of hits.
func (f *fixture) docSet(hits []ragplane.SearchHit) []string {
	var out []string
	for _, h := range hits {
		if n := f.docOf[h.ChunkID]; !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// checkHits asserts what every hit must satisfy.
func checkHits(t *testing.T, f *fixture, hits []ragplane.SearchHit) {
	t.Helper()
	for i, h := range hits {
		if f.docOf[h.ChunkID] == "" || f.docs[f.docOf[h.ChunkID]] != h.DocumentID {
			t.Errorf("hit %d: chunk %s / document %s not from the fixture", i, h.ChunkID, h.DocumentID)
		}
		if h.Title == "" || h.Source == "" || h.Content == "" || h.Snippet == "" {
			t.Errorf("hit %d: empty field: %+v", i, h)
		}
		if n := utf8.RuneCountInString(h.Snippet); n > retrieve.MaxSnippet {
			t.Errorf("hit %d: snippet of %d runes", i, n)
		}
		if strings.ContainsAny(h.Snippet, "<>\n") {
			t.Errorf("hit %d: snippet is not plain one-line text: %q", i, h.Snippet)
		}
		if i > 0 && h.Score > hits[i-1].Score {
			t.Errorf("hit %d: score %v above previous %v", i, h.Score, hits[i-1].Score)
		}
	}
}

func TestModes(t *testing.T) {
	f := mustFixture(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		when   func(retrieve.Request) ([]ragplane.SearchHit, error)
		given  retrieve.Request
		expect []string // the first hits, in order
	}{
		{name: "vector refund", when: vec(f), given: retrieve.Request{Embedding: axis(dim, 100, map[int]float32{0: 1}), TopK: 3},
			expect: []string{"refund", "rembours"}},
		{name: "vector helm", when: vec(f), given: retrieve.Request{Embedding: axis(dim, 101, map[int]float32{2: 1}), TopK: 1},
			expect: []string{"helm"}},
		{name: "keyword helm", when: kw(f), given: retrieve.Request{Query: "kubernetes helm chart", TopK: 5},
			expect: []string{"helm"}},
		{name: "keyword stemmed", when: kw(f), given: retrieve.Request{Query: "refunded purchases", TopK: 5},
			expect: []string{"refund"}},
		{name: "keyword phrase", when: kw(f), given: retrieve.Request{Query: `"hybrid search"`, TopK: 5},
			expect: []string{"release"}},
		{name: "keyword most occurrences first", when: kw(f), given: retrieve.Request{Query: "quasar", TopK: 5},
			expect: []string{"quasar3", "quasar1"}},
		// Vector ranks telemetry, quasar1; keyword ranks quasar3, quasar1: quasar1 is in both.
		{name: "hybrid fuses", when: hyb(f), given: retrieve.Request{Query: "quasar", Embedding: axis(dim, 102, map[int]float32{6: 1}), TopK: 3},
			expect: []string{"quasar1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hits, err := tc.when(tc.given)
			if err != nil {
				t.Fatal(err)
			}
			checkHits(t, f, hits)
			if len(hits) > tc.given.TopK {
				t.Errorf("%d hits for top_k %d", len(hits), tc.given.TopK)
			}
			got := f.names(hits)
			if len(got) < len(tc.expect) || !slices.Equal(got[:len(tc.expect)], tc.expect) {
				t.Errorf("got %v, expect to start with %v", got, tc.expect)
			}
		})
	}

	t.Run("vector scores are cosine similarity", func(t *testing.T) {
		emb := axis(dim, 1, map[int]float32{0: 1}) // the refund chunk's own vector
		hits, err := retrieve.Vector(ctx, f.db, retrieve.Request{Embedding: emb, TopK: 2})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(hits[0].Score-1) > 1e-5 {
			t.Errorf("identical vector scored %v, expect 1", hits[0].Score)
		}
		if math.Abs(hits[1].Score-0.8) > 0.02 {
			t.Errorf("second hit scored %v, expect about 0.8", hits[1].Score)
		}
		if hits[0].Content != "Ragplane billing: customers can request a refund within 30 days of purchase. Refunds go back to the original card." ||
			hits[0].Title != "Refund policy" || hits[0].Source != "policy.md" || hits[0].DocumentID != f.docs["refund"] {
			t.Errorf("hit fields: %+v", hits[0])
		}
	})

	t.Run("hybrid scores are RRF sums with deterministic ties", func(t *testing.T) {
		req := retrieve.Request{Query: "ragplane quasar", Embedding: axis(dim, 102, map[int]float32{6: 1}), TopK: 3}
		hits, err := retrieve.Hybrid(ctx, f.db, req)
		if err != nil {
			t.Fatal(err)
		}
		// Recompute the fusion from the two lists of 4*top_k candidates.
		wide := req
		wide.TopK = 4 * req.TopK
		vhits, err := retrieve.Vector(ctx, f.db, wide)
		if err != nil {
			t.Fatal(err)
		}
		khits, err := retrieve.Keyword(ctx, f.db, wide)
		if err != nil {
			t.Fatal(err)
		}
		type fused struct {
			id    string
			score float64
			best  int
		}
		byID := map[string]*fused{}
		for _, list := range [][]ragplane.SearchHit{vhits, khits} {
			for i, h := range list {
				e := byID[h.ChunkID]
				if e == nil {
					e = &fused{id: h.ChunkID, best: i + 1}
					byID[h.ChunkID] = e
				}
				e.score += 1 / float64(retrieve.RRFK+i+1)
				e.best = min(e.best, i+1)
			}
		}
		var all []*fused
		for _, e := range byID {
			all = append(all, e)
		}
		slices.SortFunc(all, func(a, b *fused) int {
			switch {
			case a.score != b.score:
				return -cmp.Compare(a.score, b.score)
			case a.best != b.best:
				return a.best - b.best
			}
			return strings.Compare(a.id, b.id)
		})
		ties := 0
		for i, h := range hits {
			if h.ChunkID != all[i].id || math.Abs(h.Score-all[i].score) > 1e-12 {
				t.Errorf("hit %d: %s %v, expect %s %v", i, h.ChunkID, h.Score, all[i].id, all[i].score)
			}
			if i > 0 && h.Score == hits[i-1].Score {
				ties++
			}
		}
		// Every chunk contains "ragplane", so the lists are long and ties at equal ranks are likely;
		// either way the order must not change between runs.
		t.Logf("%d ties in the top %d", ties, len(hits))
		for range 5 {
			again, err := retrieve.Hybrid(ctx, f.db, req)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(f.names(again), f.names(hits)) {
				t.Fatalf("order changed: %v then %v", f.names(hits), f.names(again))
			}
		}
	})

	t.Run("equal scores in chunk ID order", func(t *testing.T) {
		req := retrieve.Request{Query: "glaciers", Embedding: axis(dim, 10, map[int]float32{9: 1}), TopK: 2}
		for name, search := range map[string]func(retrieve.Request) ([]ragplane.SearchHit, error){"vector": vec(f), "keyword": kw(f), "hybrid": hyb(f)} {
			hits, err := search(req)
			if err != nil {
				t.Fatal(err)
			}
			// Hybrid: the twins take ranks 1 and 2 of both lists, in chunk ID order.
			if len(hits) != 2 || (name != "hybrid" && hits[0].Score != hits[1].Score) || hits[0].ChunkID > hits[1].ChunkID {
				t.Errorf("%s: %v with scores %v, %v", name, f.names(hits), hits[0].Score, hits[1].Score)
			}
		}
	})

	t.Run("top_k respected", func(t *testing.T) {
		for _, k := range []int{1, 4, 100} {
			for name, search := range map[string]func(retrieve.Request) ([]ragplane.SearchHit, error){"vector": vec(f), "keyword": kw(f), "hybrid": hyb(f)} {
				hits, err := search(retrieve.Request{Query: "ragplane", Embedding: axis(dim, 103, map[int]float32{0: 1}), TopK: k})
				if err != nil {
					t.Fatal(err)
				}
				if expect := min(k, len(f.chunks)); len(hits) != expect {
					t.Errorf("%s top_k %d: %d hits, expect %d", name, k, len(hits), expect)
				}
			}
		}
	})

	t.Run("keyword of stopwords matches nothing", func(t *testing.T) {
		hits, err := retrieve.Keyword(ctx, f.db, retrieve.Request{Query: "the of and", TopK: 5})
		if err != nil || len(hits) != 0 {
			t.Errorf("got %v, %v; expect no hits", f.names(hits), err)
		}
	})

	t.Run("snippets", func(t *testing.T) {
		hits, err := retrieve.Keyword(ctx, f.db, retrieve.Request{Query: "zebra", TopK: 1})
		if err != nil || len(hits) != 1 {
			t.Fatalf("got %d hits, %v", len(hits), err)
		}
		s := hits[0].Snippet
		if !strings.Contains(s, "zebra migration") || !strings.HasPrefix(s, "…") || utf8.RuneCountInString(s) > retrieve.MaxSnippet {
			t.Errorf("snippet not around the match: %q", s)
		}
		if hits[0].Content != longText {
			t.Error("content is not the full chunk")
		}
		// A vector hit without query text starts at the beginning.
		hits, err = retrieve.Vector(ctx, f.db, retrieve.Request{Embedding: axis(dim, 104, map[int]float32{5: 1}), TopK: 1})
		if err != nil {
			t.Fatal(err)
		}
		if s := hits[0].Snippet; !strings.HasPrefix(s, "Ragplane cluster notes.") || !strings.HasSuffix(s, "…") {
			t.Errorf("snippet: %q", s)
		}
		// A short chunk is its own snippet.
		hits, err = retrieve.Keyword(ctx, f.db, retrieve.Request{Query: "helm", TopK: 1})
		if err != nil {
			t.Fatal(err)
		}
		if hits[0].Snippet != hits[0].Content {
			t.Errorf("snippet %q, content %q", hits[0].Snippet, hits[0].Content)
		}
	})
}

func vec(f *fixture) func(retrieve.Request) ([]ragplane.SearchHit, error) {
	return func(r retrieve.Request) ([]ragplane.SearchHit, error) {
		return retrieve.Vector(context.Background(), f.db, r)
	}
}

func kw(f *fixture) func(retrieve.Request) ([]ragplane.SearchHit, error) {
	return func(r retrieve.Request) ([]ragplane.SearchHit, error) {
		return retrieve.Keyword(context.Background(), f.db, r)
	}
}

func hyb(f *fixture) func(retrieve.Request) ([]ragplane.SearchHit, error) {
	return func(r retrieve.Request) ([]ragplane.SearchHit, error) {
		return retrieve.Hybrid(context.Background(), f.db, r)
	}
}

func TestFilters(t *testing.T) {
	f := mustFixture(t)
	tests := []struct {
		name   string
		given  []ragplane.Filter
		expect []string // document names, sorted
	}{
		{name: "eq string", given: []ragplane.Filter{{Field: "lang", Op: "eq", Value: "en"}}, expect: []string{"kube", "refund"}},
		{name: "eq number", given: []ragplane.Filter{{Field: "year", Op: "eq", Value: 2024.0}}, expect: []string{"fr", "refund"}},
		{name: "eq number stored as 2022.0", given: []ragplane.Filter{{Field: "year", Op: "eq", Value: 2022}}, expect: []string{"notes"}},
		{name: "eq string is not a number", given: []ragplane.Filter{{Field: "year", Op: "eq", Value: "2024"}}},
		{name: "eq bool", given: []ragplane.Filter{{Field: "public", Op: "eq", Value: true}}, expect: []string{"kube"}},
		{name: "in strings", given: []ragplane.Filter{{Field: "lang", Op: "in", Value: []any{"fr", "de"}}}, expect: []string{"fr", "notes"}},
		{name: "in numbers", given: []ragplane.Filter{{Field: "year", Op: "in", Value: []int{2023, 2022}}}, expect: []string{"kube", "notes"}},
		{name: "contains array", given: []ragplane.Filter{{Field: "tags", Op: "contains", Value: []any{"billing"}}}, expect: []string{"fr", "refund"}},
		{name: "contains object", given: []ragplane.Filter{{Field: "team", Op: "contains", Value: map[string]any{"name": "finance"}}}, expect: []string{"refund"}},
		{name: "exists", given: []ragplane.Filter{{Field: "public", Op: "exists", Value: true}}, expect: []string{"kube"}},
		{name: "and", given: []ragplane.Filter{
			{Field: "lang", Op: "eq", Value: "en"},
			{Field: "tags", Op: "contains", Value: []any{"billing"}},
		}, expect: []string{"refund"}},
		{name: "and of three", given: []ragplane.Filter{
			{Field: "year", Op: "in", Value: []any{2024, 2023}},
			{Field: "tags", Op: "exists", Value: true},
			{Field: "lang", Op: "eq", Value: "fr"},
		}, expect: []string{"fr"}},
		{name: "no match", given: []ragplane.Filter{{Field: "lang", Op: "eq", Value: "en"}, {Field: "lang", Op: "eq", Value: "fr"}}},
		{name: "injection in eq value", given: []ragplane.Filter{{Field: "lang", Op: "eq", Value: "en' or '1'='1"}}},
		{name: "injection in json value", given: []ragplane.Filter{{Field: "lang", Op: "eq", Value: `en", "year": 2024, "x": "`}}},
		{name: "injection in contains", given: []ragplane.Filter{{Field: "tags", Op: "contains", Value: map[string]any{"') or true --": 1}}}},
		{name: "unknown key exists", given: []ragplane.Filter{{Field: "nope", Op: "exists", Value: true}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := retrieve.Request{Query: "ragplane", Embedding: axis(dim, 200, map[int]float32{0: 1}), TopK: 100, Filters: tc.given}
			for name, search := range map[string]func(retrieve.Request) ([]ragplane.SearchHit, error){"vector": vec(f), "keyword": kw(f), "hybrid": hyb(f)} {
				hits, err := search(req)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				checkHits(t, f, hits)
				if got := f.docSet(hits); !slices.Equal(got, tc.expect) {
					t.Errorf("%s: documents %v, expect %v", name, got, tc.expect)
				}
			}
		})
	}
}

func TestValidateFilters(t *testing.T) {
	many := make([]ragplane.Filter, retrieve.MaxFilters+1)
	for i := range many {
		many[i] = ragplane.Filter{Field: "lang", Op: "exists", Value: true}
	}
	long := make([]any, retrieve.MaxInValues+1)
	for i := range long {
		long[i] = i
	}
	tests := []struct {
		name   string
		given  []ragplane.Filter
		expect string // the error's field; "" for valid
	}{
		{name: "none"},
		{name: "all ops", given: []ragplane.Filter{
			{Field: "lang", Op: "eq", Value: "en"}, {Field: "n", Op: "eq", Value: 1.5}, {Field: "b", Op: "eq", Value: false},
			{Field: "n", Op: "eq", Value: json.Number("7")}, {Field: "x", Op: "in", Value: []string{"a", "b"}},
			{Field: "t", Op: "contains", Value: []any{"a"}}, {Field: "o", Op: "contains", Value: map[string]any{"k": []any{1}}},
			{Field: "_a.b-c9", Op: "exists", Value: true},
		}},
		{name: "max filters", given: many[:retrieve.MaxFilters]},
		{name: "too many filters", given: many, expect: "filters"},
		{name: "unknown op", given: []ragplane.Filter{{Field: "lang", Op: "ne", Value: "en"}}, expect: "filters[0].op"},
		{name: "empty op", given: []ragplane.Filter{{Field: "lang", Value: "en"}}, expect: "filters[0].op"},
		{name: "second filter", given: []ragplane.Filter{{Field: "lang", Op: "eq", Value: "en"}, {Field: "lang", Op: "EQ", Value: "en"}}, expect: "filters[1].op"},
		{name: "empty field", given: []ragplane.Filter{{Field: "", Op: "eq", Value: "en"}}, expect: "filters[0].field"},
		{name: "field with space", given: []ragplane.Filter{{Field: "a b", Op: "eq", Value: "en"}}, expect: "filters[0].field"},
		{name: "field injection", given: []ragplane.Filter{{Field: "lang'; drop table chunks; --", Op: "exists", Value: true}}, expect: "filters[0].field"},
		{name: "field starting with digit", given: []ragplane.Filter{{Field: "1a", Op: "exists", Value: true}}, expect: "filters[0].field"},
		{name: "field too long", given: []ragplane.Filter{{Field: strings.Repeat("a", 65), Op: "exists", Value: true}}, expect: "filters[0].field"},
		{name: "field of 64", given: []ragplane.Filter{{Field: strings.Repeat("a", 64), Op: "exists", Value: true}}},
		{name: "eq object", given: []ragplane.Filter{{Field: "a", Op: "eq", Value: map[string]any{}}}, expect: "filters[0].value"},
		{name: "eq null", given: []ragplane.Filter{{Field: "a", Op: "eq", Value: nil}}, expect: "filters[0].value"},
		{name: "eq NaN", given: []ragplane.Filter{{Field: "a", Op: "eq", Value: math.NaN()}}, expect: "filters[0].value"},
		{name: "in empty", given: []ragplane.Filter{{Field: "a", Op: "in", Value: []any{}}}, expect: "filters[0].value"},
		{name: "in not array", given: []ragplane.Filter{{Field: "a", Op: "in", Value: "x"}}, expect: "filters[0].value"},
		{name: "in too long", given: []ragplane.Filter{{Field: "a", Op: "in", Value: long}}, expect: "filters[0].value"},
		{name: "in of 100", given: []ragplane.Filter{{Field: "a", Op: "in", Value: long[:retrieve.MaxInValues]}}},
		{name: "in nested", given: []ragplane.Filter{{Field: "a", Op: "in", Value: []any{"x", []any{"y"}}}}, expect: "filters[0].value[1]"},
		{name: "contains string", given: []ragplane.Filter{{Field: "a", Op: "contains", Value: "x"}}, expect: "filters[0].value"},
		{name: "contains bytes", given: []ragplane.Filter{{Field: "a", Op: "contains", Value: []byte("x")}}, expect: "filters[0].value"},
		{name: "contains huge", given: []ragplane.Filter{{Field: "a", Op: "contains", Value: []any{strings.Repeat("x", 9000)}}}, expect: "filters[0].value"},
		{name: "exists false", given: []ragplane.Filter{{Field: "a", Op: "exists", Value: false}}, expect: "filters[0].value"},
		{name: "exists missing", given: []ragplane.Filter{{Field: "a", Op: "exists"}}, expect: "filters[0].value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := retrieve.ValidateFilters(tc.given)
			if tc.expect == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if ragplane.ErrorCode(err) != ragplane.EINVALID || ragplane.ErrorField(err) != tc.expect {
				t.Errorf("got %v, expect EINVALID on %s", err, tc.expect)
			}
		})
	}
}

func TestInvalidRequests(t *testing.T) {
	f := mustFixture(t)
	ctx := context.Background()
	emb := axis(dim, 300, map[int]float32{0: 1})
	nan := append([]float32(nil), emb...)
	nan[3] = float32(math.NaN())
	bad := []ragplane.Filter{{Field: "lang", Op: "like", Value: "en"}}
	tests := []struct {
		name   string
		when   func(retrieve.Request) ([]ragplane.SearchHit, error)
		given  retrieve.Request
		expect string
	}{
		{name: "vector top_k 0", when: vec(f), given: retrieve.Request{Embedding: emb}, expect: "top_k"},
		{name: "vector top_k 101", when: vec(f), given: retrieve.Request{Embedding: emb, TopK: 101}, expect: "top_k"},
		{name: "vector ef_search", when: vec(f), given: retrieve.Request{Embedding: emb, TopK: 1, EFSearch: 1001}, expect: "ef_search"},
		{name: "vector ef_search negative", when: vec(f), given: retrieve.Request{Embedding: emb, TopK: 1, EFSearch: -1}, expect: "ef_search"},
		{name: "vector no embedding", when: vec(f), given: retrieve.Request{Query: "refund", TopK: 1}, expect: "embedding"},
		{name: "vector wrong dimension", when: vec(f), given: retrieve.Request{Embedding: []float32{1, 0, 0}, TopK: 1}, expect: "embedding"},
		{name: "vector NaN", when: vec(f), given: retrieve.Request{Embedding: nan, TopK: 1}, expect: "embedding"},
		{name: "vector bad filter", when: vec(f), given: retrieve.Request{Embedding: emb, TopK: 1, Filters: bad}, expect: "filters[0].op"},
		{name: "keyword empty", when: kw(f), given: retrieve.Request{TopK: 1}, expect: "query"},
		{name: "keyword blank", when: kw(f), given: retrieve.Request{Query: " \t\n", TopK: 1}, expect: "query"},
		{name: "keyword too long", when: kw(f), given: retrieve.Request{Query: strings.Repeat("refund ", 600), TopK: 1}, expect: "query"},
		{name: "keyword not utf-8", when: kw(f), given: retrieve.Request{Query: "refund \xff", TopK: 1}, expect: "query"},
		{name: "keyword NUL", when: kw(f), given: retrieve.Request{Query: "refund \x00", TopK: 1}, expect: "query"},
		{name: "keyword bad filter", when: kw(f), given: retrieve.Request{Query: "refund", TopK: 1, Filters: bad}, expect: "filters[0].op"},
		{name: "hybrid no query", when: hyb(f), given: retrieve.Request{Embedding: emb, TopK: 1}, expect: "query"},
		{name: "hybrid no embedding", when: hyb(f), given: retrieve.Request{Query: "refund", TopK: 1}, expect: "embedding"},
		{name: "hybrid wrong dimension", when: hyb(f), given: retrieve.Request{Query: "refund", Embedding: make([]float32, dim+1), TopK: 1}, expect: "embedding"},
		{name: "graph no embedding", when: func(r retrieve.Request) ([]ragplane.SearchHit, error) {
			hits, _, err := retrieve.Graph(ctx, f.db, nil, r)
			return hits, err
		}, given: retrieve.Request{Query: "refund", TopK: 1}, expect: "embedding"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hits, err := tc.when(tc.given)
			if ragplane.ErrorCode(err) != ragplane.EINVALID || ragplane.ErrorField(err) != tc.expect {
				t.Errorf("got %d hits, %v; expect EINVALID on %s", len(hits), err, tc.expect)
			}
		})
	}
}

func TestInjectionIsHarmless(t *testing.T) {
	f := mustFixture(t)
	ctx := context.Background()
	count := func() (docs, chunks int) {
		t.Helper()
		if err := f.db.QueryRow(ctx, "select (select count(*) from documents), (select count(*) from chunks)").Scan(&docs, &chunks); err != nil {
			t.Fatal(err)
		}
		return
	}
	docs, chunks := count()
	tests := []struct {
		name   string
		given  string
		expect []string // keyword hits by chunk name, sorted; nil: not checked
	}{
		{name: "drop table", given: "'; drop table chunks; --", expect: []string{}},
		{name: "or 1=1", given: "refund' OR '1'='1", expect: []string{"refund", "rembours"}},
		{name: "delete", given: `") or true; delete from documents; --`, expect: []string{}},
		{name: "placeholders", given: "$1 $2 ::jsonb"}, // OR fallback may match numbers; only harmlessness is checked
		{name: "unterminated phrase", given: `"unterminated phrase`, expect: []string{}},
		{name: "backslashes", given: `\\ \' \"`},
		{name: "tsquery operators", given: "refund & | ! :* <-> ()", expect: []string{"refund", "rembours"}},
		{name: "markup", given: "<b>refund</b><script>alert(1)</script>"},
		{name: "negation only", given: "-refund -billing"},
		{name: "or only", given: "or or or", expect: []string{}},
	}
	for _, tc := range tests {
		req := retrieve.Request{Query: tc.given, Embedding: axis(dim, 400, map[int]float32{0: 1}), TopK: 100}
		for name, search := range map[string]func(retrieve.Request) ([]ragplane.SearchHit, error){"keyword": kw(f), "hybrid": hyb(f)} {
			hits, err := search(req)
			if err != nil {
				t.Errorf("%s %s: %v", name, tc.name, err)
				continue
			}
			checkHits(t, f, hits)
			if name == "keyword" && tc.expect != nil {
				got := f.names(hits)
				slices.Sort(got)
				if !slices.Equal(got, tc.expect) && !(len(got) == 0 && len(tc.expect) == 0) {
					t.Errorf("keyword %s: got %v, expect %v", tc.name, got, tc.expect)
				}
			}
		}
	}
	if d, c := count(); d != docs || c != chunks {
		t.Errorf("rows changed: documents %d -> %d, chunks %d -> %d", docs, d, chunks, c)
	}
}

func TestSearchSettings(t *testing.T) {
	f := mustFixture(t)
	ctx := context.Background()
	emb := axis(dim, 500, map[int]float32{0: 1})
	filter := []ragplane.Filter{{Field: "lang", Op: "eq", Value: "en"}}
	tests := []struct {
		name            string
		when            func(retrieve.DB) error
		expectEF        string
		expectIterative string
		expectQueries   int // vector queries
	}{
		{name: "vector ef_search", when: func(db retrieve.DB) error {
			_, err := retrieve.Vector(ctx, db, retrieve.Request{Embedding: emb, TopK: 5, EFSearch: 123})
			return err
		}, expectEF: "123", expectIterative: "relaxed_order", expectQueries: 1},
		{name: "vector default", when: func(db retrieve.DB) error {
			_, err := retrieve.Vector(ctx, db, retrieve.Request{Embedding: emb, TopK: 5})
			return err
		}, expectEF: "100", expectIterative: "relaxed_order", expectQueries: 1},
		{name: "vector ef_search at least top_k", when: func(db retrieve.DB) error {
			_, err := retrieve.Vector(ctx, db, retrieve.Request{Embedding: emb, TopK: 50, EFSearch: 10})
			return err
		}, expectEF: "50", expectIterative: "relaxed_order", expectQueries: 1},
		{name: "vector filtered is iterative", when: func(db retrieve.DB) error {
			_, err := retrieve.Vector(ctx, db, retrieve.Request{Embedding: emb, TopK: 5, EFSearch: 40, Filters: filter})
			return err
		}, expectEF: "40", expectIterative: "relaxed_order", expectQueries: 1},
		{name: "hybrid ef_search covers candidates", when: func(db retrieve.DB) error {
			_, err := retrieve.Hybrid(ctx, db, retrieve.Request{Query: "refund", Embedding: emb, TopK: 50, EFSearch: 100})
			return err
		}, expectEF: "200", expectIterative: "relaxed_order", expectQueries: 1},
		{name: "hybrid filtered", when: func(db retrieve.DB) error {
			_, err := retrieve.Hybrid(ctx, db, retrieve.Request{Query: "refund", Embedding: emb, TopK: 5, EFSearch: 300, Filters: filter})
			return err
		}, expectEF: "300", expectIterative: "relaxed_order", expectQueries: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := &recordingDB{Pool: f.db}
			if err := tc.when(db); err != nil {
				t.Fatal(err)
			}
			var calls []recordedQuery
			for _, c := range db.recorded() {
				if c.planCacheMode != "force_custom_plan" {
					t.Errorf("plan_cache_mode=%s in %s", c.planCacheMode, c.sql)
				}
				if strings.Contains(c.sql, "<=>") {
					calls = append(calls, c)
				}
			}
			if len(calls) != tc.expectQueries {
				t.Fatalf("%d vector queries, expect %d", len(calls), tc.expectQueries)
			}
			for _, c := range calls {
				if c.efSearch != tc.expectEF || c.iterative != tc.expectIterative || c.planCacheMode != "force_custom_plan" {
					t.Errorf("settings ef_search=%s iterative_scan=%s plan_cache_mode=%s, expect %s, %s, force_custom_plan",
						c.efSearch, c.iterative, c.planCacheMode, tc.expectEF, tc.expectIterative)
				}
			}
		})
	}

	t.Run("settings end with the transaction", func(t *testing.T) {
		conn, err := f.db.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		// Run a search on this very connection, then read the session's settings.
		if _, err := retrieve.Vector(ctx, conn, retrieve.Request{Embedding: emb, TopK: 5, EFSearch: 321, Filters: filter}); err != nil {
			t.Fatal(err)
		}
		var ef, iterative string
		if err := conn.QueryRow(ctx, "select current_setting('hnsw.ef_search'), current_setting('hnsw.iterative_scan')").Scan(&ef, &iterative); err != nil {
			t.Fatal(err)
		}
		if ef == "321" || iterative != "off" {
			t.Errorf("settings leaked to the session: ef_search=%s iterative_scan=%s", ef, iterative)
		}
	})
}

func TestGraph(t *testing.T) {
	f := mustFixture(t)
	ctx := context.Background()
	emb := axis(dim, 600, map[int]float32{2: 1})
	fact := func(text, chunk string) retrieve.GraphFact {
		return retrieve.GraphFact{Fact: text, ChunkID: f.chunks[chunk], DocumentID: f.docs[f.docOf[f.chunks[chunk]]]}
	}
	source := func(entities []string, facts []retrieve.GraphFact) *fakeFacts {
		return &fakeFacts{
			entities: func(_ context.Context, text string, limit int) ([]retrieve.GraphEntity, error) {
				var out []retrieve.GraphEntity
				for _, e := range entities {
					out = append(out, retrieve.GraphEntity{Name: e})
				}
				return out, nil
			},
			facts: func(_ context.Context, names []string, limit int) ([]retrieve.GraphFact, error) {
				if !slices.Equal(names, entities) {
					return nil, errors.New("unexpected names")
				}
				return facts, nil
			},
		}
	}
	four := []retrieve.GraphFact{fact("a", "refund"), fact("b", "release"), fact("c", "rembours"), fact("d", "helm")}
	graphOnly := retrieve.Weights{Graph: 1}
	graphFirst := retrieve.Weights{Keyword: 1, Vector: 1, Graph: 10}
	tests := []struct {
		name           string
		given          retrieve.FactSource
		filters        []ragplane.Filter
		weights        retrieve.Weights
		topK           int
		expect         []string // the first hits, in order
		expectFallback bool
		expectFacts    int
	}{
		{name: "ranked by supporting facts", given: source([]string{"Helm", "Operator"}, []retrieve.GraphFact{
			fact("Helm installs the operator", "helm"),
			fact("The operator reconciles tenants", "helm"),
			fact("Helm installs the operator", "helm"), // repeated through the second entity
			fact("Refunds are handled by finance", "refund"),
			{Fact: "dangling", ChunkID: "not-a-uuid"},
			{Fact: "no chunk", DocumentID: f.docs["kube"]},
		}), weights: graphOnly, topK: 5, expect: []string{"helm", "refund"}, expectFacts: 3},
		// Equal support is broken by relevance (the other lists' ranks), never by recency.
		{name: "ties by relevance", given: source([]string{"Ragplane"}, four), weights: graphFirst, topK: 5, expectFacts: 4},
		{name: "filters", given: source([]string{"Ragplane"}, four),
			filters: []ragplane.Filter{{Field: "tags", Op: "contains", Value: []any{"billing"}}}, weights: graphFirst, topK: 5,
			expectFacts: 4},
		{name: "no entity falls back", given: source(nil, nil), topK: 3, expect: []string{"helm"}, expectFallback: true},
		{name: "no facts fall back", given: source([]string{"Nobody"}, nil), topK: 3, expect: []string{"helm"}, expectFallback: true},
		{name: "filtered out falls back", given: source([]string{"Helm"}, []retrieve.GraphFact{fact("a", "helm")}),
			filters: []ragplane.Filter{{Field: "lang", Op: "eq", Value: "fr"}}, topK: 3, expect: []string{"rembours"},
			expectFallback: true, expectFacts: 1},
		{name: "nil source falls back", given: nil, topK: 3, expect: []string{"helm"}, expectFallback: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := retrieve.Request{Query: "How does helm deploy the operator?", Embedding: emb, TopK: tc.topK, Filters: tc.filters, Weights: tc.weights}
			hits, info, err := retrieve.Graph(ctx, f.db, tc.given, req)
			if err != nil {
				t.Fatal(err)
			}
			checkHits(t, f, hits)
			got := f.names(hits)
			if info.Fallback != tc.expectFallback || info.Facts != tc.expectFacts {
				t.Errorf("info %+v, expect fallback %v, %d facts", info, tc.expectFallback, tc.expectFacts)
			}
			// The hybrid lists alone, for comparison.
			base := req
			base.Weights.Graph = 0
			var hybrid []string
			if tc.weights == (retrieve.Weights{}) || base.Weights.Keyword+base.Weights.Vector > 0 {
				if tc.weights == (retrieve.Weights{}) {
					base.Weights = retrieve.Weights{}
				}
				h, err := retrieve.Hybrid(ctx, f.db, base)
				if err != nil {
					t.Fatal(err)
				}
				hybrid = f.names(h)
			}
			if tc.expectFallback {
				// The fallback is exactly Hybrid.
				if !slices.Equal(got, hybrid) {
					t.Errorf("fallback %v, hybrid %v", got, hybrid)
				}
				if len(got) == 0 || got[0] != tc.expect[0] {
					t.Errorf("fallback %v, expect %v first", got, tc.expect[0])
				}
				return
			}
			if tc.expect != nil && !slices.Equal(got[:min(len(got), len(tc.expect))], tc.expect) {
				t.Errorf("got %v, expect %v first", got, tc.expect)
			}
			if hybrid != nil {
				// The graph adds, never replaces: as many hits as Hybrid, and the graph's
				// chunks (passing the filters) first, in Hybrid's relative order.
				if len(got) != len(hybrid) {
					t.Errorf("%d hits, hybrid has %d", len(got), len(hybrid))
				}
				var supported []string
				for _, n := range hybrid {
					if slices.Contains([]string{"refund", "release", "rembours", "helm"}, n) {
						supported = append(supported, n)
					}
				}
				if len(supported) == 0 || !slices.Equal(got[:len(supported)], supported) {
					t.Errorf("got %v, expect the graph's chunks first in hybrid's order %v", got, supported)
				}
			}
		})
	}

	t.Run("graph mode fills top_k", func(t *testing.T) {
		req := retrieve.Request{Query: "How does helm deploy the operator?", Embedding: emb, TopK: 6}
		hits, _, err := retrieve.Graph(ctx, f.db, source([]string{"Helm"}, []retrieve.GraphFact{fact("a", "refund")}), req)
		if err != nil {
			t.Fatal(err)
		}
		h, err := retrieve.Hybrid(ctx, f.db, req)
		if err != nil {
			t.Fatal(err)
		}
		if len(hits) != 6 || len(h) != 6 {
			t.Errorf("graph %d hits, hybrid %d, expect 6", len(hits), len(h))
		}
		if pos, hpos := slices.Index(f.names(hits), "refund"), slices.Index(f.names(h), "refund"); hpos >= 0 && pos > hpos || pos < 0 {
			t.Errorf("refund at %d in graph, %d in hybrid: the fact should lift it", pos, hpos)
		}
	})

	t.Run("source errors are returned", func(t *testing.T) {
		src := &fakeFacts{entities: func(context.Context, string, int) ([]retrieve.GraphEntity, error) {
			return nil, ragplane.Errorf(ragplane.EUNAVAILABLE, "graph store down")
		}}
		_, _, err := retrieve.Graph(ctx, f.db, src, retrieve.Request{Query: "helm", Embedding: emb, TopK: 3})
		if ragplane.ErrorCode(err) != ragplane.EUNAVAILABLE {
			t.Errorf("got %v, expect EUNAVAILABLE", err)
		}
	})
}

// fakeFacts is a FactSource of functions.
type fakeFacts struct {
	entities func(ctx context.Context, text string, limit int) ([]retrieve.GraphEntity, error)
	facts    func(ctx context.Context, names []string, limit int) ([]retrieve.GraphFact, error)
}

func (f *fakeFacts) EntitiesInText(ctx context.Context, text string, limit int) ([]retrieve.GraphEntity, error) {
	return f.entities(ctx, text, limit)
}

func (f *fakeFacts) FactsForEntities(ctx context.Context, names []string, limit int) ([]retrieve.GraphFact, error) {
	return f.facts(ctx, names, limit)
}
