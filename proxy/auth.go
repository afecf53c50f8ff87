package proxy

import (
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ragplane/ragplane"
)

// claims are the tenant token's claims the proxy relies on.
type claims struct {
	jwt.RegisteredClaims
	TenantID ragplane.TenantID `json:"tenant_id"`
	Roles    []string          `json:"roles"`
}

// maxAuthorization bounds the Authorization header; tokens are a few hundred bytes.
const maxAuthorization = 4096

// authenticate verifies the bearer JWT against the pushed keys: EdDSA only (no "none", no HS/RS
// confusion: the key type fixes the algorithm), a known kid, exp required, nbf, iss and aud checked
// with a small leeway. Any failure is EUNAUTHORIZED with the same message.
func authenticate(r *http.Request, ks keySet, leeway time.Duration) (ragplane.Identity, error) {
	deny := ragplane.Errorf(ragplane.EUNAUTHORIZED, "A valid bearer token is required.")
	h := r.Header.Get("Authorization")
	if h == "" || len(h) > maxAuthorization {
		return ragplane.Identity{}, deny
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || len(ks.keys) == 0 {
		return ragplane.Identity{}, deny
	}
	var c claims
	_, err := jwt.ParseWithClaims(strings.TrimSpace(tok), &c, func(t *jwt.Token) (any, error) {
		if _, ok := t.Method.(*jwt.SigningMethodEd25519); !ok {
			return nil, jwt.ErrTokenUnverifiable
		}
		kid, _ := t.Header["kid"].(string)
		k, ok := ks.keys[kid]
		if !ok {
			return nil, jwt.ErrTokenUnverifiable
		}
		return k, nil
	}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithIssuer(ks.issuer), jwt.WithAudience(ks.audiences...), jwt.WithLeeway(leeway))
	if err != nil {
		return ragplane.Identity{}, deny
	}
	// A token may live at most an hour (the control plane issues 15 minutes by default).
	if time.Until(c.ExpiresAt.Time) > time.Hour+leeway || c.TenantID.Validate() != nil {
		return ragplane.Identity{}, deny
	}
	return ragplane.Identity{TenantID: c.TenantID, Subject: c.Subject, Roles: c.Roles}, nil
}
