package dataplane_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane"
	"github.com/ragplane/ragplane/dataplane/graph"
	tokens "github.com/ragplane/ragplane/dataplane/prose"
	"github.com/ragplane/ragplane/e2etest"
	"github.com/ragplane/ragplane/internal/openaitest"
	"github.com/ragplane/ragplane/internal/tenantctx"
)

// queryUsage is a shipped usage record of POST /v1/query.
type queryUsage struct {
	id                            string
	status                        int
	prompt, completion, embedding int
}

func catalogConn(t *testing.T, st *e2etest.Stack) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), st.CatalogURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// waitQueryUsage waits until want query records of tenant are shipped and no reservation of the
// tenant is left (the shipper ends them), and returns the records in time order.
func waitQueryUsage(t *testing.T, conn *pgx.Conn, tenant string, want int) []queryUsage {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(15 * time.Second)
	for {
		rows, err := conn.Query(ctx, `select id, status, prompt_tokens, completion_tokens, embedding_tokens from usage_events
			where tenant_id = $1 and route = 'POST /v1/query' order by at, id`, tenant)
		if err != nil {
			t.Fatal(err)
		}
		var got []queryUsage
		for rows.Next() {
			var u queryUsage
			if err := rows.Scan(&u.id, &u.status, &u.prompt, &u.completion, &u.embedding); err != nil {
				t.Fatal(err)
			}
			got = append(got, u)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		held := heldTokens(t, conn, tenant)
		if len(got) == want && len(held) == 0 {
			return got
		}
		if len(got) > want || time.Now().After(deadline) {
			t.Fatalf("%d query usage records (want %d) and reservations %v", len(got), want, held)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// heldTokens returns the tokens of tenant's reservations in the catalog.
func heldTokens(t *testing.T, conn *pgx.Conn, tenant string) []int64 {
	t.Helper()
	rows, err := conn.Query(context.Background(), `select tokens from token_reservations where tenant_id = $1 order by id`, tenant)
	if err != nil {
		t.Fatal(err)
	}
	held, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return held
}

// openStream starts a streamed query signed like the proxy does, and returns the response
// once its headers are in.
func openStream(ctx context.Context, c *e2etest.Client, query string) (*http.Response, error) {
	return postQuery(ctx, c, map[string]any{"query": query, "stream": true})
}

// postQuery sends a query signed like the proxy does; it may run outside the test's goroutine.
func postQuery(ctx context.Context, c *e2etest.Client, q map[string]any) (*http.Response, error) {
	body, _ := json.Marshal(q)
	req, err := http.NewRequestWithContext(ctx, "POST", c.Base+"/v1/query", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(tenantctx.Header, c.Codec.Sign(tenantctx.Context{Identity: c.ID, RequestID: ragplane.NewRequestID(), IssuedAt: time.Now()}, "POST", "/v1/query"))
	return http.DefaultClient.Do(req)
}

// modelStack starts a stack whose worker answers with the in-repo OpenAI-compatible server, and
// a tenant with one document that answers with it.
func modelStack(t *testing.T, chat openaitest.ChatFunc, settings map[string]any) (*e2etest.Stack, *e2etest.Client, *openaitest.Server) {
	t.Helper()
	if chat == nil {
		chat = openaitest.DefaultChat
	}
	ai := openaitest.New(t, openaitest.Config{Chat: func(req openaitest.ChatRequest) openaitest.ChatResponse {
		if len(req.Messages) > 0 && req.Messages[0].Content == graph.LLMSystemPrompt {
			return openaitest.ChatResponse{Content: `{"facts": []}`} // the ingestion's graph extraction
		}
		return chat(req)
	}})
	st := e2etest.Start(t, e2etest.Options{Worker: func(c *dataplane.Config) {
		c.OpenAI.BaseURL, c.OpenAI.APIKey = ai.URL, ai.APIKey
	}})
	s := map[string]any{"answer_provider": "openai"}
	for k, v := range settings {
		s[k] = v
	}
	st.CreateTenant("tok_co", "pro", s)
	c := st.Tenant("tok_co")
	mustStatus(t, c.Do("POST", "/v1/documents", map[string]any{"content": "Backups are encrypted with AES-256 every night."}), http.StatusCreated)
	return st, c, ai
}

// A streamed answer's usage record holds the tokens the model counted (its usage chunk), and the
// stream's reservation is gone once the record is shipped.
func TestStreamUsageHoldsModelTokens(t *testing.T) {
	st, c, _ := modelStack(t, func(req openaitest.ChatRequest) openaitest.ChatResponse {
		return openaitest.ChatResponse{Content: "Backups are encrypted with AES-256 [1].", PromptTokens: 321, CompletionTokens: 17}
	}, nil)
	r := c.Do("POST", "/v1/query", map[string]any{"query": "Are backups encrypted?", "stream": true})
	mustStatus(t, r, http.StatusOK)
	if !strings.Contains(string(r.Body), "event: done") {
		t.Fatalf("stream: %s", r.Body)
	}
	got := waitQueryUsage(t, catalogConn(t, st), "tok_co", 1)
	if u := got[0]; u.prompt != 321 || u.completion != 17 || u.embedding == 0 {
		t.Fatalf("stream usage record %+v, want 321 prompt and 17 completion tokens (and the query's embedding)", u)
	}
}

// Streams that run at once against a small monthly_tokens quota: each is admitted only while the
// tenant's count (shipped usage plus held reservations, shared in the catalog) is below the
// quota, so together they pass it by at most one reservation; the others get 429 naming
// monthly_tokens, and every admitted stream is billed what its model counted.
func TestConcurrentStreamsMonthlyTokens(t *testing.T) {
	var mu sync.Mutex
	gate := make(chan struct{})
	entered := make(chan struct{}, 64)
	stop := make(chan struct{}) // closed as the test ends, so a failed test never hangs at the model
	st, c, _ := modelStack(t, func(req openaitest.ChatRequest) openaitest.ChatResponse {
		mu.Lock()
		g := gate
		mu.Unlock()
		entered <- struct{}{}
		select {
		case <-g:
		case <-stop:
		}
		// The server counts the tokens (words of the prompt and of the answer).
		return openaitest.ChatResponse{Content: "Backups are encrypted with AES-256 every night [1]."}
	}, map[string]any{"max_tokens_per_query": 50})
	t.Cleanup(func() { close(stop) }) // runs before the stack's cleanup
	conn := catalogConn(t, st)
	ctx := context.Background()
	readAll := func(resp *http.Response) string {
		defer resp.Body.Close()
		var sb strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			sb.WriteString(sc.Text() + "\n")
		}
		return sb.String()
	}

	type result struct {
		resp *http.Response
		err  error
	}
	const n = 8
	results := make(chan result, n)
	start := func() {
		go func() {
			resp, err := openStream(ctx, c, "Are backups encrypted?")
			results <- result{resp, err}
		}()
	}

	// One stream alone shows the size of a reservation, held while the model writes (a stream's
	// headers leave with its first event).
	start()
	<-entered
	held := heldTokens(t, conn, "tok_co")
	if len(held) != 1 || held[0] <= 0 {
		t.Fatalf("reservations while the model writes: %v, want one", held)
	}
	reservation := held[0]
	mu.Lock()
	close(gate)
	gate = make(chan struct{})
	mu.Unlock()
	r := <-results
	if r.err != nil {
		t.Fatal(r.err)
	}
	if body := readAll(r.resp); !strings.Contains(body, "event: done") {
		t.Fatalf("stream: %s", body)
	}
	first := waitQueryUsage(t, conn, "tok_co", 1)[0]
	if int64(first.prompt+first.completion+first.embedding) > reservation {
		t.Fatalf("the stream used %+v, more than its reservation of %d", first, reservation)
	}
	var used int64
	if err := conn.QueryRow(ctx, `select coalesce(sum(metric_value), 0)::bigint from tenant_usage where tenant_id = $1
		and granularity = 'day' and metric_name in ('prompt_tokens', 'completion_tokens', 'embedding_tokens')`, "tok_co").Scan(&used); err != nil {
		t.Fatal(err)
	}

	// Room for two and a half reservations: three streams are admitted, the rest refused.
	quota := used + 2*reservation + reservation/2
	mustStatus(t, st.Admin("PATCH", "/v1/tenants/tok_co", map[string]any{"limits": map[string]any{"monthly_tokens": quota}}), http.StatusOK)
	waitWorkerConfig(t, st, "tok_co")
	for range n {
		start()
	}
	// Every stream is refused or at the model, where the admitted ones wait together.
	atModel, refused := 0, 0
	for atModel+refused < n {
		select {
		case <-entered:
			atModel++
			continue
		case r = <-results:
		}
		if r.err != nil {
			t.Fatal(r.err)
		}
		switch r.resp.StatusCode {
		case http.StatusTooManyRequests:
			var p map[string]any
			if ct := r.resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
				t.Fatalf("429 as %q", ct)
			}
			if err := json.NewDecoder(r.resp.Body).Decode(&p); err != nil || p["field"] != "monthly_tokens" {
				t.Fatalf("429 problem %v (%v), want field monthly_tokens", p, err)
			}
			r.resp.Body.Close()
			refused++
		default:
			t.Fatalf("status %d: %s", r.resp.StatusCode, readAll(r.resp))
		}
	}
	if refused == 0 || atModel != 3 {
		t.Fatalf("%d streams admitted and %d refused against room for 2.5 reservations, want 3 admitted", atModel, refused)
	}
	if held := heldTokens(t, conn, "tok_co"); len(held) != atModel {
		t.Fatalf("reservations %v while %d streams are at the model", held, atModel)
	}
	mu.Lock()
	close(gate)
	mu.Unlock()
	for range atModel {
		r := <-results
		if r.err != nil || r.resp.StatusCode != http.StatusOK {
			t.Fatalf("an admitted stream: %v %v", r.resp, r.err)
		}
		if body := readAll(r.resp); !strings.Contains(body, "event: done") {
			t.Fatalf("stream: %s", body)
		}
	}
	records := waitQueryUsage(t, conn, "tok_co", 1+n)
	var total int64
	billed := 0
	for _, u := range records[1:] {
		if u.status == http.StatusOK {
			if u.prompt == 0 || u.completion == 0 {
				t.Fatalf("a stream's usage record holds no model tokens: %+v", u)
			}
			billed++
		}
		total += int64(u.prompt + u.completion + u.embedding)
	}
	if billed != atModel {
		t.Fatalf("%d billed streams, %d admitted", billed, atModel)
	}
	if used+total > quota+reservation {
		t.Fatalf("%d tokens used against a quota of %d: more than one reservation (%d) over", used+total, quota, reservation)
	}
}

// A model call that fails releases its reservation at once, streamed or not: nothing is billed
// for the model, and what stays held until the usage record is shipped is only what the record
// bills (a stream's embedding tokens).
func TestFailedModelCallReleasesReservation(t *testing.T) {
	st, c, ai := modelStack(t, nil, nil)
	conn := catalogConn(t, st)
	for i, stream := range []bool{false, true} {
		// 400 is not retried, so the call fails after the delay, while which the query's
		// reservation is held.
		ai.InjectFault(openaitest.Fault{Path: "/chat/completions", Status: http.StatusBadRequest, Delay: 5 * time.Second})
		calls := len(ai.ChatRequests())
		type result struct {
			status int
			body   []byte
			err    error
		}
		done := make(chan result, 1)
		go func() {
			resp, err := postQuery(context.Background(), c, map[string]any{"query": "Are backups encrypted?", "stream": stream})
			if err != nil {
				done <- result{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			done <- result{resp.StatusCode, b, err}
		}()
		for deadline := time.Now().Add(10 * time.Second); len(ai.ChatRequests()) == calls; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the model was not called")
			}
		}
		if held := heldTokens(t, conn, "tok_co"); len(held) != 1 || held[0] == 0 {
			t.Fatalf("stream %v: reservations %v while the model is called, want one", stream, held)
		}
		r := <-done
		if r.err != nil {
			t.Fatal(r.err)
		}
		if stream {
			if r.status != http.StatusOK || !strings.Contains(string(r.body), "event: error") {
				t.Fatalf("stream: %d %s", r.status, r.body)
			}
		} else if r.status < 500 {
			t.Fatalf("status %d for a failed model call: %s", r.status, r.body)
		}
		held := heldTokens(t, conn, "tok_co")
		u := waitQueryUsage(t, conn, "tok_co", i+1)[i]
		if u.prompt != 0 || u.completion != 0 {
			t.Fatalf("stream %v: a failed call billed model tokens: %+v", stream, u)
		}
		for _, h := range held {
			if h != int64(u.embedding) {
				t.Fatalf("stream %v: %v held after the failure, want at most the record's %d embedding tokens", stream, held, u.embedding)
			}
		}
	}
}

// A client that goes away mid-stream is billed what the model wrote until then: the prompt and
// the part of the answer that was streamed (the provider sent no usage).
func TestCutStreamBilledPartialTokens(t *testing.T) {
	answerText := strings.Repeat("encrypted ", 200)
	st, c, ai := modelStack(t, func(req openaitest.ChatRequest) openaitest.ChatResponse {
		return openaitest.ChatResponse{Content: answerText, DeltaDelay: 20 * time.Millisecond}
	}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := openStream(ctx, c, "Are backups encrypted?")
	if err != nil {
		t.Fatal(err)
	}
	// Read two deltas, then go away.
	sc := bufio.NewScanner(resp.Body)
	deltas := 0
	for deltas < 2 && sc.Scan() {
		if sc.Text() == "event: delta" {
			deltas++
		}
	}
	if deltas < 2 {
		t.Fatalf("the stream ended before two deltas: %v", sc.Err())
	}
	cancel()
	resp.Body.Close()
	select {
	case <-ai.Canceled():
	case <-time.After(10 * time.Second):
		t.Fatal("the model call was not cancelled")
	}
	u := waitQueryUsage(t, catalogConn(t, st), "tok_co", 1)[0]
	if u.prompt == 0 || u.completion < 2 || u.completion >= tokens.CountTokens(answerText) {
		t.Fatalf("cut stream billed %+v, want the prompt and part of the answer (%d tokens in full)", u, tokens.CountTokens(answerText))
	}
}
