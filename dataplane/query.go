package dataplane

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/answer"
	chat "github.com/ragplane/ragplane/dataplane/answer/openai"
	"github.com/ragplane/ragplane/dataplane/prose"
	"github.com/ragplane/ragplane/dataplane/retrieve"
	"github.com/ragplane/ragplane/internal/httpjson"
)

// maxAgentSteps bounds the agentic tool-calling loop.
const maxAgentSteps = 6

// query answers POST /v1/query: retrieval by the tenant's settings, then an answer that cites its
// sources, as JSON or (stream: true) as server-sent events. With an Idempotency-Key the answer is
// recorded (docstore.AnswerTTL) and a retry of the same request gets it again (see replayAnswer).
func (s *Server) query(c echo.Context) error {
	start := time.Now()
	if err := checkIdempotencyKey(c); err != nil {
		return err
	}
	body, err := httpjson.ReadBody(c)
	if err != nil {
		return err
	}
	var req queryRequest
	if err := httpjson.Decode(c, body, &req); err != nil {
		return err
	}
	if err := s.checkQuery(req.Query); err != nil {
		return err
	}
	o, sent := req.overrides(), req.sentAs()
	if req.ModelTier != "" {
		o["model_tier"], sent["model_tier"] = req.ModelTier, "model_tier"
	}
	if _, set := o["retrieval_mode"]; !set && (req.UseVector != nil || req.UseGraph != nil) {
		// The deployment guide's flags: vector alone, graph alone, or both (hybrid).
		v, g := req.UseVector == nil || *req.UseVector, req.UseGraph != nil && *req.UseGraph
		switch {
		case g && !v:
			o["retrieval_mode"] = ragplane.RetrievalGraph
		case v && !g:
			o["retrieval_mode"] = ragplane.RetrievalVector
		case !v && !g:
			return ragplane.FieldErrorf("use_vector", "use_vector and use_graph cannot both be false.")
		default:
			o["retrieval_mode"] = ragplane.RetrievalHybrid
		}
		sent["retrieval_mode"] = "use_vector"
	}
	ctx := c.Request().Context()
	if err := retrieve.ValidateFilters(req.Filters); err != nil {
		return err
	}
	sc, err := s.open(ctx, o)
	if err != nil {
		return asSent(err, sent)
	}
	defer sc.release()
	// A retry of a request already answered gets its answer before anything else: no retrieval,
	// no model call, nothing billed, and not refused by a quota used up since.
	idem := idempotency{key: c.Request().Header.Get("Idempotency-Key"), hash: sha256.Sum256(body)}
	if idem.key != "" {
		stored, found, err := s.docs(sc).StoredAnswer(ctx, idem.key, idem.hash[:])
		if err != nil {
			return err
		}
		if found {
			return replayAnswer(c, req.Stream, stored)
		}
	}
	// A tenant already over its monthly tokens is refused here, from a cached count, before any
	// retrieval; a query that calls a model then reserves its tokens in the catalog (reserve.go).
	if err := s.checkMonthlyTokens(ctx, sc); err != nil {
		return err
	}
	set := sc.cfg.Settings
	areq := answer.Request{Query: req.Query, MaxTokens: set.MaxTokensPerQuery, Temperature: set.Temperature, ModelTier: set.ModelTier}
	meta := ragplane.AnswerMetadata{TenantID: sc.tenant, RetrievalMode: set.RetrievalMode, ConfigVersion: sc.rt.Tenant.ConfigVersion,
		Clamped: clamped(sc.cfg, o, sent)}

	var res answer.Result
	var sources []ragplane.SearchHit
	embedTokens := 0
	if set.RetrievalMode == ragplane.RetrievalAgentic {
		model, err := s.providers.chat(set)
		if err != nil {
			return ragplane.FieldErrorf("retrieval_mode", "agentic retrieval needs a model: set answer_provider to openai on a worker with an OpenAI-compatible provider configured.")
		}
		hold, err := s.reserveTokens(ctx, sc, agentEstimate(areq, maxAgentSteps))
		if err != nil {
			return err
		}
		rec := usageOf(c)
		rec.id = hold.id
		defer func() { hold.settle(rec.tokens()) }()
		res, err = model.RunAgent(ctx, areq, s.tools(sc, req.Filters, &sources), maxAgentSteps)
		if err != nil {
			return err
		}
	} else {
		r, err := s.retrieve(ctx, sc, set.RetrievalMode, req.Query, req.Filters)
		if err != nil {
			return err
		}
		sources, embedTokens = r.hits, r.embedTokens
		meta.GraphFallback, meta.Fallback = r.graphFallback, r.fallback()
		areq.Sources = r.hits
		rec := usageOf(c)
		if set.AnswerProvider == "openai" && len(areq.Sources) > 0 {
			// The model will be called: hold its tokens until the answer or stream has ended,
			// then settle to what the usage record bills (nothing when the call failed).
			hold, err := s.reserveTokens(ctx, sc, answerEstimate(areq, embedTokens))
			if err != nil {
				return err
			}
			rec.id = hold.id
			defer func() { hold.settle(rec.tokens()) }()
		}
		if req.Stream {
			// A stream's headers go out before its tokens are known: its usage record is
			// written when it ends or is cut off (stream).
			rec.mode, rec.embedding, rec.deferred = set.RetrievalMode, embedTokens, true
			return s.stream(c, sc, areq, meta, start, idem)
		}
		if res, err = s.answer(ctx, set, areq); err != nil {
			return err
		}
	}
	res.Answer, meta.Sanitized = s.sanitizeAnswer(sc, res.Answer)
	meta.Model = res.Model
	meta.TokensUsed = res.PromptTokens + res.CompletionTokens
	meta.LatencyMS = time.Since(start).Milliseconds()
	out, err := json.Marshal(ragplane.Answer{Answer: res.Answer, Sources: answerSources(sources), Metadata: meta})
	if err != nil {
		return err
	}
	if idem.key != "" {
		stored, won, err := s.docs(sc).StoreAnswer(ctx, idem.key, idem.hash[:], out)
		switch {
		case ragplane.ErrorCode(err) == ragplane.ECONFLICT:
			return err // a racing request with another body took the key; this one is not billed
		case err != nil:
			// The answer is good and paid for; a retry will pay again, which is better than
			// failing a request whose model call succeeded.
			s.log.Warn("query answer not recorded for its Idempotency-Key", "tenant_id", sc.tenant, "error", ragplane.ErrorMessage(err))
		case !won:
			// Two first requests with one key raced and the other recorded its answer first:
			// this one answers that and bills nothing, so the tenant pays once (the platform
			// pays for the second model call).
			return replayAnswer(c, false, stored)
		}
	}
	s.countTokens(sc.tenant, res, embedTokens)
	rec := usageOf(c)
	rec.mode, rec.model, rec.prompt, rec.completion, rec.embedding = set.RetrievalMode, res.Model, res.PromptTokens, res.CompletionTokens, embedTokens
	return c.JSONBlob(http.StatusOK, out)
}

// idempotency is a request's Idempotency-Key (empty: none) and the hash of its body.
type idempotency struct {
	key  string
	hash [sha256.Size]byte
}

// replayAnswer answers with a recorded query response, marked Idempotent-Replayed. A streamed
// query's retry is a stream too, of the same events a client acts on: the whole answer in one
// "delta", then the recorded "done" event. Its usage record holds no tokens.
func replayAnswer(c echo.Context, stream bool, body []byte) error {
	c.Response().Header().Set("Idempotent-Replayed", "true")
	if !stream {
		return c.JSONBlob(http.StatusOK, body)
	}
	var a struct {
		Answer string `json:"answer"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return err
	}
	w := startEvents(c)
	if err := sendEvent(w, "delta", []byte(mustJSON(map[string]string{"text": a.Answer}))); err != nil {
		return nil // the client went away
	}
	_ = sendEvent(w, "done", body)
	return nil
}

// startEvents sends the headers of a server-sent event stream.
func startEvents(c echo.Context) *echo.Response {
	w := c.Response()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	return w
}

// sendEvent sends one event whose data is data (JSON on one line) and flushes it.
func sendEvent(w *echo.Response, event string, data []byte) error {
	if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil {
		return err
	}
	w.Flush()
	return nil
}

func (s *Server) countTokens(tenant ragplane.TenantID, res answer.Result, embedding int) {
	label := s.metrics.tenant(tenant)
	s.metrics.tokens.WithLabelValues(label, "prompt").Add(float64(res.PromptTokens))
	s.metrics.tokens.WithLabelValues(label, "completion").Add(float64(res.CompletionTokens))
	s.metrics.tokens.WithLabelValues(label, "embedding").Add(float64(embedding))
}

// answer writes the answer with the tenant's answerer.
func (s *Server) answer(ctx context.Context, set ragplane.Settings, req answer.Request) (answer.Result, error) {
	if set.AnswerProvider == "openai" {
		model, err := s.providers.chat(set)
		if err != nil {
			return answer.Result{}, err
		}
		return model.Answer(ctx, req)
	}
	return answer.Extractive{}.Answer(ctx, req)
}

// stream sends the answer as server-sent events: "delta" events with text as it is written, then
// one "done" event with the whole answer, its sources and metadata. A client that goes away
// cancels the model call. With an Idempotency-Key, a stream that reached its "done" event is
// recorded for replay; one cut short is not, and its retry is answered anew. The stream's usage
// record (deferred) is written when it ends, with the model's tokens: the provider's count, or
// for a stream cut off before the provider sent one, the prompt and the text received so far.
func (s *Server) stream(c echo.Context, sc *scope, req answer.Request, meta ragplane.AnswerMetadata, start time.Time, idem idempotency) error {
	rec := usageOf(c)
	w := startEvents(c)
	defer rec.finish()
	send := func(event string, v any) error { return sendEvent(w, event, []byte(mustJSON(v))) }
	ctx := c.Request().Context()
	var res answer.Result
	var err error
	// Deltas are sanitised as they come: text that may be the start of a link is held back
	// until it is decided, and the deltas add up to the sanitised answer of the "done" event.
	clean := linkPolicy(sc.cfg.Settings).Stream()
	sendClean := func(text string) error {
		if text == "" {
			return nil
		}
		return send("delta", map[string]string{"text": text})
	}
	if sc.cfg.Settings.AnswerProvider == "openai" {
		var model *chat.Client
		if model, err = s.providers.chat(sc.cfg.Settings); err == nil {
			res, err = model.Stream(ctx, req, func(delta string) error { return sendClean(clean.Write(delta)) })
		}
	} else {
		if res, err = (answer.Extractive{}).Answer(ctx, req); err == nil {
			err = sendClean(clean.Write(res.Answer))
		}
	}
	if err == nil {
		err = sendClean(clean.Close())
	}
	if sc.cfg.Settings.AnswerProvider == "openai" && len(req.Sources) > 0 && res.PromptTokens == 0 && res.CompletionTokens == 0 && res.Answer != "" {
		// Cut off (the client gone, an idle timeout) or failed before the usage chunk: the model
		// was sent the prompt and wrote what arrived.
		res.PromptTokens, res.CompletionTokens = countPrompt(req), prose.CountTokens(res.Answer)
	}
	rec.model, rec.prompt, rec.completion = res.Model, res.PromptTokens, res.CompletionTokens
	s.countTokens(sc.tenant, res, rec.embedding)
	if err != nil {
		// Headers are gone: the error travels as an event in the problem shape.
		_ = send("error", map[string]string{"code": ragplane.ErrorCode(err), "detail": ragplane.ErrorMessage(err)})
		return nil
	}
	res.Answer, meta.Sanitized = s.sanitizeAnswer(sc, res.Answer)
	meta.Model = res.Model
	meta.TokensUsed = res.PromptTokens + res.CompletionTokens
	meta.LatencyMS = time.Since(start).Milliseconds()
	done := []byte(mustJSON(ragplane.Answer{Answer: res.Answer, Sources: answerSources(req.Sources), Metadata: meta}))
	if err := sendEvent(w, "done", done); err != nil || idem.key == "" {
		return err
	}
	// The stream is already sent: a racing request that recorded the key first changes nothing
	// here, and a failure to record only means a retry is answered anew.
	if _, _, err := s.docs(sc).StoreAnswer(ctx, idem.key, idem.hash[:], done); err != nil {
		s.log.Warn("streamed answer not recorded for its Idempotency-Key", "tenant_id", sc.tenant, "error", ragplane.ErrorMessage(err))
	}
	return nil
}

// tools are the agent's tools, every one bound to the caller's tenant: none takes a tenant.
func (s *Server) tools(sc *scope, filters []ragplane.Filter, sources *[]ragplane.SearchHit) []chat.Tool {
	queryParams := map[string]any{"type": "object", "properties": map[string]any{
		"query": map[string]any{"type": "string", "description": "what to look for"}}, "required": []string{"query"}}
	nameParams := map[string]any{"type": "object", "properties": map[string]any{
		"name": map[string]any{"type": "string", "description": "an entity name"}}, "required": []string{"name"}}
	search := func(mode string) func(context.Context, json.RawMessage) (string, error) {
		return func(ctx context.Context, args json.RawMessage) (string, error) {
			var a struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(args, &a); err != nil || s.checkQuery(a.Query) != nil {
				return "", fmt.Errorf("a non-empty query string is required")
			}
			r, err := s.retrieve(ctx, sc, mode, a.Query, filters)
			if err != nil {
				return "", err
			}
			return toolResult(r.hits, sources), nil
		}
	}
	g, docs := s.graph(sc.pool), s.docs(sc)
	return []chat.Tool{
		{Name: "vector_search", Description: "Semantic search over the documents.", Parameters: queryParams, Call: search(ragplane.RetrievalVector)},
		{Name: "keyword_search", Description: "Full-text keyword search over the documents.", Parameters: queryParams, Call: search(ragplane.RetrievalKeyword)},
		{Name: "graph_search", Description: "Search through the knowledge graph of entities and facts.", Parameters: queryParams, Call: search(ragplane.RetrievalGraph)},
		{Name: "get_document", Description: "Read one document by id.", Parameters: map[string]any{"type": "object",
			"properties": map[string]any{"document_id": map[string]any{"type": "string"}}, "required": []string{"document_id"}},
			Call: func(ctx context.Context, args json.RawMessage) (string, error) {
				var a struct {
					ID string `json:"document_id"`
				}
				if err := json.Unmarshal(args, &a); err != nil {
					return "", err
				}
				d, err := docs.Excerpt(ctx, a.ID, 20000)
				if ragplane.ErrorCode(err) == ragplane.ENOTFOUND {
					return "no such document", nil
				} else if err != nil {
					return "", err
				}
				return fmt.Sprintf("%s (source %s):\n%s", d.Title, d.Source, d.Content), nil
			}},
		{Name: "list_documents", Description: "List the most recent documents.", Parameters: map[string]any{"type": "object", "properties": map[string]any{}},
			Call: func(ctx context.Context, _ json.RawMessage) (string, error) {
				recent, err := docs.Recent(ctx, 50)
				if err != nil {
					return "", err
				}
				out := ""
				for _, d := range recent {
					out += d.ID + "  " + d.Title + "\n"
				}
				return out, nil
			}},
		{Name: "entity_relationships", Description: "Current facts about an entity.", Parameters: nameParams,
			Call: func(ctx context.Context, args json.RawMessage) (string, error) {
				var a struct {
					Name string `json:"name"`
				}
				if err := json.Unmarshal(args, &a); err != nil {
					return "", err
				}
				rs, err := g.EntityRelations(ctx, a.Name, 50)
				if err != nil {
					return ragplane.ErrorMessage(err), nil
				}
				return mustJSON(rs), nil
			}},
		{Name: "entity_timeline", Description: "All facts about an entity over time, including ones no longer valid.", Parameters: nameParams,
			Call: func(ctx context.Context, args json.RawMessage) (string, error) {
				var a struct {
					Name string `json:"name"`
				}
				if err := json.Unmarshal(args, &a); err != nil {
					return "", err
				}
				rs, err := g.EntityTimeline(ctx, a.Name)
				if err != nil {
					return ragplane.ErrorMessage(err), nil
				}
				return mustJSON(rs), nil
			}},
	}
}
