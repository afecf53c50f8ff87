package e2etest_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ragplane/ragplane/e2etest"
)

// recorder is a testing.TB that records failures instead of failing, to test the checker.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Helper() {}

func jsonResp(status int, body string) e2etest.Response {
	return e2etest.Response{Status: status, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body)}
}

const answer = `{"answer":"a [1]","sources":[{"id":1,"document_id":"6f1c2b3a-1d2e-4f50-8a9b-0c1d2e3f4a5b","chunk_id":"c","title":"t","source":"s","score":0.5,"snippet":"x"}],` +
	`"metadata":{"tenant_id":"acme","model":"extractive","retrieval_mode":"hybrid","tokens_used":0,"latency_ms":3,"config_version":1}}`

// TestAPIDocCheck checks that the checker tells valid exchanges from invalid ones: a checker that
// passed everything would make every test that uses it pass.
func TestAPIDocCheck(t *testing.T) {
	sse := func(s string) e2etest.Response {
		return e2etest.Response{Status: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: []byte(s)}
	}
	tests := []struct {
		name    string
		method  string
		path    string
		reqType string
		req     string
		resp    e2etest.Response
		invalid bool   // CheckInvalid
		expect  string // a substring of the failure; empty: valid
	}{
		{name: "invalid request sent as invalid", method: "POST", path: "/v1/search", reqType: "application/json", req: `{"query":"q","top_k":"3"}`, invalid: true,
			resp: e2etest.Response{Status: 422, Header: http.Header{"Content-Type": {"application/problem+json"}},
				Body: []byte(`{"type":"https://ragplane.dev/problems/invalid","title":"Unprocessable Entity","status":422,"code":"invalid","field":"top_k"}`)}},
		{name: "valid request sent as invalid", method: "POST", path: "/v1/search", reqType: "application/json", req: `{"query":"q","top_k":3}`, invalid: true,
			resp: e2etest.Response{Status: 422, Header: http.Header{"Content-Type": {"application/problem+json"}},
				Body: []byte(`{"type":"https://ragplane.dev/problems/invalid","title":"Unprocessable Entity","status":422,"code":"invalid","field":"top_k"}`)}, expect: "sends it as invalid"},
		{name: "valid search", method: "POST", path: "/v1/search", reqType: "application/json", req: `{"query":"q","top_k":3}`,
			resp: jsonResp(200, `{"results":[],"retrieval_mode":"hybrid","graph_fallback":false,"config_version":2}`)},
		{name: "unknown request field", method: "POST", path: "/v1/search", reqType: "application/json", req: `{"query":"q","topk":3}`,
			resp: jsonResp(200, `{"results":[],"retrieval_mode":"hybrid","graph_fallback":false,"config_version":2}`), expect: "request is not valid"},
		{name: "response missing a field", method: "POST", path: "/v1/search", reqType: "application/json", req: `{"query":"q"}`,
			resp: jsonResp(200, `{"results":[],"retrieval_mode":"hybrid","config_version":2}`), expect: "response is not valid"},
		{name: "response with a bad format", method: "GET", path: "/v1/usage?granularity=day",
			resp: jsonResp(200, `{"tenant_id":"acme","granularity":"day","from":"yesterday","to":"2026-01-01T00:00:00Z","items":[]}`), expect: "response is not valid"},
		{name: "undocumented status", method: "GET", path: "/v1/documents/6f1c2b3a-1d2e-4f50-8a9b-0c1d2e3f4a5b", resp: jsonResp(418, `{}`), expect: "is not documented"},
		{name: "undocumented media type", method: "GET", path: "/v1/documents", resp: e2etest.Response{Status: 200, Header: http.Header{"Content-Type": {"text/plain"}}, Body: []byte("x")}, expect: "is not documented"},
		{name: "undocumented operation", method: "PUT", path: "/v1/documents", resp: jsonResp(200, `{}`), expect: "no documented operation"},
		{name: "valid problem", method: "GET", path: "/v1/documents/nope", resp: e2etest.Response{Status: 404, Header: http.Header{"Content-Type": {"application/problem+json"}},
			Body: []byte(`{"type":"https://ragplane.dev/problems/not_found","title":"Not Found","status":404,"code":"not_found"}`)}},
		{name: "problem with an unknown code", method: "GET", path: "/v1/documents/nope", resp: e2etest.Response{Status: 404, Header: http.Header{"Content-Type": {"application/problem+json"}},
			Body: []byte(`{"type":"x","title":"Not Found","status":404,"code":"nope"}`)}, expect: "is not valid"},
		{name: "valid stream", method: "POST", path: "/v1/query", reqType: "application/json", req: `{"query":"q","stream":true}`,
			resp: sse("event: delta\ndata: {\"text\":\"a \"}\n\nevent: delta\ndata: {\"text\":\"[1]\"}\n\nevent: done\ndata: " + answer + "\n\n")},
		{name: "undocumented event", method: "POST", path: "/v1/query", reqType: "application/json", req: `{"query":"q","stream":true}`,
			resp: sse("event: progress\ndata: {}\n\n"), expect: "is not documented"},
		{name: "invalid event data", method: "POST", path: "/v1/query", reqType: "application/json", req: `{"query":"q","stream":true}`,
			resp: sse("event: delta\ndata: {\"txt\":\"a\"}\n\n"), expect: "is not valid"},
		{name: "multipart upload", method: "POST", path: "/v1/documents", reqType: "multipart/form-data; boundary=x", req: "--x--",
			resp: jsonResp(201, `{"id":"6f1c2b3a-1d2e-4f50-8a9b-0c1d2e3f4a5b","title":"","source":"","metadata":{},"content_hash":"ab","bytes":1,"chunk_count":1,"status":"ready","language":"english","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","duplicate":false}`)},
		{name: "undocumented request media type", method: "POST", path: "/v1/search", reqType: "text/plain", req: "q",
			resp: jsonResp(200, `{"results":[],"retrieval_mode":"hybrid","graph_fallback":false,"config_version":2}`), expect: "is not documented"},
		{name: "no content documented", method: "DELETE", path: "/v1/documents/6f1c2b3a-1d2e-4f50-8a9b-0c1d2e3f4a5b", resp: jsonResp(204, `{"x":1}`), expect: "without a body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := e2etest.TenantAPI(t)
			rec := &recorder{TB: t}
			if tt.invalid {
				doc.CheckInvalid(rec, tt.method, tt.path, tt.reqType, []byte(tt.req), tt.resp)
			} else {
				doc.Check(rec, tt.method, tt.path, tt.reqType, []byte(tt.req), tt.resp)
			}
			got := strings.Join(rec.errs, "; ")
			switch {
			case tt.expect == "" && got != "":
				t.Errorf("valid exchange failed: %s", got)
			case tt.expect != "" && !strings.Contains(got, tt.expect):
				t.Errorf("failures %q, want one containing %q", got, tt.expect)
			}
		})
	}
}

// TestTenantAPIDocument checks the tenant API's document itself: unique operation ids, only
// proxy-served operations outside /v1/, and every request, response and event schema compiles as
// JSON Schema 2020-12.
func TestTenantAPIDocument(t *testing.T) {
	doc := e2etest.TenantAPI(t)
	ops := doc.Operations()
	if len(ops) < 15 {
		t.Fatalf("%d operations, want the tenant API's", len(ops))
	}
	ids := map[string]string{}
	for _, name := range ops {
		op := doc.Operation(name)
		id, _ := op["operationId"].(string)
		if id == "" || ids[id] != "" {
			t.Errorf("%s: operationId %q is empty or also used by %s", name, id, ids[id])
		}
		ids[id] = name
		if !strings.HasPrefix(strings.SplitN(name, " ", 2)[1], "/v1/") && op["x-served-by"] != "proxy" {
			t.Errorf("%s: outside /v1/ but not x-served-by: proxy (the proxy forwards only /v1/)", name)
		}
	}
	if errs := doc.CompileAll(); len(errs) > 0 {
		t.Errorf("schemas that do not compile:\n  %s", strings.Join(errs, "\n  "))
	}
}
