package openai_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/embed/openai"
	"github.com/ragplane/ragplane/internal/openaitest"
)

func MustNew(tb testing.TB, cfg openai.Config) *openai.Embedder {
	tb.Helper()
	e, err := openai.New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return e
}

// config returns a config for srv with fast failure settings; tests adjust it.
func config(srv *openaitest.Server) openai.Config {
	return openai.Config{
		BaseURL:    srv.URL,
		APIKey:     srv.APIKey,
		Model:      "text-embedding-3-small",
		Dimensions: 32,
		Timeout:    5 * time.Second,
	}
}

func texts(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("text number %d about topic %d", i, i%7)
	}
	return out
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name   string
		given  openai.Config
		expect string
	}{
		{name: "ok", given: openai.Config{Model: "m", Dimensions: 8}},
		{name: "no model", given: openai.Config{Dimensions: 8}, expect: ragplane.EINVALID},
		{name: "no dimensions", given: openai.Config{Model: "m"}, expect: ragplane.EINVALID},
		{name: "batch too big", given: openai.Config{Model: "m", Dimensions: 8, BatchSize: 5000}, expect: ragplane.EINVALID},
		{name: "bad base URL", given: openai.Config{Model: "m", Dimensions: 8, BaseURL: "ftp://x"}, expect: ragplane.EINVALID},
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

func TestEmbedBatchesAndKeepsOrder(t *testing.T) {
	srv := openaitest.New(t, openaitest.Config{})
	cfg := config(srv)
	cfg.BatchSize = 4
	e := MustNew(t, cfg)
	in := texts(10)

	got, err := e.Embed(context.Background(), in)
	if err != nil {
		t.Fatalf("Embed: %v", err)
	}
	if len(got) != len(in) {
		t.Fatalf("got %d vectors, want %d", len(got), len(in))
	}
	for i, v := range got {
		want := openaitest.HashVector(in[i], cfg.Dimensions)
		if len(v) != cfg.Dimensions {
			t.Fatalf("vector %d has %d dimensions", i, len(v))
		}
		for j := range v {
			if math.Abs(float64(v[j]-want[j])) > 1e-6 {
				t.Fatalf("vector %d is not the vector of text %d", i, i)
			}
		}
	}

	reqs := srv.EmbeddingRequests()
	if len(reqs) != 3 {
		t.Fatalf("got %d requests, want 3 batches (4+4+2)", len(reqs))
	}
	for i, sizes := range []int{4, 4, 2} {
		r := reqs[i]
		if len(r.Input) != sizes || r.Model != cfg.Model || r.Dimensions != cfg.Dimensions || r.EncodingFormat != "float" {
			t.Errorf("request %d = %+v", i, r)
		}
	}
	for _, r := range srv.Requests() {
		if r.Path != "/v1/embeddings" || r.Header.Get("Authorization") != "Bearer "+srv.APIKey {
			t.Errorf("request path %q, authorization %q", r.Path, r.Header.Get("Authorization"))
		}
	}
	if e.Dimension() != 32 || e.Name() != "openai/text-embedding-3-small" {
		t.Errorf("Dimension() = %d, Name() = %q", e.Dimension(), e.Name())
	}
}

// The server may list vectors out of order; the index field decides.
func TestEmbedOrdersByIndex(t *testing.T) {
	srv := openaitest.New(t, openaitest.Config{})
	proxy := reversingProxy(t, srv)
	cfg := config(srv)
	cfg.BaseURL = proxy
	got, err := MustNew(t, cfg).Embed(context.Background(), []string{"alpha", "beta gamma", "delta"})
	if err != nil {
		t.Fatalf("Embed: %v", err)
	}
	for i, text := range []string{"alpha", "beta gamma", "delta"} {
		if want := openaitest.HashVector(text, cfg.Dimensions); got[i][0] != want[0] || got[i][5] != want[5] {
			t.Fatalf("vector %d is not the vector of %q", i, text)
		}
	}
}

func TestEmbedAzure(t *testing.T) {
	srv := openaitest.New(t, openaitest.Config{APIKey: "azure-key"})
	cfg := config(srv)
	cfg.Provider = "azure"
	cfg.APIKey = "azure-key"
	cfg.BaseURL = srv.Origin + "/openai/deployments/emb?api-version=2024-10-21"
	if _, err := MustNew(t, cfg).Embed(context.Background(), []string{"hello"}); err != nil {
		t.Fatalf("Embed: %v", err)
	}
	r := srv.Requests()[0]
	if r.Path != "/openai/deployments/emb/embeddings" || r.Query.Get("api-version") != "2024-10-21" {
		t.Errorf("path %q query %v", r.Path, r.Query)
	}
	if r.Header.Get("api-key") != "azure-key" || r.Header.Get("Authorization") != "" {
		t.Errorf("api-key %q, Authorization %q", r.Header.Get("api-key"), r.Header.Get("Authorization"))
	}
}

func TestEmbedOmitDimensions(t *testing.T) {
	srv := openaitest.New(t, openaitest.Config{Dimension: 24, APIKey: "k"})
	cfg := config(srv)
	cfg.Provider, cfg.APIKey, cfg.Model, cfg.Dimensions, cfg.OmitDimensions = "ollama", "k", "nomic-embed-text", 24, true
	vecs, err := MustNew(t, cfg).Embed(context.Background(), []string{"hello"})
	if err != nil || len(vecs[0]) != 24 {
		t.Fatalf("Embed = %v, %v", vecs, err)
	}
	if d := srv.EmbeddingRequests()[0].Dimensions; d != 0 {
		t.Fatalf("sent dimensions %d, want none", d)
	}
}

func TestEmbedRetries(t *testing.T) {
	tests := []struct {
		name         string
		given        openaitest.Fault
		retries      int
		expectCode   string
		expectCalls  int
		expectAtLeas time.Duration
	}{
		{
			name:         "429 with Retry-After then success",
			given:        openaitest.Fault{Status: http.StatusTooManyRequests, Times: 2, RetryAfter: 150 * time.Millisecond},
			retries:      2,
			expectCalls:  3,
			expectAtLeas: 300 * time.Millisecond,
		},
		{
			name:        "500 then success",
			given:       openaitest.Fault{Status: http.StatusInternalServerError, Times: 1, RetryAfter: time.Millisecond},
			retries:     1,
			expectCalls: 2,
		},
		{
			name:        "500 exhausted",
			given:       openaitest.Fault{Status: http.StatusInternalServerError, Times: -1, RetryAfter: time.Millisecond},
			retries:     2,
			expectCode:  ragplane.EUPSTREAM,
			expectCalls: 3,
		},
		{
			name:        "429 without retries",
			given:       openaitest.Fault{Status: http.StatusTooManyRequests, Times: -1},
			retries:     -1,
			expectCode:  ragplane.EUPSTREAM,
			expectCalls: 1,
		},
		{
			name:        "400 is not retried",
			given:       openaitest.Fault{Status: http.StatusBadRequest, Times: -1},
			retries:     2,
			expectCode:  ragplane.EUPSTREAM,
			expectCalls: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := openaitest.New(t, openaitest.Config{})
			srv.InjectFault(tt.given)
			cfg := config(srv)
			cfg.MaxRetries = tt.retries
			start := time.Now()
			_, err := MustNew(t, cfg).Embed(context.Background(), []string{"hello"})
			if got := ragplane.ErrorCode(err); got != tt.expectCode {
				t.Fatalf("code = %q, want %q (%v)", got, tt.expectCode, err)
			}
			if n := len(srv.Requests()); n != tt.expectCalls {
				t.Fatalf("server saw %d requests, want %d", n, tt.expectCalls)
			}
			if elapsed := time.Since(start); elapsed < tt.expectAtLeas {
				t.Fatalf("took %v, Retry-After asked for at least %v", elapsed, tt.expectAtLeas)
			}
			if err != nil && !strings.Contains(ragplane.ErrorMessage(err), "embedding provider openai failed") {
				t.Fatalf("message %q does not name the provider", ragplane.ErrorMessage(err))
			}
		})
	}
}

func TestEmbedErrorsDoNotLeakKey(t *testing.T) {
	srv := openaitest.New(t, openaitest.Config{})
	cfg := config(srv)
	cfg.APIKey = "sk-secret-wrong-key"
	_, err := MustNew(t, cfg).Embed(context.Background(), []string{"hello"})
	if ragplane.ErrorCode(err) != ragplane.EUPSTREAM {
		t.Fatalf("code = %q (%v)", ragplane.ErrorCode(err), err)
	}
	// The fake echoes the wrong key in its error message, as some providers do.
	for _, s := range []string{err.Error(), ragplane.ErrorMessage(err), fmt.Sprintf("%+v %#v", err, err)} {
		if strings.Contains(s, "sk-secret") {
			t.Fatalf("error leaks the API key: %s", s)
		}
	}
	if msg := ragplane.ErrorMessage(err); !strings.Contains(msg, "401") {
		t.Fatalf("message %q does not give the status", msg)
	}
}

func TestEmbedChecksVectors(t *testing.T) {
	tests := []struct {
		name  string
		embed func(string, int) []float32
	}{
		{name: "wrong dimension", embed: func(s string, dim int) []float32 { return make([]float32, dim+1) }},
		{name: "empty vector", embed: func(s string, dim int) []float32 { return []float32{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := openaitest.New(t, openaitest.Config{Embed: tt.embed})
			_, err := MustNew(t, config(srv)).Embed(context.Background(), []string{"a", "b"})
			if ragplane.ErrorCode(err) != ragplane.EUPSTREAM {
				t.Fatalf("code = %q, want upstream (%v)", ragplane.ErrorCode(err), err)
			}
		})
	}
}

func TestEmbedRejectsEmptyText(t *testing.T) {
	srv := openaitest.New(t, openaitest.Config{})
	_, err := MustNew(t, config(srv)).Embed(context.Background(), []string{"ok", "  "})
	if ragplane.ErrorCode(err) != ragplane.EINVALID {
		t.Fatalf("code = %q, want invalid (%v)", ragplane.ErrorCode(err), err)
	}
	if n := len(srv.Requests()); n != 0 {
		t.Fatalf("sent %d requests for invalid input", n)
	}
}

func TestEmbedTimeoutAndCancel(t *testing.T) {
	t.Run("attempt timeout", func(t *testing.T) {
		srv := openaitest.New(t, openaitest.Config{})
		srv.InjectFault(openaitest.Fault{Delay: 5 * time.Second})
		cfg := config(srv)
		cfg.Timeout = 100 * time.Millisecond
		start := time.Now()
		_, err := MustNew(t, cfg).Embed(context.Background(), []string{"slow"})
		if ragplane.ErrorCode(err) != ragplane.EUNAVAILABLE {
			t.Fatalf("code = %q, want unavailable (%v)", ragplane.ErrorCode(err), err)
		}
		if elapsed := time.Since(start); elapsed > 3*time.Second {
			t.Fatalf("timed out after %v", elapsed)
		}
		waitCanceled(t, srv)
	})
	t.Run("caller cancels", func(t *testing.T) {
		srv := openaitest.New(t, openaitest.Config{})
		srv.InjectFault(openaitest.Fault{Delay: 5 * time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := MustNew(t, config(srv)).Embed(ctx, []string{"slow"})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
		waitCanceled(t, srv)
	})
}

func waitCanceled(tb testing.TB, srv *openaitest.Server) {
	tb.Helper()
	select {
	case <-srv.Canceled():
	case <-time.After(5 * time.Second):
		tb.Fatal("the server did not see the client go away")
	}
}

// reversingProxy forwards to srv and reverses the "data" array of the answers.
func reversingProxy(tb testing.TB, srv *openaitest.Server) string {
	tb.Helper()
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), r.Method, srv.Origin+r.URL.Path, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if data, ok := body["data"].([]any); ok {
			slices.Reverse(data)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.StatusCode)
		_ = json.NewEncoder(w).Encode(body)
	}))
	tb.Cleanup(p.Close)
	return p.URL + "/v1"
}
