package dataplane_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ragplane/ragplane/e2etest"
)

// Responses explain themselves: a value a limit cut down is listed under clamped with the field
// as sent, a retrieval mode that gave way says so under fallback, errors name the field as sent,
// and an answer's sources carry the id its [n] markers cite.
func TestResponsesExplainThemselves(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("acme_corp", "pro", nil)
	c := st.Tenant("acme_corp")
	for _, doc := range []string{
		"Backups are encrypted with AES-256 and kept for thirty days.",
		"Laptops use full-disk encryption. Backups are tested every month.",
	} {
		mustStatus(t, c.Do("POST", "/v1/documents", map[string]any{"content": doc}), http.StatusCreated)
	}

	type clamp struct {
		Field     string `json:"field"`
		Requested any    `json:"requested"`
		Applied   any    `json:"applied"`
		Limit     string `json:"limit"`
	}
	var sr struct {
		Clamped  []clamp `json:"clamped"`
		Fallback *struct {
			Requested, Used, Reason string
		} `json:"fallback"`
	}
	r := c.Do("POST", "/v1/search", map[string]any{"query": "backups", "max_results": 100000})
	if r.Status != http.StatusUnprocessableEntity { // over top_k's own range: an error naming the field as sent
		t.Fatalf("max_results 100000: %d %s", r.Status, r.Body)
	}
	if p := r.Problem(t); p["field"] != "max_results" {
		t.Errorf("problem names %v, want max_results", p["field"])
	}
	c.Do("POST", "/v1/search", map[string]any{"query": "backups", "max_results": 100}).Decode(t, &sr)
	if len(sr.Clamped) != 1 || sr.Clamped[0].Field != "max_results" || sr.Clamped[0].Requested != float64(100) ||
		sr.Clamped[0].Limit != "max_top_k" || sr.Clamped[0].Applied.(float64) >= 100 || sr.Fallback != nil {
		t.Fatalf("clamped %+v fallback %+v, want max_results cut down by max_top_k and no fallback", sr.Clamped, sr.Fallback)
	}
	sr.Clamped = nil
	c.Do("POST", "/v1/search", map[string]any{"query": "backups", "top_k": 2}).Decode(t, &sr)
	if sr.Clamped != nil {
		t.Fatalf("top_k 2 reported clamped: %+v", sr.Clamped)
	}
	c.Do("POST", "/v1/search", map[string]any{"query": "what is the weather tomorrow", "retrieval_mode": "graph"}).Decode(t, &sr)
	if sr.Fallback == nil || sr.Fallback.Requested != "graph" || sr.Fallback.Used != "hybrid" || sr.Fallback.Reason == "" {
		t.Fatalf("graph search naming no entity: fallback %+v, want graph -> hybrid with a reason", sr.Fallback)
	}

	for _, bad := range []struct {
		path  string
		body  map[string]any
		field string
	}{
		{"/v1/query", map[string]any{"query": "backups", "model_tier": "huge"}, "model_tier"},
		{"/v1/search", map[string]any{"query": "backups", "mode": "psychic"}, "mode"},
		{"/v1/search", map[string]any{"query": "backups", "override_config": map[string]any{"top_k": 0}}, "override_config.top_k"},
	} {
		r := c.Do("POST", bad.path, bad.body)
		mustStatus(t, r, http.StatusUnprocessableEntity)
		if p := r.Problem(t); p["field"] != bad.field {
			t.Errorf("%v: problem names %v, want %s", bad.body, p["field"], bad.field)
		}
	}

	// The pro plan's max_model_tier is below large: gpt-4.1 (large) is cut down, and said so.
	var ans struct {
		Answer  string `json:"answer"`
		Sources []struct {
			ID      int    `json:"id"`
			Snippet string `json:"snippet"`
		} `json:"sources"`
		Metadata struct {
			Clamped []clamp `json:"clamped"`
		} `json:"metadata"`
	}
	r = c.Do("POST", "/v1/query", map[string]any{"query": "Are backups encrypted?", "model_tier": "gpt-4.1", "top_k": 2})
	mustStatus(t, r, http.StatusOK)
	r.Decode(t, &ans)
	if len(ans.Sources) == 0 || !strings.Contains(ans.Answer, "[1]") {
		t.Fatalf("answer %q with %d sources", ans.Answer, len(ans.Sources))
	}
	for i, s := range ans.Sources {
		if s.ID != i+1 {
			t.Errorf("source %d has id %d, want %d (the [n] that cites it)", i, s.ID, i+1)
		}
	}
	var tier *clamp
	for i := range ans.Metadata.Clamped {
		if ans.Metadata.Clamped[i].Field == "model_tier" {
			tier = &ans.Metadata.Clamped[i]
		}
	}
	if tier == nil || tier.Requested != "gpt-4.1" || tier.Limit != "max_model_tier" || tier.Applied == "large" {
		t.Fatalf("metadata.clamped %+v, want model_tier gpt-4.1 cut down by max_model_tier", ans.Metadata.Clamped)
	}
}
