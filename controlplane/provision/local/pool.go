package local

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/tenantdb"
	"github.com/ragplane/ragplane/controlplane/provision"
)

// The pooled tier. A pool is a database "<prefix>pool_<dimension>_<n>" that holds the rows of up
// to PoolCapacity tenants of one embedding dimension. Its tables belong to the admin role; the
// tenants reach it through one login role of the same name, which is neither the owner nor a
// superuser nor BYPASSRLS and has only SELECT, INSERT, UPDATE and DELETE on the tenant tables, so
// the tables' FORCEd row level security confines it to the tenant its transaction sets (see
// catalog/tenantdb). CONNECT is revoked from PUBLIC as on a tenant's own database.
//
// Two admin-only tables in the pool (the role has no privilege on them) record the role's
// password, so that the pool's URL can be given to its next tenant after a restart, and the
// tenants in the pool. The password opens nothing the pool's own backups do not already hold.
// Adding a tenant is one insert: no DDL, no new database or role.

// pool is an open pool database.
type pool struct {
	name    string
	url     string // the pool role's URL, given to its tenants
	admin   *pgxpool.Pool
	version int
	tenants int
}

// pools are the provisioner's open pools, by name, and the pool being filled per dimension.
type pools struct {
	mu      sync.Mutex
	byName  map[string]*pool
	filling map[int]*pool
}

func (p *Provisioner) poolName(dimension, n int) string {
	return fmt.Sprintf("%spool_%d_%03d", p.cfg.Prefix, dimension, n)
}

// provisionPooled adds the tenant to a pool with room (or to the one an interrupted attempt
// recorded), creating a pool when none has room.
func (p *Provisioner) provisionPooled(ctx context.Context, req provision.Request, record func(string) error) (provision.Database, error) {
	pl, err := p.pickPool(ctx, req)
	if err != nil {
		return provision.Database{}, err
	}
	// pickPool counted the tenant in the pool; the count is given back unless the tenant is added
	// now (an earlier attempt that added it counted it then).
	added := false
	defer func() {
		if !added {
			p.pools.mu.Lock()
			pl.tenants--
			p.pools.mu.Unlock()
		}
	}()
	projectID := provision.PooledProjectPrefix + pl.name
	if err := record(projectID); err != nil {
		return provision.Database{}, err
	}
	tag, err := pl.admin.Exec(ctx, `insert into ragplane_pool_tenants (tenant_id) values ($1) on conflict do nothing`, string(req.TenantID))
	if err != nil {
		return provision.Database{}, transient("add tenant to pool", err)
	}
	added = tag.RowsAffected() == 1
	return provision.Database{ProjectID: projectID, URL: pl.url, SchemaVersion: pl.version}, nil
}

// pickPool returns the pool the tenant goes to, with the tenant counted in it: counting it here,
// under the lock, keeps concurrent provisions from filling a pool past PoolCapacity. The caller
// gives the count back if it does not add the tenant.
func (p *Provisioner) pickPool(ctx context.Context, req provision.Request) (*pool, error) {
	p.pools.mu.Lock()
	defer p.pools.mu.Unlock()
	pl, err := p.pickPoolLocked(ctx, req)
	if err != nil {
		return nil, err
	}
	pl.tenants++
	return pl, nil
}

func (p *Provisioner) pickPoolLocked(ctx context.Context, req provision.Request) (*pool, error) {
	if name, ok := strings.CutPrefix(req.ProjectID, provision.PooledProjectPrefix); ok {
		return p.openPoolLocked(ctx, name, req.EmbeddingDimension)
	}
	if pl := p.pools.filling[req.EmbeddingDimension]; pl != nil && pl.tenants < p.cfg.PoolCapacity {
		return pl, nil
	}
	// The last pool of this dimension on the server, or the next one. Pools are numbered from 1
	// with at least three digits, so the last is the highest number, not the last name: _1000 sorts
	// before _999.
	prefix := fmt.Sprintf("%spool_%d_", p.cfg.Prefix, req.EmbeddingDimension)
	var names []string
	rows, err := p.admin.Query(ctx, `select datname from pg_database where starts_with(datname, $1)`, prefix)
	if err == nil {
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		return nil, transient("list pools", err)
	}
	last, lastName := 0, ""
	for _, name := range names {
		if n, err := strconv.Atoi(strings.TrimPrefix(name, prefix)); err == nil && n > last {
			last, lastName = n, name
		}
	}
	if last > 0 {
		pl, err := p.openPoolLocked(ctx, lastName, req.EmbeddingDimension)
		if err != nil {
			return nil, err
		}
		if pl.tenants < p.cfg.PoolCapacity {
			p.pools.filling[req.EmbeddingDimension] = pl
			return pl, nil
		}
	}
	pl, err := p.openPoolLocked(ctx, p.poolName(req.EmbeddingDimension, last+1), req.EmbeddingDimension)
	if err != nil {
		return nil, err
	}
	p.pools.filling[req.EmbeddingDimension] = pl
	return pl, nil
}

// openPoolLocked returns the named pool, creating its database and role if they do not exist
// (every step checks first, so an interrupted creation is finished), and migrates it.
func (p *Provisioner) openPoolLocked(ctx context.Context, name string, dimension int) (*pool, error) {
	if pl, ok := p.pools.byName[name]; ok {
		return pl, nil
	}
	if !strings.HasPrefix(name, p.cfg.Prefix+"pool_") {
		return nil, ragplane.Errorf(ragplane.EINVALID, "local provisioner: %q is not a pool of this installation", name)
	}
	ident := pgx.Identifier{name}.Sanitize()
	var roleExists, dbExists bool
	if err := p.admin.QueryRow(ctx, `select exists(select 1 from pg_roles where rolname = $1),
		exists(select 1 from pg_database where datname = $1)`, name).Scan(&roleExists, &dbExists); err != nil {
		return nil, transient("inspect server", err)
	}
	if !dbExists {
		_, err := p.admin.Exec(ctx, fmt.Sprintf(`create database %s template template0 encoding 'UTF8'`, ident))
		if err != nil && !isDuplicate(err) {
			return nil, transient("create pool database", err)
		}
	}
	if !roleExists {
		// nobypassrls and no superuser are the defaults; said explicitly because they are the point.
		_, err := p.admin.Exec(ctx, fmt.Sprintf(`create role %s login nosuperuser nobypassrls noinherit connection limit 500`, ident))
		if err != nil && !isDuplicate(err) {
			return nil, transient("create pool role", err)
		}
	}
	for _, stmt := range []string{
		fmt.Sprintf(`revoke all on database %s from public`, ident),
		fmt.Sprintf(`grant connect, temporary on database %s to %s`, ident, ident),
	} {
		if _, err := p.admin.Exec(ctx, stmt); err != nil {
			return nil, transient("lock down pool database", err)
		}
	}
	cfg, err := pgxpool.ParseConfig(p.cfg.AdminURL)
	if err != nil {
		return nil, errors.New("local provisioner: the admin URL cannot be parsed")
	}
	cfg.ConnConfig.Database = name
	cfg.MaxConns = 4
	admin, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, transient("connect to pool", err)
	}
	pl := &pool{name: name, admin: admin}
	if err := p.preparePool(ctx, pl, dimension); err != nil {
		admin.Close()
		return nil, err
	}
	p.pools.byName[name] = pl
	return pl, nil
}

// preparePool migrates the pool's schema (as the admin role, its owner), creates its bookkeeping,
// grants its role the tenant tables and reads its password and tenant count.
func (p *Provisioner) preparePool(ctx context.Context, pl *pool, dimension int) error {
	conn, err := pl.admin.Acquire(ctx)
	if err != nil {
		return transient("connect to pool", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `create extension if not exists vector`); err != nil {
		return transient("create extension vector", err)
	}
	if pl.version, err = tenantdb.Migrate(ctx, conn.Conn(), dimension); err != nil {
		return transient("migrate pool schema", err)
	}
	if err := tenantdb.ForcePolicies(ctx, conn.Conn()); err != nil {
		return transient("force row level security", err)
	}
	ident := pgx.Identifier{pl.name}.Sanitize()
	var password string
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `select pg_advisory_xact_lock(hashtext('ragplane.provision.local.pool'))`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `create table if not exists ragplane_pool (
				one boolean primary key default true check (one), role_password text not null);
			create table if not exists ragplane_pool_tenants (tenant_id text primary key, added_at timestamptz not null default now());
			revoke all on ragplane_pool, ragplane_pool_tenants from public`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `insert into ragplane_pool (role_password) values ($1) on conflict do nothing`, randomHex(24)); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `select role_password from ragplane_pool`).Scan(&password); err != nil {
			return err
		}
		// The password is hex, safe to interpolate (DDL takes no parameters).
		stmts := []string{
			fmt.Sprintf(`alter role %s login password '%s'`, ident, password),
			fmt.Sprintf(`grant usage on schema public to %s`, ident),
			fmt.Sprintf(`grant select on %s to %s`, tenantdb.VersionTable, ident),
		}
		for _, t := range tenantdb.TenantTables {
			stmts = append(stmts, fmt.Sprintf(`grant select, insert, update, delete on %s to %s`, pgx.Identifier{t}.Sanitize(), ident))
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return err
			}
		}
		return tx.QueryRow(ctx, `select count(*) from ragplane_pool_tenants`).Scan(&pl.tenants)
	})
	if err != nil {
		return transient("prepare pool", err)
	}
	if pl.url, err = p.tenantURL(pl.name, password); err != nil {
		return err
	}
	return nil
}

// deprovisionPooled deletes the tenant's rows from every tenant table of its pool, then its
// membership, in one transaction.
func (p *Provisioner) deprovisionPooled(ctx context.Context, tenant ragplane.TenantID, name string) error {
	pl, err := p.openPoolByName(ctx, name)
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, pl.admin, func(tx pgx.Tx) error {
		// The admin role may not be a superuser: as the tables' owner it is confined by their
		// FORCEd policies too, so the transaction is the tenant's.
		if _, err := tx.Exec(ctx, `select set_config('ragplane.tenant_id', $1, true)`, string(tenant)); err != nil {
			return err
		}
		for _, t := range tenantdb.TenantTables {
			if _, err := tx.Exec(ctx, fmt.Sprintf(`delete from %s where tenant_id = $1`, pgx.Identifier{t}.Sanitize()), string(tenant)); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, `delete from ragplane_pool_tenants where tenant_id = $1`, string(tenant))
		if err == nil && tag.RowsAffected() == 1 {
			p.pools.mu.Lock()
			pl.tenants--
			p.pools.mu.Unlock()
		}
		return err
	})
	if err != nil {
		return transient("delete tenant rows from pool", err)
	}
	return nil
}

// openPoolByName opens a pool named in a project id; its embedding dimension is in its name.
func (p *Provisioner) openPoolByName(ctx context.Context, name string) (*pool, error) {
	var dimension, n int
	if _, err := fmt.Sscanf(strings.TrimPrefix(name, p.cfg.Prefix), "pool_%d_%d", &dimension, &n); err != nil {
		return nil, ragplane.Errorf(ragplane.EINVALID, "local provisioner: %q is not a pool of this installation", name)
	}
	p.pools.mu.Lock()
	defer p.pools.mu.Unlock()
	return p.openPoolLocked(ctx, name, dimension)
}

// UpgradePool brings the pool of a pooled tenant's project id to the latest tenant schema (a pool
// is migrated when this provisioner first opens it) and returns its schema version. The
// reconciler calls it where it would migrate a siloed tenant's own database: the pool's role may
// not change the schema.
func (p *Provisioner) UpgradePool(ctx context.Context, projectID string) (int, error) {
	name, ok := strings.CutPrefix(projectID, provision.PooledProjectPrefix)
	if !ok {
		return 0, ragplane.Errorf(ragplane.EINVALID, "local provisioner: %q is not a pooled project id", projectID)
	}
	pl, err := p.openPoolByName(ctx, name)
	if err != nil {
		return 0, err
	}
	return pl.version, nil
}

func (ps *pools) closeAll() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, pl := range ps.byName {
		pl.admin.Close()
	}
}

func newPools() pools { return pools{byName: map[string]*pool{}, filling: map[int]*pool{}} }
