package proxy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ragplane/ragplane/e2etest"
	"github.com/ragplane/ragplane/proxy"
)

// logLines collects the JSON lines a slog.JSONHandler writes (one Write per record) and wakes
// waiters on each, so that tests wait for a line instead of sleeping.
type logLines struct {
	mu    sync.Mutex
	lines [][]byte
	added chan struct{}
}

func newLogLines() *logLines { return &logLines{added: make(chan struct{}, 1)} }

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.lines = append(l.lines, bytes.Clone(p))
	l.mu.Unlock()
	select {
	case l.added <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (l *logLines) snapshot() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

func (l *logLines) logger() *slog.Logger { return slog.New(slog.NewJSONHandler(l, nil)) }

// mustLine waits until a line matches and returns it decoded.
func (l *logLines) mustLine(tb testing.TB, what string, match func(map[string]any) bool) map[string]any {
	tb.Helper()
	deadline := time.After(10 * time.Second)
	for {
		for _, line := range l.snapshot() {
			var m map[string]any
			if json.Unmarshal(line, &m) == nil && match(m) {
				return m
			}
		}
		select {
		case <-l.added:
		case <-deadline:
			tb.Fatalf("no log line with %s in:\n%s", what, bytes.Join(l.snapshot(), nil))
		}
	}
}

// duplicateKeys lists the keys that occur twice in one JSON object of line, at any depth
// (decoding into a map would silently keep the last one).
func duplicateKeys(line []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	var dups []string
	var walk func(path string) error
	walk = func(path string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key := fmt.Sprint(k)
				if seen[key] {
					dups = append(dups, path+key)
				}
				seen[key] = true
				if err := walk(path + key + "."); err != nil {
					return err
				}
			}
		case json.Delim('['):
			for dec.More() {
				if err := walk(path); err != nil {
					return err
				}
			}
		default:
			return nil
		}
		_, err = dec.Token() // the closing delimiter
		return err
	}
	return dups, walk("")
}

func TestDuplicateKeys(t *testing.T) {
	tests := []struct {
		name   string
		given  string
		expect string
	}{
		{name: "none", given: `{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}`, expect: ""},
		{name: "top level", given: `{"component":"proxy","msg":"x","component":"xdsclient"}`, expect: "component"},
		{name: "nested", given: `{"g":{"a":1,"a":2}}`, expect: "g.a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := duplicateKeys([]byte(tt.given))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != tt.expect {
				t.Fatalf("duplicateKeys = %v, want %q", got, tt.expect)
			}
		})
	}
}

// Every proxied request gets one access log line; no proxy line repeats a key; neither the
// token nor the query string reaches the logs.
func TestAccessLog(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("acme_corp", "pro", nil)
	logs := newLogLines()
	px := st.StartProxyLogged(t, logs.logger())
	tok := st.Token("acme_corp")
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	const secret = "sekrit-query-value"

	ok := call(t, px, tok, "GET", "/v1/documents?api_key="+secret, nil, "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	mustStatus(t, ok, http.StatusOK)
	denied := call(t, px, "not-a-token", "GET", "/v1/documents", nil)
	mustStatus(t, denied, http.StatusUnauthorized)
	mustStatus(t, call(t, px, "", "GET", "/healthz", nil), http.StatusOK)

	byID := func(id string) func(map[string]any) bool {
		return func(m map[string]any) bool { return m["msg"] == "request" && m["request_id"] == id }
	}
	tests := []struct {
		name   string
		given  e2etest.Response
		expect map[string]any
		absent []string
	}{
		{name: "forwarded", given: ok, expect: map[string]any{"level": "INFO", "component": "proxy", "tenant_id": "acme_corp",
			"trace_id": traceID, "method": "GET", "path": "/v1/documents", "status": float64(200), "bytes": float64(len(ok.Body))}},
		{name: "unauthenticated", given: denied, expect: map[string]any{"method": "GET", "path": "/v1/documents",
			"status": float64(401), "bytes": float64(len(denied.Body))}, absent: []string{"tenant_id", "trace_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rid := tt.given.Header.Get("X-Request-ID")
			line := logs.mustLine(t, "request_id "+rid, byID(rid))
			for k, v := range tt.expect {
				if line[k] != v {
					t.Errorf("%s = %v (%T), want %v; line %v", k, line[k], line[k], v, line)
				}
			}
			for _, k := range tt.absent {
				if _, ok := line[k]; ok {
					t.Errorf("%s present: %v", k, line)
				}
			}
			if d, ok := line["duration_ms"].(float64); !ok || d < 0 {
				t.Errorf("duration_ms = %v, want a number of milliseconds", line["duration_ms"])
			}
		})
	}

	// The xDS client logs "xDS stream open" at Info when it connects: a sub-component's line.
	logs.mustLine(t, "component proxy.xdsclient", func(m map[string]any) bool { return m["component"] == "proxy.xdsclient" })
	for _, line := range logs.snapshot() {
		dups, err := duplicateKeys(line)
		if err != nil {
			t.Fatalf("log line %s: %v", line, err)
		}
		if len(dups) > 0 {
			t.Errorf("duplicated keys %v in %s", dups, line)
		}
		for _, leak := range []string{tok, secret, "not-a-token", "Bearer"} {
			if bytes.Contains(line, []byte(leak)) {
				t.Errorf("log line carries %q: %s", leak, line)
			}
		}
		if bytes.Contains(line, []byte(`"/healthz"`)) {
			t.Errorf("probe logged: %s", line)
		}
	}
}

// RAGPLANE_ACCESS_LOG=false turns the access log off.
func TestAccessLogOff(t *testing.T) {
	cfg, err := proxy.ConfigFromEnv(func(name string) string {
		return map[string]string{"RAGPLANE_ACCESS_LOG": "false"}[name]
	})
	if err != nil || cfg.AccessLog {
		t.Fatalf("AccessLog = %v, err %v; want false", cfg.AccessLog, err)
	}
	if !proxy.DefaultConfig().AccessLog {
		t.Fatal("the access log is off by default")
	}

	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("acme_corp", "pro", nil)
	logs := newLogLines()
	px := st.StartProxyLogged(t, logs.logger(), func(c *proxy.Config) { c.AccessLog = false })
	// The access line is written before ServeHTTP returns, and a small response is only sent
	// once it has returned: by the time this answer arrives the line would be there.
	r := call(t, px, "not-a-token", "GET", "/v1/documents", nil)
	mustStatus(t, r, http.StatusUnauthorized)
	for _, line := range logs.snapshot() {
		if bytes.Contains(line, []byte(`"msg":"request"`)) {
			t.Fatalf("access log line with RAGPLANE_ACCESS_LOG=false: %s", line)
		}
	}
}
