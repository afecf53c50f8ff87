// Package openaitest is a fake OpenAI-compatible HTTP server for tests: POST .../embeddings and
// POST .../chat/completions (plain and streamed), following the request and response shapes of
// OpenAI's API reference. Nothing leaves the machine.
//
// The server checks the API key (either "Authorization: Bearer <key>" as OpenAI, vLLM and Ollama
// take it, or "api-key: <key>" as Azure OpenAI does), records every request, answers chat requests
// through a scriptable ChatFunc, and can inject faults: error statuses with Retry-After, and slow
// responses that notice when the client goes away.
//
// Routes match on the path suffix, so both "/v1/embeddings" and Azure's
// "/openai/deployments/<name>/embeddings?api-version=..." reach the same handler.
package openaitest

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
)

// Defaults of Config.
const (
	DefaultAPIKey    = "test-key"
	DefaultDimension = 64
)

// Config configures a Server. Zero fields get defaults.
type Config struct {
	// APIKey is the key clients must present; DefaultAPIKey if empty.
	APIKey string
	// Dimension is the length of embedding vectors when a request does not ask for `dimensions`;
	// DefaultDimension if zero.
	Dimension int
	// Embed, if set, computes the vector of one input instead of the built-in bag of hashed words
	// (for instance to return a vector of the wrong length).
	Embed func(input string, dimension int) []float32
	// Chat answers chat completion requests; DefaultChat if nil. It may be called concurrently.
	Chat ChatFunc
}

// ChatFunc computes the answer to one chat completion request. A test scripts a tool-calling
// conversation by looking at req.Messages: answer with ToolCalls first, and with Content once the
// tool results (messages with role "tool") are there.
type ChatFunc func(req ChatRequest) ChatResponse

// ChatResponse is what a ChatFunc answers; the server turns it into a chat.completion object or a
// stream of chat.completion.chunk events.
type ChatResponse struct {
	// Content is the assistant message text.
	Content string
	// ToolCalls are the tool calls the assistant makes. IDs default to "call_<n>".
	ToolCalls []ToolCall
	// FinishReason defaults to "tool_calls" when there are tool calls and "stop" otherwise.
	FinishReason string
	// PromptTokens and CompletionTokens are reported in usage; when zero they are estimated from
	// the words of the request and of the answer.
	PromptTokens, CompletionTokens int
	// Deltas splits Content into streamed content deltas; by default Content is split after each
	// space. The deltas must join to Content.
	Deltas []string
	// DeltaDelay is a pause before each streamed content delta, to test cancellation mid-stream.
	DeltaDelay time.Duration
}

// DefaultChat answers every request with a fixed sentence citing the first source.
func DefaultChat(req ChatRequest) ChatResponse {
	return ChatResponse{Content: "This is a test answer [1]."}
}

// Fault is an injected failure. A request takes the first queued fault that matches its path and
// has uses left.
type Fault struct {
	// Path is a path suffix such as "/embeddings" or "/chat/completions"; empty matches any.
	Path string
	// Status is the HTTP status to answer with, e.g. 429 or 500; zero answers normally (after
	// Delay).
	Status int
	// RetryAfter, when positive, is sent as Retry-After (whole seconds, rounded up) and
	// Retry-After-Ms, as OpenAI and Azure do.
	RetryAfter time.Duration
	// Delay is a pause before answering. The server stops waiting when the client goes away.
	Delay time.Duration
	// Times is how many requests the fault applies to: 0 means once, negative means every request.
	Times int
}

// Request is one recorded request.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   []byte
	// Status is the status the server answered with.
	Status int
	// Chat is the decoded body of a chat completion request, Embedding of an embeddings request.
	Chat      *ChatRequest
	Embedding *EmbeddingRequest
}

// Server is a running fake. Use New.
type Server struct {
	// URL is the base URL to give clients, ending in "/v1".
	URL string
	// Origin is the scheme and host, without a path, for building other base URLs (Azure's).
	Origin string
	// APIKey is the key the server accepts.
	APIKey string

	cfg         Config
	srv         *httptest.Server
	canceled    chan struct{}
	completions atomic.Int64 // numbers completion IDs

	mu       sync.Mutex
	faults   []*Fault
	requests []Request
}

// New starts a server and closes it when the test ends.
func New(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	if cfg.APIKey == "" {
		cfg.APIKey = DefaultAPIKey
	}
	if cfg.Dimension <= 0 {
		cfg.Dimension = DefaultDimension
	}
	if cfg.Embed == nil {
		cfg.Embed = HashVector
	}
	if cfg.Chat == nil {
		cfg.Chat = DefaultChat
	}
	s := &Server{APIKey: cfg.APIKey, cfg: cfg, canceled: make(chan struct{}, 1024)}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.Origin = s.srv.URL
	s.URL = s.srv.URL + "/v1"
	tb.Cleanup(s.srv.Close)
	return s
}

// Close shuts the server down; New already arranges it at the end of the test.
func (s *Server) Close() { s.srv.Close() }

// InjectFault queues a fault.
func (s *Server) InjectFault(f Fault) {
	if f.Times == 0 {
		f.Times = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &f)
}

// Requests returns a copy of the requests received so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// ChatRequests returns the chat completion requests received so far.
func (s *Server) ChatRequests() []ChatRequest {
	var out []ChatRequest
	for _, r := range s.Requests() {
		if r.Chat != nil {
			out = append(out, *r.Chat)
		}
	}
	return out
}

// EmbeddingRequests returns the embedding requests received so far.
func (s *Server) EmbeddingRequests() []EmbeddingRequest {
	var out []EmbeddingRequest
	for _, r := range s.Requests() {
		if r.Embedding != nil {
			out = append(out, *r.Embedding)
		}
	}
	return out
}

// Canceled receives once for every request whose client went away before the server finished
// answering it (during a fault's Delay or between streamed deltas).
func (s *Server) Canceled() <-chan struct{} { return s.canceled }

func (s *Server) notifyCanceled() {
	select {
	case s.canceled <- struct{}{}:
	default:
	}
}

// takeFault returns the first matching fault with uses left, consuming one use.
func (s *Server) takeFault(path string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Path != "" && !strings.HasSuffix(path, f.Path) {
			continue
		}
		taken := *f
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
		}
		return &taken
	}
	return nil
}

// recorder notes the status a handler writes in the request's record before the client can see
// the response, so a test reading Requests after a call returns sees it.
type recorder struct {
	http.ResponseWriter
	s     *Server
	index int
	wrote bool
}

func (w *recorder) WriteHeader(status int) {
	if !w.wrote {
		w.wrote = true
		w.s.mu.Lock()
		w.s.requests[w.index].Status = status
		w.s.mu.Unlock()
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *recorder) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *recorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rec := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone()}
	body, readErr := readBody(r)
	rec.Body = body
	var handle func(http.ResponseWriter, *http.Request, *Request)
	var decodeErr error
	switch {
	case strings.HasSuffix(r.URL.Path, "/embeddings"):
		handle = s.embeddings
		rec.Embedding = new(EmbeddingRequest)
		decodeErr = rec.Embedding.decode(body)
	case strings.HasSuffix(r.URL.Path, "/chat/completions"):
		handle = s.chatCompletions
		rec.Chat = new(ChatRequest)
		decodeErr = json.Unmarshal(body, rec.Chat)
	}

	s.mu.Lock()
	s.requests = append(s.requests, rec)
	rw := &recorder{ResponseWriter: w, s: s, index: len(s.requests) - 1}
	s.mu.Unlock()

	switch {
	case readErr != nil:
		writeError(rw, http.StatusBadRequest, "invalid_request_error", "", "could not read the request body")
		return
	case r.Method != http.MethodPost:
		writeError(rw, http.StatusMethodNotAllowed, "invalid_request_error", "", "method not allowed")
		return
	}
	if key := presentedKey(r); key != s.cfg.APIKey {
		// Echo the presented key the way a careless provider would, so that tests can check that
		// clients never copy provider messages carrying secrets into their errors.
		writeError(rw, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
			fmt.Sprintf("Incorrect API key provided: %s.", key))
		return
	}
	if handle == nil {
		writeError(rw, http.StatusNotFound, "invalid_request_error", "unknown_url", "unknown URL "+r.URL.Path)
		return
	}
	if decodeErr != nil {
		writeError(rw, http.StatusBadRequest, "invalid_request_error", "", "invalid body: "+decodeErr.Error())
		return
	}

	if f := s.takeFault(r.URL.Path); f != nil {
		if f.Delay > 0 && !s.sleep(r, f.Delay) {
			return
		}
		if f.Status != 0 {
			if f.RetryAfter > 0 {
				rw.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(f.RetryAfter.Seconds()))))
				rw.Header().Set("Retry-After-Ms", strconv.FormatInt(f.RetryAfter.Milliseconds(), 10))
			}
			typ, code := "server_error", ""
			if f.Status == http.StatusTooManyRequests {
				typ, code = "requests", "rate_limit_exceeded"
			}
			writeError(rw, f.Status, typ, code, fmt.Sprintf("injected fault: %d", f.Status))
			return
		}
	}
	handle(rw, r, &rec)
}

// sleep waits for d or until the client goes away, which it reports; it returns false then.
func (s *Server) sleep(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		s.notifyCanceled()
		return false
	}
}

func readBody(r *http.Request) ([]byte, error) {
	defer r.Body.Close()
	return io.ReadAll(r.Body)
}

func presentedKey(r *http.Request) string {
	if k := r.Header.Get("api-key"); k != "" {
		return k
	}
	auth := r.Header.Get("Authorization")
	if k, ok := strings.CutPrefix(auth, "Bearer "); ok {
		return k
	}
	return ""
}

// writeError writes OpenAI's error object: {"error": {"message", "type", "param", "code"}}.
func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	var c any
	if code != "" {
		c = code
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"message": msg, "type": typ, "param": nil, "code": c,
	}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// EmbeddingRequest is the body of POST /v1/embeddings.
type EmbeddingRequest struct {
	Model string `json:"model"`
	// Input holds the inputs; a single string input is decoded as a list of one.
	Input          []string `json:"-"`
	Dimensions     int      `json:"dimensions,omitempty"`
	EncodingFormat string   `json:"encoding_format,omitempty"`
	User           string   `json:"user,omitempty"`
}

func (req *EmbeddingRequest) decode(body []byte) error {
	var raw struct {
		EmbeddingRequest
		Input json.RawMessage `json:"input"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return err
	}
	*req = raw.EmbeddingRequest
	var one string
	if err := json.Unmarshal(raw.Input, &one); err == nil {
		req.Input = []string{one}
		return nil
	}
	// Token arrays are valid for OpenAI, but no client of ours sends them.
	if err := json.Unmarshal(raw.Input, &req.Input); err != nil {
		return fmt.Errorf("input must be a string or an array of strings")
	}
	return nil
}

func (s *Server) embeddings(w http.ResponseWriter, _ *http.Request, rec *Request) {
	req := rec.Embedding
	if req.Model == "" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", "you must provide a model parameter")
		return
	}
	if len(req.Input) == 0 || len(req.Input) > 2048 {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", "input must hold 1 to 2048 items")
		return
	}
	dim := s.cfg.Dimension
	if req.Dimensions > 0 {
		dim = req.Dimensions
	}
	data := make([]map[string]any, len(req.Input))
	tokens := 0
	for i, in := range req.Input {
		if in == "" {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "", fmt.Sprintf("input[%d] is empty", i))
			return
		}
		tokens += EstimateTokens(in)
		vec := s.cfg.Embed(in, dim)
		var emb any = vec
		if req.EncodingFormat == "base64" {
			b := make([]byte, 4*len(vec))
			for j, f := range vec {
				binary.LittleEndian.PutUint32(b[4*j:], math.Float32bits(f))
			}
			emb = base64.StdEncoding.EncodeToString(b)
		}
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": emb}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "list",
		"data":   data,
		"model":  req.Model,
		"usage":  map[string]any{"prompt_tokens": tokens, "total_tokens": tokens},
	})
}

// HashVector is the built-in fake embedding: the normalised sum of a pseudo-random ±1 vector per
// lower-cased word, so texts that share words are close and the result is deterministic.
func HashVector(input string, dim int) []float32 {
	vec := make([]float32, dim)
	for _, w := range words(strings.ToLower(input)) {
		h := fnv.New64a()
		_, _ = h.Write([]byte(w))
		x := h.Sum64()
		for i := range vec {
			// xorshift64: cheap and good enough for a fake.
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			if x&1 == 0 {
				vec[i]++
			} else {
				vec[i]--
			}
		}
	}
	var norm float64
	for _, v := range vec {
		norm += float64(v) * float64(v)
	}
	if norm > 0 {
		inv := float32(1 / math.Sqrt(norm))
		for i := range vec {
			vec[i] *= inv
		}
	}
	return vec
}

func words(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// EstimateTokens is the server's token count for usage: about 4 tokens per 3 words, at least 1.
func EstimateTokens(s string) int {
	return max(1, (len(strings.Fields(s))*4+2)/3)
}
