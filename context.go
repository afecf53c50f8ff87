package ragplane

import "context"

// Identity is who a request acts for: a tenant and, within it, a subject with roles. It is only ever
// built from a verified credential (a tenant JWT, or the proxy's signed tenant context).
type Identity struct {
	// TenantID is the tenant every tenant-scoped operation is confined to.
	TenantID TenantID
	// Subject is the user or service inside the tenant ("sub" of the token).
	Subject string
	// Roles are the tenant-level roles granted to the subject.
	Roles []string
	// APIKeyID is the API key that minted the token ("akid" claim), empty if none did.
	APIKeyID string
}

type identityKey struct{}

// NewContextWithIdentity returns a child context that carries id.
func NewContextWithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFromContext returns the identity carried by ctx, if any.
func IdentityFromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok && id.TenantID != ""
}

// TenantFromContext returns the tenant ctx acts for, or an EUNAUTHORIZED error: tenant-scoped code
// fails closed when no verified tenant is present.
func TenantFromContext(ctx context.Context) (TenantID, error) {
	id, ok := IdentityFromContext(ctx)
	if !ok {
		return "", Errorf(EUNAUTHORIZED, "No verified tenant in the request.")
	}
	return id.TenantID, nil
}
