package dataplane_test

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane"
	"github.com/ragplane/ragplane/e2etest"
	"github.com/ragplane/ragplane/internal/openaitest"
)

// usageRow is one usage record as the catalog holds it.
type usageRow struct {
	Prompt, Completion, Embedding, Documents int
}

// MustUsageRows returns the usage records of tenant's requests to route ("POST /v1/query"),
// oldest first.
func MustUsageRows(tb testing.TB, st *e2etest.Stack, tenant, route string) []usageRow {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, st.CatalogURL)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `select prompt_tokens, completion_tokens, embedding_tokens, documents_written
		from usage_events where tenant_id = $1 and route = $2 order by at, id`, tenant, route)
	if err != nil {
		tb.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (usageRow, error) {
		var u usageRow
		err := r.Scan(&u.Prompt, &u.Completion, &u.Embedding, &u.Documents)
		return u, err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// MustTokenMetric returns the worker's ragplane_dataplane_tokens_total for tenant and kind (0 when
// the series does not exist yet).
func MustTokenMetric(tb testing.TB, st *e2etest.Stack, tenant, kind string) float64 {
	tb.Helper()
	r := e2etest.Send(tb, "GET", st.WorkerURL+"/metrics", nil)
	for _, line := range strings.Split(string(r.Body), "\n") {
		if !strings.HasPrefix(line, "ragplane_dataplane_tokens_total{") ||
			!strings.Contains(line, `kind="`+kind+`"`) || !strings.Contains(line, `tenant="`+tenant+`"`) {
			continue
		}
		f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			tb.Fatalf("metric line %q: %v", line, err)
		}
		return f
	}
	return 0
}

func mustConflictOnKey(tb testing.TB, r e2etest.Response) {
	tb.Helper()
	mustStatus(tb, r, http.StatusConflict)
	if p := r.Problem(tb); p["code"] != ragplane.ECONFLICT || p["field"] != "Idempotency-Key" {
		tb.Fatalf("problem %v, want ECONFLICT naming Idempotency-Key", p)
	}
}

// A retried ingestion with the same Idempotency-Key is answered from its record: the embeddings
// API is not called again, and its usage record and the token metrics hold no embedding tokens.
// Two first requests with one key racing are billed once.
func TestIdempotentIngestionReplayCostsNothing(t *testing.T) {
	ai := openaitest.New(t, openaitest.Config{})
	st := e2etest.Start(t, e2etest.Options{Worker: func(c *dataplane.Config) {
		c.OpenAI.BaseURL, c.OpenAI.APIKey = ai.URL, ai.APIKey
	}})
	st.CreateTenant("acme_corp", "pro", map[string]any{"embedding_provider": "openai",
		"embedding_model": "text-embedding-3-small", "embedding_dimension": 64})
	c := st.Tenant("acme_corp")

	doc := map[string]any{"title": "Access policy", "content": policy}
	r1 := c.Do("POST", "/v1/documents", doc, "Idempotency-Key", "doc-1")
	mustStatus(t, r1, http.StatusCreated)
	calls := len(ai.EmbeddingRequests())
	if calls == 0 {
		t.Fatal("the first request did not call the embeddings API")
	}
	tokens := MustTokenMetric(t, st, "acme_corp", "embedding")
	if tokens == 0 {
		t.Fatal("the first request's embedding tokens are not in the metrics")
	}

	r2 := c.Do("POST", "/v1/documents", doc, "Idempotency-Key", "doc-1")
	mustStatus(t, r2, http.StatusOK)
	var d1, d2 docResp
	r1.Decode(t, &d1)
	r2.Decode(t, &d2)
	if d1.ID != d2.ID || r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay answered %s (Idempotent-Replayed %q), want %s", d2.ID, r2.Header.Get("Idempotent-Replayed"), d1.ID)
	}
	// Another body with the key is refused before any work.
	mustConflictOnKey(t, c.Do("POST", "/v1/documents", map[string]any{"content": "Another document entirely."}, "Idempotency-Key", "doc-1"))

	batch := map[string]any{"documents": []map[string]any{
		{"title": "A", "content": "Alpha document about encryption keys."},
		{"title": "B", "content": "Beta document about key rotation."}}}
	mustStatus(t, c.Do("POST", "/v1/documents/batch", batch, "Idempotency-Key", "batch-1"), http.StatusCreated)
	calls = len(ai.EmbeddingRequests())
	tokens = MustTokenMetric(t, st, "acme_corp", "embedding")
	r := c.Do("POST", "/v1/documents/batch", batch, "Idempotency-Key", "batch-1")
	mustStatus(t, r, http.StatusCreated)
	if r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatal("the batch replay is not marked Idempotent-Replayed")
	}
	if n := len(ai.EmbeddingRequests()); n != calls {
		t.Fatalf("the replays called the embeddings API %d more times", n-calls)
	}
	if got := MustTokenMetric(t, st, "acme_corp", "embedding"); got != tokens {
		t.Fatalf("embedding tokens metric %v after the replay, want %v", got, tokens)
	}

	// Two first requests with one key at once: one writes, the other answers its results
	// (after the look-up, or inside the write's lock); the tenant is billed once either way.
	race := map[string]any{"title": "Race", "content": "Racing requests are billed once for their embeddings."}
	var wg sync.WaitGroup
	var raced [2]e2etest.Response
	for i := range raced {
		wg.Add(1)
		go func() {
			defer wg.Done()
			raced[i] = c.Do("POST", "/v1/documents", race, "Idempotency-Key", "race-1")
		}()
	}
	wg.Wait()
	var a, b docResp
	raced[0].Decode(t, &a)
	raced[1].Decode(t, &b)
	if a.ID == "" || a.ID != b.ID || (raced[0].Header.Get("Idempotent-Replayed") == "true") == (raced[1].Header.Get("Idempotent-Replayed") == "true") {
		t.Fatalf("racing requests answered %s and %s (%d %q, %d %q)", a.ID, b.ID,
			raced[0].Status, raced[0].Header.Get("Idempotent-Replayed"), raced[1].Status, raced[1].Header.Get("Idempotent-Replayed"))
	}

	waitUsage(t, st, "acme_corp", 7)
	rows := MustUsageRows(t, st, "acme_corp", "POST /v1/documents")
	if len(rows) != 5 || rows[0].Embedding == 0 || rows[0].Documents != 1 {
		t.Fatalf("usage of POST /v1/documents: %+v", rows)
	}
	for i, u := range rows[1:3] {
		if u != (usageRow{}) {
			t.Fatalf("the replay or conflict (request %d) was billed: %+v", i+2, u)
		}
	}
	if r0, r1 := rows[3], rows[4]; (r0.Embedding == 0) == (r1.Embedding == 0) || r0.Documents+r1.Documents != 1 {
		t.Fatalf("the racing requests were billed %+v and %+v, want one of them", r0, r1)
	}
	if rows := MustUsageRows(t, st, "acme_corp", "POST /v1/documents/batch"); len(rows) != 2 || rows[0].Embedding == 0 || rows[1] != (usageRow{}) {
		t.Fatalf("usage of POST /v1/documents/batch: %+v", rows)
	}
	var billed int
	for _, route := range []string{"POST /v1/documents", "POST /v1/documents/batch"} {
		for _, u := range MustUsageRows(t, st, "acme_corp", route) {
			billed += u.Embedding
		}
	}
	if got := MustTokenMetric(t, st, "acme_corp", "embedding"); int(got) != billed {
		t.Fatalf("embedding tokens: %v in the metrics, %d in the usage records", got, billed)
	}
}

// /v1/query takes an Idempotency-Key as the ingestion routes do: a retry gets the recorded answer
// byte for byte, without retrieval or a model call, billed nothing; another body with the key is
// 409. A streamed query's retry is the same stream's events again.
func TestIdempotentQueryReplay(t *testing.T) {
	ai := openaitest.New(t, openaitest.Config{})
	st := e2etest.Start(t, e2etest.Options{Worker: func(c *dataplane.Config) {
		c.OpenAI.BaseURL, c.OpenAI.APIKey = ai.URL, ai.APIKey
	}})
	st.CreateTenant("acme_corp", "pro", map[string]any{"answer_provider": "openai"})
	c := st.Tenant("acme_corp")
	mustStatus(t, c.Do("POST", "/v1/documents", map[string]any{"title": "Access policy", "content": policy}), http.StatusCreated)
	chats := len(ai.ChatRequests()) // graph extraction used the model too

	q := map[string]any{"query": "Are backups encrypted?", "retrieval_mode": "hybrid"}
	r1 := c.Do("POST", "/v1/query", q, "Idempotency-Key", "q-1")
	mustStatus(t, r1, http.StatusOK)
	var a ragplane.Answer
	r1.Decode(t, &a)
	if a.Answer == "" || a.Metadata.TokensUsed == 0 || len(ai.ChatRequests()) != chats+1 || r1.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first answer %+v after %d model calls", a, len(ai.ChatRequests())-chats)
	}
	chats++
	prompt, completion := MustTokenMetric(t, st, "acme_corp", "prompt"), MustTokenMetric(t, st, "acme_corp", "completion")
	embedding := MustTokenMetric(t, st, "acme_corp", "embedding")

	r2 := c.Do("POST", "/v1/query", q, "Idempotency-Key", "q-1")
	mustStatus(t, r2, http.StatusOK)
	if !bytes.Equal(r1.Body, r2.Body) || r2.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay (Idempotent-Replayed %q):\n%s\nwant\n%s", r2.Header.Get("Idempotent-Replayed"), r2.Body, r1.Body)
	}
	mustConflictOnKey(t, c.Do("POST", "/v1/query", map[string]any{"query": "Where is Acme headquartered?"}, "Idempotency-Key", "q-1"))
	r := c.Do("POST", "/v1/query", q, "Idempotency-Key", strings.Repeat("k", 256))
	mustStatus(t, r, http.StatusUnprocessableEntity)
	if p := r.Problem(t); p["field"] != "Idempotency-Key" {
		t.Fatalf("problem %v, want one naming Idempotency-Key", p)
	}
	if n := len(ai.ChatRequests()); n != chats {
		t.Fatalf("the replay or the refused requests called the model %d times", n-chats)
	}
	if MustTokenMetric(t, st, "acme_corp", "prompt") != prompt || MustTokenMetric(t, st, "acme_corp", "completion") != completion ||
		MustTokenMetric(t, st, "acme_corp", "embedding") != embedding {
		t.Fatal("the replay added tokens to the metrics")
	}

	// A stream with a key: its retry is the recorded answer as the same events, with no model call.
	sq := map[string]any{"query": "Are backups encrypted?", "stream": true}
	s1 := c.Do("POST", "/v1/query", sq, "Idempotency-Key", "s-1")
	mustStatus(t, s1, http.StatusOK)
	chats++
	if n := len(ai.ChatRequests()); n != chats {
		t.Fatalf("the stream made %d model calls, want 1", n-chats+1)
	}
	s2 := c.Do("POST", "/v1/query", sq, "Idempotency-Key", "s-1")
	mustStatus(t, s2, http.StatusOK)
	done1, done2 := doneEvent(t, s1.Body), doneEvent(t, s2.Body)
	if done1 != done2 || s2.Header.Get("Idempotent-Replayed") != "true" || !strings.HasPrefix(s2.Header.Get("Content-Type"), "text/event-stream") ||
		!strings.Contains(string(s2.Body), "event: delta") {
		t.Fatalf("stream replay (Idempotent-Replayed %q):\n%s\nwant the done event of\n%s", s2.Header.Get("Idempotent-Replayed"), s2.Body, s1.Body)
	}
	if n := len(ai.ChatRequests()); n != chats {
		t.Fatal("the stream's replay called the model")
	}
	// The JSON form of the same question is another request: 409 with the stream's key.
	mustConflictOnKey(t, c.Do("POST", "/v1/query", map[string]any{"query": "Are backups encrypted?"}, "Idempotency-Key", "s-1"))

	waitUsage(t, st, "acme_corp", 8)
	rows := MustUsageRows(t, st, "acme_corp", "POST /v1/query")
	if len(rows) != 7 || rows[0].Prompt == 0 || rows[0].Completion == 0 {
		t.Fatalf("usage of POST /v1/query: %+v", rows)
	}
	for _, i := range []int{1, 2, 3, 5, 6} { // replays and refusals
		if rows[i] != (usageRow{}) {
			t.Fatalf("request %d was billed: %+v", i+1, rows[i])
		}
	}

	// Two first queries with one key at once: identical answers, billed once.
	var wg sync.WaitGroup
	var raced [2]e2etest.Response
	rq := map[string]any{"query": "How often are passwords rotated?"}
	for i := range raced {
		wg.Add(1)
		go func() {
			defer wg.Done()
			raced[i] = c.Do("POST", "/v1/query", rq, "Idempotency-Key", "race-1")
		}()
	}
	wg.Wait()
	mustStatus(t, raced[0], http.StatusOK)
	mustStatus(t, raced[1], http.StatusOK)
	if !bytes.Equal(raced[0].Body, raced[1].Body) {
		t.Fatalf("racing queries answered differently:\n%s\n%s", raced[0].Body, raced[1].Body)
	}
	waitUsage(t, st, "acme_corp", 10)
	rows = MustUsageRows(t, st, "acme_corp", "POST /v1/query")[7:]
	if (rows[0].Prompt == 0) == (rows[1].Prompt == 0) || (rows[0] != (usageRow{}) && rows[1] != (usageRow{})) {
		t.Fatalf("the racing queries were billed %+v and %+v, want one of them", rows[0], rows[1])
	}
}

// doneEvent returns the data of a stream's "done" event.
func doneEvent(tb testing.TB, body []byte) string {
	tb.Helper()
	_, after, ok := strings.Cut(string(body), "event: done\ndata: ")
	if !ok {
		tb.Fatalf("no done event in %s", body)
	}
	data, _, _ := strings.Cut(after, "\n")
	return data
}
