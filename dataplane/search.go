package dataplane

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/graph"
	"github.com/ragplane/ragplane/dataplane/lang"
	"github.com/ragplane/ragplane/dataplane/prose"
	"github.com/ragplane/ragplane/dataplane/retrieve"
	"github.com/ragplane/ragplane/internal/httpjson"
)

// searchRequest is the body of POST /v1/search. Both seeds' field names are accepted.
type searchRequest struct {
	Query         string             `json:"query"`
	RetrievalMode string             `json:"retrieval_mode"`
	Mode          string             `json:"mode"`
	TopK          *int               `json:"top_k"`
	MaxResults    *int               `json:"max_results"`
	EFSearch      *int               `json:"ef_search"`
	Filters       []ragplane.Filter  `json:"filters"`
	Override      ragplane.Overrides `json:"override_config"`
}

// queryRequest is the body of POST /v1/query.
type queryRequest struct {
	searchRequest
	UseVector *bool  `json:"use_vector"`
	UseGraph  *bool  `json:"use_graph"`
	ModelTier string `json:"model_tier"`
	Stream    bool   `json:"stream"`
}

// overrides folds the request's explicit fields into the request layer of the cascade; explicit
// fields win over override_config.
func (r *searchRequest) overrides() ragplane.Overrides {
	o := ragplane.Overrides{}
	for k, v := range r.Override {
		o[k] = v
	}
	if r.Mode != "" {
		o["retrieval_mode"] = r.Mode
	}
	if r.RetrievalMode != "" {
		o["retrieval_mode"] = r.RetrievalMode
	}
	if r.MaxResults != nil {
		o["top_k"] = int64(*r.MaxResults)
	}
	if r.TopK != nil {
		o["top_k"] = int64(*r.TopK)
	}
	if r.EFSearch != nil {
		o["ef_search"] = int64(*r.EFSearch)
	}
	return o
}

// sentAs names, for each setting the request's fields set, the field the client sent it in
// (errors and clamps name that field, not override_config.<key>). The explicit fields win over
// override_config, as in overrides.
func (r *searchRequest) sentAs() map[string]string {
	sent := map[string]string{}
	for k := range r.Override {
		sent[k] = "override_config." + k
	}
	for _, f := range []struct {
		set        bool
		key, field string
	}{
		{r.Mode != "", "retrieval_mode", "mode"}, {r.RetrievalMode != "", "retrieval_mode", "retrieval_mode"},
		{r.MaxResults != nil, "top_k", "max_results"}, {r.TopK != nil, "top_k", "top_k"},
		{r.EFSearch != nil, "ef_search", "ef_search"},
	} {
		if f.set {
			sent[f.key] = f.field
		}
	}
	return sent
}

// asSent names a request-layer setting's error by the field the client sent it in.
func asSent(err error, sent map[string]string) error {
	var e *ragplane.Error
	if errors.As(err, &e) {
		if key, ok := strings.CutPrefix(e.Field, "override_config."); ok && sent[key] != "" && sent[key] != e.Field {
			c := *e
			c.Field = sent[key]
			return &c
		}
	}
	return err
}

// clamped lists the request's values that a limit cut down (the cascade marks them).
func clamped(cfg *ragplane.Config, request ragplane.Overrides, sent map[string]string) []ragplane.Clamp {
	var out []ragplane.Clamp
	for key, requested := range request {
		src, ok := cfg.SettingSources[key]
		if !ok || !src.Clamped || src.Source != ragplane.LayerRequest {
			continue
		}
		out = append(out, ragplane.Clamp{Field: cmp.Or(sent[key], key), Requested: requested, Applied: src.Value, Limit: ragplane.ClampedBy(key)})
	}
	slices.SortFunc(out, func(a, b ragplane.Clamp) int { return strings.Compare(a.Field, b.Field) })
	return out
}

// answerSources numbers an answer's sources by the [n] the answer cites them with.
func answerSources(hits []ragplane.SearchHit) []ragplane.AnswerSource {
	out := make([]ragplane.AnswerSource, len(hits))
	for i, h := range hits {
		out[i] = ragplane.AnswerSource{ID: i + 1, SearchHit: h}
	}
	return out
}

func (s *Server) checkQuery(q string) error {
	switch {
	case len(q) > s.cfg.MaxQueryBytes:
		return &ragplane.Error{Code: ragplane.ETOOLARGE, Field: "query", Message: fmt.Sprintf("query must be at most %d bytes.", s.cfg.MaxQueryBytes)}
	case !utf8.ValidString(q) || strings.ContainsRune(q, 0):
		return ragplane.FieldErrorf("query", "query must be valid UTF-8 without NUL characters.")
	case strings.TrimSpace(q) == "":
		return ragplane.FieldErrorf("query", "query is required.")
	}
	return nil
}

// retrieval is the outcome of one retrieval.
type retrieval struct {
	hits          []ragplane.SearchHit
	mode          string
	graphFallback bool
	embedTokens   int
}

// fallback reports graph retrieval that added nothing, so that hybrid retrieval's hits were used.
func (r retrieval) fallback() *ragplane.Fallback {
	if !r.graphFallback {
		return nil
	}
	return &ragplane.Fallback{Requested: ragplane.RetrievalGraph, Used: ragplane.RetrievalHybrid,
		Reason: "The question names no entity or fact of the tenant's knowledge graph."}
}

// retrieve runs the tenant's retrieval mode for q.
func (s *Server) retrieve(ctx context.Context, sc *scope, mode, q string, filters []ragplane.Filter) (retrieval, error) {
	start := time.Now()
	set := sc.cfg.Settings
	req := retrieve.Request{Query: q, TopK: set.TopK, EFSearch: set.EFSearch, Filters: filters,
		Weights: retrieve.Weights{Keyword: set.FusionKeywordWeight, Vector: set.FusionVectorWeight, Graph: set.FusionGraphWeight}}
	out := retrieval{mode: mode}
	if mode != ragplane.RetrievalKeyword {
		emb, err := s.providers.embedder(set)
		if err != nil {
			return out, err
		}
		if lb, ok := emb.(languageBound); ok {
			req.VectorConfigs, req.DetectLanguage = lb.Languages(), lang.DetectAmong
		}
		vecs, err := emb.Embed(ctx, []string{q})
		if err != nil {
			return out, err
		}
		req.Embedding = vecs[0]
		out.embedTokens = prose.CountTokens(q)
	}
	var err error
	switch mode {
	case ragplane.RetrievalVector:
		out.hits, err = retrieve.Vector(ctx, sc.pool, req)
	case ragplane.RetrievalKeyword:
		out.hits, err = retrieve.Keyword(ctx, sc.pool, req)
	case ragplane.RetrievalHybrid:
		out.hits, err = retrieve.Hybrid(ctx, sc.pool, req)
	case ragplane.RetrievalGraph:
		var info retrieve.GraphInfo
		out.hits, info, err = retrieve.Graph(ctx, sc.pool, graphFacts{s.graph(sc.pool)}, req)
		out.graphFallback = info.Fallback
	default:
		return out, ragplane.FieldErrorf("retrieval_mode", "retrieval_mode %q is not a search mode.", mode)
	}
	if err != nil {
		return out, dbError(err)
	}
	s.metrics.retrieval.WithLabelValues(s.metrics.tenant(sc.tenant), mode).Observe(time.Since(start).Seconds())
	return out, nil
}

// languageBound is an Embedder that reads only some languages, named by their text-search
// configurations (dataplane/lang): hybrid and graph retrieval fuse its ranking only for chunks in
// those (retrieve.Request.VectorConfigs), so text it cannot read gets keyword ranking alone.
type languageBound interface {
	Languages() []string
}

// search answers POST /v1/search with ranked chunks.
func (s *Server) search(c echo.Context) error {
	body, err := httpjson.ReadBody(c)
	if err != nil {
		return err
	}
	var req searchRequest
	if err := httpjson.Decode(c, body, &req); err != nil {
		return err
	}
	if err := s.checkQuery(req.Query); err != nil {
		return err
	}
	if err := retrieve.ValidateFilters(req.Filters); err != nil {
		return err
	}
	ctx := c.Request().Context()
	o, sent := req.overrides(), req.sentAs()
	sc, err := s.open(ctx, o)
	if err != nil {
		return asSent(err, sent)
	}
	defer sc.release()
	mode := sc.cfg.Settings.RetrievalMode
	if mode == ragplane.RetrievalAgentic {
		return ragplane.FieldErrorf("retrieval_mode", "agentic is a query mode: use POST /v1/query.")
	}
	if mode != ragplane.RetrievalKeyword {
		if err := s.checkPaidEmbeddings(ctx, sc); err != nil {
			return err
		}
	}
	r, err := s.retrieve(ctx, sc, mode, req.Query, req.Filters)
	if err != nil {
		return err
	}
	rec := usageOf(c)
	rec.mode, rec.embedding = mode, r.embedTokens
	if r.hits == nil {
		r.hits = []ragplane.SearchHit{}
	}
	out := map[string]any{"results": r.hits, "retrieval_mode": mode, "graph_fallback": r.graphFallback,
		"config_version": sc.rt.Tenant.ConfigVersion}
	if cl := clamped(sc.cfg, o, sent); len(cl) > 0 {
		out["clamped"] = cl
	}
	if fb := r.fallback(); fb != nil {
		out["fallback"] = fb
	}
	return c.JSON(http.StatusOK, out)
}

// graphFacts adapts the graph store to what graph retrieval needs.
type graphFacts struct{ store graph.Store }

func (g graphFacts) EntitiesInText(ctx context.Context, text string, limit int) ([]retrieve.GraphEntity, error) {
	es, err := g.store.EntitiesInText(ctx, text, limit)
	out := make([]retrieve.GraphEntity, len(es))
	for i, e := range es {
		out[i] = retrieve.GraphEntity{Name: e.Name}
	}
	return out, err
}

func (g graphFacts) FactsForEntities(ctx context.Context, names []string, limit int) ([]retrieve.GraphFact, error) {
	rs, err := g.store.FactsForEntities(ctx, names, limit)
	out := make([]retrieve.GraphFact, len(rs))
	for i, r := range rs {
		out[i] = retrieve.GraphFact{Fact: r.Fact, ChunkID: r.ChunkID, DocumentID: r.DocumentID}
	}
	return out, err
}

// toolResult formats hits for a model, numbering them after the sources it has already seen.
func toolResult(hits []ragplane.SearchHit, sources *[]ragplane.SearchHit) string {
	if len(hits) == 0 {
		return "no results"
	}
	var b strings.Builder
	for _, h := range hits {
		*sources = append(*sources, h)
		fmt.Fprintf(&b, "[%d] %s (document %s): %s\n", len(*sources), h.Title, h.DocumentID, h.Content)
	}
	return b.String()
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
