// Package local provisions each tenant a database of its own, with its own login role, on a
// PostgreSQL server the operator runs. CONNECT on the database is revoked from PUBLIC, so no other
// tenant's role can even connect to it.
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/tenantdb"
	"github.com/ragplane/ragplane/controlplane/provision"
	"github.com/ragplane/ragplane/internal/pgerr"
)

// Config configures the local provisioner.
type Config struct {
	// AdminURL connects as a role that may create databases and roles (and the vector extension).
	AdminURL string
	// Prefix starts every database and role name ("rp_" by default), so tenants' objects are
	// recognisable and several installations can share a server.
	Prefix string
	// Logger receives the provisioner's logs.
	Logger *slog.Logger
}

// Provisioner creates databases on one PostgreSQL server.
type Provisioner struct {
	cfg   Config
	admin *pgxpool.Pool
	log   *slog.Logger
}

var _ provision.Provisioner = (*Provisioner)(nil)

// New connects to the server with the admin URL.
func New(ctx context.Context, cfg Config) (*Provisioner, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "rp_"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	pcfg, err := pgxpool.ParseConfig(cfg.AdminURL)
	if err != nil {
		return nil, errors.New("local provisioner: the admin URL cannot be parsed")
	}
	// CREATE DATABASE cannot run in a transaction and holds a connection for a while; a few
	// connections are plenty.
	pcfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("local provisioner: %w", err)
	}
	return &Provisioner{cfg: cfg, admin: pool, log: cfg.Logger.With("component", "provision.local")}, nil
}

// Close closes the admin pool.
func (p *Provisioner) Close() { p.admin.Close() }

// Name returns the database (and role) name of a tenant.
func (p *Provisioner) Name(tenant ragplane.TenantID) string { return p.cfg.Prefix + string(tenant) }

// Provision creates the tenant's role and database if they do not exist, locks the database down,
// installs pgvector and migrates the tenant schema. Every step checks what exists first, so a
// resumed attempt finishes the work of an interrupted one.
func (p *Provisioner) Provision(ctx context.Context, req provision.Request, record func(string) error) (provision.Database, error) {
	name := p.Name(req.TenantID)
	if err := record(name); err != nil {
		return provision.Database{}, err
	}
	ident := pgx.Identifier{name}.Sanitize()
	// The password is fresh on every attempt: an interrupted attempt's password was never stored.
	password := randomHex(24)

	var roleExists, dbExists bool
	if err := p.admin.QueryRow(ctx, `select exists(select 1 from pg_roles where rolname = $1),
		exists(select 1 from pg_database where datname = $1)`, name).Scan(&roleExists, &dbExists); err != nil {
		return provision.Database{}, transient("inspect server", err)
	}
	// DDL cannot take parameters; the name is a validated slug quoted as an identifier and the
	// password is hex, so both are safe to interpolate.
	roleSQL := fmt.Sprintf(`create role %s login password '%s' connection limit 200`, ident, password)
	if roleExists {
		roleSQL = fmt.Sprintf(`alter role %s login password '%s'`, ident, password)
	}
	if _, err := p.admin.Exec(ctx, roleSQL); err != nil && !isDuplicate(err) {
		return provision.Database{}, transient("create role", err)
	}
	if !dbExists {
		// template0 so that a session on template1 cannot block us; a concurrent creator loses with 42P04.
		_, err := p.admin.Exec(ctx, fmt.Sprintf(`create database %s owner %s template template0 encoding 'UTF8'`, ident, ident))
		if err != nil && !isDuplicate(err) {
			return provision.Database{}, transient("create database", err)
		}
	}
	for _, stmt := range []string{
		fmt.Sprintf(`revoke all on database %s from public`, ident),
		fmt.Sprintf(`grant connect, temporary on database %s to %s`, ident, ident),
	} {
		if _, err := p.admin.Exec(ctx, stmt); err != nil {
			return provision.Database{}, transient("lock down database", err)
		}
	}
	// The extension needs a superuser; everything else is created by, and owned by, the tenant role.
	if err := p.inDatabase(ctx, p.cfg.AdminURL, name, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, `create extension if not exists vector`)
		return err
	}); err != nil {
		return provision.Database{}, transient("create extension vector", err)
	}
	tenantURL, err := p.tenantURL(name, password)
	if err != nil {
		return provision.Database{}, err
	}
	var version int
	if err := p.inDatabase(ctx, tenantURL, "", func(c *pgx.Conn) error {
		var err error
		version, err = tenantdb.Migrate(ctx, c, req.EmbeddingDimension)
		return err
	}); err != nil {
		return provision.Database{}, transient("migrate tenant schema", err)
	}
	return provision.Database{ProjectID: name, URL: tenantURL, SchemaVersion: version}, nil
}

// Deprovision drops the tenant's database (closing its sessions) and role. Missing ones are fine.
func (p *Provisioner) Deprovision(ctx context.Context, tenant ragplane.TenantID, _ string) error {
	ident := pgx.Identifier{p.Name(tenant)}.Sanitize()
	if _, err := p.admin.Exec(ctx, fmt.Sprintf(`drop database if exists %s with (force)`, ident)); err != nil {
		return transient("drop database", err)
	}
	if _, err := p.admin.Exec(ctx, fmt.Sprintf(`drop role if exists %s`, ident)); err != nil {
		return transient("drop role", err)
	}
	return nil
}

// tenantURL is the admin URL with the tenant's role, password and database.
func (p *Provisioner) tenantURL(name, password string) (string, error) {
	u, err := url.Parse(p.cfg.AdminURL)
	if err != nil {
		return "", errors.New("local provisioner: the admin URL cannot be parsed")
	}
	u.User = url.UserPassword(name, password)
	u.Path = "/" + name
	return u.String(), nil
}

// inDatabase runs fn on a connection to database db (or the URL's own database if db is empty).
func (p *Provisioner) inDatabase(ctx context.Context, connURL, db string, fn func(*pgx.Conn) error) error {
	cfg, err := pgx.ParseConfig(connURL)
	if err != nil {
		return errors.New("connection URL cannot be parsed")
	}
	if db != "" {
		cfg.Database = db
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return fn(conn)
}

func isDuplicate(err error) bool {
	// 42710 duplicate_object (role), 42P04 duplicate_database, a unique violation (catalog race).
	switch pgerr.Code(err) {
	case "42710", "42P04", pgerr.UniqueViolation:
		return true
	}
	return false
}

// transient wraps a failure as EUNAVAILABLE: the reconciler retries it. The PostgreSQL message is
// kept for the operator (it never contains the password, which only appears in statements).
func transient(step string, err error) error {
	var pgErr *pgconn.PgError
	msg := "server unreachable"
	if errors.As(err, &pgErr) {
		msg = pgErr.Code + " " + pgErr.Message
	} else if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		msg = err.Error()
	}
	return ragplane.Errorf(ragplane.EUNAVAILABLE, "local provisioner: %s: %s", step, msg)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
