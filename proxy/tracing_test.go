package proxy_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/ragplane/ragplane/e2etest"
	"github.com/ragplane/ragplane/internal/tracing"
)

// otlpReceiver is an OTLP/HTTP trace receiver that keeps the spans it is sent.
type otlpReceiver struct {
	mu    sync.Mutex
	spans map[string][]map[string]string // trace id -> spans (name and string attributes)
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				m := map[string]string{"name": sp.Name}
				for _, a := range sp.Attributes {
					m[a.Key] = a.Value.GetStringValue()
				}
				id := string(sp.TraceId)
				o.spans[id] = append(o.spans[id], m)
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(nil)
}

// A request's trace crosses proxy -> worker: the client's traceparent is continued by the proxy's
// server span, its call to the worker, and the worker's span, which carries the tenant.
func TestTracePropagatesProxyToWorker(t *testing.T) {
	recv := &otlpReceiver{spans: map[string][]map[string]string{}}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	shutdown, err := tracing.Setup(context.Background(), "ragplane-test", os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("acme_corp", "pro", nil)
	px := st.StartProxy(t)
	tok := st.Token("acme_corp")
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	r := call(t, px, tok, "GET", "/v1/documents", nil, "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	mustStatus(t, r, http.StatusOK)
	// The worker ends its span just after the proxy has the whole answer; give it a moment.
	time.Sleep(300 * time.Millisecond)
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	recv.mu.Lock()
	defer recv.mu.Unlock()
	var servers, clients, withTenant, queries int
	var seen []map[string]string
	for id, spans := range recv.spans {
		if hexID(id) != traceID {
			continue
		}
		for _, sp := range spans {
			seen = append(seen, sp)
			switch {
			case sp["url.path"] == "/v1/documents":
				servers++ // the proxy's and the worker's server spans
				if sp["ragplane.tenant_id"] == "acme_corp" {
					withTenant++
				}
			case sp["url.full"] != "":
				clients++ // the proxy's call to the worker
			case sp["db.system"] != "" || sp["db.system.name"] != "":
				queries++ // the worker's queries to the tenant database
			}
		}
	}
	if servers != 2 || clients != 1 || withTenant != 2 || queries == 0 {
		t.Fatalf("the trace has %d server spans (%d with the tenant), %d client spans and %d database spans, want 2, 2, 1 and some: %v",
			servers, withTenant, clients, queries, seen)
	}
}

func hexID(b string) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for i := 0; i < len(b); i++ {
		out = append(out, digits[b[i]>>4], digits[b[i]&15])
	}
	return string(out)
}
