package ragplane

import (
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// TenantID is a tenant's slug: 3 to 40 characters of lower-case letters, digits and underscores,
// starting with a letter and not ending with an underscore. It is used in database, role and
// project names, so the pattern is kept strict.
type TenantID string

var tenantIDPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{1,38}[a-z0-9]$`)

// Validate returns an EINVALID error naming field "id" unless the slug is well formed.
func (id TenantID) Validate() error {
	if !tenantIDPattern.MatchString(string(id)) {
		return FieldErrorf("id", "Tenant id must be 3-40 characters of a-z, 0-9 and _, starting with a letter and not ending with _.")
	}
	return nil
}

// TenantStatus is where a tenant is in its lifecycle.
type TenantStatus string

// Tenant statuses. The reconciler drives provisioning -> active|failed and deleting -> deleted;
// operators drive suspend, resume and delete.
const (
	StatusProvisioning TenantStatus = "provisioning"
	StatusActive       TenantStatus = "active"
	StatusSuspended    TenantStatus = "suspended"
	StatusDeleting     TenantStatus = "deleting"
	StatusDeleted      TenantStatus = "deleted"
	StatusFailed       TenantStatus = "failed"
)

// Valid reports whether s is one of the known statuses.
func (s TenantStatus) Valid() bool {
	switch s {
	case StatusProvisioning, StatusActive, StatusSuspended, StatusDeleting, StatusDeleted, StatusFailed:
		return true
	}
	return false
}

var transitions = map[TenantStatus][]TenantStatus{
	StatusProvisioning: {StatusActive, StatusFailed, StatusDeleting},
	StatusActive:       {StatusSuspended, StatusDeleting},
	StatusSuspended:    {StatusActive, StatusDeleting},
	StatusFailed:       {StatusDeleting},
	StatusDeleting:     {StatusDeleted},
}

// CanTransition reports whether a tenant may move from status s to next.
func (s TenantStatus) CanTransition(next TenantStatus) bool {
	for _, t := range transitions[s] {
		if t == next {
			return true
		}
	}
	return false
}

// Provider names where a tenant's database lives.
type Provider string

// Providers.
const (
	// ProviderLocal is a database with its own role on the operator's PostgreSQL.
	ProviderLocal Provider = "local"
	// ProviderNeon is a Neon project per tenant.
	ProviderNeon Provider = "neon"
)

// Tenant is a paying customer with its own database.
type Tenant struct {
	// ID is the tenant's slug, immutable.
	ID TenantID `json:"id"`
	// Name is the display name.
	Name string `json:"name"`
	// Email is the billing contact, unique among tenants that are not deleted.
	Email string `json:"email"`
	// Plan names the tenant's plan.
	Plan string `json:"plan"`
	// Region is where the tenant's data lives (a provider region id, e.g. "aws-us-east-2").
	Region string `json:"region"`
	// Status is the lifecycle status; StatusReason says why when it is suspended or failed.
	Status       TenantStatus `json:"status"`
	StatusReason string       `json:"status_reason,omitempty"`
	// Provider and ProviderProjectID locate the tenant's database (the project id is Neon's, or the
	// database name on a local server).
	Provider          Provider `json:"provider"`
	ProviderProjectID string   `json:"provider_project_id,omitempty"`
	// SchemaVersion is the version of the tenant database schema.
	SchemaVersion int `json:"schema_version"`
	// Limits and Settings are the tenant's own overrides of its plan (the "tenant" layer).
	Limits   Overrides `json:"limits"`
	Settings Overrides `json:"settings"`
	// ConfigVersion increases with every change that affects the tenant's effective config or policy.
	ConfigVersion int64 `json:"config_version"`
	// ProvisionAttempts counts provisioning attempts so far.
	ProvisionAttempts int `json:"provision_attempts"`
	// CreatedAt, UpdatedAt and DeletedAt are the catalog timestamps.
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
}

// ValidateEmail returns an EINVALID error naming field unless email is a plain address
// (no display name) with a dotted domain.
func ValidateEmail(field, email string) error {
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || len(email) > 254 {
		return FieldErrorf(field, "Email must be a plain address like ops@example.com.")
	}
	at := strings.LastIndexByte(email, '@')
	if dom := strings.ToLower(email[at+1:]); !domainPattern.MatchString(dom) {
		return FieldErrorf(field, "Email must have a domain like example.com.")
	}
	return nil
}

// domainPattern is a host name of at least two dot-separated labels (letters, digits, inner hyphens).
var domainPattern = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)

// ValidateName returns an EINVALID error naming field unless name is 1-200 printable characters
// of valid UTF-8, not all spaces.
func ValidateName(field, name string) error {
	if !utf8.ValidString(name) {
		return FieldErrorf(field, "Name must be valid UTF-8.")
	}
	if n := utf8.RuneCountInString(name); strings.TrimSpace(name) == "" || n > 200 {
		return FieldErrorf(field, "Name must be 1-200 characters.")
	}
	for _, r := range name {
		if !unicode.IsPrint(r) && r != ' ' {
			return FieldErrorf(field, "Name must not contain control or non-printable characters.")
		}
	}
	return nil
}

var regionPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// ValidateRegion returns an EINVALID error naming field unless region looks like a region id.
func ValidateRegion(field, region string) error {
	if len(region) < 2 || len(region) > 40 || !regionPattern.MatchString(region) {
		return FieldErrorf(field, "Region must be a region id like aws-us-east-2.")
	}
	return nil
}

// Valid reports whether p is a known provider.
func (p Provider) Valid() bool { return p == ProviderLocal || p == ProviderNeon }
