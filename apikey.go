package ragplane

import "time"

// APIKey is a tenant's long-lived credential, exchanged for short-lived JWTs. Only a hash of the
// secret is stored; the full key is shown once, when it is created.
type APIKey struct {
	// ID identifies the key for listing and revocation.
	ID string `json:"id"`
	// TenantID is the tenant the key belongs to.
	TenantID TenantID `json:"tenant_id"`
	// Name is the operator's label for the key.
	Name string `json:"name"`
	// Prefix is the non-secret start of the key, shown to tell keys apart.
	Prefix string `json:"prefix"`
	// Roles are the most a token issued for this key may carry.
	Roles []string `json:"roles"`
	// CreatedAt, ExpiresAt, LastUsedAt and RevokedAt are the key's life.
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// Tenant roles a token may carry.
const (
	RoleReader = "reader" // search and query
	RoleWriter = "writer" // ingest and delete documents
	RoleAdmin  = "admin"  // tenant-level administration
)

// ValidRole reports whether r is a known tenant role.
func ValidRole(r string) bool { return r == RoleReader || r == RoleWriter || r == RoleAdmin }
