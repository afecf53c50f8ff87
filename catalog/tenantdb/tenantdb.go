// Package tenantdb holds the schema of a tenant's own database and its migrations. The control
// plane applies them when it provisions a tenant; data-plane workers use the same package to know
// the schema version they were built for.
package tenantdb

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

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
	return MigrateTo(ctx, conn, dimension, -1)
}

// MigrateTo is Migrate to a given schema version, up or down; -1 is the latest. Down migrations
// lose what the later versions added: it exists for tests of upgrades and for operators' repairs.
func MigrateTo(ctx context.Context, conn *pgx.Conn, dimension, version int) (int, error) {
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
