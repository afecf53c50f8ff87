package dataplane_test

import (
	"net/http"
	"testing"

	"github.com/ragplane/ragplane/e2etest"
)

// A tenant writing in three languages, with no language setting: each document's language is
// detected, and each is found by keyword and by hybrid search in its own language.
func TestDocumentsInTwoLanguages(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	// The default embedder, English-only: hybrid search must not let it rank the other languages.
	st.CreateTenant("bilingual", "pro", map[string]any{"embedding_model": "use-lite-512", "embedding_dimension": 512})
	c := st.Tenant("bilingual")
	docs := map[string]map[string]any{
		"english": {"title": "Whale migration", "content": "Humpback whales migrate thousands of kilometres every year between their feeding grounds and the warm waters where they breed."},
		"french":  {"title": "Migration des baleines", "content": "Les baleines à bosse migrent chaque année sur des milliers de kilomètres entre leurs zones d'alimentation et les eaux chaudes où elles se reproduisent."},
		"german":  {"title": "Brotbacken", "content": "Der Bäcker knetet den Teig am frühen Morgen und backt frisches Brot für die Kunden des kleinen Dorfes."},
	}
	ids := map[string]string{}
	for language, d := range docs {
		r := c.Do("POST", "/v1/documents", d)
		mustStatus(t, r, http.StatusCreated)
		var out struct {
			ID       string `json:"id"`
			Language string `json:"language"`
		}
		r.Decode(t, &out)
		if out.Language != language {
			t.Errorf("%s document detected as %q", language, out.Language)
		}
		ids[language] = out.ID
	}
	for _, tc := range []struct{ query, want string }{
		{"where do humpback whales breed", "english"},
		{"où les baleines se reproduisent-elles", "french"},
		{"wann backt der Bäcker das Brot", "german"},
	} {
		for _, mode := range []string{"keyword", "hybrid"} {
			r := c.Do("POST", "/v1/search", map[string]any{"query": tc.query, "retrieval_mode": mode, "top_k": 3})
			mustStatus(t, r, http.StatusOK)
			var sr searchResp
			r.Decode(t, &sr)
			if len(sr.Results) == 0 || sr.Results[0].DocumentID != ids[tc.want] {
				t.Errorf("%s %q: first hit %+v, want the %s document", mode, tc.query, sr.Results, tc.want)
			}
		}
	}
}
