package local_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/tenantdb"
	"github.com/ragplane/ragplane/controlplane/provision"
	"github.com/ragplane/ragplane/controlplane/provision/local"
)

func mustProvisionPooled(tb testing.TB, p *local.Provisioner, id ragplane.TenantID) provision.Database {
	tb.Helper()
	var recorded string
	db, err := p.Provision(context.Background(), provision.Request{TenantID: id, EmbeddingDimension: 8, Pooled: true},
		func(projectID string) error { recorded = projectID; return nil })
	if err != nil {
		tb.Fatalf("provision %s pooled: %v", id, err)
	}
	if recorded != db.ProjectID {
		tb.Fatalf("recorded %q, returned %q", recorded, db.ProjectID)
	}
	return db
}

// mustWriteRows writes one row into every tenant table as tenant, through the pool's role.
func mustWriteRows(tb testing.TB, pool *pgxpool.Pool, tenant string) {
	tb.Helper()
	ctx := context.Background()
	doc, chunk, e1, e2 := uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()
	tx, err := tenantdb.Scope(pool, tenant).Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback(ctx)
	for _, stmt := range []struct {
		sql  string
		args []any
	}{
		{`insert into documents (id, content_hash) values ($1, 'same-hash')`, []any{doc}},
		{`insert into chunks (id, document_id, ordinal, content, tokens, embedding) values ($1, $2, 0, 'text', 1, '[1,0,0,0,0,0,0,0]')`, []any{chunk, doc}},
		{`insert into idempotency_keys (key, request_hash) values ('same-key', '\x00')`, nil},
		{`insert into entities (id, name, norm_name) values ($1, 'Acme', 'acme'), ($2, 'AWS', 'aws')`, []any{e1, e2}},
		{`insert into relations (id, source_id, target_id, relation, fact, chunk_id, document_id) values (gen_random_uuid(), $1, $2, 'uses', 'Acme uses AWS.', $3, $4)`, []any{e1, e2, chunk, doc}},
		{`insert into text_configs (config) values ('english')`, nil},
		{`insert into query_results (key, request_hash, body) values ('same-key', '\x00', '\x00')`, nil},
	} {
		if _, err := tx.Exec(ctx, stmt.sql, stmt.args...); err != nil {
			tb.Fatalf("%s: %v", stmt.sql, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		tb.Fatal(err)
	}
}

// counts returns the rows of every tenant table visible to q.
func counts(tb testing.TB, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) map[string]int {
	tb.Helper()
	out := map[string]int{}
	for _, t := range tenantdb.TenantTables {
		var n int
		if err := q.QueryRow(context.Background(), "select count(*) from "+t).Scan(&n); err != nil {
			tb.Fatalf("count %s: %v", t, err)
		}
		out[t] = n
	}
	return out
}

func TestPooledTier(t *testing.T) {
	p, prefix := mustProvisioner(t)
	ctx := context.Background()
	a, b := mustProvisionPooled(t, p, "alpha"), mustProvisionPooled(t, p, "beta")
	if a.URL != b.URL || a.ProjectID != b.ProjectID || !strings.HasPrefix(a.ProjectID, provision.PooledProjectPrefix) {
		t.Fatalf("two pooled tenants got %q and %q: want one pool", a.ProjectID, b.ProjectID)
	}
	if a.SchemaVersion != tenantdb.LatestVersion() {
		t.Errorf("pool schema version %d, want %d", a.SchemaVersion, tenantdb.LatestVersion())
	}
	// Provisioning again is idempotent and creates no database of the tenant's own.
	if again := mustProvisionPooled(t, p, "alpha"); again.URL != a.URL {
		t.Errorf("provisioning again moved the tenant")
	}
	admin, err := pgx.Connect(ctx, p.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var own int
	if err := admin.QueryRow(ctx, `select count(*) from pg_database where datname = any($1)`, []string{prefix + "alpha", prefix + "beta"}).Scan(&own); err != nil || own != 0 {
		t.Fatalf("pooled tenants have %d databases of their own (%v)", own, err)
	}

	pool, err := pgxpool.New(ctx, a.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// The pool's role can bypass nothing: not a superuser, not BYPASSRLS, owns no tenant table.
	var super, bypass bool
	var owned int
	if err := pool.QueryRow(ctx, `select rolsuper, rolbypassrls, (select count(*) from pg_tables where tableowner = current_user)
		from pg_roles where rolname = current_user`).Scan(&super, &bypass, &owned); err != nil {
		t.Fatal(err)
	}
	if super || bypass || owned != 0 {
		t.Fatalf("pool role: superuser %v, bypassrls %v, owns %d tables", super, bypass, owned)
	}
	var unforced []string
	if rows, err := pool.Query(ctx, `select relname::text from pg_class where relname = any($1) and not (relrowsecurity and relforcerowsecurity)`,
		tenantdb.TenantTables); err != nil {
		t.Fatal(err)
	} else if unforced, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil || len(unforced) > 0 {
		t.Fatalf("tenant tables without forced row level security: %v %v", unforced, err)
	}
	// The same natural keys (content hash, idempotency key, entity names, text configuration) in
	// both tenants do not collide.
	mustWriteRows(t, pool, "alpha")
	mustWriteRows(t, pool, "beta")

	t.Run("no tenant set sees nothing", func(t *testing.T) {
		for table, n := range counts(t, pool) {
			if n != 0 {
				t.Errorf("%s: %d rows with no tenant set", table, n)
			}
		}
		// Also on a connection whose previous transaction set a tenant: the setting has ended.
		conn, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		if n := counts(t, tenantdb.Scope(pool, "alpha"))["documents"]; n != 1 {
			t.Fatalf("alpha sees %d documents, want 1", n)
		}
		for table, n := range counts(t, conn) {
			if n != 0 {
				t.Errorf("%s: %d rows after a tenant's transaction ended", table, n)
			}
		}
	})
	t.Run("no tenant set writes nothing", func(t *testing.T) {
		_, err := pool.Exec(ctx, `insert into documents (id, content_hash) values (gen_random_uuid(), 'x')`)
		if err == nil {
			t.Fatal("insert with no tenant set succeeded")
		}
		// Nor can a tenant write rows for another.
		_, err = tenantdb.Scope(pool, "alpha").Exec(ctx, `insert into documents (id, content_hash, tenant_id) values (gen_random_uuid(), 'y', 'beta')`)
		if err == nil {
			t.Fatal("alpha wrote a row of beta")
		}
		if n, err := tenantdb.Scope(pool, "alpha").Exec(ctx, `update documents set tenant_id = 'beta'`); err == nil {
			t.Fatalf("alpha moved %d rows to beta", n.RowsAffected())
		}
	})
	t.Run("row security cannot be switched off", func(t *testing.T) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `set local row_security = off`); err != nil {
			t.Fatal(err)
		}
		// With row_security off, a query RLS would filter fails instead of returning every row.
		var n int
		if err := tx.QueryRow(ctx, `select count(*) from documents`).Scan(&n); err == nil {
			t.Fatalf("row_security off: %d documents visible", n)
		}
	})
	t.Run("each tenant sees its own rows", func(t *testing.T) {
		for _, tenant := range []string{"alpha", "beta"} {
			for table, n := range counts(t, tenantdb.Scope(pool, tenant)) {
				if n != 1 && !(table == "entities" && n == 2) {
					t.Errorf("%s sees %d rows of %s", tenant, n, table)
				}
			}
		}
		var mine bool
		if err := tenantdb.Scope(pool, "beta").QueryRow(ctx, `select bool_and(tenant_id = 'beta') from documents`).Scan(&mine); err != nil || !mine {
			t.Errorf("beta's documents are beta's: %v, %v", mine, err)
		}
	})
	t.Run("deprovision removes the tenant's rows only", func(t *testing.T) {
		if err := p.Deprovision(ctx, "alpha", a.ProjectID); err != nil {
			t.Fatal(err)
		}
		for table, n := range counts(t, tenantdb.Scope(pool, "alpha")) {
			if n != 0 {
				t.Errorf("alpha still has %d rows of %s", n, table)
			}
		}
		if n := counts(t, tenantdb.Scope(pool, "beta"))["chunks"]; n != 1 {
			t.Errorf("beta has %d chunks after alpha left, want 1", n)
		}
		// Idempotent.
		if err := p.Deprovision(ctx, "alpha", a.ProjectID); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPoolsFillUp: a full pool's next tenant starts a new pool, and a new provisioner (a restarted
// control plane) finds the pools and their roles' passwords again.
func TestPoolsFillUp(t *testing.T) {
	p, prefix := mustProvisioner(t)
	small, err := local.New(context.Background(), local.Config{AdminURL: p.AdminURL(), Prefix: prefix, PoolCapacity: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	var ids []string
	for i := range 3 {
		ids = append(ids, mustProvisionPooled(t, small, ragplane.TenantID(fmt.Sprintf("t%d", i))).ProjectID)
	}
	if ids[0] != ids[1] || ids[1] == ids[2] {
		t.Fatalf("pools of three tenants with capacity 2: %v", ids)
	}
	restarted, err := local.New(context.Background(), local.Config{AdminURL: p.AdminURL(), Prefix: prefix, PoolCapacity: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer restarted.Close()
	db := mustProvisionPooled(t, restarted, "t3")
	if db.ProjectID != ids[2] {
		t.Fatalf("after a restart the fourth tenant went to %s, want %s", db.ProjectID, ids[2])
	}
	pool, err := pgxpool.New(context.Background(), db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pool.Ping(context.Background()); err != nil {
		t.Fatalf("the pool's URL after a restart does not connect: %v", err)
	}
}

// TestPoolCapacityUnderConcurrentProvisions: tenants provisioned at once never fill a pool past
// PoolCapacity (a pool is counted full when picked, not once the tenant is in).
func TestPoolCapacityUnderConcurrentProvisions(t *testing.T) {
	const capacity, tenants = 3, 16
	p, prefix := mustProvisioner(t)
	small, err := local.New(context.Background(), local.Config{AdminURL: p.AdminURL(), Prefix: prefix, PoolCapacity: capacity})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	var wg sync.WaitGroup
	projects := make([]string, tenants)
	errs := make([]error, tenants)
	for i := range tenants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := small.Provision(context.Background(), provision.Request{TenantID: ragplane.TenantID(fmt.Sprintf("c%02d", i)), EmbeddingDimension: 8, Pooled: true},
				func(string) error { return nil })
			projects[i], errs[i] = db.ProjectID, err
		}()
	}
	wg.Wait()
	perPool := map[string]int{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("provision c%02d: %v", i, err)
		}
		perPool[projects[i]]++
	}
	ctx := context.Background()
	total := 0
	for project, n := range perPool {
		name := strings.TrimPrefix(project, provision.PooledProjectPrefix)
		conn := mustConnectAdmin(t, p.AdminURL(), name)
		var inPool int
		if err := conn.QueryRow(ctx, `select count(*) from ragplane_pool_tenants`).Scan(&inPool); err != nil {
			t.Fatal(err)
		}
		conn.Close(ctx)
		if inPool != n || inPool > capacity {
			t.Errorf("pool %s holds %d tenants (%d provisioned into it), capacity %d", name, inPool, n, capacity)
		}
		total += inPool
	}
	if total != tenants || len(perPool) != (tenants+capacity-1)/capacity {
		t.Fatalf("%d tenants in %d pools, want %d in %d", total, len(perPool), tenants, (tenants+capacity-1)/capacity)
	}
}

// TestPoolAfter999: pools are numbered, not ordered by name: after pool 999 comes 1000, and it,
// not 999 (the last name), is the one being filled.
func TestPoolAfter999(t *testing.T) {
	p, prefix := mustProvisioner(t)
	ctx := context.Background()
	admin := mustConnectAdmin(t, p.AdminURL(), "")
	defer admin.Close(ctx)
	// Two pools, as an installation would have after a thousand: empty databases are enough, the
	// provisioner finishes a pool whose database exists.
	for _, n := range []int{999, 1000} {
		if _, err := admin.Exec(ctx, fmt.Sprintf(`create database %s`, pgx.Identifier{fmt.Sprintf("%spool_8_%03d", prefix, n)}.Sanitize())); err != nil {
			t.Fatal(err)
		}
	}
	small, err := local.New(ctx, local.Config{AdminURL: p.AdminURL(), Prefix: prefix, PoolCapacity: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	if db := mustProvisionPooled(t, small, "after999"); db.ProjectID != provision.PooledProjectPrefix+prefix+"pool_8_1000" {
		t.Fatalf("the tenant went to %s, want pool 1000 (the last)", db.ProjectID)
	}
	if db := mustProvisionPooled(t, small, "after1000"); db.ProjectID != provision.PooledProjectPrefix+prefix+"pool_8_1001" {
		t.Fatalf("with pool 1000 full the tenant went to %s, want a new pool 1001", db.ProjectID)
	}
}

// mustConnectAdmin connects to database (the server's default if empty) as the admin.
func mustConnectAdmin(tb testing.TB, adminURL, database string) *pgx.Conn {
	tb.Helper()
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		tb.Fatal(err)
	}
	if database != "" {
		cfg.Database = database
	}
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return conn
}
