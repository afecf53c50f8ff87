package local_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/controlplane/provision"
	"github.com/ragplane/ragplane/controlplane/provision/local"
)

func mustProvisioner(tb testing.TB) (*local.Provisioner, string) {
	tb.Helper()
	prefix := catalogtest.RandomName("rpt") + "_"
	p, err := local.New(context.Background(), local.Config{AdminURL: catalogtest.ServerURL(tb), Prefix: prefix})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close(); catalogtest.DropTenantDatabases(tb, prefix) })
	return p, prefix
}

func mustProvision(tb testing.TB, p *local.Provisioner, id ragplane.TenantID) provision.Database {
	tb.Helper()
	db, err := p.Provision(context.Background(), provision.Request{TenantID: id, EmbeddingDimension: 64}, func(string) error { return nil })
	if err != nil {
		tb.Fatalf("provision %s: %v", id, err)
	}
	return db
}

func TestProvisionIsIdempotent(t *testing.T) {
	p, prefix := mustProvisioner(t)
	ctx := context.Background()
	var recorded string
	first, err := p.Provision(ctx, provision.Request{TenantID: "acme", EmbeddingDimension: 64}, func(id string) error { recorded = id; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if recorded != prefix+"acme" || first.ProjectID != recorded {
		t.Fatalf("recorded %q, project %q", recorded, first.ProjectID)
	}
	// Put data in, provision again (as a resumed attempt would): same database, data kept, new password.
	conn, err := pgx.Connect(ctx, first.URL)
	if err != nil {
		t.Fatal(err)
	}
	// Row level security: the tenant's rows, as the worker writes them.
	if _, err := conn.Exec(ctx, `select set_config('ragplane.tenant_id', 'acme', false)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `insert into documents (id, content_hash) values (gen_random_uuid(), 'x')`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	second := mustProvision(t, p, "acme")
	if n := catalogtest.CountDatabases(t, prefix); n != 1 {
		t.Fatalf("%d databases after provisioning twice, want 1", n)
	}
	conn, err = pgx.Connect(ctx, second.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `select set_config('ragplane.tenant_id', 'acme', false)`); err != nil {
		t.Fatal(err)
	}
	var docs int
	conn.QueryRow(ctx, `select count(*) from documents`).Scan(&docs)
	if docs != 1 || second.SchemaVersion != first.SchemaVersion {
		t.Fatalf("after re-provisioning: %d documents (want 1), schema %d vs %d", docs, second.SchemaVersion, first.SchemaVersion)
	}
	if _, err := pgx.Connect(ctx, first.URL); err == nil {
		t.Fatal("the password of an earlier attempt still works")
	}
	// Deprovision twice: the second is a no-op.
	for i := 0; i < 2; i++ {
		if err := p.Deprovision(ctx, "acme", second.ProjectID); err != nil {
			t.Fatalf("deprovision %d: %v", i, err)
		}
	}
	if n := catalogtest.CountDatabases(t, prefix); n != 0 {
		t.Fatalf("%d databases after deprovision", n)
	}
}

// One tenant's role cannot reach another tenant's database, nor the catalog's.
func TestTenantRolesAreIsolated(t *testing.T) {
	p, _ := mustProvisioner(t)
	ctx := context.Background()
	a := mustProvision(t, p, "tenant_a")
	b := mustProvision(t, p, "tenant_b")
	u, _ := url.Parse(a.URL)
	bURL, _ := url.Parse(b.URL)
	u.Path = bURL.Path // tenant A's credentials, tenant B's database
	if c, err := pgx.Connect(ctx, u.String()); err == nil {
		c.Close(ctx)
		t.Fatal("tenant A's role connected to tenant B's database")
	}
	conn, err := pgx.Connect(ctx, a.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var super, createdb, createrole bool
	conn.QueryRow(ctx, `select rolsuper, rolcreatedb, rolcreaterole from pg_roles where rolname = current_user`).Scan(&super, &createdb, &createrole)
	if super || createdb || createrole {
		t.Fatalf("tenant role is privileged: super=%v createdb=%v createrole=%v", super, createdb, createrole)
	}
	var owner string
	conn.QueryRow(ctx, `select tableowner from pg_tables where tablename = 'chunks'`).Scan(&owner)
	if owner != p.Name("tenant_a") {
		t.Fatalf("chunks owned by %q, want the tenant role", owner)
	}
}

func TestProvisionRejectsBadDimension(t *testing.T) {
	p, prefix := mustProvisioner(t)
	_, err := p.Provision(context.Background(), provision.Request{TenantID: "baddim", EmbeddingDimension: 0}, func(string) error { return nil })
	if err == nil {
		t.Fatal("provisioned with dimension 0")
	}
	_ = prefix
}

// BenchmarkCreateDatabaseBaseline is the floor: a bare CREATE DATABASE and DROP DATABASE.
func BenchmarkCreateDatabaseBaseline(b *testing.B) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, catalogtest.ServerURL(b))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	name := pgx.Identifier{catalogtest.RandomName("rpt_bench_")}.Sanitize()
	lat := make([]float64, 0, b.N)
	for b.Loop() {
		start := nowMS()
		if _, err := conn.Exec(ctx, "create database "+name+" template template0"); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, nowMS()-start)
		if _, err := conn.Exec(ctx, "drop database "+name); err != nil {
			b.Fatal(err)
		}
	}
	reportPercentiles(b, lat)
}

// BenchmarkProvisionOne provisions one tenant at a time: role, database, lock-down, pgvector and
// the tenant schema with its HNSW and GIN indexes.
func BenchmarkProvisionOne(b *testing.B) {
	p, _ := mustProvisioner(b)
	ctx := context.Background()
	lat := make([]float64, 0, b.N)
	for i := 0; b.Loop(); i++ {
		id := ragplane.TenantID("bench_" + itoa(i))
		start := nowMS()
		mustProvision(b, p, id)
		lat = append(lat, nowMS()-start)
		b.StopTimer()
		if err := p.Deprovision(ctx, id, ""); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportPercentiles(b, lat)
}
