// Package provision gives each tenant its own database and takes it away again. The Reconciler
// drives tenants through their lifecycle with a Provisioner: a database per tenant on a local
// PostgreSQL (subpackage local) or a Neon project per tenant (subpackage neon).
package provision

import (
	"context"

	"github.com/ragplane/ragplane"
)

// Request asks for a tenant's database.
type Request struct {
	// TenantID names the tenant; provider resources are named after it, which is how a resumed
	// attempt finds what an interrupted one created.
	TenantID ragplane.TenantID
	// Region is the provider region for the tenant's data.
	Region string
	// ProjectID is the provider resource recorded by an earlier, interrupted attempt, if any.
	ProjectID string
	// EmbeddingDimension sizes the tenant's vector column.
	EmbeddingDimension int
	// Pooled asks for the pooled tier: the tenant's rows go to a database shared with other
	// tenants (a pool), confined by row level security, instead of a database of its own. A
	// provisioner without pools answers EINVALID.
	Pooled bool
	// SchemaVersion is the tenant schema version to migrate a new database to; zero is the
	// latest. A restore from an archive provisions at the archive's version, loads it, then
	// upgrades.
	SchemaVersion int
}

// PooledProjectPrefix starts the project id of a pooled tenant: "pool:" and the pool's name.
const PooledProjectPrefix = ragplane.PooledProjectPrefix

// Database is a provisioned tenant database.
type Database struct {
	// ProjectID is the provider's id (a Neon project id, or the local database name).
	ProjectID string
	// URL is a connection string for the tenant's own role. It is a secret.
	URL string
	// SchemaVersion is the tenant schema version after migration.
	SchemaVersion int
}

// Provisioner creates and removes tenant databases. Implementations must be idempotent: Provision
// called again for the same tenant (after a crash, or a failed attempt) reuses what exists and
// never creates a second database or project; Deprovision of something already gone succeeds.
//
// Errors: a *ragplane.Error with EUNAVAILABLE for transient failures worth retrying; EINVALID for
// requests that can never succeed (e.g. an unknown region); other errors are treated as transient.
type Provisioner interface {
	// Provision creates (or finds) the tenant's database, migrates the tenant schema and returns
	// a connection URL. record is called with the provider's id as soon as it is known, before any
	// slow wait, so the caller can persist it.
	Provision(ctx context.Context, req Request, record func(projectID string) error) (Database, error)
	// Deprovision removes the tenant's database and role (or project). projectID may be empty if
	// no id was ever recorded; implementations then look the resource up by tenant.
	Deprovision(ctx context.Context, tenant ragplane.TenantID, projectID string) error
}

// PoolUpgrader is implemented by provisioners with pools: the reconciler upgrades a pooled
// tenant's schema through it (the pool's own, shared by its tenants) instead of connecting with
// the tenant's URL, whose role may not change the schema.
type PoolUpgrader interface {
	// UpgradePool migrates the pool a pooled project id names and returns its schema version.
	UpgradePool(ctx context.Context, projectID string) (int, error)
}
