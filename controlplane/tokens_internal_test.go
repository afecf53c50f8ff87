package controlplane

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/internal/clocktest"
)

// A token lives exactly its TTL on the issuer's clock, and the issuer reads the signing keys again
// once its key cache has expired, so a rotation on another replica is picked up.
func TestIssuerClock(t *testing.T) {
	clock := clocktest.New(time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC))
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	reads := 0
	iss := newIssuer(issuerConfig{Tokens: TokenConfig{Issuer: "ragplane", Audience: "ragplane-api"}, Now: clock.Now,
		Keys: func(context.Context) ([]catalog.SigningKey, error) {
			reads++
			return []catalog.SigningKey{{KID: "k1", Alg: "EdDSA", Public: pub, Private: priv}}, nil
		}})
	ctx := context.Background()
	issued := clock.Now()
	tok, err := iss.issue(ctx, "acme_corp", "alice", []string{"reader"}, "key-1", 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		at      time.Time
		expired bool
	}{
		{name: "valid when issued", at: issued},
		{name: "valid just before its TTL ends", at: issued.Add(15*time.Minute - time.Second)},
		{name: "expired after its TTL", at: issued.Add(15*time.Minute + time.Second), expired: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var claims TenantClaims
			_, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return pub, nil },
				jwt.WithTimeFunc(func() time.Time { return tc.at }), jwt.WithValidMethods([]string{"EdDSA"}))
			if got := errors.Is(err, jwt.ErrTokenExpired); got != tc.expired {
				t.Fatalf("expired %v (%v), want %v", got, err, tc.expired)
			}
			if !tc.expired && (err != nil || !claims.IssuedAt.Time.Equal(issued) || claims.TenantID != "acme_corp" || claims.APIKeyID != "key-1") {
				t.Fatalf("claims %+v (%v)", claims, err)
			}
		})
	}
	for _, step := range []struct {
		advance   time.Duration
		wantReads int
	}{
		{advance: keyCacheTTL - time.Second, wantReads: 1},
		{advance: time.Second, wantReads: 2},
	} {
		clock.Advance(step.advance)
		if _, err := iss.issue(ctx, "acme_corp", "alice", nil, "", time.Minute); err != nil {
			t.Fatal(err)
		}
		if reads != step.wantReads {
			t.Fatalf("%d key reads after %v more, want %d", reads, step.advance, step.wantReads)
		}
	}
}

// A rotated-in key is published before it signs: the issuer keeps signing with the current key
// until the next one's activation time has come on its clock, then switches without reading the
// keys again; a retired key never signs.
func TestIssuerSignsWithPendingKeyOnlyOnceActive(t *testing.T) {
	clock := clocktest.New(time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC))
	key := func(kid string, activeAt time.Time, retired bool) catalog.SigningKey {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		k := catalog.SigningKey{KID: kid, Alg: "EdDSA", Public: pub, Private: priv, ActiveAt: activeAt}
		if retired {
			k.Private = nil
		}
		return k
	}
	now := clock.Now()
	keys := []catalog.SigningKey{key("next", now.Add(5*time.Second), false), key("current", now.Add(-time.Hour), false),
		key("retired", now.Add(-2*time.Hour), true)}
	reads := 0
	iss := newIssuer(issuerConfig{Tokens: TokenConfig{Issuer: "ragplane", Audience: "ragplane-api"}, Now: clock.Now,
		Keys: func(context.Context) ([]catalog.SigningKey, error) { reads++; return keys, nil }})
	kidOf := func() string {
		t.Helper()
		tok, err := iss.issue(context.Background(), "acme_corp", "alice", nil, "", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		parsed, _, err := jwt.NewParser().ParseUnverified(tok, &TenantClaims{})
		if err != nil {
			t.Fatal(err)
		}
		return parsed.Header["kid"].(string)
	}
	if got := kidOf(); got != "current" {
		t.Fatalf("signed by %q while the next key is pending, want current", got)
	}
	clock.Advance(5*time.Second - time.Millisecond)
	if got := kidOf(); got != "current" {
		t.Fatalf("signed by %q a millisecond before the next key's activation, want current", got)
	}
	clock.Advance(time.Millisecond)
	if got := kidOf(); got != "next" {
		t.Fatalf("signed by %q at the next key's activation, want next", got)
	}
	if reads != 1 {
		t.Fatalf("keys read %d times, want once (the switch needs no reload)", reads)
	}
	// A replica whose clock runs behind the catalog's signs with the oldest unretired key.
	if k := signer(keys, now.Add(-2*time.Hour-time.Second)); k.KID != "current" {
		t.Fatalf("with no key active yet: %q, want current", k.KID)
	}
	jwks, err := iss.jwks(context.Background())
	if err != nil || len(jwks) != 3 || jwks[0].Kid != "next" {
		t.Fatalf("JWKS = %+v, %v; want the pending key published first with the others", jwks, err)
	}
}
