package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
)

// TenantClaims are the claims of a tenant access token.
type TenantClaims struct {
	jwt.RegisteredClaims
	// TenantID is the tenant the token acts for; the proxy takes tenant identity from here only.
	TenantID ragplane.TenantID `json:"tenant_id"`
	// Roles are the subject's roles within the tenant.
	Roles []string `json:"roles"`
}

// issuer signs tenant JWTs with the newest signing key and publishes the JWKS. Keys are read from
// the catalog, so every replica signs with the same key and publishes the same set.
type issuer struct {
	store *catalog.Store
	cfg   TokenConfig

	mu     sync.Mutex
	keys   []catalog.SigningKey
	loaded time.Time
}

// keyCacheTTL bounds how long a replica may sign with a key after another replica rotated.
const keyCacheTTL = 10 * time.Second

func (i *issuer) signingKeys(ctx context.Context) ([]catalog.SigningKey, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if len(i.keys) > 0 && time.Since(i.loaded) < keyCacheTTL {
		return i.keys, nil
	}
	keys, err := i.store.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 || keys[0].Private == nil {
		return nil, ragplane.Errorf(ragplane.EUNAVAILABLE, "No signing key is available yet.")
	}
	i.keys, i.loaded = keys, time.Now()
	return keys, nil
}

// invalidate drops the cached keys (after a rotation on this replica).
func (i *issuer) invalidate() {
	i.mu.Lock()
	i.keys = nil
	i.mu.Unlock()
}

// issue signs a token for subject in tenant with roles, living ttl.
func (i *issuer) issue(ctx context.Context, tenant ragplane.TenantID, subject string, roles []string, ttl time.Duration) (string, error) {
	keys, err := i.signingKeys(ctx)
	if err != nil {
		return "", err
	}
	k := keys[0]
	now := time.Now()
	jti := make([]byte, 16)
	rand.Read(jti)
	claims := TenantClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.cfg.Issuer,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{i.cfg.Audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        hex.EncodeToString(jti),
		},
		TenantID: tenant,
		Roles:    roles,
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = k.KID
	return tok.SignedString(k.Private)
}

// JWK is one public key in a JWK Set (RFC 7517, OKP keys per RFC 8037).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// jwks returns the published public keys: the signing key and the retired ones whose tokens may
// still be alive.
func (i *issuer) jwks(ctx context.Context) ([]JWK, error) {
	keys, err := i.signingKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]JWK, 0, len(keys))
	for _, k := range keys {
		out = append(out, JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.Public),
			Kid: k.KID, Alg: "EdDSA", Use: "sig"})
	}
	return out, nil
}
