package catalog

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
)

// API keys look like "rpk_<prefix>_<secret>": the prefix (12 characters) is stored in clear to find
// the key and to tell keys apart in listings; only a SHA-256 hash of the whole key is stored. The
// secret carries 160 random bits, so a fast hash is enough (this is not a password).
const apiKeyScheme = "rpk"

var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return keyEncoding.EncodeToString(b)
}

func hashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// NewAPIKey is a request for a tenant API key.
type NewAPIKey struct {
	// Name labels the key, 1-100 characters.
	Name string `json:"name"`
	// Roles are the most its tokens may carry; default reader and writer.
	Roles []string `json:"roles"`
	// ExpiresAt is optional; it must be in the future.
	ExpiresAt *time.Time `json:"expires_at"`
}

// CreateAPIKey creates a key for a tenant and returns it with its secret, which is never
// retrievable again. Errors: ENOTFOUND, EINVALID naming the field, ECONFLICT if the tenant is
// being deleted.
func (s *Store) CreateAPIKey(ctx context.Context, tenant ragplane.TenantID, n NewAPIKey, actor Actor) (ragplane.APIKey, string, error) {
	var k ragplane.APIKey
	if err := ragplane.ValidateName("name", n.Name); err != nil || len(n.Name) > 100 {
		return k, "", ragplane.FieldErrorf("name", "Key name must be 1-100 characters.")
	}
	if len(n.Roles) == 0 {
		n.Roles = []string{ragplane.RoleReader, ragplane.RoleWriter}
	}
	for i, r := range n.Roles {
		if !ragplane.ValidRole(r) {
			return k, "", ragplane.FieldErrorf(fmt.Sprintf("roles[%d]", i), "Unknown role %q.", r)
		}
	}
	slices.Sort(n.Roles)
	n.Roles = slices.Compact(n.Roles)
	if n.ExpiresAt != nil && !n.ExpiresAt.After(time.Now()) {
		return k, "", ragplane.FieldErrorf("expires_at", "expires_at must be in the future.")
	}
	prefix := randomToken(8)[:12]
	secret := fmt.Sprintf("%s_%s_%s", apiKeyScheme, prefix, randomToken(20))
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		t, err := s.lockTenant(ctx, tx, tenant)
		if err != nil {
			return err
		}
		if t.Status == ragplane.StatusDeleting || t.Status == ragplane.StatusDeleted || t.Status == ragplane.StatusFailed {
			return ragplane.Errorf(ragplane.ECONFLICT, "Tenant %q is %s.", tenant, t.Status)
		}
		k = ragplane.APIKey{ID: uuid.NewString(), TenantID: tenant, Name: n.Name, Prefix: prefix, Roles: n.Roles, ExpiresAt: n.ExpiresAt}
		if err := tx.QueryRow(ctx, `insert into api_keys (id, tenant_id, name, prefix, secret_hash, roles, expires_at)
			values ($1, $2, $3, $4, $5, $6, $7) returning created_at`,
			k.ID, k.TenantID, k.Name, k.Prefix, hashKey(secret), k.Roles, k.ExpiresAt).Scan(&k.CreatedAt); err != nil {
			return pgError(err, "API key")
		}
		return audit(ctx, tx, actor, "key.create", "tenant/"+string(tenant)+"/keys/"+k.ID, nil, k)
	})
	if err != nil {
		return ragplane.APIKey{}, "", err
	}
	return k, secret, nil
}

const keyColumns = `id, tenant_id, name, prefix, roles, created_at, expires_at, last_used_at, revoked_at`

func scanKey(r pgx.Row) (ragplane.APIKey, error) {
	var k ragplane.APIKey
	err := r.Scan(&k.ID, &k.TenantID, &k.Name, &k.Prefix, &k.Roles, &k.CreatedAt, &k.ExpiresAt, &k.LastUsedAt, &k.RevokedAt)
	return k, err
}

// ListAPIKeys returns a tenant's keys (without secrets), newest first. ENOTFOUND if no such tenant.
func (s *Store) ListAPIKeys(ctx context.Context, tenant ragplane.TenantID) ([]ragplane.APIKey, error) {
	if _, err := s.GetTenant(ctx, tenant); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `select `+keyColumns+` from api_keys where tenant_id = $1 order by created_at desc, id`, tenant)
	if err != nil {
		return nil, pgError(err, "API keys")
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ragplane.APIKey, error) { return scanKey(r) })
	return keys, pgError(err, "API keys")
}

// RevokeAPIKey revokes a key of the tenant and the tokens it minted: the key joins the tenant's
// policy (RevokedAPIKeys) and the tenant's config version goes up. A key of another tenant is
// ENOTFOUND. Revoking a revoked key is a no-op.
func (s *Store) RevokeAPIKey(ctx context.Context, tenant ragplane.TenantID, keyID string, actor Actor) (ragplane.APIKey, error) {
	var k ragplane.APIKey
	if uuid.Validate(keyID) != nil {
		return k, ragplane.Errorf(ragplane.ENOTFOUND, "API key not found.")
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		before, err := scanKey(tx.QueryRow(ctx, `select `+keyColumns+` from api_keys where id = $1 and tenant_id = $2 for update`, keyID, tenant))
		if err != nil {
			return pgError(err, "API key")
		}
		if before.RevokedAt != nil {
			k = before
			return nil
		}
		k, err = scanKey(tx.QueryRow(ctx, `update api_keys set revoked_at = now() where id = $1 returning `+keyColumns, keyID))
		if err != nil {
			return pgError(err, "API key")
		}
		// The key's id is now in the tenant's policy (RevokedAPIKeys): a new config version, and a
		// tenant change that the xDS feed pushes at once, so the proxies refuse the key's tokens.
		if _, err := tx.Exec(ctx, `update tenants set config_version = config_version + 1, updated_at = now() where id = $1`, tenant); err != nil {
			return pgError(err, "Tenant")
		}
		return audit(ctx, tx, actor, "key.revoke", "tenant/"+string(tenant)+"/keys/"+keyID, before, k)
	})
	return k, err
}

// AuthenticateAPIKey checks a presented API key and returns it with its tenant. Any failure
// (malformed, unknown, revoked, expired) is the same EUNAUTHORIZED, so a caller learns nothing
// about which keys exist.
func (s *Store) AuthenticateAPIKey(ctx context.Context, presented string) (ragplane.APIKey, *ragplane.Tenant, error) {
	deny := ragplane.Errorf(ragplane.EUNAUTHORIZED, "Invalid API key.")
	parts := strings.Split(presented, "_")
	if len(parts) != 3 || parts[0] != apiKeyScheme || len(parts[1]) != 12 || len(presented) > 100 {
		return ragplane.APIKey{}, nil, deny
	}
	var hash []byte
	row := s.pool.QueryRow(ctx, `select `+keyColumns+`, secret_hash from api_keys where prefix = $1`, parts[1])
	var k ragplane.APIKey
	err := row.Scan(&k.ID, &k.TenantID, &k.Name, &k.Prefix, &k.Roles, &k.CreatedAt, &k.ExpiresAt, &k.LastUsedAt, &k.RevokedAt, &hash)
	if err == pgx.ErrNoRows {
		return k, nil, deny
	} else if err != nil {
		return k, nil, pgError(err, "API key")
	}
	if subtle.ConstantTimeCompare(hash, hashKey(presented)) != 1 || k.RevokedAt != nil ||
		(k.ExpiresAt != nil && !k.ExpiresAt.After(time.Now())) {
		return k, nil, deny
	}
	t, err := s.GetTenant(ctx, k.TenantID)
	if err != nil {
		return k, nil, err
	}
	// Record use at most once a minute per key, to keep token issuance cheap.
	if k.LastUsedAt == nil || time.Since(*k.LastUsedAt) > time.Minute {
		if _, err := s.pool.Exec(ctx, `update api_keys set last_used_at = now() where id = $1`, k.ID); err != nil {
			s.logger.Warn("recording api key use failed", "key_prefix", k.Prefix, "error", err)
		}
	}
	return k, t, nil
}
