package openaitest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ragplane/ragplane/internal/openaitest"
)

// post sends body to srv.URL+path with the server's key and decodes a JSON answer into out (if
// not nil). It returns the response, whose body is already read.
func post(tb testing.TB, srv *openaitest.Server, path, key, body string, out any) *http.Response {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			tb.Fatalf("decode %s: %v", b, err)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp
}

type embeddingResponse struct {
	Object string `json:"object"`
	Model  string `json:"model"`
	Data   []struct {
		Object    string          `json:"object"`
		Index     int             `json:"index"`
		Embedding json.RawMessage `json:"embedding"`
	} `json:"data"`
	Usage struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
}

func TestAuth(t *testing.T) {
	srv := openaitest.New(t, openaitest.Config{})
	tests := []struct {
		name   string
		given  string
		expect int
	}{
		{name: "right key", given: srv.APIKey, expect: http.StatusOK},
		{name: "no key", given: "", expect: http.StatusUnauthorized},
		{name: "wrong key", given: "nope", expect: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body struct {
				Error struct{ Code string } `json:"error"`
			}
			resp := post(t, srv, "/embeddings", tt.given, `{"model":"m","input":"hi"}`, &body)
			if resp.StatusCode != tt.expect {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.expect)
			}
			if tt.expect != http.StatusOK && body.Error.Code != "invalid_api_key" {
				t.Fatalf("error body %v", body)
			}
		})
	}
}

func TestEmbeddings(t *testing.T) {
	srv := openaitest.New(t, openaitest.Config{Dimension: 12})
	tests := []struct {
		name      string
		given     string
		expectN   int
		expectDim int
	}{
		{name: "string input, default dimension", given: `{"model":"m","input":"one text"}`, expectN: 1, expectDim: 12},
		{name: "array input, requested dimension", given: `{"model":"m","input":["a","b c"],"dimensions":5}`, expectN: 2, expectDim: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got embeddingResponse
			if resp := post(t, srv, "/embeddings", srv.APIKey, tt.given, &got); resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if got.Object != "list" || got.Model != "m" || len(got.Data) != tt.expectN || got.Usage.PromptTokens < tt.expectN {
				t.Fatalf("response %+v", got)
			}
			for i, d := range got.Data {
				var vec []float32
				if err := json.Unmarshal(d.Embedding, &vec); err != nil || len(vec) != tt.expectDim || d.Index != i || d.Object != "embedding" {
					t.Fatalf("data[%d] = %+v (%v)", i, d, err)
				}
			}
		})
	}

	var b64 embeddingResponse
	post(t, srv, "/embeddings", srv.APIKey, `{"model":"m","input":"x","encoding_format":"base64","dimensions":4}`, &b64)
	var s string
	if err := json.Unmarshal(b64.Data[0].Embedding, &s); err != nil {
		t.Fatalf("base64 embedding is not a string: %s", b64.Data[0].Embedding)
	}
	if raw, err := base64.StdEncoding.DecodeString(s); err != nil || len(raw) != 16 {
		t.Fatalf("base64 embedding decodes to %d bytes (%v)", len(raw), err)
	}

	if resp := post(t, srv, "/embeddings", srv.APIKey, `{"model":"m","input":["ok",""]}`, nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("empty input: status %d", resp.StatusCode)
	}
	if got := srv.EmbeddingRequests(); len(got) != 4 || got[1].Dimensions != 5 || got[1].Input[1] != "b c" {
		t.Fatalf("recorded %+v", got)
	}
}

func TestChatCompletion(t *testing.T) {
	srv := openaitest.New(t, openaitest.Config{Chat: func(req openaitest.ChatRequest) openaitest.ChatResponse {
		if req.LastMessage().Role == "tool" {
			return openaitest.ChatResponse{Content: "done: " + req.LastMessage().Content}
		}
		return openaitest.ChatResponse{ToolCalls: []openaitest.ToolCall{{Function: openaitest.FunctionCall{Name: "f", Arguments: `{"x":1}`}}}}
	}})
	var first struct {
		Object  string `json:"object"`
		Choices []struct {
			Message struct {
				Content   *string               `json:"content"`
				ToolCalls []openaitest.ToolCall `json:"tool_calls"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage struct {
			PromptTokens, CompletionTokens, TotalTokens int
		} `json:"usage"`
	}
	post(t, srv, "/chat/completions", srv.APIKey,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"auto"}`, &first)
	c := first.Choices[0]
	if first.Object != "chat.completion" || c.FinishReason != "tool_calls" || c.Message.Content != nil ||
		len(c.Message.ToolCalls) != 1 || c.Message.ToolCalls[0].ID != "call_1" || c.Message.ToolCalls[0].Type != "function" {
		t.Fatalf("first = %+v", first)
	}
	post(t, srv, "/chat/completions", srv.APIKey,
		`{"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1","content":"42"}]}`, &first)
	if got := first.Choices[0]; got.FinishReason != "stop" || got.Message.Content == nil || *got.Message.Content != "done: 42" {
		t.Fatalf("second = %+v", first)
	}
	reqs := srv.ChatRequests()
	if reqs[0].Messages[0].Content != "hi" || string(reqs[0].ToolChoice) != `"auto"` || reqs[1].Messages[2].ToolCallID != "call_1" {
		t.Fatalf("recorded %+v", reqs)
	}
}

func TestChatStream(t *testing.T) {
	srv := openaitest.New(t, openaitest.Config{Chat: func(openaitest.ChatRequest) openaitest.ChatResponse {
		return openaitest.ChatResponse{Content: "Hello there world", PromptTokens: 5, CompletionTokens: 3}
	}})
	resp := post(t, srv, "/chat/completions", srv.APIKey,
		`{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`, nil)
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	var content strings.Builder
	var lines []string
	var usage map[string]any
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		lines = append(lines, line)
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			t.Fatalf("line %q is not a data line", line)
		}
		if data == "[DONE]" {
			continue
		}
		var chunk struct {
			Object  string `json:"object"`
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
			Usage map[string]any `json:"usage"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil || chunk.Object != "chat.completion.chunk" {
			t.Fatalf("chunk %s: %v", data, err)
		}
		for _, c := range chunk.Choices {
			content.WriteString(c.Delta.Content)
		}
		if chunk.Usage != nil {
			usage = chunk.Usage
		}
	}
	if content.String() != "Hello there world" {
		t.Fatalf("content %q", content.String())
	}
	if lines[len(lines)-1] != "data: [DONE]" {
		t.Fatalf("last line %q", lines[len(lines)-1])
	}
	if usage["total_tokens"] != float64(8) {
		t.Fatalf("usage %v", usage)
	}
}

func TestFaults(t *testing.T) {
	srv := openaitest.New(t, openaitest.Config{})
	srv.InjectFault(openaitest.Fault{Path: "/chat/completions", Status: 500})
	srv.InjectFault(openaitest.Fault{Status: 429, Times: 2, RetryAfter: 1500 * time.Millisecond})
	body := `{"model":"m","input":"x"}`

	// The chat-only fault does not apply to embeddings; the 429 applies twice.
	for i := range 2 {
		resp := post(t, srv, "/embeddings", srv.APIKey, body, nil)
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" || resp.Header.Get("Retry-After-Ms") != "1500" {
			t.Fatalf("request %d: status %d, headers %v", i, resp.StatusCode, resp.Header)
		}
	}
	if resp := post(t, srv, "/embeddings", srv.APIKey, body, nil); resp.StatusCode != 200 {
		t.Fatalf("after the faults: status %d", resp.StatusCode)
	}
	if resp := post(t, srv, "/chat/completions", srv.APIKey, `{"model":"m","messages":[{"role":"user","content":"x"}]}`, nil); resp.StatusCode != 500 {
		t.Fatalf("chat fault: status %d", resp.StatusCode)
	}
	statuses := []int{}
	for _, r := range srv.Requests() {
		statuses = append(statuses, r.Status)
	}
	if len(statuses) != 4 || statuses[0] != 429 || statuses[2] != 200 || statuses[3] != 500 {
		t.Fatalf("recorded statuses %v", statuses)
	}
}

func TestSlowResponseNoticesClientLeaving(t *testing.T) {
	srv := openaitest.New(t, openaitest.Config{})
	srv.InjectFault(openaitest.Fault{Delay: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/embeddings", strings.NewReader(`{"model":"m","input":"x"}`))
	req.Header.Set("Authorization", "Bearer "+srv.APIKey)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("slow request succeeded")
	}
	select {
	case <-srv.Canceled():
	case <-time.After(5 * time.Second):
		t.Fatal("server did not notice the client leaving")
	}
}
