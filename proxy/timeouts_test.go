package proxy_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ragplane/ragplane/e2etest"
	"github.com/ragplane/ragplane/proxy"
)

// startStoppableWorker runs a worker as its own process, registered with the stack's control
// plane, and returns it so that the test can SIGSTOP it. It is resumed and killed at the end.
func startStoppableWorker(t *testing.T, st *e2etest.Stack) *os.Process {
	t.Helper()
	addr := e2etest.FreeAddr(t)
	cmd := exec.Command(e2etest.Binary(t), "dataplane")
	cmd.Env = append(append(os.Environ(), st.WorkerEnv(addr)...), "RAGPLANE_CONTROLPLANE_URL="+st.AdminURL,
		"RAGPLANE_HEARTBEAT_INTERVAL=300ms", "RAGPLANE_USAGE_DIR="+t.TempDir(), "RAGPLANE_ALLOW_UNDURABLE=1")
	if os.Getenv("RAGPLANE_TEST_LOG") != "" {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd.Process
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker process not ready at %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type outcome struct {
	status     int
	code       string
	retryAfter string
	took       time.Duration
}

// A SIGSTOPped worker accepts connections and never answers. Its requests end with 504 within the
// route's timeout, their concurrency slots come back, so its tenant (a cap of 2, two clients)
// never gets 429, and after a few timeouts the worker is ejected: the next requests all succeed
// on the other worker.
func TestStoppedWorkerTimesOutWithoutThrottlingItsTenant(t *testing.T) {
	const timeout = 3 * time.Second
	st := e2etest.Start(t, e2etest.Options{ControlPlane: longLease}) // the stopped worker stays registered
	st.CreateTenant("acme_corp", "pro", nil)
	mustStatus(t, st.Admin("PATCH", "/v1/tenants/acme_corp", map[string]any{"limits": map[string]any{"max_concurrent_requests": 2}}), http.StatusOK)
	pr := st.StartProxyWithAdmin(t, func(c *proxy.Config) { c.UpstreamTimeout, c.EjectFor = timeout, 5*time.Minute })
	worker := startStoppableWorker(t, st)
	waitWorkers(t, st, 2)
	tok := st.Token("acme_corp")
	mustStatus(t, call(t, pr.URL, tok, "POST", "/v1/documents", map[string]any{"content": "Backups are encrypted with AES-256."}), http.StatusCreated)
	if err := worker.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}

	search := func() outcome {
		start := time.Now()
		r := call(t, pr.URL, tok, "POST", "/v1/search", map[string]any{"query": "backups encrypted", "retrieval_mode": "keyword"})
		o := outcome{status: r.Status, took: time.Since(start)}
		if r.Status != http.StatusOK {
			o.code, _ = r.Problem(t)["code"].(string)
			o.retryAfter = r.Header.Get("Retry-After")
		}
		return o
	}
	// Two clients, each one request at a time: the tenant's two slots, never more.
	var mu sync.Mutex
	var got []outcome
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 8 {
				o := search()
				mu.Lock()
				got = append(got, o)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	timeouts := 0
	for _, o := range got {
		switch o.status {
		case http.StatusOK:
		case http.StatusGatewayTimeout:
			timeouts++
			if o.code != "timeout" || o.retryAfter == "" {
				t.Fatalf("a timed-out request answered code %q, Retry-After %q; want timeout with a Retry-After", o.code, o.retryAfter)
			}
			if o.took < timeout || o.took > timeout+15*time.Second {
				t.Fatalf("a timed-out request took %s, want the route's timeout of %s", o.took, timeout)
			}
		default:
			t.Fatalf("a request answered %d (%s) while a worker was stopped, want 200 or 504", o.status, o.code)
		}
	}
	// At most one request is in flight to the stopped worker besides the one whose timeout
	// ejects it (the third).
	t.Logf("%d of %d requests timed out before the stopped worker was ejected", timeouts, len(got))
	if timeouts < 1 || timeouts > 4 {
		t.Fatalf("%d requests timed out, want 1 to 4 (the stopped worker's until it is ejected)", timeouts)
	}
	if v := metricValue(t, pr.AdminURL, `ragplane_proxy_upstream_timeouts_total{reason="headers"}`); v != fmt.Sprint(timeouts) {
		t.Fatalf("header timeouts = %q, want %d", v, timeouts)
	}
	var rd struct {
		Ejected int `json:"workers_ejected"`
	}
	e2etest.Send(t, "GET", pr.AdminURL+"/readyz", nil).Decode(t, &rd)
	if rd.Ejected != 1 {
		t.Fatalf("workers_ejected = %d, want the stopped worker", rd.Ejected)
	}
	// Ejected, the stopped worker gets no more requests.
	for i := range 6 {
		if o := search(); o.status != http.StatusOK {
			t.Fatalf("request %d after the ejection answered %d (%s)", i, o.status, o.code)
		}
	}
}

// stallingWorker answers POST /v1/query with the start of a server-sent event stream, then sends
// nothing until its client goes away, which it reports; any other request gets an empty list.
type stallingWorker struct {
	addr    string
	started chan struct{}
	gone    chan struct{}
}

func newStallingWorker(t *testing.T) *stallingWorker {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &stallingWorker{addr: ln.Addr().String(), started: make(chan struct{}, 16), gone: make(chan struct{}, 16)}
	srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/query" {
			rw.Header().Set("Content-Type", "application/json")
			io.WriteString(rw, `{"items":[]}`)
			return
		}
		rw.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(rw, "event: delta\ndata: {\"text\":\"Backups \"}\n\n")
		rw.(http.Flusher).Flush()
		w.started <- struct{}{}
		<-r.Context().Done()
		w.gone <- struct{}{}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return w
}

// A stream whose worker stops sending is cut after the idle timeout: the client's stream ends
// cleanly with an error event, the worker sees its client gone, and the tenant's one slot is free
// again at once.
func TestStalledStreamIsCut(t *testing.T) {
	const idle = time.Second
	st := e2etest.Start(t, e2etest.Options{ControlPlane: longLease})
	st.CreateTenant("acme_corp", "pro", nil)
	mustStatus(t, st.Admin("PATCH", "/v1/tenants/acme_corp", map[string]any{"limits": map[string]any{"max_concurrent_requests": 1}}), http.StatusOK)
	pr := st.StartProxyWithAdmin(t, func(c *proxy.Config) { c.StreamIdleTimeout = idle })
	stalled := newStallingWorker(t)
	registerWorker(t, st, "stalling", stalled.addr)
	waitWorkers(t, st, 2)
	tok := st.Token("acme_corp")
	client := &http.Client{Timeout: 30 * time.Second}

	// Streamed queries alternate between the two workers: within a few, one goes to the stalling one.
	for i := 0; ; i++ {
		if i == 6 {
			t.Fatal("no query reached the stalling worker")
		}
		req, _ := http.NewRequest("POST", pr.URL+"/v1/query", strings.NewReader(`{"query":"Are backups encrypted?","stream":true,"retrieval_mode":"keyword"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		select {
		case <-stalled.started:
		default:
			continue // the real worker answered
		}
		if err != nil {
			t.Fatalf("the cut stream did not end cleanly: %v (after %s)", err, took)
		}
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "event: delta\n") ||
			!strings.HasSuffix(string(body), "\n\nevent: error\ndata: {\"code\":\"timeout\",\"detail\":\"The data-plane worker sent nothing for 1s; the stream is cut.\"}\n\n") {
			t.Fatalf("the cut stream: %d %q, want the delta then a timeout error event", resp.StatusCode, body)
		}
		if took < idle {
			t.Fatalf("the stream was cut after %s, before the idle timeout of %s", took, idle)
		}
		break
	}
	select {
	case <-stalled.gone:
	case <-time.After(10 * time.Second):
		t.Fatal("the stalling worker never saw its client go")
	}
	// The one slot is free: the next request is not refused.
	mustStatus(t, call(t, pr.URL, tok, "GET", "/v1/documents", nil), http.StatusOK)
	if v := metricValue(t, pr.AdminURL, `ragplane_proxy_upstream_timeouts_total{reason="idle"}`); v != "1" {
		t.Fatalf("idle timeouts = %q, want 1", v)
	}
}

// A client that uploads slowly holds up its own request, not the worker: the time the proxy
// waits for the client's bytes does not count against the route's timeout, so the upload succeeds
// and no worker is blamed for a timeout.
func TestSlowUploadIsNotAWorkerTimeout(t *testing.T) {
	const timeout = time.Second
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("acme_corp", "pro", nil)
	pr := st.StartProxyWithAdmin(t, func(c *proxy.Config) { c.IngestTimeout = timeout })
	tok := st.Token("acme_corp")

	body, upload := io.Pipe()
	req, _ := http.NewRequest("POST", pr.URL+"/v1/documents", body) // no Idempotency-Key: it streams through
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	go func() {
		io.WriteString(upload, `{"title":"slow","content":"Backups are encrypted `)
		// The client pauses for longer than the route's timeout: the pause is what is tested.
		time.Sleep(2 * timeout)
		io.WriteString(upload, `with AES-256."}`)
		upload.Close()
	}()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("a slow upload answered %d %s, want 201", resp.StatusCode, b)
	}
	if v := metricValue(t, pr.AdminURL, `ragplane_proxy_upstream_timeouts_total{reason="headers"}`); v != "0" {
		t.Fatalf("header timeouts = %q, want 0: the worker was blamed for the client's pause", v)
	}
}
