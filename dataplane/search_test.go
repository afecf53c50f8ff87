package dataplane_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/e2etest"
)

var corpus = []map[string]any{
	{"title": "Access control", "source": "access.md", "metadata": map[string]any{"team": "security", "year": 2024},
		"content": "Acme Corp requires multi-factor authentication for every administrator account. Passwords must be rotated every 90 days."},
	{"title": "Retention", "source": "retention.md", "metadata": map[string]any{"team": "legal", "year": 2023},
		"content": "Customer records are retained for seven years and then deleted. Backups are encrypted with AES-256."},
	{"title": "Vendors", "source": "vendors.md", "metadata": map[string]any{"team": "procurement", "tags": []string{"vendor", "risk"}},
		"content": "Globex Inc supplies the payroll system. Globex Inc complies with SOC 2. Vendors are assessed every year by the risk office."},
}

func seed(t *testing.T, c *e2etest.Client) map[string]string {
	t.Helper()
	ids := map[string]string{}
	for _, d := range corpus {
		r := c.Do("POST", "/v1/documents", d)
		mustStatus(t, r, http.StatusCreated)
		var dr docResp
		r.Decode(t, &dr)
		ids[d["title"].(string)] = dr.ID
	}
	return ids
}

func TestSearchModesAndFilters(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("acme_corp", "pro", nil)
	c := st.Tenant("acme_corp")
	ids := seed(t, c)
	tests := []struct {
		name    string
		given   map[string]any
		expect  string // title of the first hit
		minHits int
	}{
		{name: "vector", given: map[string]any{"query": "how often must passwords be rotated", "retrieval_mode": "vector"}, expect: "Access control"},
		{name: "keyword", given: map[string]any{"query": "backups encrypted", "retrieval_mode": "keyword"}, expect: "Retention"},
		{name: "hybrid", given: map[string]any{"query": "customer records retained seven years", "retrieval_mode": "hybrid"}, expect: "Retention"},
		{name: "graph", given: map[string]any{"query": "What does Globex Inc comply with?", "retrieval_mode": "graph"}, expect: "Vendors"},
		{name: "seed mode field", given: map[string]any{"query": "payroll system supplier", "mode": "keyword"}, expect: "Vendors"},
		{name: "filter eq", given: map[string]any{"query": "encrypted", "retrieval_mode": "hybrid",
			"filters": []any{map[string]any{"field": "team", "op": "eq", "value": "legal"}}}, expect: "Retention"},
		{name: "filter in", given: map[string]any{"query": "system", "retrieval_mode": "hybrid",
			"filters": []any{map[string]any{"field": "team", "op": "in", "value": []string{"procurement", "nobody"}}}}, expect: "Vendors"},
		{name: "filter contains", given: map[string]any{"query": "assessed", "retrieval_mode": "vector",
			"filters": []any{map[string]any{"field": "tags", "op": "contains", "value": []string{"risk"}}}}, expect: "Vendors"},
		{name: "filter exists", given: map[string]any{"query": "records", "retrieval_mode": "vector",
			"filters": []any{map[string]any{"field": "year", "op": "exists", "value": true}}}, minHits: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.Do("POST", "/v1/search", tt.given)
			mustStatus(t, r, http.StatusOK)
			var sr searchResp
			r.Decode(t, &sr)
			if len(sr.Results) == 0 || len(sr.Results) < tt.minHits {
				t.Fatalf("%d results: %s", len(sr.Results), r.Body)
			}
			if tt.expect != "" && sr.Results[0].Title != tt.expect {
				t.Fatalf("first hit %q, want %q: %s", sr.Results[0].Title, tt.expect, r.Body)
			}
			for _, h := range sr.Results {
				if h.ChunkID == "" || h.DocumentID == "" || h.Snippet == "" || h.Source == "" {
					t.Fatalf("incomplete hit %+v", h)
				}
				if f, ok := tt.given["filters"]; ok && strings.Contains(strings.ToLower(tt.name), "eq") && h.DocumentID != ids["Retention"] {
					t.Fatalf("filter %v let through %s", f, h.Title)
				}
			}
		})
	}
	// top_k is clamped by the plan's max_top_k (pro: 50) and respected.
	r := c.Do("POST", "/v1/search", map[string]any{"query": "the", "retrieval_mode": "vector", "top_k": 1})
	var sr searchResp
	r.Decode(t, &sr)
	if len(sr.Results) != 1 {
		t.Fatalf("top_k 1 gave %d results", len(sr.Results))
	}
	// Graph API.
	r = c.Do("GET", "/v1/graph/entities/Globex%20Inc", nil)
	mustStatus(t, r, http.StatusOK)
	if !strings.Contains(string(r.Body), "SOC 2") {
		t.Fatalf("Globex relations lack SOC 2: %s", r.Body)
	}
	mustStatus(t, c.Do("GET", "/v1/graph/entities/Globex%20Inc/timeline", nil), http.StatusOK)
	mustStatus(t, c.Do("GET", "/v1/graph/entities/Nobody%20Ltd", nil), http.StatusNotFound)
}

var citation = regexp.MustCompile(`\[(\d+)\]`)

func TestQueryExtractiveWithCitations(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("acme_corp", "enterprise", nil)
	c := st.Tenant("acme_corp")
	seed(t, c)
	for _, mode := range []string{"vector", "keyword", "hybrid", "graph"} {
		r := c.Do("POST", "/v1/query", map[string]any{"query": "How long are customer records retained?", "retrieval_mode": mode})
		mustStatus(t, r, http.StatusOK)
		var a ragplane.Answer
		r.Decode(t, &a)
		if !strings.Contains(a.Answer, "seven years") {
			t.Fatalf("%s: answer %q lacks the fact", mode, a.Answer)
		}
		m := citation.FindAllStringSubmatch(a.Answer, -1)
		if len(m) == 0 {
			t.Fatalf("%s: answer %q cites nothing", mode, a.Answer)
		}
		for _, cm := range m {
			n := int(cm[1][0] - '0')
			if n < 1 || n > len(a.Sources) {
				t.Fatalf("%s: citation [%d] with %d sources", mode, n, len(a.Sources))
			}
		}
		md := a.Metadata
		if md.TenantID != "acme_corp" || md.RetrievalMode != mode || md.Model != "extractive" || md.ConfigVersion == 0 {
			t.Fatalf("%s: metadata %+v", mode, md)
		}
	}
	// graph_fallback: /v1/query reports it as /v1/search does.
	for _, tc := range []struct {
		query    string
		fallback bool
	}{{"What does Globex Inc comply with?", false}, {"How long are customer records retained?", true}} {
		r := c.Do("POST", "/v1/query", map[string]any{"query": tc.query, "retrieval_mode": "graph"})
		mustStatus(t, r, http.StatusOK)
		var a ragplane.Answer
		r.Decode(t, &a)
		r = c.Do("POST", "/v1/search", map[string]any{"query": tc.query, "retrieval_mode": "graph"})
		mustStatus(t, r, http.StatusOK)
		var sr struct {
			GraphFallback bool `json:"graph_fallback"`
		}
		r.Decode(t, &sr)
		if a.Metadata.GraphFallback != tc.fallback || sr.GraphFallback != tc.fallback {
			t.Fatalf("%q: graph_fallback %v in /v1/query, %v in /v1/search, want %v", tc.query, a.Metadata.GraphFallback, sr.GraphFallback, tc.fallback)
		}
	}
	// The deployment guide's flags.
	r := c.Do("POST", "/v1/query", map[string]any{"query": "Who supplies payroll?", "use_vector": false, "use_graph": true, "max_results": 3})
	mustStatus(t, r, http.StatusOK)
	var a ragplane.Answer
	r.Decode(t, &a)
	if a.Metadata.RetrievalMode != "graph" || len(a.Sources) > 3 {
		t.Fatalf("seed flags: %+v", a.Metadata)
	}
	// Streaming without a model: a delta, then done with the whole answer.
	r = c.Do("POST", "/v1/query", map[string]any{"query": "Are backups encrypted?", "stream": true})
	mustStatus(t, r, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("stream Content-Type %q", ct)
	}
	var events []string
	sc := bufio.NewScanner(strings.NewReader(string(r.Body)))
	for sc.Scan() {
		if after, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			events = append(events, after)
		}
	}
	if strings.Join(events, ",") != "delta,done" || !strings.Contains(string(r.Body), "AES-256") {
		t.Fatalf("stream events %v: %s", events, r.Body)
	}
}

func regexpFind(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }

func mustMarshal(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
