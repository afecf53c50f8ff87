package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ragplane/ragplane/controlplane"
	"github.com/ragplane/ragplane/e2etest"
)

// from returns a client whose connections come from ip (any 127.0.0.0/8 address is loopback on
// Linux), so a test can tell a client's address from the proxy's (127.0.0.1).
func from(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
}

// sendFrom is e2etest.Send through client c.
func sendFrom(tb testing.TB, c *http.Client, method, url string, body any, headers ...string) e2etest.Response {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return e2etest.Response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// exchange trades key for an access token through base; it fails the test unless that is 200.
func exchange(tb testing.TB, base, key string, body any) string {
	tb.Helper()
	r := e2etest.Send(tb, "POST", base+"/v1/auth/token", body, "Authorization", "Bearer "+key)
	if r.Status != http.StatusOK {
		tb.Fatalf("POST /v1/auth/token through %s = %d %s", base, r.Status, r.Body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	r.Decode(tb, &tok)
	if tok.AccessToken == "" || tok.TokenType != "Bearer" || tok.ExpiresIn <= 0 {
		tb.Fatalf("token response %s", r.Body)
	}
	return tok.AccessToken
}

// authFailures returns the sources of the audited failed authentications on route, newest first.
func authFailures(tb testing.TB, st *e2etest.Stack, route string) []map[string]string {
	tb.Helper()
	var page struct {
		Items []struct {
			Actor  string          `json:"actor"`
			Target string          `json:"target"`
			After  json.RawMessage `json:"after"`
		} `json:"items"`
	}
	st.Admin("GET", "/v1/audit?action=admin.auth_failed&limit=500", nil).Decode(tb, &page)
	var out []map[string]string
	for _, e := range page.Items {
		if e.Target != route {
			continue
		}
		var after map[string]string
		json.Unmarshal(e.After, &after)
		after["actor"] = e.Actor
		out = append(out, after)
	}
	return out
}

// TestTokenExchangeThroughProxy: a tenant gets its token from the proxy's address with an API
// key; a bad key is refused and audited with the client's address (not the proxy's, not one the
// client claims in X-Forwarded-For or a forged signed header); exchanges are limited per client
// address, through the proxy as on the admin API.
func TestTokenExchangeThroughProxy(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{ControlPlane: func(c *controlplane.Config) { c.Tokens.ExchangesPerMinute = 3 }})
	st.CreateTenant("exch_co", "pro", nil)
	px := st.StartProxy(t)
	key, _ := st.APIKey("exch_co")

	// A key works through the proxy, and its token on the same address.
	tok := sendFrom(t, from("127.0.0.2"), "POST", px+"/v1/auth/token", map[string]any{"user": "dev@exch.co"}, "Authorization", "Bearer "+key)
	if tok.Status != http.StatusOK || tok.Header.Get("Cache-Control") != "no-store" || tok.Header.Get("X-Request-ID") == "" {
		t.Fatalf("exchange through the proxy = %d %v %s", tok.Status, tok.Header, tok.Body)
	}
	var body struct {
		AccessToken string `json:"access_token"`
	}
	tok.Decode(t, &body)
	if r := e2etest.Send(t, "GET", px+"/v1/documents", nil, "Authorization", "Bearer "+body.AccessToken); r.Status != http.StatusOK {
		t.Fatalf("GET /v1/documents with the proxy's token = %d %s", r.Status, r.Body)
	}

	// A bad key from 127.0.0.2 that claims to be elsewhere: 401, audited as 127.0.0.2.
	forged := sendFrom(t, from("127.0.0.2"), "POST", px+"/v1/auth/token", nil, "Authorization", "Bearer rpk_abcdefghijkl_wrongsecret",
		"X-Forwarded-For", "203.0.113.9", "X-Real-IP", "203.0.113.9", "X-Ragplane-Client", "c1.MjAzLjAuMTEzLjk.1.AAAA")
	if forged.Status != http.StatusUnauthorized || forged.Problem(t)["code"] != "unauthorized" {
		t.Fatalf("bad key through the proxy = %d %s", forged.Status, forged.Body)
	}
	fails := authFailures(t, st, "/v1/auth/token")
	if len(fails) != 1 || fails[0]["source"] != "127.0.0.2" || fails[0]["actor"] != "key:abcdefghijkl" || fails[0]["reason"] != "invalid" {
		t.Fatalf("audited failures %v, want one from 127.0.0.2 by key:abcdefghijkl", fails)
	}
	// Directly on the admin API the source is the peer, as before.
	if r := sendFrom(t, from("127.0.0.5"), "POST", st.AdminURL+"/v1/auth/token", nil, "Authorization", "Bearer rpk_abcdefghijkl_wrongsecret"); r.Status != http.StatusUnauthorized {
		t.Fatalf("bad key on the admin API = %d", r.Status)
	}
	if fails := authFailures(t, st, "/v1/auth/token"); len(fails) != 2 || fails[0]["source"] != "127.0.0.5" {
		t.Fatalf("audited failures %v, want the newest from 127.0.0.5", fails)
	}

	// 127.0.0.2 has used 2 of its 3 exchanges a minute: one more, then 429 with Retry-After,
	// whatever the key; another address is not held back.
	if r := sendFrom(t, from("127.0.0.2"), "POST", px+"/v1/auth/token", nil, "Authorization", "Bearer "+key); r.Status != http.StatusOK {
		t.Fatalf("third exchange = %d %s", r.Status, r.Body)
	}
	limited := sendFrom(t, from("127.0.0.2"), "POST", px+"/v1/auth/token", nil, "Authorization", "Bearer "+key)
	if limited.Status != http.StatusTooManyRequests || limited.Header.Get("Retry-After") == "" || limited.Problem(t)["field"] != "token_exchanges_per_minute" {
		t.Fatalf("fourth exchange from one address = %d %v %s, want 429 with Retry-After", limited.Status, limited.Header, limited.Body)
	}
	if n, err := strconv.Atoi(limited.Header.Get("Retry-After")); err != nil || n < 1 || n > 20 {
		t.Fatalf("Retry-After %q, want about 20s (one exchange's share of a minute)", limited.Header.Get("Retry-After"))
	}
	if r := sendFrom(t, from("127.0.0.3"), "POST", px+"/v1/auth/token", nil, "Authorization", "Bearer "+key); r.Status != http.StatusOK {
		t.Fatalf("exchange from another address = %d %s", r.Status, r.Body)
	}

	// The seed's unauthenticated call names a tenant and a user but carries no key: it never
	// mints a token.
	if r := e2etest.Send(t, "POST", px+"/v1/auth/token?tenant_id=exch_co&user_id=test_user", nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("token call without a key = %d %s, want 401", r.Status, r.Body)
	}
}

// TestJWKSThroughProxy: the proxy serves the control plane's JWK Set, from its pushed keys, and
// follows a rotation.
func TestJWKSThroughProxy(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{ControlPlane: func(c *controlplane.Config) { c.Tokens.PublishDelay = 0 }})
	px := st.StartProxy(t)
	jwks := func(base string) map[string]any {
		t.Helper()
		r := e2etest.Send(t, "GET", base+"/.well-known/jwks.json", nil)
		if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Cache-Control") != "public, max-age=60" {
			t.Fatalf("GET %s/.well-known/jwks.json = %d %v %s", base, r.Status, r.Header, r.Body)
		}
		var v map[string]any
		r.Decode(t, &v)
		return v
	}
	want := jwks(st.AdminURL)
	if keys, _ := want["keys"].([]any); len(keys) == 0 {
		t.Fatalf("control plane JWKS %v has no keys", want)
	}
	if got := jwks(px); !jsonEqual(got, want) {
		t.Fatalf("proxy JWKS %v, want the control plane's %v", got, want)
	}
	if r := st.Admin("POST", "/v1/signing-keys/rotate", nil); r.Status != http.StatusOK {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}
	rotated := jwks(st.AdminURL)
	deadline := time.Now().Add(20 * time.Second)
	for !jsonEqual(jwks(px), rotated) {
		if time.Now().After(deadline) {
			t.Fatalf("proxy JWKS %v, want the rotated %v", jwks(px), rotated)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// me is GET /v1/me's answer.
type me struct {
	TenantID string `json:"tenant_id"`
	Plan     string `json:"plan"`
	Subject  string `json:"subject"`
	Roles    []string
	Settings map[string]struct {
		Value  any    `json:"value"`
		Source string `json:"source"`
	} `json:"settings"`
	Limits map[string]struct {
		Value  any    `json:"value"`
		Source string `json:"source"`
	} `json:"limits"`
	Used struct {
		TokensThisMonth int64 `json:"tokens_this_month"`
		Documents       int64 `json:"documents"`
		StorageBytes    int64 `json:"storage_bytes"`
	} `json:"used"`
	Remaining struct {
		QueriesThisHour *int  `json:"queries_this_hour"`
		TokensThisMonth int64 `json:"tokens_this_month"`
		Documents       int64 `json:"documents"`
		StorageBytes    int64 `json:"storage_bytes"`
	} `json:"remaining"`
}

// TestMeThroughProxy: GET /v1/me tells a tenant its plan, settings and limits with their layers,
// and what is left: queries this hour going down with each request, documents and storage
// against the quotas after ingestion, tokens this month against monthly_tokens.
func TestMeThroughProxy(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("me_co", "pro", map[string]any{"top_k": 4})
	if r := st.Admin("PATCH", "/v1/tenants/me_co", map[string]any{"limits": map[string]any{"max_documents": 20, "queries_per_hour": 100}}); r.Status != http.StatusOK {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	px := st.StartProxy(t)
	token := st.Token("me_co", "reader", "writer")
	get := func() me {
		t.Helper()
		r := e2etest.Send(t, "GET", px+"/v1/me", nil, "Authorization", "Bearer "+token)
		if r.Status != http.StatusOK {
			t.Fatalf("GET /v1/me = %d %s", r.Status, r.Body)
		}
		var m me
		r.Decode(t, &m)
		return m
	}
	first := get()
	if first.TenantID != "me_co" || first.Plan != "pro" || !strings.HasPrefix(first.Subject, "apikey:") || !slices.Equal(first.Roles, []string{"reader", "writer"}) {
		t.Fatalf("me = %+v", first)
	}
	if s := first.Settings["top_k"]; s.Value != float64(4) || s.Source != "tenant" {
		t.Errorf("setting top_k %+v, want 4 from the tenant", s)
	}
	if s := first.Settings["retrieval_mode"]; s.Source == "" || s.Value == nil {
		t.Errorf("setting retrieval_mode %+v, want a value and its layer", s)
	}
	if l := first.Limits["max_documents"]; l.Value != float64(20) || l.Source != "tenant" {
		t.Errorf("limit max_documents %+v, want 20 from the tenant", l)
	}
	if l := first.Limits["monthly_tokens"]; l.Source != "plan" {
		t.Errorf("limit monthly_tokens %+v, want it from the plan", l)
	}
	monthly := int64(first.Limits["monthly_tokens"].Value.(float64))
	storageMB := int64(first.Limits["max_storage_mb"].Value.(float64))
	if first.Used.Documents != 0 || first.Remaining.Documents != 20 || first.Remaining.StorageBytes != storageMB<<20 {
		t.Errorf("before ingestion: used %+v remaining %+v", first.Used, first.Remaining)
	}
	if first.Remaining.QueriesThisHour == nil || *first.Remaining.QueriesThisHour >= 100 || *first.Remaining.QueriesThisHour < 90 {
		t.Fatalf("queries_this_hour = %v, want under 100 (this request counted)", first.Remaining.QueriesThisHour)
	}

	texts := []string{"Globex Inc supplies the payroll system.", "Records are retained for seven years."}
	for _, text := range texts {
		if r := e2etest.Send(t, "POST", px+"/v1/documents", map[string]any{"title": "doc", "content": text}, "Authorization", "Bearer "+token); r.Status != http.StatusCreated {
			t.Fatalf("ingest: %d %s", r.Status, r.Body)
		}
	}
	for i := 0; i < 2; i++ {
		if r := e2etest.Send(t, "POST", px+"/v1/query", map[string]any{"query": "Who supplies the payroll system?"}, "Authorization", "Bearer "+token); r.Status != http.StatusOK {
			t.Fatalf("query: %d %s", r.Status, r.Body)
		}
	}
	after := get()
	// Four requests since (2 uploads, 2 queries) and this one: five fewer, give or take the
	// trickle the hourly bucket refills meanwhile (100 an hour: one per 36 s).
	if d := *first.Remaining.QueriesThisHour - *after.Remaining.QueriesThisHour; d < 4 || d > 5 {
		t.Errorf("queries_this_hour went from %d to %d, want 5 fewer", *first.Remaining.QueriesThisHour, *after.Remaining.QueriesThisHour)
	}
	var bytes int64
	for _, text := range texts {
		bytes += int64(len(text))
	}
	if after.Used.Documents != 2 || after.Remaining.Documents != 18 || after.Used.StorageBytes != bytes || after.Remaining.StorageBytes != storageMB<<20-bytes {
		t.Errorf("after ingestion: used %+v remaining %+v, want 2 documents of %d bytes", after.Used, after.Remaining, bytes)
	}
	// Usage reaches the catalog when the worker ships it: wait for the tokens to show.
	deadline := time.Now().Add(30 * time.Second)
	for m := after; ; m = get() {
		if m.Used.TokensThisMonth > 0 {
			if m.Remaining.TokensThisMonth != monthly-m.Used.TokensThisMonth {
				t.Errorf("tokens: used %d, remaining %d of %d", m.Used.TokensThisMonth, m.Remaining.TokensThisMonth, monthly)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no tokens counted this month after ingestion and queries: %+v", m.Used)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Without a token: 401, like every /v1 route.
	if r := e2etest.Send(t, "GET", px+"/v1/me", nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("GET /v1/me without a token = %d", r.Status)
	}
}

// TestTenantAdminKeysThroughProxy: a token with the admin role lists, creates and revokes its own
// tenant's keys through the proxy, audited as the tenant's caller; other tokens get 403, another
// tenant's key 404; a key cannot get roles beyond the creator's; a revoked key's token is refused.
func TestTenantAdminKeysThroughProxy(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("keys_co", "pro", nil)
	st.CreateTenant("other_co", "pro", nil)
	px := st.StartProxy(t)
	adminKey, adminKeyID := st.APIKey("keys_co", "reader", "writer", "admin")
	admin := []string{"Authorization", "Bearer " + exchange(t, px, adminKey, nil)}

	var created struct {
		ID     string   `json:"id"`
		Key    string   `json:"key"`
		Roles  []string `json:"roles"`
		Tenant string   `json:"tenant_id"`
	}
	r := e2etest.Send(t, "POST", px+"/v1/keys", map[string]any{"name": "ci", "roles": []string{"reader"}}, admin...)
	if r.Status != http.StatusCreated || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("POST /v1/keys = %d %s", r.Status, r.Body)
	}
	r.Decode(t, &created)
	if created.Tenant != "keys_co" || !strings.HasPrefix(created.Key, "rpk_") || !slices.Equal(created.Roles, []string{"reader"}) {
		t.Fatalf("created %s", r.Body)
	}
	var list struct {
		Items []struct {
			ID     string `json:"id"`
			Tenant string `json:"tenant_id"`
		} `json:"items"`
	}
	r = e2etest.Send(t, "GET", px+"/v1/keys", nil, admin...)
	r.Decode(t, &list)
	if r.Status != http.StatusOK || len(list.Items) != 2 || list.Items[0].ID != created.ID || strings.Contains(string(r.Body), `"key"`) {
		t.Fatalf("GET /v1/keys = %d %s, want the two keys of keys_co without secrets", r.Status, r.Body)
	}
	var audit struct {
		Items []struct {
			Actor string `json:"actor"`
		} `json:"items"`
	}
	st.Admin("GET", "/v1/audit?action=key.create&target=tenant/keys_co/keys/"+created.ID, nil).Decode(t, &audit)
	if len(audit.Items) != 1 || audit.Items[0].Actor != "tenant:keys_co apikey:"+adminKeyID {
		t.Fatalf("audit of the creation %+v, want tenant:keys_co apikey:%s", audit.Items, adminKeyID)
	}

	// The new key mints tokens through the proxy, which work until the key is revoked.
	readerToken := exchange(t, px, created.Key, nil)
	reader := []string{"Authorization", "Bearer " + readerToken}
	if r := e2etest.Send(t, "GET", px+"/v1/documents", nil, reader...); r.Status != http.StatusOK {
		t.Fatalf("new key's token: %d %s", r.Status, r.Body)
	}
	for _, c := range []struct {
		name, method, path string
		body               any
		auth               []string
		want               int
		field              string
	}{
		{name: "list without admin", method: "GET", path: "/v1/keys", auth: reader, want: http.StatusForbidden},
		{name: "create without admin", method: "POST", path: "/v1/keys", body: map[string]any{"name": "x"}, auth: reader, want: http.StatusForbidden},
		{name: "revoke without admin", method: "DELETE", path: "/v1/keys/" + adminKeyID, auth: reader, want: http.StatusForbidden},
		{name: "no token", method: "GET", path: "/v1/keys", want: http.StatusUnauthorized},
		{name: "unknown field", method: "POST", path: "/v1/keys", body: map[string]any{"name": "x", "tenant": "other_co"}, auth: admin, want: http.StatusBadRequest, field: "tenant"},
		{name: "unknown role", method: "POST", path: "/v1/keys", body: map[string]any{"name": "x", "roles": []string{"owner"}}, auth: admin, want: http.StatusUnprocessableEntity, field: "roles[0]"},
		{name: "malformed key id", method: "DELETE", path: "/v1/keys/not-a-uuid", auth: admin, want: http.StatusNotFound},
	} {
		r := e2etest.Send(t, c.method, px+c.path, c.body, c.auth...)
		if r.Status != c.want {
			t.Errorf("%s: %s %s = %d %s, want %d", c.name, c.method, c.path, r.Status, r.Body, c.want)
		} else if c.field != "" && r.Problem(t)["field"] != c.field {
			t.Errorf("%s: problem %s, want field %q", c.name, r.Body, c.field)
		}
	}

	// A narrower admin token (admin and reader only) cannot grant writer.
	narrow := []string{"Authorization", "Bearer " + exchange(t, px, adminKey, map[string]any{"roles": []string{"admin", "reader"}})}
	if r := e2etest.Send(t, "POST", px+"/v1/keys", map[string]any{"name": "w", "roles": []string{"reader", "writer"}}, narrow...); r.Status != http.StatusForbidden || r.Problem(t)["field"] != "roles" {
		t.Fatalf("key with roles beyond the token's = %d %s, want 403 naming roles", r.Status, r.Body)
	}

	// Another tenant's key is 404 and stays valid.
	otherKey, otherID := st.APIKey("other_co")
	if r := e2etest.Send(t, "DELETE", px+"/v1/keys/"+otherID, nil, admin...); r.Status != http.StatusNotFound {
		t.Fatalf("revoking another tenant's key = %d %s, want 404", r.Status, r.Body)
	}
	exchange(t, px, otherKey, nil)

	// Revoked: the key mints nothing and its token is refused.
	r = e2etest.Send(t, "DELETE", px+"/v1/keys/"+created.ID, nil, admin...)
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"revoked_at"`) {
		t.Fatalf("DELETE /v1/keys/{id} = %d %s", r.Status, r.Body)
	}
	if r := e2etest.Send(t, "POST", px+"/v1/auth/token", nil, "Authorization", "Bearer "+created.Key); r.Status != http.StatusUnauthorized {
		t.Fatalf("exchange of a revoked key = %d, want 401", r.Status)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := e2etest.Send(t, "GET", px+"/v1/documents", nil, reader...)
		if r.Status == http.StatusUnauthorized {
			break
		}
		if r.Status != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("revoked key's token: %d %s, want 401 once the revocation is pushed", r.Status, r.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	st.Admin("GET", "/v1/audit?action=key.revoke&target=tenant/keys_co/keys/"+created.ID, nil).Decode(t, &audit)
	if len(audit.Items) != 1 || audit.Items[0].Actor != "tenant:keys_co apikey:"+adminKeyID {
		t.Fatalf("audit of the revocation %+v", audit.Items)
	}
}
