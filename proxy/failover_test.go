package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ragplane/ragplane/controlplane"
	"github.com/ragplane/ragplane/dataplane"
	"github.com/ragplane/ragplane/e2etest"
	"github.com/ragplane/ragplane/internal/tenantctx"
)

// dyingWorker stands for a worker that dies with every request it gets: it reads the request
// whole, then closes the connection without answering.
type dyingWorker struct {
	ln  net.Listener
	got chan received // one per request, sent before the connection closes
}

type received struct {
	method  string
	key     string // its Idempotency-Key
	title   string
	bodyLen int
}

func newDyingWorker(t *testing.T) *dyingWorker {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &dyingWorker{ln: ln, got: make(chan received, 64)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go w.serve(c)
		}
	}()
	return w
}

func (w *dyingWorker) serve(c net.Conn) {
	defer c.Close()
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return
	}
	body, _ := io.ReadAll(req.Body)
	var doc struct {
		Title string `json:"title"`
	}
	json.Unmarshal(body, &doc)
	w.got <- received{method: req.Method, key: req.Header.Get("Idempotency-Key"), title: doc.Title, bodyLen: len(body)}
}

// posted returns the POST the dying worker received since the last call, if any; the GETs it
// got (which the proxy retries elsewhere) are passed over.
func (w *dyingWorker) posted() (received, bool) {
	for {
		select {
		case r := <-w.got:
			if r.method == http.MethodPost {
				return r, true
			}
		default:
			return received{}, false
		}
	}
}

// refusedAddr is a loopback address nothing listens on: connections to it are refused.
func refusedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// registerWorker registers addr with the control plane as worker id, as a worker does.
func registerWorker(t *testing.T, st *e2etest.Stack, id, addr string) {
	t.Helper()
	r := e2etest.Send(t, "PUT", st.AdminURL+"/v1/workers/"+id, map[string]string{"addr": addr},
		"Authorization", "Bearer "+tenantctx.WorkerToken(e2etest.InternalKey))
	mustStatus(t, r, http.StatusOK)
}

// longLease keeps registered fakes, which send no heartbeat, in the endpoint set for the test.
func longLease(c *controlplane.Config) { c.WorkerLeaseTTL = 5 * time.Minute }

// metricValue is the value of one series on a proxy's admin listener, "" if absent.
func metricValue(t *testing.T, admin, series string) string {
	t.Helper()
	for _, line := range strings.Split(string(e2etest.Send(t, "GET", admin+"/metrics", nil).Body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

type document struct {
	ID      string `json:"id"`
	Title   string `json:"title"`
	Content string `json:"content"`
}

// A worker that takes a request and dies: a POST with an Idempotency-Key goes to the other worker
// with its body intact; a POST without one, which the dead worker may have acted on, is not sent
// again: the client gets 502 and the other worker never sees it.
func TestRetryAfterAWorkerDiesOnlyWhenSafe(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{ControlPlane: longLease})
	st.CreateTenant("acme_corp", "pro", nil)
	pr := st.StartProxyWithAdmin(t)
	dying := newDyingWorker(t)
	registerWorker(t, st, "dying", dying.ln.Addr().String())
	waitWorkers(t, st, 2)
	tok := st.Token("acme_corp")
	content := strings.Repeat("Backups are encrypted with AES-256 and kept for thirty days in Oslo. ", 600) // ~40 KB

	// Sequential requests alternate between the two workers: within a few, one goes to the dying one.
	for i := 0; ; i++ {
		if i == 6 {
			t.Fatal("no keyed request reached the dying worker")
		}
		key := fmt.Sprintf("upload-%d", i)
		r := call(t, pr.URL, tok, "POST", "/v1/documents", map[string]any{"title": key, "content": content + key}, "Idempotency-Key", key)
		mustStatus(t, r, http.StatusCreated)
		got, hit := dying.posted()
		if !hit {
			continue
		}
		if got.key != key || got.bodyLen < len(content) {
			t.Fatalf("the dying worker got key %q and %d body bytes, want %q and the whole body", got.key, got.bodyLen, key)
		}
		var doc document
		r.Decode(t, &doc)
		stored := call(t, pr.URL, tok, "GET", "/v1/documents/"+doc.ID, nil)
		mustStatus(t, stored, http.StatusOK)
		stored.Decode(t, &doc)
		if doc.Content != content+key {
			t.Fatalf("the retried document holds %d bytes, want the %d sent", len(doc.Content), len(content+key))
		}
		break
	}
	idempotentRetries := `ragplane_proxy_upstream_retries_total{reason="idempotent"}`
	if v := metricValue(t, pr.AdminURL, idempotentRetries); v == "" || v == "0" {
		t.Fatalf("idempotent retries = %q, want at least 1", v)
	}

	for i := 0; ; i++ {
		if i == 6 {
			t.Fatal("no request without a key reached the dying worker")
		}
		title := fmt.Sprintf("note-%d", i)
		before := metricValue(t, pr.AdminURL, idempotentRetries)
		r := call(t, pr.URL, tok, "POST", "/v1/documents", map[string]any{"title": title, "content": "A note about Oslo, " + title})
		after := metricValue(t, pr.AdminURL, idempotentRetries)
		got, hit := dying.posted()
		if !hit {
			mustStatus(t, r, http.StatusCreated)
			continue
		}
		if got.title != title {
			t.Fatalf("the dying worker got %q, want %q", got.title, title)
		}
		if r.Status != http.StatusBadGateway && r.Status != http.StatusServiceUnavailable {
			t.Fatalf("a POST without a key to a worker that died answered %d, want 502 or 503: %s", r.Status, r.Body)
		}
		if before != after {
			t.Fatalf("the POST without a key was retried (idempotent retries %s -> %s)", before, after)
		}
		var list struct {
			Items []document `json:"items"`
		}
		call(t, pr.URL, tok, "GET", "/v1/documents?limit=100", nil).Decode(t, &list)
		for _, d := range list.Items {
			if d.Title == title {
				t.Fatalf("the POST without a key was sent again to the other worker: %s is stored", title)
			}
		}
		break
	}
}

// A worker that refuses connections never got the request, so any request goes to the other
// worker, a POST without an Idempotency-Key included, with its body intact.
func TestRetryWhenAWorkerRefusesConnections(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{ControlPlane: longLease})
	st.CreateTenant("acme_corp", "pro", nil)
	// One proxy per kind of request, so that each meets the refusing worker before it is ejected.
	keyed, unkeyed := st.StartProxyWithAdmin(t), st.StartProxyWithAdmin(t)
	registerWorker(t, st, "refusing", refusedAddr(t))
	waitWorkers(t, st, 2)
	tok := st.Token("acme_corp")
	content := strings.Repeat("The incident response plan pages the on-call engineer within five minutes. ", 500)

	for _, tc := range []struct {
		name    string
		proxy   e2etest.Proxy
		headers func(i int) []string
	}{
		{name: "with an Idempotency-Key", proxy: keyed, headers: func(i int) []string { return []string{"Idempotency-Key", fmt.Sprintf("key-%d", i)} }},
		{name: "without a key", proxy: unkeyed, headers: func(int) []string { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range 4 {
				title := fmt.Sprintf("%s-%d", tc.name, i)
				r := call(t, tc.proxy.URL, tok, "POST", "/v1/documents", map[string]any{"title": title, "content": content + title}, tc.headers(i)...)
				mustStatus(t, r, http.StatusCreated)
				var doc document
				r.Decode(t, &doc)
				stored := call(t, tc.proxy.URL, tok, "GET", "/v1/documents/"+doc.ID, nil)
				mustStatus(t, stored, http.StatusOK)
				stored.Decode(t, &doc)
				if doc.Content != content+title {
					t.Fatalf("document %d holds %d bytes, want the %d sent", i, len(doc.Content), len(content+title))
				}
			}
			if v := metricValue(t, tc.proxy.AdminURL, `ragplane_proxy_upstream_retries_total{reason="connect"}`); v == "" || v == "0" {
				t.Fatalf("connect retries = %q: no request met the refusing worker", v)
			}
		})
	}
}

// The proxy is not ready while no worker is registered (every request would be 503), and says
// why; it is ready once one registers. A worker says at start whether and where it registers.
func TestNotReadyWithoutAWorker(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{Worker: func(c *dataplane.Config) { c.ControlPlaneURL = "" }})
	pr := st.RunProxy(t, slog.New(slog.DiscardHandler))

	type readyz struct {
		Status  string `json:"status"`
		Reason  string `json:"reason"`
		Workers *int   `json:"workers"`
	}
	get := func(url string) (int, readyz) {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return 0, readyz{}
		}
		defer resp.Body.Close()
		var rd readyz
		json.NewDecoder(resp.Body).Decode(&rd)
		return resp.StatusCode, rd
	}
	// Wait until the proxy has its configuration and knows it holds no worker.
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, rd := get(pr.AdminURL)
		if code == http.StatusServiceUnavailable && rd.Workers != nil && *rd.Workers == 0 && strings.Contains(rd.Reason, "worker") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin /readyz: %d %+v, want 503 for want of a worker", code, rd)
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, rd := get(pr.URL)
	if code != http.StatusServiceUnavailable || rd.Status != "not_ready" || !strings.Contains(rd.Reason, "worker") || rd.Workers != nil {
		t.Fatalf("tenant /readyz: %d %+v, want 503 with the reason and no detail", code, rd)
	}

	// A worker without a control plane URL says it does not register; one with it says where.
	unregistered := startWorker(t, st, "")
	unregistered.mustLine(t, "the warning that it does not register", func(m map[string]any) bool {
		return m["level"] == "WARN" && strings.Contains(fmt.Sprint(m["msg"]), "does not register") &&
			strings.Contains(fmt.Sprint(m["msg"]), "RAGPLANE_CONTROLPLANE_URL")
	})
	registered := startWorker(t, st, st.AdminURL)
	registered.mustLine(t, "where it registers", func(m map[string]any) bool {
		return m["msg"] == "worker registers with the control plane" && m["controlplane_url"] == st.AdminURL
	})
	e2etest.WaitReady(t, pr.URL)
	if code, rd := get(pr.AdminURL); code != http.StatusOK || rd.Workers == nil || *rd.Workers != 1 {
		t.Fatalf("admin /readyz once a worker registered: %d %+v", code, rd)
	}
}

// startWorker runs a worker of the stack's catalog that registers at controlPlaneURL ("": not at
// all) and returns its log. Its configuration comes from the environment a worker process gets.
func startWorker(t *testing.T, st *e2etest.Stack, controlPlaneURL string) *logLines {
	t.Helper()
	env := map[string]string{"RAGPLANE_CONTROLPLANE_URL": controlPlaneURL, "RAGPLANE_HEARTBEAT_INTERVAL": "500ms",
		"RAGPLANE_USAGE_DIR":       t.TempDir(),
		"RAGPLANE_ALLOW_UNDURABLE": "1"} // the test stack runs PostgreSQL in its fast mode
	for _, kv := range st.WorkerEnv("127.0.0.1:0") {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	cfg, err := dataplane.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	logs := newLogLines()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := dataplane.New(ctx, cfg, logs.logger())
	if err != nil {
		cancel()
		t.Fatalf("start worker: %v", err)
	}
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return logs
}

// The tenant listener serves no metrics; the admin listener does.
func TestMetricsOnlyOnTheAdminListener(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("acme_corp", "pro", nil)
	pr := st.StartProxyWithAdmin(t)
	tok := st.Token("acme_corp")
	mustStatus(t, call(t, pr.URL, tok, "GET", "/v1/documents", nil), http.StatusOK)

	for _, path := range []string{"/metrics", "/metrics?format=text", "/metrics/", "/%6detrics"} {
		for _, token := range []string{"", tok} { // not even a tenant's own token reaches a worker's /metrics
			r := call(t, pr.URL, token, "GET", path, nil)
			if r.Status != http.StatusNotFound || strings.Contains(string(r.Body), "acme_corp") {
				t.Fatalf("GET %s on the tenant listener (token %v): %d %.200s, want 404", path, token != "", r.Status, r.Body)
			}
		}
	}
	m := e2etest.Send(t, "GET", pr.AdminURL+"/metrics", nil)
	if m.Status != http.StatusOK || !strings.Contains(string(m.Body), `ragplane_proxy_requests_total{code="200",tenant="acme_corp"}`) {
		t.Fatalf("admin /metrics: %d, without acme_corp's requests", m.Status)
	}
	// Liveness and readiness stay on the tenant listener for load balancers, without detail.
	mustStatus(t, e2etest.Send(t, "GET", pr.URL+"/healthz", nil), http.StatusOK)
	r := e2etest.Send(t, "GET", pr.URL+"/readyz", nil)
	mustStatus(t, r, http.StatusOK)
	if strings.Contains(string(r.Body), "workers") || strings.Contains(string(r.Body), "xds") {
		t.Fatalf("the tenant listener's /readyz shows detail: %s", r.Body)
	}
}
