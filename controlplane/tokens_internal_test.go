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
