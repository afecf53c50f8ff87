package proxy_test

import (
	"log/slog"
	"net/http"
	"slices"
	"testing"

	"github.com/ragplane/ragplane/e2etest"
)

// Every tenant API response, the worker's and the proxy's own errors, carries one X-Request-ID
// (the proxy's, which the worker was given) and Cache-Control: no-store (issue 11, item 18).
func TestResponseHeadersAreTheProxys(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("acme_corp", "pro", nil)
	px := st.StartProxy(t)
	tok := st.Token("acme_corp")
	mustStatus(t, call(t, px, tok, "POST", "/v1/documents", map[string]any{"content": "Headers are checked in Oslo."}), http.StatusCreated)

	tests := []struct {
		name   string
		when   func() e2etest.Response
		expect int
	}{
		{name: "worker list", when: func() e2etest.Response { return call(t, px, tok, "GET", "/v1/documents", nil) }, expect: http.StatusOK},
		{name: "worker search", when: func() e2etest.Response {
			return call(t, px, tok, "POST", "/v1/search", map[string]any{"query": "Oslo"})
		}, expect: http.StatusOK},
		{name: "worker query (sets its own Cache-Control)", when: func() e2etest.Response {
			return call(t, px, tok, "POST", "/v1/query", map[string]any{"query": "Where are headers checked?"})
		}, expect: http.StatusOK},
		{name: "worker error", when: func() e2etest.Response {
			return call(t, px, tok, "GET", "/v1/documents/00000000-0000-0000-0000-000000000000", nil)
		}, expect: http.StatusNotFound},
		{name: "proxy error", when: func() e2etest.Response { return call(t, px, "", "GET", "/v1/documents", nil) }, expect: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.when()
			mustStatus(t, r, tt.expect)
			if ids := r.Header.Values("X-Request-ID"); len(ids) != 1 || len(ids[0]) != 32 {
				t.Errorf("X-Request-ID = %q, want one proxy id", ids)
			}
			if cc := r.Header.Values("Cache-Control"); !slices.Equal(cc, []string{"no-store"}) {
				t.Errorf("Cache-Control = %q, want [no-store]", cc)
			}
		})
	}
}

// A proxy whose /readyz turned 200 accepts a valid token at once: it holds the signing keys and
// the tenant's policy by then (issue 11, item 18).
func TestReadyMeansTokensVerify(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("acme_corp", "pro", nil)
	tok := st.Token("acme_corp")
	for i := 0; i < 5; i++ {
		p := st.RunProxy(t, slog.New(slog.DiscardHandler))
		e2etest.WaitReady(t, p.URL)
		mustStatus(t, call(t, p.URL, tok, "GET", "/v1/documents", nil), http.StatusOK)
	}
}
