package proxy_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ragplane/ragplane/e2etest"
	"github.com/ragplane/ragplane/internal/tenantctx"
)

func mustStatus(tb testing.TB, r e2etest.Response, want int) {
	tb.Helper()
	if r.Status != want {
		tb.Fatalf("status %d, want %d: %s", r.Status, want, r.Body)
	}
}

func call(tb testing.TB, base, token, method, path string, body any, headers ...string) e2etest.Response {
	tb.Helper()
	if token != "" {
		headers = append(headers, "Authorization", "Bearer "+token)
	}
	return e2etest.Send(tb, method, base+path, body, headers...)
}

// A token for tenant A never reaches tenant B's data, whatever else the request says.
func TestTenantIsolationThroughTheProxy(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("tenant_a", "pro", nil)
	st.CreateTenant("tenant_b", "pro", nil)
	px := st.StartProxy(t)
	ta, tb := st.Token("tenant_a"), st.Token("tenant_b")

	r := call(t, px, tb, "POST", "/v1/documents", map[string]any{"title": "B secret", "content": "Tenant B's vault code is kept in Oslo."})
	mustStatus(t, r, http.StatusCreated)
	var doc struct {
		ID string `json:"id"`
	}
	r.Decode(t, &doc)
	mustStatus(t, call(t, px, ta, "POST", "/v1/documents", map[string]any{"content": "Tenant A's handbook mentions Oslo too."}), http.StatusCreated)

	mustStatus(t, call(t, px, ta, "GET", "/v1/documents/"+doc.ID, nil), http.StatusNotFound)
	mustStatus(t, call(t, px, ta, "GET", "/v1/documents/"+doc.ID, nil, "X-Tenant-ID", "tenant_b"), http.StatusNotFound)
	mustStatus(t, call(t, px, ta, "DELETE", "/v1/documents/"+doc.ID, nil), http.StatusNotFound)
	mustStatus(t, call(t, px, ta, "POST", "/v1/search", `{"query":"vault code","tenant_id":"tenant_b"}`), http.StatusForbidden) // another tenant: refused, never selected
	// A client cannot smuggle in a signed context of its own.
	forged := st.Codec.Sign(tenantctx.Context{}, "GET", "/v1/documents/"+doc.ID)
	mustStatus(t, call(t, px, ta, "GET", "/v1/documents/"+doc.ID, nil, tenantctx.Header, forged), http.StatusNotFound)
	for _, mode := range []string{"vector", "keyword", "hybrid", "graph"} {
		r := call(t, px, ta, "POST", "/v1/search", map[string]any{"query": "vault code Oslo", "retrieval_mode": mode, "top_k": 20})
		mustStatus(t, r, http.StatusOK)
		if strings.Contains(string(r.Body), doc.ID) || strings.Contains(string(r.Body), "Tenant B") {
			t.Fatalf("%s: tenant A sees tenant B's data: %s", mode, r.Body)
		}
	}
	mustStatus(t, call(t, px, tb, "GET", "/v1/documents/"+doc.ID, nil), http.StatusOK)
}

// Every kind of bad or forged token gets 401 with WWW-Authenticate.
func TestTokenAttacks(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("acme_corp", "pro", nil)
	px := st.StartProxy(t)
	good := st.Token("acme_corp")
	mustStatus(t, call(t, px, good, "GET", "/v1/documents", nil), http.StatusOK)

	// The real key set, to craft tokens with the right kid.
	var jwks struct {
		Keys []struct{ Kid, X string } `json:"keys"`
	}
	e2etest.Send(t, "GET", st.AdminURL+"/.well-known/jwks.json", nil).Decode(t, &jwks)
	kid := jwks.Keys[0].Kid
	pub, _ := base64.RawURLEncoding.DecodeString(jwks.Keys[0].X)
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	claims := func(mut func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": "ragplane", "aud": []string{"ragplane-api"}, "sub": "mallory", "tenant_id": "acme_corp",
			"roles": []string{"reader", "writer"}, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
		if mut != nil {
			mut(c)
		}
		return c
	}
	signEd := func(c jwt.MapClaims, key ed25519.PrivateKey, kid string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
		tok.Header["kid"] = kid
		s, _ := tok.SignedString(key)
		return s
	}
	unsigned := func(header, payload map[string]any) string {
		h, _ := json.Marshal(header)
		p, _ := json.Marshal(payload)
		return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
	}
	hsWithPublicKey := func() string {
		h, _ := json.Marshal(map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid})
		p, _ := json.Marshal(claims(nil))
		body := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
		m := hmac.New(sha256.New, pub)
		m.Write([]byte(body))
		return body + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	parts := strings.Split(good, ".")
	tests := []struct {
		name   string
		header string
	}{
		{name: "missing"},
		{name: "not bearer", header: "Basic " + good},
		{name: "garbled", header: "Bearer not.a.token"},
		{name: "oversized", header: "Bearer " + strings.Repeat("a", 9000)},
		{name: "alg none", header: "Bearer " + unsigned(map[string]any{"alg": "none", "typ": "JWT", "kid": kid}, claims(nil))},
		{name: "HS256 signed with the public key", header: "Bearer " + hsWithPublicKey()},
		{name: "unknown kid", header: "Bearer " + signEd(claims(nil), otherKey, "k-unknown")},
		{name: "right kid, wrong key", header: "Bearer " + signEd(claims(nil), otherKey, kid)},
		{name: "expired", header: "Bearer " + signEd(claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }), otherKey, kid)},
		{name: "not yet valid", header: "Bearer " + signWith(t, st, claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }))},
		{name: "wrong audience", header: "Bearer " + signWith(t, st, claims(func(c jwt.MapClaims) { c["aud"] = []string{"someone-else"} }))},
		{name: "wrong issuer", header: "Bearer " + signWith(t, st, claims(func(c jwt.MapClaims) { c["iss"] = "evil" }))},
		{name: "no exp", header: "Bearer " + signWith(t, st, claims(func(c jwt.MapClaims) { delete(c, "exp") }))},
		{name: "lives a day", header: "Bearer " + signWith(t, st, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(24 * time.Hour).Unix() }))},
		{name: "tampered payload", header: "Bearer " + parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"tenant_id":"beta_inc"}`)) + "." + parts[2]},
		{name: "signature stripped", header: "Bearer " + parts[0] + "." + parts[1] + "."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h []string
			if tt.header != "" {
				h = []string{"Authorization", tt.header}
			}
			r := e2etest.Send(t, "GET", px+"/v1/documents", nil, h...)
			mustStatus(t, r, http.StatusUnauthorized)
			if r.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
			r.Problem(t)
		})
	}
}

// signWith signs claims with the control plane's current signing key, read from the catalog, so
// that only the claim under test is wrong.
func signWith(t *testing.T, st *e2etest.Stack, c jwt.MapClaims) string {
	t.Helper()
	keys, err := st.Store().SigningKeys(context.Background())
	if err != nil || len(keys) == 0 || keys[0].Private == nil {
		t.Fatalf("signing keys: %v", err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = keys[0].KID
	s, err := tok.SignedString(keys[0].Private)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The same key signing a valid token is accepted, so the cases above fail for their claim alone.
func TestSignWithIsAccepted(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("acme_corp", "pro", nil)
	px := st.StartProxy(t)
	now := time.Now()
	tok := signWith(t, st, jwt.MapClaims{"iss": "ragplane", "aud": []string{"ragplane-api"}, "sub": "x", "tenant_id": "acme_corp",
		"roles": []string{"reader"}, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()})
	mustStatus(t, call(t, px, tok, "GET", "/v1/documents", nil), http.StatusOK)
	// Bodies over the tenant's max_request_bytes get 413, with Content-Length or chunked.
	mustStatus(t, st.Admin("PATCH", "/v1/tenants/acme_corp", map[string]any{"limits": map[string]any{"max_request_bytes": 4096}}), http.StatusOK)
	st.WaitPolicies(t, "acme_corp")
	big := `{"content": "` + strings.Repeat("x", 8192) + `"}`
	r := call(t, px, tok, "POST", "/v1/documents", big)
	mustStatus(t, r, http.StatusRequestEntityTooLarge)
	req, _ := http.NewRequest("POST", px+"/v1/documents", io.MultiReader(strings.NewReader(big[:10]), strings.NewReader(big[10:])))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked body over the limit: %d", resp.StatusCode)
	}
	// The control plane lists this proxy with the versions it has ACKed.
	var proxies struct {
		Items []struct {
			NodeID string `json:"node_id"`
			Types  map[string]struct {
				AckedVersion string `json:"acked_version"`
				NackError    string `json:"nack_error"`
			} `json:"types"`
		} `json:"items"`
	}
	listed := st.Admin("GET", "/v1/proxies", nil)
	listed.Decode(t, &proxies)
	// The API's JSON conventions: snake_case, and null for a NACK that never happened.
	if body := string(listed.Body); !strings.Contains(body, `"nacked_at":null`) || strings.Contains(body, "NodeID") || strings.Contains(body, "0001-01-01") {
		t.Errorf("GET /v1/proxies = %s, want snake_case keys and null for never", body)
	}
	if len(proxies.Items) != 1 || len(proxies.Items[0].Types) < 4 {
		t.Fatalf("proxies %+v", proxies.Items)
	}
	for typ, ts := range proxies.Items[0].Types {
		if ts.AckedVersion == "" || ts.NackError != "" {
			t.Fatalf("%s: %+v", typ, ts)
		}
	}
}

// A limit changed through the admin API is enforced by the proxy as soon as it has ACKed the
// change, and so is a raised one. (How fast a change propagates is measured by ops/bench, not
// asserted here.)
func TestLiveLimitChange(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("gamma_labs", "enterprise", nil)
	px := st.StartProxy(t)
	tok := st.Token("gamma_labs")
	for i := 0; i < 10; i++ {
		mustStatus(t, call(t, px, tok, "GET", "/v1/documents", nil), http.StatusOK)
	}
	mustStatus(t, st.Admin("PATCH", "/v1/tenants/gamma_labs", map[string]any{"limits": map[string]any{"requests_per_second": 0.5, "burst": 1}}), http.StatusOK)
	st.WaitPolicies(t, "gamma_labs")
	// A changed limit starts a fresh bucket: with a burst of 1, one of the next few requests is
	// refused (the second, with an exact limiter).
	for i := 0; ; i++ {
		r := call(t, px, tok, "GET", "/v1/documents", nil)
		if r.Status == http.StatusTooManyRequests {
			p := r.Problem(t)
			if p["field"] != "requests_per_second" || r.Header.Get("Retry-After") == "" || r.Header.Get("RateLimit-Limit") == "" {
				t.Fatalf("429 without the details: %v %v", p, r.Header)
			}
			break
		}
		mustStatus(t, r, http.StatusOK)
		if i == 5 {
			t.Fatal("the new limit of 0.5/s with a burst of 1 is not enforced")
		}
	}
	// Raising it again lets requests through at once.
	mustStatus(t, st.Admin("PATCH", "/v1/tenants/gamma_labs", map[string]any{"limits": map[string]any{"requests_per_second": 100, "burst": 50}}), http.StatusOK)
	st.WaitPolicies(t, "gamma_labs")
	mustStatus(t, call(t, px, tok, "GET", "/v1/documents", nil), http.StatusOK)
}

// Two proxies share one budget in Redis: the N+1-th request in the window is refused, whichever
// proxy it goes to.
func TestRateLimitExactAcrossReplicas(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("beta_inc", "pro", nil)
	mustStatus(t, st.Admin("PATCH", "/v1/tenants/beta_inc", map[string]any{"limits": map[string]any{"requests_per_second": 0.01, "burst": 7}}), http.StatusOK)
	p1, p2 := st.StartProxy(t), st.StartProxy(t)
	tok := st.Token("beta_inc")
	allowed := 0
	for i := 0; i < 7; i++ {
		p := []string{p1, p2}[i%2]
		r := call(t, p, tok, "GET", "/v1/documents", nil)
		if r.Status == http.StatusOK {
			allowed++
		} else {
			t.Fatalf("request %d refused early: %d %s", i+1, r.Status, r.Body)
		}
	}
	r := call(t, p2, tok, "GET", "/v1/documents", nil)
	mustStatus(t, r, http.StatusTooManyRequests)
	if r.Header.Get("RateLimit-Remaining") != "0" {
		t.Fatalf("RateLimit-Remaining %q", r.Header.Get("RateLimit-Remaining"))
	}
	r = call(t, p1, tok, "GET", "/v1/documents", nil)
	mustStatus(t, r, http.StatusTooManyRequests)
}

// A token the proxy has verified and remembers is refused as soon as its tenant is suspended or
// deleted (the policy is checked on every request), and accepted again once it is resumed.
func TestCachedTokenFollowsTheTenant(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("delta_co", "pro", nil)
	px := st.StartProxy(t)
	tok := st.Token("delta_co")
	for range 3 { // the first verifies the token, the others find it remembered
		mustStatus(t, call(t, px, tok, "GET", "/v1/documents", nil), http.StatusOK)
	}
	mustStatus(t, st.Admin("POST", "/v1/tenants/delta_co/suspend", nil), http.StatusOK)
	st.WaitPolicies(t, "delta_co")
	mustStatus(t, call(t, px, tok, "GET", "/v1/documents", nil), http.StatusForbidden)
	mustStatus(t, st.Admin("POST", "/v1/tenants/delta_co/resume", nil), http.StatusOK)
	st.WaitPolicies(t, "delta_co")
	mustStatus(t, call(t, px, tok, "GET", "/v1/documents", nil), http.StatusOK)
	mustStatus(t, st.Admin("DELETE", "/v1/tenants/delta_co", nil), http.StatusAccepted)
	st.WaitPolicies(t)
	mustStatus(t, call(t, px, tok, "GET", "/v1/documents", nil), http.StatusUnauthorized)
}

// keyToken creates an API key for tenant and exchanges it for an access token; it returns both
// the key's id and the token.
func keyToken(tb testing.TB, st *e2etest.Stack, tenant string) (keyID, token string) {
	tb.Helper()
	r := st.Admin("POST", "/v1/tenants/"+tenant+"/keys", map[string]any{"name": "revocable"})
	mustStatus(tb, r, http.StatusCreated)
	var key struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	r.Decode(tb, &key)
	r = e2etest.Send(tb, "POST", st.AdminURL+"/v1/auth/token", nil, "Authorization", "Bearer "+key.Key)
	mustStatus(tb, r, http.StatusOK)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	r.Decode(tb, &tok)
	return key.ID, tok.AccessToken
}

// Revoking an API key revokes the tokens it minted on every proxy as soon as they have the
// tenant's new policy, remembered (cached) tokens included; tokens of the tenant's other keys
// keep working.
func TestRevokedKeyRevokesItsTokens(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("kilo_co", "pro", nil)
	proxies := []string{st.StartProxy(t), st.StartProxy(t)}
	keyA, tokA := keyToken(t, st, "kilo_co")
	_, tokB := keyToken(t, st, "kilo_co")
	for _, px := range proxies {
		for range 2 { // the first verifies each token, the second finds it remembered
			mustStatus(t, call(t, px, tokA, "GET", "/v1/documents", nil), http.StatusOK)
			mustStatus(t, call(t, px, tokB, "GET", "/v1/documents", nil), http.StatusOK)
		}
	}
	invalid := call(t, proxies[0], "not-a-token", "GET", "/v1/documents", nil)
	mustStatus(t, invalid, http.StatusUnauthorized)

	mustStatus(t, st.Admin("DELETE", "/v1/tenants/kilo_co/keys/"+keyA, nil), http.StatusOK)
	st.WaitPolicies(t, "kilo_co")
	for _, px := range proxies {
		r := call(t, px, tokA, "GET", "/v1/documents", nil)
		mustStatus(t, r, http.StatusUnauthorized)
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
			t.Fatalf("revoked key's token: Content-Type %q", ct)
		}
		if got, want := problemDetail(t, r), problemDetail(t, invalid); got != want {
			t.Fatalf("revoked key's token: %q, want the invalid-token answer %q", got, want)
		}
		if r.Header.Get("WWW-Authenticate") != invalid.Header.Get("WWW-Authenticate") {
			t.Fatalf("WWW-Authenticate %q, want %q", r.Header.Get("WWW-Authenticate"), invalid.Header.Get("WWW-Authenticate"))
		}
		mustStatus(t, call(t, px, tokB, "GET", "/v1/documents", nil), http.StatusOK)
	}
	// A fresh proxy, which never saw the token, gets the revocation with its first policy.
	fresh := st.StartProxy(t)
	mustStatus(t, call(t, fresh, tokA, "GET", "/v1/documents", nil), http.StatusUnauthorized)
	mustStatus(t, call(t, fresh, tokB, "GET", "/v1/documents", nil), http.StatusOK)
}

// problemDetail is a problem+json body without its per-request fields.
func problemDetail(tb testing.TB, r e2etest.Response) string {
	tb.Helper()
	var p map[string]any
	if err := json.Unmarshal(r.Body, &p); err != nil {
		tb.Fatalf("problem body %s: %v", r.Body, err)
	}
	delete(p, "request_id")
	delete(p, "instance")
	b, _ := json.Marshal(p)
	return string(b)
}
