package openai_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/answer"
	"github.com/ragplane/ragplane/dataplane/answer/openai"
	"github.com/ragplane/ragplane/internal/openaitest"
)

var sources = []ragplane.SearchHit{
	{DocumentID: "d1", ChunkID: "c1", Title: "Refunds", Content: "Refunds are issued within 14 days."},
	{DocumentID: "d2", ChunkID: "c2", Title: "Shipping", Content: "Orders ship within two days."},
}

var models = map[string]string{"small": "gpt-4o-mini", "standard": "gpt-4o", "large": "o3"}

func MustNew(tb testing.TB, cfg openai.Config) *openai.Client {
	tb.Helper()
	c, err := openai.New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return c
}

func config(srv *openaitest.Server) openai.Config {
	return openai.Config{BaseURL: srv.URL, APIKey: srv.APIKey, Models: models, Timeout: 5 * time.Second}
}

func request() answer.Request {
	return answer.Request{Query: "How fast are refunds?", Sources: sources, MaxTokens: 200, Temperature: 0.3, ModelTier: "small"}
}

func waitCanceled(tb testing.TB, srv *openaitest.Server) {
	tb.Helper()
	select {
	case <-srv.Canceled():
	case <-time.After(5 * time.Second):
		tb.Fatal("the server did not see the client go away")
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name   string
		given  openai.Config
		expect string
	}{
		{name: "ok", given: openai.Config{Models: models}},
		{name: "no models", given: openai.Config{}, expect: ragplane.EINVALID},
		{name: "empty model", given: openai.Config{Models: map[string]string{"small": ""}}, expect: ragplane.EINVALID},
		{name: "bad base URL", given: openai.Config{Models: models, BaseURL: "localhost:11434"}, expect: ragplane.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := openai.New(tt.given)
			if got := ragplane.ErrorCode(err); got != tt.expect {
				t.Fatalf("code = %q, want %q (%v)", got, tt.expect, err)
			}
		})
	}
}

func TestAnswer(t *testing.T) {
	srv := openaitest.New(t, openaitest.Config{Chat: func(req openaitest.ChatRequest) openaitest.ChatResponse {
		return openaitest.ChatResponse{Content: "Within 14 days [1].", PromptTokens: 120, CompletionTokens: 7}
	}})
	res, err := MustNew(t, config(srv)).Answer(context.Background(), request())
	if err != nil {
		t.Fatalf("Answer: %v", err)
	}
	expect := answer.Result{Answer: "Within 14 days [1].", Model: "gpt-4o-mini", PromptTokens: 120, CompletionTokens: 7}
	if res != expect {
		t.Fatalf("result = %+v, want %+v", res, expect)
	}

	reqs := srv.ChatRequests()
	if len(reqs) != 1 {
		t.Fatalf("server saw %d chat requests", len(reqs))
	}
	got := reqs[0]
	if got.Model != "gpt-4o-mini" || got.Stream || got.Temperature == nil || *got.Temperature != 0.3 {
		t.Errorf("request = %+v", got)
	}
	if got.MaxCompletionTokens == nil || *got.MaxCompletionTokens != 200 || got.MaxTokens != nil {
		t.Errorf("openai should get max_completion_tokens=200: %v %v", got.MaxCompletionTokens, got.MaxTokens)
	}
	want := answer.BuildMessages(request())
	if len(got.Messages) != 2 || got.Messages[0].Role != "system" || got.Messages[0].Content != want[0].Content ||
		got.Messages[1].Role != "user" || got.Messages[1].Content != want[1].Content {
		t.Errorf("messages = %+v", got.Messages)
	}
	if h := srv.Requests()[0].Header.Get("Authorization"); h != "Bearer "+srv.APIKey {
		t.Errorf("Authorization = %q", h)
	}
}

func TestAnswerProviderDifferences(t *testing.T) {
	tests := []struct {
		name                 string
		provider             string
		expectMaxTokens      bool // max_tokens rather than max_completion_tokens
		expectAzureKeyHeader bool
	}{
		{name: "openai", provider: "openai"},
		{name: "azure", provider: "azure", expectAzureKeyHeader: true},
		{name: "vllm", provider: "vllm", expectMaxTokens: true},
		{name: "ollama", provider: "ollama", expectMaxTokens: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := openaitest.New(t, openaitest.Config{})
			cfg := config(srv)
			cfg.Provider = tt.provider
			if tt.provider == "azure" {
				cfg.BaseURL = srv.Origin + "/openai/deployments/chat?api-version=2024-10-21"
			}
			if _, err := MustNew(t, cfg).Answer(context.Background(), request()); err != nil {
				t.Fatalf("Answer: %v", err)
			}
			r := srv.Requests()[0]
			if (r.Chat.MaxTokens != nil) != tt.expectMaxTokens || (r.Chat.MaxCompletionTokens != nil) == tt.expectMaxTokens {
				t.Errorf("max_tokens %v, max_completion_tokens %v", r.Chat.MaxTokens, r.Chat.MaxCompletionTokens)
			}
			if tt.expectAzureKeyHeader {
				if r.Header.Get("api-key") != srv.APIKey || r.Header.Get("Authorization") != "" ||
					r.Path != "/openai/deployments/chat/chat/completions" || r.Query.Get("api-version") != "2024-10-21" {
					t.Errorf("azure request: path %q query %v headers %v", r.Path, r.Query, r.Header)
				}
			}
		})
	}
}

func TestAnswerInvalid(t *testing.T) {
	tests := []struct {
		name  string
		given answer.Request
	}{
		{name: "unknown tier", given: answer.Request{Query: "q", Sources: sources, ModelTier: "huge"}},
		{name: "empty query", given: answer.Request{Query: " ", Sources: sources}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := openaitest.New(t, openaitest.Config{})
			c := MustNew(t, config(srv))
			_, err := c.Answer(context.Background(), tt.given)
			if ragplane.ErrorCode(err) != ragplane.EINVALID {
				t.Fatalf("Answer: code %q (%v)", ragplane.ErrorCode(err), err)
			}
			_, err = c.Stream(context.Background(), tt.given, func(string) error { return nil })
			if ragplane.ErrorCode(err) != ragplane.EINVALID {
				t.Fatalf("Stream: code %q (%v)", ragplane.ErrorCode(err), err)
			}
			_, err = c.RunAgent(context.Background(), tt.given, nil, 3)
			if ragplane.ErrorCode(err) != ragplane.EINVALID {
				t.Fatalf("RunAgent: code %q (%v)", ragplane.ErrorCode(err), err)
			}
			if n := len(srv.Requests()); n != 0 {
				t.Fatalf("server saw %d requests", n)
			}
		})
	}
}

func TestAnswerNoSources(t *testing.T) {
	srv := openaitest.New(t, openaitest.Config{})
	res, err := MustNew(t, config(srv)).Answer(context.Background(), answer.Request{Query: "anything?"})
	if err != nil || res.Answer != answer.NotFound || res.Model != "gpt-4o" {
		t.Fatalf("Answer = %+v, %v", res, err)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Fatalf("server saw %d requests", n)
	}
}

func TestStream(t *testing.T) {
	deltas := []string{"Refunds ", "take ", "up to ", "14 days ", "[1]."}
	srv := openaitest.New(t, openaitest.Config{Chat: func(req openaitest.ChatRequest) openaitest.ChatResponse {
		return openaitest.ChatResponse{Content: strings.Join(deltas, ""), Deltas: deltas, PromptTokens: 90, CompletionTokens: 9}
	}})
	var got []string
	res, err := MustNew(t, config(srv)).Stream(context.Background(), request(), func(d string) error {
		got = append(got, d)
		return nil
	})
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if strings.Join(got, "|") != strings.Join(deltas, "|") {
		t.Fatalf("deltas %q, want %q", got, deltas)
	}
	expect := answer.Result{Answer: "Refunds take up to 14 days [1].", Model: "gpt-4o-mini", PromptTokens: 90, CompletionTokens: 9}
	if res != expect {
		t.Fatalf("result = %+v, want %+v", res, expect)
	}
	r := srv.ChatRequests()[0]
	if !r.Stream || r.StreamOptions == nil || !r.StreamOptions.IncludeUsage {
		t.Fatalf("request did not ask for a stream with usage: %+v", r)
	}
}

func TestStreamStopsWhenOnDeltaFails(t *testing.T) {
	srv := openaitest.New(t, openaitest.Config{})
	stop := errors.New("client went away")
	calls := 0
	_, err := MustNew(t, config(srv)).Stream(context.Background(), request(), func(string) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("Stream = %v after %d calls, want the onDelta error after 1", err, calls)
	}
}

func TestStreamCancel(t *testing.T) {
	srv := openaitest.New(t, openaitest.Config{Chat: func(req openaitest.ChatRequest) openaitest.ChatResponse {
		return openaitest.ChatResponse{Content: strings.Repeat("word ", 100), DeltaDelay: 50 * time.Millisecond}
	}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var deltas int
	start := time.Now()
	_, err := MustNew(t, config(srv)).Stream(ctx, request(), func(string) error {
		if deltas++; deltas == 2 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Stream = %v, want context.Canceled", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Fatalf("Stream took %v to notice the cancellation", elapsed)
	}
	if deltas > 3 {
		t.Fatalf("got %d deltas after cancelling at 2", deltas)
	}
	waitCanceled(t, srv)
}

func TestTimeouts(t *testing.T) {
	t.Run("slow response", func(t *testing.T) {
		srv := openaitest.New(t, openaitest.Config{})
		srv.InjectFault(openaitest.Fault{Delay: 10 * time.Second, Times: -1})
		cfg := config(srv)
		cfg.Timeout = 100 * time.Millisecond
		_, err := MustNew(t, cfg).Answer(context.Background(), request())
		if ragplane.ErrorCode(err) != ragplane.EUNAVAILABLE {
			t.Fatalf("code = %q, want unavailable (%v)", ragplane.ErrorCode(err), err)
		}
		waitCanceled(t, srv)
	})
	t.Run("slow stream", func(t *testing.T) {
		srv := openaitest.New(t, openaitest.Config{Chat: func(req openaitest.ChatRequest) openaitest.ChatResponse {
			return openaitest.ChatResponse{Content: "a b c d e f", DeltaDelay: 200 * time.Millisecond}
		}})
		cfg := config(srv)
		cfg.Timeout = 300 * time.Millisecond
		_, err := MustNew(t, cfg).Stream(context.Background(), request(), func(string) error { return nil })
		if ragplane.ErrorCode(err) != ragplane.EUNAVAILABLE {
			t.Fatalf("code = %q, want unavailable (%v)", ragplane.ErrorCode(err), err)
		}
		waitCanceled(t, srv)
	})
	t.Run("caller deadline", func(t *testing.T) {
		srv := openaitest.New(t, openaitest.Config{})
		srv.InjectFault(openaitest.Fault{Delay: 10 * time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := MustNew(t, config(srv)).Answer(ctx, request())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
	})
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name          string
		given         openaitest.Fault
		retries       int
		stream        bool
		expectCode    string
		expectCalls   int
		expectAtLeast time.Duration
	}{
		{
			name:          "429 with Retry-After then success",
			given:         openaitest.Fault{Status: http.StatusTooManyRequests, Times: 1, RetryAfter: 200 * time.Millisecond},
			retries:       2,
			expectCalls:   2,
			expectAtLeast: 200 * time.Millisecond,
		},
		{
			name:          "429 then success, streaming",
			given:         openaitest.Fault{Status: http.StatusTooManyRequests, Times: 2, RetryAfter: 100 * time.Millisecond},
			retries:       2,
			stream:        true,
			expectCalls:   3,
			expectAtLeast: 200 * time.Millisecond,
		},
		{
			name:        "500 exhausted",
			given:       openaitest.Fault{Status: http.StatusInternalServerError, Times: -1, RetryAfter: time.Millisecond},
			retries:     2,
			expectCode:  ragplane.EUPSTREAM,
			expectCalls: 3,
		},
		{
			name:        "500 exhausted, streaming",
			given:       openaitest.Fault{Status: http.StatusServiceUnavailable, Times: -1, RetryAfter: time.Millisecond},
			retries:     1,
			stream:      true,
			expectCode:  ragplane.EUPSTREAM,
			expectCalls: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := openaitest.New(t, openaitest.Config{})
			srv.InjectFault(tt.given)
			cfg := config(srv)
			cfg.MaxRetries = tt.retries
			c := MustNew(t, cfg)
			start := time.Now()
			var res answer.Result
			var err error
			if tt.stream {
				res, err = c.Stream(context.Background(), request(), func(string) error { return nil })
			} else {
				res, err = c.Answer(context.Background(), request())
			}
			if got := ragplane.ErrorCode(err); got != tt.expectCode {
				t.Fatalf("code = %q, want %q (%v)", got, tt.expectCode, err)
			}
			if n := len(srv.Requests()); n != tt.expectCalls {
				t.Fatalf("server saw %d requests, want %d", n, tt.expectCalls)
			}
			if elapsed := time.Since(start); elapsed < tt.expectAtLeast {
				t.Fatalf("took %v, Retry-After asked for at least %v", elapsed, tt.expectAtLeast)
			}
			if err == nil && res.Answer == "" {
				t.Fatal("empty answer after retries")
			}
			if err != nil && !strings.HasPrefix(ragplane.ErrorMessage(err), "answer provider openai failed: ") {
				t.Fatalf("message %q does not name the provider", ragplane.ErrorMessage(err))
			}
		})
	}
}

func TestErrorsDoNotLeakKey(t *testing.T) {
	srv := openaitest.New(t, openaitest.Config{})
	cfg := config(srv)
	cfg.APIKey = "sk-live-very-secret"
	_, err := MustNew(t, cfg).Answer(context.Background(), request())
	if ragplane.ErrorCode(err) != ragplane.EUPSTREAM {
		t.Fatalf("code = %q (%v)", ragplane.ErrorCode(err), err)
	}
	// The fake echoes the presented key in its error body, as some providers do.
	for _, s := range []string{err.Error(), ragplane.ErrorMessage(err), fmt.Sprintf("%+v|%#v", err, err)} {
		if strings.Contains(s, "very-secret") {
			t.Fatalf("error leaks the key: %s", s)
		}
	}
}

func TestErrorsWhenServerIsDown(t *testing.T) {
	srv := openaitest.New(t, openaitest.Config{})
	cfg := config(srv)
	cfg.MaxRetries = -1
	srv.Close()
	_, err := MustNew(t, cfg).Answer(context.Background(), request())
	if ragplane.ErrorCode(err) != ragplane.EUPSTREAM {
		t.Fatalf("code = %q (%v)", ragplane.ErrorCode(err), err)
	}
}

// searchTools returns a search tool that records its calls and a tool that always fails.
func searchTools(calls *atomic.Int32, args *[]string) []openai.Tool {
	return []openai.Tool{
		{
			Name:        "search",
			Description: "Searches the documents.",
			Parameters: map[string]any{
				"type":       "object",
				"properties": map[string]any{"query": map[string]any{"type": "string"}},
				"required":   []string{"query"},
			},
			Call: func(ctx context.Context, a json.RawMessage) (string, error) {
				calls.Add(1)
				*args = append(*args, string(a))
				var in struct{ Query string }
				if err := json.Unmarshal(a, &in); err != nil {
					return "", err
				}
				return "[1] Refunds are issued within 14 days. (for " + in.Query + ")", nil
			},
		},
		{
			Name:        "broken",
			Description: "Always fails.",
			Call: func(ctx context.Context, a json.RawMessage) (string, error) {
				return "", errors.New("index unavailable")
			},
		},
	}
}

// toolMessages returns the role "tool" messages of a request, by call ID.
func toolMessages(req openaitest.ChatRequest) map[string]string {
	out := map[string]string{}
	for _, m := range req.Messages {
		if m.Role == "tool" {
			out[m.ToolCallID] = m.Content
		}
	}
	return out
}

func TestRunAgent(t *testing.T) {
	// Step 1: two tool calls (one failing, one to a tool that does not exist is in step 2);
	// step 2: another search; step 3: the final answer.
	srv := openaitest.New(t, openaitest.Config{Chat: func(req openaitest.ChatRequest) openaitest.ChatResponse {
		tools := toolMessages(req)
		switch len(tools) {
		case 0:
			return openaitest.ChatResponse{PromptTokens: 100, CompletionTokens: 10, ToolCalls: []openaitest.ToolCall{
				{ID: "call_a", Function: openaitest.FunctionCall{Name: "search", Arguments: `{"query":"refund time"}`}},
				{ID: "call_b", Function: openaitest.FunctionCall{Name: "broken", Arguments: `{}`}},
			}}
		case 2:
			return openaitest.ChatResponse{PromptTokens: 200, CompletionTokens: 20, ToolCalls: []openaitest.ToolCall{
				{ID: "call_c", Function: openaitest.FunctionCall{Name: "search", Arguments: `{"query":"refund exceptions"}`}},
				{ID: "call_d", Function: openaitest.FunctionCall{Name: "nonexistent", Arguments: `{}`}},
				{ID: "call_e", Function: openaitest.FunctionCall{Name: "search", Arguments: `{not json`}},
			}}
		default:
			return openaitest.ChatResponse{Content: "Refunds take 14 days [1].", PromptTokens: 300, CompletionTokens: 30}
		}
	}})
	var calls atomic.Int32
	var args []string
	res, err := MustNew(t, config(srv)).RunAgent(context.Background(), request(), searchTools(&calls, &args), 5)
	if err != nil {
		t.Fatalf("RunAgent: %v", err)
	}
	expect := answer.Result{Answer: "Refunds take 14 days [1].", Model: "gpt-4o-mini", PromptTokens: 600, CompletionTokens: 60}
	if res != expect {
		t.Fatalf("result = %+v, want %+v", res, expect)
	}
	if calls.Load() != 2 || args[0] != `{"query":"refund time"}` || args[1] != `{"query":"refund exceptions"}` {
		t.Fatalf("search ran %d times with %q", calls.Load(), args)
	}

	reqs := srv.ChatRequests()
	if len(reqs) != 3 {
		t.Fatalf("server saw %d requests, want 3", len(reqs))
	}
	first := reqs[0]
	if len(first.Tools) != 2 || first.Tools[0].Function.Name != "search" || first.Tools[0].Type != "function" ||
		!strings.Contains(string(first.Tools[0].Function.Parameters), `"query"`) || string(first.ToolChoice) != `"auto"` {
		t.Fatalf("tools not sent: %+v tool_choice %s", first.Tools, first.ToolChoice)
	}
	if !strings.Contains(first.Messages[0].Content, "tools") {
		t.Errorf("system prompt does not mention tools: %q", first.Messages[0].Content)
	}

	// The assistant's tool calls go back with their results, in order.
	last := reqs[2]
	var assistant []openaitest.Message
	for _, m := range last.Messages {
		if m.Role == "assistant" {
			assistant = append(assistant, m)
		}
	}
	if len(assistant) != 2 || len(assistant[0].ToolCalls) != 2 || assistant[0].ToolCalls[0].ID != "call_a" {
		t.Fatalf("assistant messages not replayed: %+v", assistant)
	}
	tools := toolMessages(last)
	checks := map[string]string{
		"call_a": "Refunds are issued within 14 days. (for refund time)",
		"call_b": "error: index unavailable",
		"call_c": "(for refund exceptions)",
		"call_d": `error: there is no tool named "nonexistent"`,
		"call_e": "error: the arguments are not valid JSON",
	}
	for id, want := range checks {
		if !strings.Contains(tools[id], want) {
			t.Errorf("tool result %s = %q, want it to contain %q", id, tools[id], want)
		}
	}
}

func TestRunAgentMaxSteps(t *testing.T) {
	srv := openaitest.New(t, openaitest.Config{Chat: func(req openaitest.ChatRequest) openaitest.ChatResponse {
		return openaitest.ChatResponse{PromptTokens: 10, CompletionTokens: 1, ToolCalls: []openaitest.ToolCall{
			{Function: openaitest.FunctionCall{Name: "search", Arguments: `{"query":"again"}`}},
		}}
	}})
	var calls atomic.Int32
	var args []string
	res, err := MustNew(t, config(srv)).RunAgent(context.Background(), request(), searchTools(&calls, &args), 3)
	if ragplane.ErrorCode(err) != ragplane.EUPSTREAM || !strings.Contains(ragplane.ErrorMessage(err), "agent did not finish") {
		t.Fatalf("err = %v, want upstream 'agent did not finish'", err)
	}
	if n := len(srv.Requests()); n != 3 || calls.Load() != 3 {
		t.Fatalf("server saw %d requests and the tool ran %d times, want 3 and 3", n, calls.Load())
	}
	if res.PromptTokens != 30 || res.CompletionTokens != 3 {
		t.Fatalf("usage of the failed run = %+v, want 30/3", res)
	}

	if _, err := MustNew(t, config(srv)).RunAgent(context.Background(), request(), nil, 0); ragplane.ErrorCode(err) != ragplane.EINVALID {
		t.Fatalf("maxSteps 0: %v", err)
	}
}

func TestRunAgentWithoutToolCalls(t *testing.T) {
	srv := openaitest.New(t, openaitest.Config{})
	res, err := MustNew(t, config(srv)).RunAgent(context.Background(), request(), nil, 2)
	if err != nil || res.Answer != "This is a test answer [1]." {
		t.Fatalf("RunAgent = %+v, %v", res, err)
	}
	if r := srv.ChatRequests()[0]; len(r.Tools) != 0 || len(r.ToolChoice) != 0 {
		t.Fatalf("sent tools without any: %+v", r)
	}
}

func TestRunAgentCancel(t *testing.T) {
	srv := openaitest.New(t, openaitest.Config{Chat: func(req openaitest.ChatRequest) openaitest.ChatResponse {
		return openaitest.ChatResponse{ToolCalls: []openaitest.ToolCall{{Function: openaitest.FunctionCall{Name: "wait"}}}}
	}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tool := openai.Tool{Name: "wait", Call: func(ctx context.Context, _ json.RawMessage) (string, error) {
		cancel()
		<-ctx.Done()
		return "", ctx.Err()
	}}
	_, err := MustNew(t, config(srv)).RunAgent(ctx, request(), []openai.Tool{tool}, 5)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := len(srv.Requests()); n != 1 {
		t.Fatalf("server saw %d requests after cancellation, want 1", n)
	}
}
