package dataplane_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/dataplane"
	"github.com/ragplane/ragplane/e2etest"
)

// TestThousandTenantsWithinConnectionBudget serves 1,000 tenants from one worker whose budget is
// 40 connections, against a database that allows 45: not one request may fail with "too many
// connections". Every tenant has its own login role (so its own pool); they share one real tenant
// database to keep the test quick.
func TestThousandTenantsWithinConnectionBudget(t *testing.T) {
	const tenants, budget, dbLimit, parallel = 1000, 40, 45, 32
	st := e2etest.Start(t, e2etest.Options{Worker: func(c *dataplane.Config) {
		c.DB.MaxConns, c.DB.PerTenant, c.DB.Wait = budget, 2, 5*time.Second
		c.TenantCacheTTL = time.Minute
	}})
	st.CreateTenant("shared_db", "pro", nil)
	ctx := context.Background()
	store := st.Store()
	sharedURL, err := store.TenantDatabaseURL(ctx, "shared_db")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, catalogtest.ServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	owner := st.Prefix + "shared_db"
	if _, err := admin.Exec(ctx, fmt.Sprintf(`alter database %s connection limit %d`, pgx.Identifier{owner}.Sanitize(), dbLimit)); err != nil {
		t.Fatal(err)
	}
	cat, err := pgx.Connect(ctx, st.CatalogURL)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close(ctx)

	// 1,000 tenants: a login role each (member of the database owner), active in the catalog.
	base, _ := url.Parse(sharedURL)
	for i := 0; i < tenants; i++ {
		id := fmt.Sprintf("t%04d", i)
		role := st.Prefix + id
		if _, err := admin.Exec(ctx, fmt.Sprintf(`create role %s login password 'pw%04d' in role %s`,
			pgx.Identifier{role}.Sanitize(), i, pgx.Identifier{owner}.Sanitize())); err != nil {
			t.Fatal(err)
		}
		u := *base
		u.User = url.UserPassword(role, fmt.Sprintf("pw%04d", i))
		sealed := store.Sealer().Seal([]byte(u.String()), "tenant-db:"+id)
		if _, err := cat.Exec(ctx, `insert into tenants (id, name, email, plan, region, status, provider, provider_project_id,
			database_url_sealed, schema_version, settings)
			select $1, $1, $1 || '@bulk.example', 'pro', 'local', 'active', 'local', $2, $3, schema_version, settings
			from tenants where id = 'shared_db'`, id, owner, sealed); err != nil {
			t.Fatal(err)
		}
	}

	// Watch the server: the worker's connections to the database must stay within the budget.
	var peak atomic.Int64
	stop := make(chan struct{})
	var watch sync.WaitGroup
	watch.Add(1)
	go func() {
		defer watch.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			var n int64
			admin.QueryRow(ctx, `select count(*) from pg_stat_activity where datname = $1`, owner).Scan(&n)
			if n > peak.Load() {
				peak.Store(n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	var failures sync.Map
	var ok atomic.Int64
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				r := st.Tenant(fmt.Sprintf("t%04d", i)).Do("GET", "/v1/documents?limit=1", nil)
				if r.Status == http.StatusOK {
					ok.Add(1)
				} else {
					failures.Store(i, fmt.Sprintf("%d %s", r.Status, r.Body))
				}
			}
		}()
	}
	// Every tenant twice, in two rounds, so pools are evicted and reopened.
	for round := 0; round < 2; round++ {
		for i := 0; i < tenants; i++ {
			work <- i
		}
	}
	close(work)
	wg.Wait()
	close(stop)
	watch.Wait()
	failures.Range(func(k, v any) bool {
		t.Errorf("tenant %v: %v", k, v)
		return true
	})
	if ok.Load() != 2*tenants {
		t.Fatalf("%d of %d requests succeeded", ok.Load(), 2*tenants)
	}
	if p := peak.Load(); p > budget {
		t.Fatalf("peak %d connections to the tenant database, budget %d", p, budget)
	}
	t.Logf("2,000 requests for 1,000 tenants, peak %d server connections (budget %d)", peak.Load(), budget)

	// Evictions happened: the metrics say so.
	r := e2etest.Send(t, "GET", st.WorkerURL+"/metrics", nil)
	if !regexpFind(`ragplane_dataplane_db_pools_evicted_total [1-9]`, string(r.Body)) {
		t.Fatal("no pool evictions counted")
	}
}
