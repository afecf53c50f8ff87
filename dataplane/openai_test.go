package dataplane_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane"
	"github.com/ragplane/ragplane/dataplane/graph"
	"github.com/ragplane/ragplane/e2etest"
	"github.com/ragplane/ragplane/internal/openaitest"
)

// The OpenAI-compatible paths through the worker: embeddings, chat answers, streaming, the
// agentic tool loop and provider failures, against the in-repo server that follows OpenAI's API.
func TestOpenAICompatibleProvider(t *testing.T) {
	step := 0
	ai := openaitest.New(t, openaitest.Config{Chat: func(req openaitest.ChatRequest) openaitest.ChatResponse {
		if len(req.Messages) > 0 && req.Messages[0].Content == graph.LLMSystemPrompt {
			if strings.Contains(req.LastMessage().Content, "Globex Inc") {
				return openaitest.ChatResponse{Content: `{"facts": [{"source": "Globex Inc", "source_kind": "organization",
					"target": "SOC 2", "target_kind": "standard", "relation": "audited_against",
					"fact": "Globex Inc complies with SOC 2.", "valid_at": null}]}`}
			}
			return openaitest.ChatResponse{Content: `{"facts": []}`}
		}
		if len(req.Tools) == 0 {
			return openaitest.DefaultChat(req)
		}
		// Agentic: search first, answer once the tool result is back.
		if last := req.LastMessage(); last.Role != "tool" {
			step++
			return openaitest.ChatResponse{ToolCalls: []openaitest.ToolCall{{Type: "function",
				Function: openaitest.FunctionCall{Name: "keyword_search", Arguments: `{"query":"backups encrypted"}`}}}}
		}
		return openaitest.ChatResponse{Content: "Backups are encrypted with AES-256 [1]."}
	}})
	st := e2etest.Start(t, e2etest.Options{Worker: func(c *dataplane.Config) {
		c.OpenAI.BaseURL, c.OpenAI.APIKey = ai.URL, ai.APIKey
	}})
	st.CreateTenant("acme_corp", "enterprise", map[string]any{"embedding_provider": "openai",
		"embedding_model": "text-embedding-3-small", "embedding_dimension": 64, "answer_provider": "openai"})
	c := st.Tenant("acme_corp")
	seed(t, c)
	if n := len(ai.EmbeddingRequests()); n == 0 {
		t.Fatal("ingestion did not call the embeddings API")
	}

	// The tenant has a model, so its graph facts come from the model.
	r := c.Do("GET", "/v1/graph/entities/Globex%20Inc", nil)
	mustStatus(t, r, http.StatusOK)
	if !strings.Contains(string(r.Body), "audited_against") {
		t.Fatalf("the model's facts are not in the graph: %s", r.Body)
	}

	r = c.Do("POST", "/v1/query", map[string]any{"query": "Are backups encrypted?", "retrieval_mode": "hybrid"})
	mustStatus(t, r, http.StatusOK)
	var a ragplane.Answer
	r.Decode(t, &a)
	if a.Answer == "" || a.Metadata.Model == "extractive" || a.Metadata.TokensUsed == 0 || len(a.Sources) == 0 {
		t.Fatalf("answer %+v", a)
	}
	chats := ai.ChatRequests()
	prompt := chats[len(chats)-1]
	all := ""
	for _, m := range prompt.Messages {
		all += m.Role + ": " + m.Content + "\n"
	}
	if !strings.Contains(all, "AES-256") || !strings.Contains(strings.ToLower(all), "<source") {
		t.Fatalf("the retrieved text is not in the prompt as quoted sources:\n%s", all)
	}
	if prompt.MaxTokens == nil && prompt.MaxCompletionTokens == nil {
		t.Fatal("max_tokens not sent")
	}

	// Streaming: deltas, then done.
	r = c.Do("POST", "/v1/query", map[string]any{"query": "Are backups encrypted?", "stream": true})
	mustStatus(t, r, http.StatusOK)
	if n := strings.Count(string(r.Body), "event: delta"); n < 2 || !strings.Contains(string(r.Body), "event: done") {
		t.Fatalf("stream: %s", r.Body)
	}

	// Agentic: the model calls a tool bound to this tenant, then answers citing what it found.
	r = c.Do("POST", "/v1/query", map[string]any{"query": "Are backups encrypted?", "retrieval_mode": "agentic"})
	mustStatus(t, r, http.StatusOK)
	r.Decode(t, &a)
	if step != 1 || !strings.Contains(a.Answer, "AES-256") || len(a.Sources) == 0 || a.Metadata.RetrievalMode != "agentic" {
		t.Fatalf("agentic answer %+v (steps %d)", a, step)
	}
	chats = ai.ChatRequests()
	last := chats[len(chats)-1]
	if tool := last.LastMessage(); tool.Role != "tool" || !strings.Contains(tool.Content, "AES-256") {
		t.Fatalf("tool result sent to the model: %+v", tool)
	}
	for _, tl := range last.Tools {
		if strings.Contains(string(mustMarshal(tl)), "tenant") {
			t.Fatalf("a tool takes a tenant parameter: %s", mustMarshal(tl))
		}
	}

	// Provider failure: 502 naming the provider, nothing stored.
	ai.InjectFault(openaitest.Fault{Path: "/embeddings", Status: 500, Times: -1})
	r = c.Do("POST", "/v1/documents", map[string]any{"content": "A document the provider cannot embed."})
	mustStatus(t, r, http.StatusBadGateway)
	if p := r.Problem(t); !strings.Contains(p["detail"].(string), "openai") || strings.Contains(string(r.Body), ai.APIKey) {
		t.Fatalf("provider failure problem: %s", r.Body)
	}
}
