package proxy_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ragplane/ragplane/dataplane"
	"github.com/ragplane/ragplane/e2etest"
	"github.com/ragplane/ragplane/internal/openaitest"
	"github.com/ragplane/ragplane/proxy"
)

// heldModel answers chat requests at once, except those about one of its questions: each of
// these signals that it arrived and waits until its question is opened, so that a query provably
// holds its concurrency slot.
type heldModel struct {
	*openaitest.Server
	holds map[string]*hold
}

type hold struct {
	arrived chan struct{}
	opened  chan struct{}
	once    sync.Once
}

func holdModel(t *testing.T, questions ...string) *heldModel {
	m := &heldModel{holds: map[string]*hold{}}
	for _, q := range questions {
		m.holds[q] = &hold{arrived: make(chan struct{}, 16), opened: make(chan struct{})}
	}
	m.Server = openaitest.New(t, openaitest.Config{Chat: func(req openaitest.ChatRequest) openaitest.ChatResponse {
		for _, msg := range req.Messages {
			for q, h := range m.holds {
				if strings.Contains(msg.Content, q) {
					h.arrived <- struct{}{}
					<-h.opened
					return openaitest.DefaultChat(req)
				}
			}
		}
		return openaitest.DefaultChat(req)
	}})
	return m
}

// openAll lets every held request answer; tests defer it, so that it runs before the stack's
// cleanup waits for the workers' requests to end.
func (m *heldModel) openAll() {
	for q := range m.holds {
		m.open(q)
	}
}

// wait returns once n requests about question have arrived.
func (m *heldModel) wait(t *testing.T, question string, n int) {
	t.Helper()
	for range n {
		select {
		case <-m.holds[question].arrived:
		case <-time.After(30 * time.Second):
			t.Fatal("the query never reached the model")
		}
	}
}

// open lets every request about question, held or later, answer.
func (m *heldModel) open(question string) {
	h := m.holds[question]
	h.once.Do(func() { close(h.opened) })
}

// The concurrency cap holds across two proxies, and slots come back after completion and after
// clients cancel.
func TestConcurrencyCapAcrossReplicas(t *testing.T) {
	ai := holdModel(t, "Are backups encrypted?", "Are backups encrypted at rest?")
	defer ai.openAll()
	st := e2etest.Start(t, e2etest.Options{Worker: func(c *dataplane.Config) { c.OpenAI.BaseURL, c.OpenAI.APIKey = ai.URL, ai.APIKey }})
	st.CreateTenant("acme_corp", "pro", map[string]any{"answer_provider": "openai"})
	mustStatus(t, st.Admin("PATCH", "/v1/tenants/acme_corp", map[string]any{"limits": map[string]any{"max_concurrent_requests": 2}}), http.StatusOK)
	p1, p2 := st.StartProxy(t), st.StartProxy(t)
	tok := st.Token("acme_corp")
	mustStatus(t, call(t, p1, tok, "POST", "/v1/documents", map[string]any{"content": "Backups are encrypted with AES-256."}), http.StatusCreated)

	query := map[string]any{"query": "Are backups encrypted?", "retrieval_mode": "keyword"}
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	for i, p := range []string{p1, p2} {
		wg.Add(1)
		go func(i int, p string) {
			defer wg.Done()
			statuses[i] = sendRaw(p, tok, "POST", "/v1/query", query)
		}(i, p)
	}
	ai.wait(t, "Are backups encrypted?", 2) // both hold their slot, waiting on the model
	r := call(t, p1, tok, "POST", "/v1/query", query)
	mustStatus(t, r, http.StatusTooManyRequests)
	if p := r.Problem(t); p["field"] != "max_concurrent_requests" {
		t.Fatalf("429 is not about concurrency: %v", p)
	}
	ai.open("Are backups encrypted?")
	wg.Wait()
	if statuses[0] != http.StatusOK || statuses[1] != http.StatusOK {
		t.Fatalf("the two admitted queries answered %v", statuses)
	}
	// Slots are back: a client that cancels mid-request gives its slot back too.
	ctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan struct{})
	go func() {
		defer close(cancelled)
		sendRawCtx(ctx, p2, tok, "POST", "/v1/query", map[string]any{"query": "Are backups encrypted at rest?", "retrieval_mode": "keyword"})
	}()
	ai.wait(t, "Are backups encrypted at rest?", 1) // it holds a slot
	cancel()
	<-cancelled
	deadline := time.Now().Add(3 * time.Second)
	for {
		ok := 0
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, p := range []string{p1, p2} {
			wg.Add(1)
			go func(p string) {
				defer wg.Done()
				if sendRaw(p, tok, "POST", "/v1/query", query) == http.StatusOK {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}(p)
		}
		wg.Wait()
		if ok == 2 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slots did not come back after a cancel: %d of 2 admitted", ok)
		}
	}
}

// A proxy that dies holding slots loses them after the lease TTL.
func TestCrashedProxyLeasesExpire(t *testing.T) {
	ai := holdModel(t, "Are backups encrypted?")
	defer ai.openAll()
	st := e2etest.Start(t, e2etest.Options{Worker: func(c *dataplane.Config) { c.OpenAI.BaseURL, c.OpenAI.APIKey = ai.URL, ai.APIKey }})
	st.CreateTenant("acme_corp", "pro", map[string]any{"answer_provider": "openai"})
	mustStatus(t, st.Admin("PATCH", "/v1/tenants/acme_corp", map[string]any{"limits": map[string]any{"max_concurrent_requests": 1}}), http.StatusOK)
	tok := st.Token("acme_corp")
	// The doomed proxy runs as its own process, killed with SIGKILL while it holds the one slot.
	addr := e2etest.FreeAddr(t)
	doomed := e2etest.StartProcess(t, "proxy", addr, "RAGPLANE_PROXY_ADDR="+addr, "RAGPLANE_PROXY_ADMIN_ADDR=127.0.0.1:0", "RAGPLANE_XDS_ADDR="+st.XDSAddr,
		"RAGPLANE_INTERNAL_KEY="+e2etest.InternalKey, "RAGPLANE_REDIS_PREFIX="+st.Prefix, "RAGPLANE_LEASE_TTL=1s")
	survivor := st.StartProxy(t, func(c *proxy.Config) { c.LeaseTTL = time.Second })
	mustStatus(t, call(t, survivor, tok, "POST", "/v1/documents", map[string]any{"content": "Backups are encrypted with AES-256."}), http.StatusCreated)
	query := map[string]any{"query": "Are backups encrypted?", "retrieval_mode": "keyword"}
	// The survivor's release of the upload's slot is batched: until it lands, the doomed proxy
	// finds the one slot taken (429) and tries again.
	held := make(chan struct{})
	go func() {
		for sendRaw("http://"+addr, tok, "POST", "/v1/query", query) == http.StatusTooManyRequests {
			select {
			case <-held:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	ai.wait(t, "Are backups encrypted?", 1) // the doomed proxy holds the one slot
	close(held)
	mustStatus(t, call(t, survivor, tok, "GET", "/v1/documents", nil), http.StatusTooManyRequests)
	doomed.Kill()
	deadline := time.Now().Add(4 * time.Second)
	for call(t, survivor, tok, "GET", "/v1/documents", nil).Status != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("the crashed proxy's slot never came back")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Server-sent events stream through the proxy as they are written.
func TestStreamingPassesThrough(t *testing.T) {
	ai := openaitest.New(t, openaitest.Config{Chat: func(req openaitest.ChatRequest) openaitest.ChatResponse {
		return openaitest.ChatResponse{Content: "Backups are encrypted [1].", Deltas: []string{"Backups ", "are ", "encrypted ", "[1]."},
			DeltaDelay: 150 * time.Millisecond}
	}})
	st := e2etest.Start(t, e2etest.Options{Worker: func(c *dataplane.Config) { c.OpenAI.BaseURL, c.OpenAI.APIKey = ai.URL, ai.APIKey }})
	st.CreateTenant("acme_corp", "pro", map[string]any{"answer_provider": "openai"})
	px := st.StartProxy(t)
	tok := st.Token("acme_corp")
	mustStatus(t, call(t, px, tok, "POST", "/v1/documents", map[string]any{"content": "Backups are encrypted with AES-256."}), http.StatusCreated)
	req, _ := http.NewRequest("POST", px+"/v1/query", strings.NewReader(`{"query":"Are backups encrypted?","stream":true,"retrieval_mode":"keyword"}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	var firstDelta time.Duration
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "event: delta") && firstDelta == 0 {
			firstDelta = time.Since(start)
		}
		if strings.HasPrefix(sc.Text(), "event: done") {
			break
		}
	}
	total := time.Since(start)
	if firstDelta == 0 || total-firstDelta < 300*time.Millisecond {
		t.Fatalf("events were buffered: first delta after %s, done after %s", firstDelta, total)
	}
}

// Traffic keeps flowing when a worker dies (the other takes it), when the control plane goes away
// (the proxy keeps its last good config) and when Redis goes away (rate limits fall back to the
// proxy's local share; the concurrency cap fails closed unless configured open).
func TestKeepsServingThroughOutages(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("acme_corp", "enterprise", nil)
	mustStatus(t, st.Admin("PATCH", "/v1/tenants/acme_corp", map[string]any{"limits": map[string]any{"requests_per_second": 2000, "burst": 2000}}), http.StatusOK)
	// A second worker, as a process, so it can be killed.
	waddr := e2etest.FreeAddr(t)
	worker2 := e2etest.StartProcess(t, "dataplane", waddr, append(st.WorkerEnv(waddr),
		"RAGPLANE_CONTROLPLANE_URL="+st.AdminURL, "RAGPLANE_HEARTBEAT_INTERVAL=300ms")...)
	redisAddr := strings.Split(e2etestRedis(t), "/")[2]
	redis := e2etest.NewCuttable(t, redisAddr) // Redis behind a connection the test can cut
	pr := st.StartProxyWithAdmin(t, func(c *proxy.Config) { c.RedisURL = "redis://" + redis.Addr() + "/0"; c.ConcurrencyFailOpen = true })
	px := pr.URL
	tok := st.Token("acme_corp")
	waitWorkers(t, st, 2)

	var failures atomic.Int64
	var total atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			total.Add(1)
			if s := sendRaw(px, tok, "GET", "/v1/documents", nil); s != http.StatusOK {
				failures.Add(1)
				t.Logf("request failed: %d", s)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	worker2.Kill()
	time.Sleep(500 * time.Millisecond)
	redis.Cut()
	time.Sleep(500 * time.Millisecond)
	redis.Restore()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d of %d requests failed during a worker kill and a Redis outage", failures.Load(), total.Load())
	}
	m := e2etest.Send(t, "GET", pr.AdminURL+"/metrics", nil)
	if !strings.Contains(string(m.Body), "ragplane_proxy_ratelimit_fallback_total{") {
		t.Fatalf("the Redis outage did not show as a rate-limit fallback")
	}
	t.Logf("%d requests, none failed", total.Load())
}

// waitWorkers waits until n workers are registered and every proxy routes to them.
func waitWorkers(t *testing.T, st *e2etest.Stack, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var p struct {
			Items []any `json:"items"`
		}
		st.Admin("GET", "/v1/workers", nil).Decode(t, &p)
		if len(p.Items) >= n {
			st.WaitEndpoints(t)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d workers registered, want %d", len(p.Items), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func sendRaw(base, tok, method, path string, body any) int {
	return sendRawCtx(context.Background(), base, tok, method, path, body)
}

func sendRawCtx(ctx context.Context, base, tok, method, path string, body any) int {
	var rd io.Reader
	if body != nil {
		b, _ := jsonMarshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequestWithContext(ctx, method, base+path, rd)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
