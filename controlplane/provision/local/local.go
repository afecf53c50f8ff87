// Package local provisions each tenant a database of its own, with its own login role, on a
// PostgreSQL server the operator runs. CONNECT on the database is revoked from PUBLIC, so no other
// tenant's role can even connect to it.
//
// PostgreSQL gives every new database CONNECT (and TEMPORARY) for PUBLIC, and has no way to deny
// one role a PUBLIC grant, so a tenant role could also connect to the catalog, to "postgres" and
// to "template1". New therefore takes those databases off PUBLIC: it grants CONNECT and TEMPORARY
// on each, explicitly, to the roles the platform uses there (the admin role and the catalog's
// role; the workers use the catalog's URL) and then revokes them from PUBLIC. Other roles that
// relied on PUBLIC to reach them (a monitoring role on "postgres", say) need a GRANT of their own.
// Databases of other applications on the same server are left alone: revoke CONNECT from PUBLIC
// on them too, or give the platform a server of its own. The names of all databases stay visible
// to every role (pg_database is readable by all, and PostgreSQL cannot hide it); a tenant sees the
// other tenants' ids there, and nothing else of theirs.
package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

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
	// CatalogURL is the catalog's connection URL, if the catalog is on this server: New keeps
	// its database reachable for its role and no other (see the package comment).
	CatalogURL string
	// Logger receives the provisioner's logs.
	Logger *slog.Logger
	// PoolCapacity is how many tenants of the pooled tier share one pool database (10,000 by
	// default); a full pool's next tenant starts a new one. See pool.go.
	PoolCapacity int
}

// Provisioner creates databases on one PostgreSQL server.
type Provisioner struct {
	cfg   Config
	admin *pgxpool.Pool
	log   *slog.Logger
	pools pools
}

var (
	_ provision.Provisioner  = (*Provisioner)(nil)
	_ provision.PoolUpgrader = (*Provisioner)(nil)
)

// New connects to the server with the admin URL.
func New(ctx context.Context, cfg Config) (*Provisioner, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "rp_"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PoolCapacity <= 0 {
		cfg.PoolCapacity = 10_000
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
	p := &Provisioner{cfg: cfg, admin: pool, log: cfg.Logger.With("component", "provision.local"),
		pools: newPools()}
	if err := p.closeSharedDatabases(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return p, nil
}

// closeSharedDatabases takes CONNECT and TEMPORARY on the server's shared databases (the
// admin URL's and the catalog's database, "postgres", "template1") away from PUBLIC, granting
// them first to the admin role and the catalog's role, so that a tenant role can connect to its
// own database only. A database PUBLIC cannot connect to already is left as it is: the operator
// manages it. One transaction under an advisory lock, so replicas starting together do not
// collide on pg_database. If the admin role may not change a database (it is not its owner nor
// a superuser, PostgreSQL then only warns), New logs which ones tenant roles can still reach.
func (p *Provisioner) closeSharedDatabases(ctx context.Context) error {
	adminCfg, err := pgx.ParseConfig(p.cfg.AdminURL)
	if err != nil {
		return errors.New("local provisioner: the admin URL cannot be parsed")
	}
	dbs := []string{"postgres", "template1", adminCfg.Database}
	roles := []string{adminCfg.User}
	if p.cfg.CatalogURL != "" {
		catCfg, err := pgx.ParseConfig(p.cfg.CatalogURL)
		if err != nil {
			return errors.New("local provisioner: the catalog URL cannot be parsed")
		}
		if catCfg.Host == adminCfg.Host && catCfg.Port == adminCfg.Port { // else the catalog is elsewhere
			dbs, roles = append(dbs, catCfg.Database), append(roles, catCfg.User)
		}
	}
	var open []string
	err = pgx.BeginFunc(ctx, p.admin, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `select pg_advisory_xact_lock(hashtext('ragplane.provision.local.shared_databases'))`); err != nil {
			return err
		}
		// Only the databases that exist, are not this installation's tenants' and PUBLIC can
		// connect to; only the roles that exist.
		rows, err := tx.Query(ctx, `select d.datname from pg_database d
			where d.datname = any($1) and d.datallowconn and not starts_with(d.datname, $2)
			and exists (select 1 from aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
				where a.grantee = 0 and a.privilege_type = 'CONNECT')
			order by 1`, dbs, p.cfg.Prefix)
		if err != nil {
			return err
		}
		if open, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `select rolname from pg_roles where rolname = any($1) order by 1`, roles)
		if err != nil {
			return err
		}
		keep, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, db := range open {
			ident := pgx.Identifier{db}.Sanitize()
			for _, role := range keep {
				if _, err := tx.Exec(ctx, fmt.Sprintf(`grant connect, temporary on database %s to %s`, ident, pgx.Identifier{role}.Sanitize())); err != nil {
					return err
				}
			}
			if _, err := tx.Exec(ctx, fmt.Sprintf(`revoke connect, temporary on database %s from public`, ident)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return transient("close shared databases to tenant roles", err)
	}
	if len(open) > 0 {
		p.log.Info("shared databases closed to PUBLIC: tenant roles cannot connect to them", "databases", open)
	}
	rows, err := p.admin.Query(ctx, `select d.datname from pg_database d where d.datname = any($1)
		and exists (select 1 from aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
			where a.grantee = 0 and a.privilege_type = 'CONNECT') order by 1`, open)
	if err != nil {
		return transient("check shared databases", err)
	}
	still, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return transient("check shared databases", err)
	}
	if len(still) > 0 {
		p.log.Warn("tenant roles can still connect to these databases: the admin role may not revoke CONNECT from PUBLIC on them; run `revoke connect, temporary on database ... from public` as their owner",
			"databases", still)
	}
	return nil
}

// Close closes the admin pools.
func (p *Provisioner) Close() {
	p.pools.closeAll()
	p.admin.Close()
}

// Name returns the database (and role) name of a tenant.
func (p *Provisioner) Name(tenant ragplane.TenantID) string { return p.cfg.Prefix + string(tenant) }

// Provision creates the tenant's role and database if they do not exist, locks the database down,
// installs pgvector and migrates the tenant schema. Every step checks what exists first, so a
// resumed attempt finishes the work of an interrupted one.
func (p *Provisioner) Provision(ctx context.Context, req provision.Request, record func(string) error) (provision.Database, error) {
	if req.Pooled {
		return p.provisionPooled(ctx, req, record)
	}
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
		to := -1
		if req.SchemaVersion > 0 {
			to = req.SchemaVersion
		}
		version, err = tenantdb.MigrateTo(ctx, c, req.EmbeddingDimension, string(req.TenantID), to)
		return err
	}); err != nil {
		return provision.Database{}, transient("migrate tenant schema", err)
	}
	return provision.Database{ProjectID: name, URL: tenantURL, SchemaVersion: version}, nil
}

// Deprovision drops the tenant's database (closing its sessions) and role, or deletes a pooled
// tenant's rows from its pool. Missing ones are fine.
func (p *Provisioner) Deprovision(ctx context.Context, tenant ragplane.TenantID, projectID string) error {
	if name, ok := strings.CutPrefix(projectID, provision.PooledProjectPrefix); ok {
		return p.deprovisionPooled(ctx, tenant, name)
	}
	ident := pgx.Identifier{p.Name(tenant)}.Sanitize()
	if _, err := p.admin.Exec(ctx, fmt.Sprintf(`drop database if exists %s with (force)`, ident)); err != nil {
		return transient("drop database", err)
	}
	if _, err := p.admin.Exec(ctx, fmt.Sprintf(`drop role if exists %s`, ident)); err != nil {
		return transient("drop role", err)
	}
	return nil
}

// DropDatabase drops a siloed tenant's database (closing its sessions) and keeps its role, for
// an offload (provision.Offloader): a restore provisions the database again. A missing database
// is fine; a pooled project id is refused.
func (p *Provisioner) DropDatabase(ctx context.Context, tenant ragplane.TenantID, projectID string) error {
	if projectID != p.Name(tenant) {
		return ragplane.Errorf(ragplane.EINVALID, "local provisioner: %q is not tenant %s's own database", projectID, tenant)
	}
	if _, err := p.admin.Exec(ctx, fmt.Sprintf(`drop database if exists %s with (force)`, pgx.Identifier{projectID}.Sanitize())); err != nil {
		return transient("drop database", err)
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

// AdminURL returns the URL the provisioner connects with.
func (p *Provisioner) AdminURL() string { return p.cfg.AdminURL }

// OwnerURL returns the admin URL on the database a project id names (a tenant's own database or
// a pool of this installation), for moving tenants between tiers (provision.TierMover). The admin
// role is a superuser (it installs pgvector), which row level security does not bind.
func (p *Provisioner) OwnerURL(projectID string) (string, error) {
	name, pooled := strings.CutPrefix(projectID, provision.PooledProjectPrefix)
	if !strings.HasPrefix(name, p.cfg.Prefix) || (pooled != strings.HasPrefix(name, p.cfg.Prefix+"pool_")) {
		return "", ragplane.Errorf(ragplane.EINVALID, "local provisioner: %q is not a database of this installation", projectID)
	}
	u, err := url.Parse(p.cfg.AdminURL)
	if err != nil {
		return "", errors.New("local provisioner: the admin URL cannot be parsed")
	}
	u.Path = "/" + name
	return u.String(), nil
}
