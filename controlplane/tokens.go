package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/internal/httpjson"
)

// TenantClaims are the claims of a tenant access token.
type TenantClaims struct {
	jwt.RegisteredClaims
	// TenantID is the tenant the token acts for; the proxy takes tenant identity from here only.
	TenantID ragplane.TenantID `json:"tenant_id"`
	// Roles are the subject's roles within the tenant.
	Roles []string `json:"roles"`
	// APIKeyID is the id (never the secret) of the API key the token was exchanged for, so that
	// revoking the key revokes the token; empty for a token no key minted.
	APIKeyID string `json:"akid,omitempty"`
}

// issuer signs tenant JWTs with the newest active signing key and publishes the JWKS. Keys are
// read from the catalog, so every replica signs with the same key and publishes the same set. A
// rotated-in key is published (pending) before its activation time, and the issuer signs with it
// only from then on: by then every proxy holds it, so no fresh token is refused.
type issuer struct {
	cfg issuerConfig

	mu     sync.Mutex
	keys   []catalog.SigningKey
	loaded time.Time
}

// issuerConfig configures the token issuer.
type issuerConfig struct {
	// Keys reads the published signing keys, newest first (catalog.Store.SigningKeys).
	Keys func(context.Context) ([]catalog.SigningKey, error)
	// Tokens names the issuer and audience.
	Tokens TokenConfig
	// Now is the issuer's clock: tokens' iat/nbf/exp and the key cache's expiry (default time.Now).
	Now func() time.Time
}

func newIssuer(cfg issuerConfig) *issuer {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &issuer{cfg: cfg}
}

// keyCacheTTL bounds how long a replica may sign with a key after another replica rotated.
const keyCacheTTL = 10 * time.Second

func (i *issuer) signingKeys(ctx context.Context) ([]catalog.SigningKey, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if len(i.keys) > 0 && i.cfg.Now().Sub(i.loaded) < keyCacheTTL {
		return i.keys, nil
	}
	keys, err := i.cfg.Keys(ctx)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 || keys[0].Private == nil {
		return nil, ragplane.Errorf(ragplane.EUNAVAILABLE, "No signing key is available yet.")
	}
	i.keys, i.loaded = keys, i.cfg.Now()
	return keys, nil
}

// invalidate drops the cached keys (after a rotation on this replica).
func (i *issuer) invalidate() {
	i.mu.Lock()
	i.keys = nil
	i.mu.Unlock()
}

// issue signs a token for subject in tenant with roles, living ttl, minted by the API key keyID
// (empty: none).
func (i *issuer) issue(ctx context.Context, tenant ragplane.TenantID, subject string, roles []string, keyID string, ttl time.Duration) (string, error) {
	keys, err := i.signingKeys(ctx)
	if err != nil {
		return "", err
	}
	now := i.cfg.Now()
	k := signer(keys, now)
	jti := make([]byte, 16)
	rand.Read(jti)
	claims := TenantClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.cfg.Tokens.Issuer,
			Subject:   subject,
			Audience:  jwt.ClaimStrings{i.cfg.Tokens.Audience},
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        hex.EncodeToString(jti),
		},
		TenantID: tenant,
		Roles:    roles,
		APIKeyID: keyID,
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = k.KID
	return tok.SignedString(k.Private)
}

// signer picks the key that signs at now from keys (newest first, keys[0] holding its private
// half): the newest whose activation time has come. Pending keys are skipped: a proxy may not hold
// them yet. Should none be active by this replica's clock (it runs behind the catalog's), the
// oldest unretired key signs, the one that activated first.
func signer(keys []catalog.SigningKey, now time.Time) catalog.SigningKey {
	last := keys[0]
	for _, k := range keys {
		if k.Private == nil {
			break // retired, and so is every older key
		}
		if !k.ActiveAt.After(now) {
			return k
		}
		last = k
	}
	return last
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

// jwks returns the published public keys: the pending ones that will sign next, the signing key
// and the retired ones whose tokens may still be alive.
func (i *issuer) jwks(ctx context.Context) ([]JWK, error) {
	keys, err := i.signingKeys(ctx)
	if err != nil {
		return nil, err
	}
	return publicJWKs(keys), nil
}

// publicJWKs returns the public halves of keys as JWKs, in order.
func publicJWKs(keys []catalog.SigningKey) []JWK {
	out := make([]JWK, 0, len(keys))
	for _, k := range keys {
		out = append(out, JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.Public),
			Kid: k.KID, Alg: "EdDSA", Use: "sig"})
	}
	return out
}

// rotateSigningKey answers POST /v1/signing-keys/rotate: the new key is published at once (first
// in the JWKS answered) and pushed to every proxy; it signs from RAGPLANE_KEY_PUBLISH_DELAY on.
func (s *Server) rotateSigningKey(c echo.Context) error {
	if err := s.store.RotateSigningKey(c.Request().Context(), s.keyOverlap(), s.cfg.Tokens.PublishDelay, s.actor(c)); err != nil {
		return err
	}
	s.issuer.invalidate()
	return s.getJWKS(c)
}

func (s *Server) getJWKS(c echo.Context) error {
	keys, err := s.issuer.jwks(c.Request().Context())
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "public, max-age=60")
	return c.JSON(http.StatusOK, map[string]any{"keys": keys})
}

// tokenRequest is the optional body of POST /v1/auth/token.
type tokenRequest struct {
	// User is the subject inside the tenant; default the key's id.
	User string `json:"user"`
	// Roles requested; must be a subset of the key's roles; default all of them.
	Roles []string `json:"roles"`
	// ExpiresIn in seconds; at most the configured TTL.
	ExpiresIn int `json:"expires_in"`
}

// tokenResponse follows OAuth 2.0's token response (RFC 6749 section 5.1).
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
}

// issueToken exchanges a tenant API key (the bearer credential) for a short-lived JWT.
// Every exchange counts against its source's limit (RAGPLANE_TOKEN_EXCHANGES_PER_MINUTE), and a
// refused key is audited like a failed admin authentication, with the source: the client's
// address when the proxy forwarded the exchange.
func (s *Server) issueToken(c echo.Context) error {
	src := s.source(c)
	if ok, wait := s.exchanges.allow(src, time.Now()); !ok {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(max(1, (wait+time.Second-1)/time.Second))))
		return &ragplane.Error{Code: ragplane.ERATELIMITED, Field: "token_exchanges_per_minute",
			Message: "Too many token exchanges from this address; retry after " + c.Response().Header().Get("Retry-After") + "s."}
	}
	presented, ok := bearer(c.Request())
	if !ok {
		s.authAudit.record(c, "", src)
		return ragplane.Errorf(ragplane.EUNAUTHORIZED, "Send the tenant API key as Authorization: Bearer <key>.")
	}
	body, err := httpjson.ReadBody(c)
	if err != nil {
		return err
	}
	var req tokenRequest
	if len(body) > 0 {
		if err := httpjson.Decode(c, body, &req); err != nil {
			return err
		}
	}
	ctx := c.Request().Context()
	key, t, err := s.store.AuthenticateAPIKey(ctx, presented)
	if err != nil {
		if ragplane.ErrorCode(err) == ragplane.EUNAUTHORIZED {
			s.authAudit.record(c, presented, src)
		}
		return err
	}
	switch t.Status {
	case ragplane.StatusActive:
	case ragplane.StatusSuspended:
		return ragplane.Errorf(ragplane.EFORBIDDEN, "The tenant is suspended.")
	case ragplane.StatusProvisioning:
		return ragplane.Errorf(ragplane.ECONFLICT, "The tenant is still being provisioned; try again shortly.")
	default:
		return ragplane.Errorf(ragplane.EUNAUTHORIZED, "Invalid API key.")
	}
	roles := key.Roles
	if len(req.Roles) > 0 {
		for i, r := range req.Roles {
			if !ragplane.ValidRole(r) {
				return ragplane.FieldErrorf("roles["+strconv.Itoa(i)+"]", "Unknown role %q.", r)
			}
			if !contains(key.Roles, r) {
				return ragplane.Errorf(ragplane.EFORBIDDEN, "This API key may not grant role %q.", r)
			}
		}
		roles = req.Roles
	}
	subject := "apikey:" + key.ID
	if req.User != "" {
		if len(req.User) > 200 || ragplane.ValidateName("user", req.User) != nil {
			return ragplane.FieldErrorf("user", "user must be 1-200 printable characters.")
		}
		subject = req.User
	}
	ttl := s.cfg.Tokens.TTL
	if req.ExpiresIn != 0 {
		if req.ExpiresIn < 60 || time.Duration(req.ExpiresIn)*time.Second > ttl {
			return ragplane.FieldErrorf("expires_in", "expires_in must be from 60 to %d seconds.", int(ttl.Seconds()))
		}
		ttl = time.Duration(req.ExpiresIn) * time.Second
	}
	tok, err := s.issuer.issue(ctx, t.ID, subject, roles, key.ID, ttl)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, tokenResponse{AccessToken: tok, TokenType: "Bearer", ExpiresIn: int(ttl.Seconds())})
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
