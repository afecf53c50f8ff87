package proxy

import (
	"crypto/ed25519"
	"crypto/sha256"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/ragplane/ragplane"
)

// claims are the tenant token's claims the proxy relies on.
type claims struct {
	jwt.RegisteredClaims
	TenantID ragplane.TenantID `json:"tenant_id"`
	Roles    []string          `json:"roles"`
	APIKeyID string            `json:"akid"` // the API key that minted the token, if any
}

// maxAuthorization bounds the Authorization header; tokens are a few hundred bytes.
const maxAuthorization = 4096

// DefaultTokenCacheSize is how many verified tokens a proxy remembers by default.
const DefaultTokenCacheSize = 50_000

// verifier verifies bearer JWTs against the pushed keys and remembers the ones it verified, as
// Envoy's jwt_authn does: an Ed25519 verification costs tens of microseconds, and a client sends
// the same token for its whole life. A remembered token is accepted again only while it has not
// expired, and only while the key that signed it, with the issuer and audiences it was checked
// against, is still pushed: removing or rotating out a key refuses its tokens at once. Whether the
// token's tenant may be served, and whether the API key that minted it is revoked, is decided on
// every request from its policy, never cached.
type verifier struct {
	leeway time.Duration
	cache  *lru.Cache[[sha256.Size]byte, verified] // nil: no cache
}

// verified is what a successful verification established.
type verified struct {
	id        ragplane.Identity
	expires   time.Time
	kid       string
	key       ed25519.PublicKey
	issuer    string
	audiences []string
}

func newVerifier(leeway time.Duration, cacheSize int) *verifier {
	v := &verifier{leeway: leeway}
	if cacheSize > 0 {
		v.cache, _ = lru.New[[sha256.Size]byte, verified](cacheSize) // size > 0: cannot fail
	}
	return v
}

// authenticate verifies the bearer JWT against the pushed keys: EdDSA only (no "none", no HS/RS
// confusion: the key type fixes the algorithm), a known kid, exp required, nbf, iss and aud checked
// with a small leeway. Any failure is EUNAUTHORIZED with the same message. Failures are never
// cached.
func (v *verifier) authenticate(r *http.Request, ks keySet, now time.Time) (ragplane.Identity, error) {
	deny := ragplane.Errorf(ragplane.EUNAUTHORIZED, "A valid bearer token is required.")
	h := r.Header.Get("Authorization")
	if h == "" || len(h) > maxAuthorization {
		return ragplane.Identity{}, deny
	}
	scheme, tok, ok := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || len(ks.keys) == 0 {
		return ragplane.Identity{}, deny
	}
	var sum [sha256.Size]byte
	if v.cache != nil {
		sum = sha256.Sum256([]byte(tok))
		if c, ok := v.cache.Get(sum); ok {
			if v.stillValid(c, ks, now) {
				return c.id, nil
			}
			v.cache.Remove(sum)
		}
	}
	c, err := v.verify(tok, ks, now)
	if err != nil {
		return ragplane.Identity{}, deny
	}
	if v.cache != nil {
		v.cache.Add(sum, c)
	}
	return c.id, nil
}

// stillValid reports whether a token verified earlier would pass verification at now with ks.
// Its signature and claims cannot have changed; only time and the pushed keys can.
func (v *verifier) stillValid(c verified, ks keySet, now time.Time) bool {
	k, ok := ks.keys[c.kid]
	return ok && k.Equal(c.key) && ks.issuer == c.issuer && slices.Equal(ks.audiences, c.audiences) &&
		now.Before(c.expires.Add(v.leeway))
}

func (v *verifier) verify(tok string, ks keySet, now time.Time) (verified, error) {
	var c claims
	var kid string
	_, err := jwt.ParseWithClaims(tok, &c, func(t *jwt.Token) (any, error) {
		if _, ok := t.Method.(*jwt.SigningMethodEd25519); !ok {
			return nil, jwt.ErrTokenUnverifiable
		}
		kid, _ = t.Header["kid"].(string)
		k, ok := ks.keys[kid]
		if !ok {
			return nil, jwt.ErrTokenUnverifiable
		}
		return k, nil
	}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithIssuer(ks.issuer), jwt.WithAudience(ks.audiences...), jwt.WithLeeway(v.leeway),
		jwt.WithTimeFunc(func() time.Time { return now }))
	if err != nil {
		return verified{}, err
	}
	// A token may live at most an hour (the control plane issues 15 minutes by default). A token
	// that is not yet valid (nbf) is refused, so it is never cached early.
	if c.ExpiresAt.Time.Sub(now) > time.Hour+v.leeway || c.TenantID.Validate() != nil {
		return verified{}, jwt.ErrTokenInvalidClaims
	}
	return verified{
		id:      ragplane.Identity{TenantID: c.TenantID, Subject: c.Subject, Roles: c.Roles, APIKeyID: c.APIKeyID},
		expires: c.ExpiresAt.Time, kid: kid, key: ks.keys[kid], issuer: ks.issuer, audiences: ks.audiences,
	}, nil
}
