package controlplane_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/controlplane"
)

type jwks struct {
	Keys []controlplane.JWK `json:"keys"`
}

// verify checks a token against a JWKS the way a proxy would: EdDSA only, kid lookup, exp
// required, issuer and audience checked.
func verify(t *testing.T, set jwks, token string) (*controlplane.TenantClaims, error) {
	t.Helper()
	var claims controlplane.TenantClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		for _, k := range set.Keys {
			if k.Kid == kid {
				x, err := base64.RawURLEncoding.DecodeString(k.X)
				return ed25519.PublicKey(x), err
			}
		}
		return nil, jwt.ErrTokenUnverifiable
	}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithExpirationRequired(), jwt.WithIssuer("ragplane"),
		jwt.WithAudience("ragplane-api"), jwt.WithLeeway(5*time.Second))
	return &claims, err
}

func (ts *testServer) jwks(t *testing.T) jwks {
	t.Helper()
	r := ts.do("GET", "/.well-known/jwks.json", nil, "Authorization", "")
	mustStatus(t, r, http.StatusOK)
	var set jwks
	r.decode(t, &set)
	return set
}

func TestTokensAndKeyRotation(t *testing.T) {
	ts := mustStart(t)
	ts.createTenant("acme_corp", "enterprise")
	ts.waitStatus("acme_corp", 30*time.Second, ragplane.StatusActive)

	r := ts.do("POST", "/v1/tenants/acme_corp/keys", map[string]any{"name": "reader-only", "roles": []string{"reader"}})
	mustStatus(t, r, http.StatusCreated)
	var key struct {
		Key    string `json:"key"`
		ID     string `json:"id"`
		Prefix string `json:"prefix"`
	}
	r.decode(t, &key)

	// The key is stored hashed: listing never shows it.
	r = ts.do("GET", "/v1/tenants/acme_corp/keys", nil)
	if contains := string(r.Body); len(key.Key) < 20 || strings.Contains(contains, key.Key) || strings.Contains(contains, key.Key[18:]) {
		t.Fatalf("key listing reveals the secret: %s", contains)
	}

	issue := func(body any) response {
		return ts.do("POST", "/v1/auth/token", body, "Authorization", "Bearer "+key.Key)
	}
	r = issue(map[string]any{"user": "alice@acme.example"})
	mustStatus(t, r, http.StatusOK)
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	r.decode(t, &tok)
	if tok.TokenType != "Bearer" || tok.ExpiresIn <= 0 || tok.ExpiresIn > 3600 {
		t.Fatalf("token response %+v", tok)
	}
	before := ts.jwks(t)
	claims, err := verify(t, before, tok.AccessToken)
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	if claims.TenantID != "acme_corp" || claims.Subject != "alice@acme.example" || len(claims.Roles) != 1 || claims.Roles[0] != "reader" {
		t.Fatalf("claims = %+v", claims)
	}
	if claims.ExpiresAt.Sub(claims.IssuedAt.Time) > time.Hour {
		t.Fatalf("token lives longer than an hour")
	}
	// The token names the key that minted it (its id, never its secret), so revoking the key can
	// revoke the token.
	if claims.APIKeyID != key.ID || key.ID == "" {
		t.Fatalf("akid = %q, want the key id %q", claims.APIKeyID, key.ID)
	}
	if payload, err := base64.RawURLEncoding.DecodeString(strings.Split(tok.AccessToken, ".")[1]); err != nil ||
		!strings.Contains(string(payload), `"akid":"`+key.ID+`"`) || strings.Contains(string(payload), key.Key[18:]) {
		t.Fatalf("token payload %s (%v): want akid and no secret", payload, err)
	}

	// A role the key does not have is refused.
	mustStatus(t, issue(map[string]any{"roles": []string{"writer"}}), http.StatusForbidden)
	mustStatus(t, issue(map[string]any{"expires_in": 999999}), http.StatusUnprocessableEntity)

	// Rotation: the new key is published at once, the old one stays published, so the old token
	// still verifies; the old key signs until the new one has been published for the publish delay.
	r = ts.do("POST", "/v1/signing-keys/rotate", nil)
	mustStatus(t, r, http.StatusOK)
	after := ts.jwks(t)
	if len(after.Keys) != 2 || after.Keys[0].Kid == before.Keys[0].Kid {
		t.Fatalf("after rotation JWKS = %+v, want the new key first and the old one kept", after.Keys)
	}
	if _, err := verify(t, after, tok.AccessToken); err != nil {
		t.Fatalf("a token signed before rotation no longer verifies: %v", err)
	}
	r = issue(nil)
	mustStatus(t, r, http.StatusOK)
	r.decode(t, &tok)
	parsed, _, err := jwt.NewParser().ParseUnverified(tok.AccessToken, &controlplane.TenantClaims{})
	if err != nil || parsed.Header["kid"] != before.Keys[0].Kid || parsed.Header["alg"] != "EdDSA" {
		t.Fatalf("token header right after rotation %v, want the old kid %s while the new key is pending", parsed.Header, before.Keys[0].Kid)
	}
	if _, err := verify(t, before, tok.AccessToken); err != nil {
		t.Fatalf("a token minted while the new key is pending does not verify against the old JWKS: %v", err)
	}

	// Suspended tenants get no tokens; revoked keys are refused.
	mustStatus(t, ts.do("POST", "/v1/tenants/acme_corp/suspend", nil), http.StatusOK)
	mustStatus(t, issue(nil), http.StatusForbidden)
	mustStatus(t, ts.do("POST", "/v1/tenants/acme_corp/resume", nil), http.StatusOK)
	mustStatus(t, ts.do("DELETE", "/v1/tenants/acme_corp/keys/"+key.ID, nil), http.StatusOK)
	mustStatus(t, issue(nil), http.StatusUnauthorized)

	// Another tenant's key id is not found under this tenant.
	ts.createTenant("beta_inc", "pro")
	ts.waitStatus("beta_inc", 30*time.Second, ragplane.StatusActive)
	r = ts.do("POST", "/v1/tenants/beta_inc/keys", map[string]any{"name": "b"})
	var bkey struct {
		ID string `json:"id"`
	}
	r.decode(t, &bkey)
	mustStatus(t, ts.do("DELETE", "/v1/tenants/acme_corp/keys/"+bkey.ID, nil), http.StatusNotFound)
}
