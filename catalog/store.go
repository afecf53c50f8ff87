// Package catalog is the store of the tenant catalog: tenants, plans, system defaults, API keys,
// signing keys, the audit log, provisioning operations, idempotency records and usage. The control
// plane is its only writer; data-plane workers read it. Migrations are embedded and applied at start.
package catalog

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"

	"github.com/ragplane/ragplane/internal/pgerr"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Config configures a Store.
type Config struct {
	// URL is the catalog database's connection string.
	URL string
	// SecretKey encrypts secrets at rest; at least MinSecretKeyLen bytes.
	SecretKey string
	// MaxConns caps the pool; 0 means pgxpool's default.
	MaxConns int32
	// Logger receives the store's logs; nil discards them.
	Logger *slog.Logger
	// ReadOnly is for readers (data-plane workers): no migrations are applied; the catalog
	// must already be at least at the version this binary knows.
	ReadOnly bool
}

// Store is the catalog. Its methods return *ragplane.Error codes ENOTFOUND, ECONFLICT and
// EINVALID where the caller can act on them, and wrapped errors otherwise.
type Store struct {
	pool   *pgxpool.Pool
	sealer *Sealer
	logger *slog.Logger
}

// Open connects to the catalog database and applies its migrations.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	sealer, err := NewSealer(cfg.SecretKey)
	if err != nil {
		return nil, err
	}
	pcfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, errors.New("catalog: the database URL cannot be parsed")
	}
	if cfg.MaxConns > 0 {
		pcfg.MaxConns = cfg.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("catalog: connect: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{pool: pool, sealer: sealer, logger: logger}
	if cfg.ReadOnly {
		if err := s.checkVersion(ctx); err != nil {
			pool.Close()
			return nil, err
		}
		return s, nil
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// Pool returns the catalog's connection pool, for components that listen for notifications or
// hold advisory locks.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Sealer returns the store's sealer.
func (s *Store) Sealer() *Sealer { return s.sealer }

// Ping checks the database.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

func (s *Store) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("catalog: connect: %w", err)
	}
	defer conn.Release()
	m, err := migrate.NewMigrator(ctx, conn.Conn(), "ragplane_catalog_version")
	if err != nil {
		return fmt.Errorf("catalog: migrator: %w", err)
	}
	sub, err := fs.Sub(migrationFS, "migrations")
	if err != nil {
		return err
	}
	if err := m.LoadMigrations(sub); err != nil {
		return fmt.Errorf("catalog: load migrations: %w", err)
	}
	// tern takes an advisory lock, so replicas starting together migrate once.
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("catalog: migrate: %w", err)
	}
	return nil
}

// checkVersion makes sure the catalog has been migrated (by a control plane) to this binary's version.
func (s *Store) checkVersion(ctx context.Context) error {
	sub, err := fs.Sub(migrationFS, "migrations")
	if err != nil {
		return err
	}
	want, err := migrate.FindMigrations(sub)
	if err != nil {
		return err
	}
	var have int
	if err := s.pool.QueryRow(ctx, `select version from ragplane_catalog_version`).Scan(&have); err != nil {
		return fmt.Errorf("catalog: not initialised; start a control plane first: %w", err)
	}
	if have < len(want) {
		return fmt.Errorf("catalog: at version %d, this binary needs %d; upgrade the control plane first", have, len(want))
	}
	return nil
}

// inTx runs fn in a transaction, committing if it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// Actor is who makes a change, recorded in the audit log.
type Actor struct {
	// Name is e.g. "admin", "reconciler" or "apikey:<prefix>".
	Name string
	// RequestID ties the change to a request.
	RequestID string
}

// pgError translates PostgreSQL errors the caller can act on (see pgerr.Translate); what names
// the object in messages ("Tenant", "API key").
func pgError(err error, what string) error { return pgerr.Translate(err, "catalog", what) }
