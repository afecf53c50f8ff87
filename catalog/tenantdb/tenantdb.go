// Package tenantdb holds the schema of a tenant's own database and its migrations. The control
// plane applies them when it provisions a tenant; data-plane workers use the same package to know
// the schema version they were built for.
package tenantdb

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// VersionTable is the table in each tenant database that records its schema version.
const VersionTable = "ragplane_schema_version"

// Migrate brings the tenant database behind conn to the latest schema. dimension is the tenant's
// embedding dimension, fixed at provisioning. It is safe to run again: applied migrations are
// skipped, and tern serialises concurrent runs with an advisory lock. It returns the schema version.
func Migrate(ctx context.Context, conn *pgx.Conn, dimension int) (int, error) {
	return MigrateTo(ctx, conn, dimension, "", -1)
}

// MigrateSilo is Migrate for the database of one tenant, whose rows, if it has any from before
// schema version 8, are given tenant's id (see migrations/008_tenant_rows.sql). A pool and a new
// database take Migrate.
func MigrateSilo(ctx context.Context, conn *pgx.Conn, dimension int, tenant string) (int, error) {
	return MigrateTo(ctx, conn, dimension, tenant, -1)
}

// MigrateTo is MigrateSilo to a given schema version, up or down; -1 is the latest. Down
// migrations lose what the later versions added: it exists for tests of upgrades and for
// operators' repairs.
func MigrateTo(ctx context.Context, conn *pgx.Conn, dimension int, tenant string, version int) (int, error) {
	if dimension < 1 || dimension > 2000 {
		return 0, fmt.Errorf("embedding dimension %d out of range", dimension)
	}
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return 0, fmt.Errorf("tenant migrator: %w", err)
	}
	sub, err := fs.Sub(migrationFS, "migrations")
	if err != nil {
		return 0, err
	}
	// Templates are evaluated when loaded, so the data goes in first.
	m.Data["embedding_dimension"] = dimension
	// The tenant of existing rows, for 008, as an SQL string literal (standard_conforming_strings
	// is on in every supported PostgreSQL: only quotes need doubling).
	m.Data["tenant_literal"] = "'" + strings.ReplaceAll(tenant, "'", "''") + "'"
	if err := m.LoadMigrations(sub); err != nil {
		return 0, fmt.Errorf("load tenant migrations: %w", err)
	}
	if version < 0 {
		err = m.Migrate(ctx)
	} else {
		err = m.MigrateTo(ctx, int32(version))
	}
	if err != nil {
		return 0, fmt.Errorf("migrate tenant database: %w", err)
	}
	v, err := m.GetCurrentVersion(ctx)
	return int(v), err
}

// LatestVersion is the schema version Migrate brings a database to.
func LatestVersion() int {
	sub, _ := fs.Sub(migrationFS, "migrations")
	names, err := migrate.FindMigrations(sub)
	if err != nil {
		return 0
	}
	return len(names)
}

// TenantTables are the tables that hold tenants' rows, each with a tenant_id column and row level
// security (migrations/008_tenant_rows.sql), children before parents: a pooled tenant is removed
// from its pool by deleting its rows from each, in this order.
var TenantTables = []string{"relations", "entities", "query_results", "idempotency_keys", "text_configs", "chunks", "documents"}

// ForcePolicies makes the tenant tables' row level security bind their owner too (FORCE), as a
// pool database's must: see migrations/008_tenant_rows.sql. It is idempotent.
func ForcePolicies(ctx context.Context, conn *pgx.Conn) error {
	for _, t := range TenantTables {
		if _, err := conn.Exec(ctx, "alter table "+pgx.Identifier{t}.Sanitize()+" force row level security"); err != nil {
			return fmt.Errorf("force row level security on %s: %w", t, err)
		}
	}
	return nil
}
