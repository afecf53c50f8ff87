package proxy

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// mustKey returns a fresh Ed25519 key pair.
func mustKey(tb testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	tb.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return pub, priv
}

// mustToken signs a tenant token for acme_corp with kid, valid from now for ttl.
func mustToken(tb testing.TB, priv ed25519.PrivateKey, kid string, now time.Time, ttl time.Duration) *http.Request {
	tb.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims{
		RegisteredClaims: jwt.RegisteredClaims{Issuer: "ragplane", Audience: jwt.ClaimStrings{"tenants"}, Subject: "u1",
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl))},
		TenantID: "acme_corp",
	})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(priv)
	if err != nil {
		tb.Fatal(err)
	}
	r, _ := http.NewRequest("GET", "/v1/documents", nil)
	r.Header.Set("Authorization", "Bearer "+s)
	return r
}

// A verified token is remembered, but a remembered token passes only while a fresh verification
// would: the key that signed it still pushed (by kid and by value), the same issuer and audiences,
// and not expired.
func TestVerifierCache(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	pub, priv := mustKey(t)
	other, _ := mustKey(t)
	ks := keySet{issuer: "ragplane", audiences: []string{"tenants"}, keys: map[string]ed25519.PublicKey{"k1": pub}}
	tests := []struct {
		name   string
		when   keySet
		at     time.Duration // after the first, successful use
		expect bool
	}{
		{name: "same keys", when: ks, at: time.Minute, expect: true},
		{name: "key removed", when: keySet{issuer: "ragplane", audiences: []string{"tenants"}, keys: map[string]ed25519.PublicKey{"k2": pub}}},
		{name: "kid now names another key", when: keySet{issuer: "ragplane", audiences: []string{"tenants"}, keys: map[string]ed25519.PublicKey{"k1": other}}},
		{name: "issuer changed", when: keySet{issuer: "other", audiences: []string{"tenants"}, keys: ks.keys}},
		{name: "audience changed", when: keySet{issuer: "ragplane", audiences: []string{"admins"}, keys: ks.keys}},
		{name: "expired beyond the leeway", when: ks, at: 15*time.Minute + 31*time.Second},
		{name: "expired within the leeway", when: ks, at: 15*time.Minute + 29*time.Second, expect: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newVerifier(30*time.Second, 10)
			r := mustToken(t, priv, "k1", now, 15*time.Minute)
			if _, err := v.authenticate(r, ks, now); err != nil {
				t.Fatalf("first use: %v", err)
			}
			if v.cache.Len() != 1 {
				t.Fatalf("cache holds %d tokens after one verification, want 1", v.cache.Len())
			}
			id, err := v.authenticate(r, tt.when, now.Add(tt.at))
			if got := err == nil; got != tt.expect {
				t.Fatalf("accepted = %v (%v), want %v", got, err, tt.expect)
			}
			if tt.expect && id.TenantID != "acme_corp" {
				t.Fatalf("identity %+v", id)
			}
		})
	}
}

// Failed verifications are never remembered, and the cache is bounded.
func TestVerifierCacheHoldsOnlyVerifiedTokensAndIsBounded(t *testing.T) {
	now := time.Now()
	pub, priv := mustKey(t)
	_, forged := mustKey(t)
	ks := keySet{issuer: "ragplane", audiences: []string{"tenants"}, keys: map[string]ed25519.PublicKey{"k1": pub}}
	v := newVerifier(0, 2)
	for range 3 {
		if _, err := v.authenticate(mustToken(t, forged, "k1", now, time.Minute), ks, now); err == nil {
			t.Fatal("a token signed by another key was accepted")
		}
	}
	if v.cache.Len() != 0 {
		t.Fatalf("cache holds %d tokens after failures only", v.cache.Len())
	}
	for i := range 5 {
		if _, err := v.authenticate(mustToken(t, priv, "k1", now.Add(time.Duration(i)*time.Second), time.Minute), ks, now.Add(5*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if v.cache.Len() != 2 {
		t.Fatalf("cache holds %d tokens, want its bound 2", v.cache.Len())
	}
}

// BenchmarkAuthenticate compares verifying a token on every request with the cache.
func BenchmarkAuthenticate(b *testing.B) {
	now := time.Now()
	pub, priv := mustKey(b)
	ks := keySet{issuer: "ragplane", audiences: []string{"tenants"}, keys: map[string]ed25519.PublicKey{"k1": pub}}
	r := mustToken(b, priv, "k1", now, 15*time.Minute)
	for _, size := range []int{0, DefaultTokenCacheSize} {
		b.Run(map[int]string{0: "uncached", DefaultTokenCacheSize: "cached"}[size], func(b *testing.B) {
			v := newVerifier(30*time.Second, size)
			for b.Loop() {
				if _, err := v.authenticate(r, ks, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
