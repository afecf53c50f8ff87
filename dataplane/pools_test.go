package dataplane_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/controlplane/provision"
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

// In a pool database one tenant whose requests hold connections cannot stall the other tenants of
// the pool: it holds at most RAGPLANE_TENANT_DB_CONNS of them, the others are served at once from
// the rest of the pool database's RAGPLANE_POOL_DB_CONNS, and the busy tenant's next request gets
// 503 with Retry-After after RAGPLANE_DB_WAIT instead of waiting for as long as its deadline.
func TestPooledTenantCannotTakeEveryConnection(t *testing.T) {
	const perTenant, wait = 2, time.Second
	st := e2etest.Start(t, e2etest.Options{Worker: func(c *dataplane.Config) {
		c.DB.MaxConns, c.DB.PerTenant, c.DB.PoolConns, c.DB.Wait = 8, perTenant, 4, wait
	}})
	pooled := map[string]any{"isolation_tier": "pooled"}
	st.CreateTenant("busy_a", "free", pooled)
	st.CreateTenant("calm_b", "free", pooled)
	ctx := context.Background()
	var pool string
	for _, id := range []ragplane.TenantID{"busy_a", "calm_b"} {
		rt, err := st.Store().TenantRuntime(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		name, ok := strings.CutPrefix(rt.Tenant.ProviderProjectID, provision.PooledProjectPrefix)
		if !ok || (pool != "" && name != pool) {
			t.Fatalf("%s is in %q, want both in one pool", id, rt.Tenant.ProviderProjectID)
		}
		pool = name
	}
	a, b := st.Tenant("busy_a"), st.Tenant("calm_b")
	mustStatus(t, b.Do("POST", "/v1/documents", map[string]any{"title": "b", "content": policy}), http.StatusCreated)

	// The test holds a lock that makes every insert into documents wait (reads go on): busy_a's
	// ingestions then hold their connections until the test lets go.
	u, err := url.Parse(catalogtest.ServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + pool
	admin, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	lock, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, `lock table documents in exclusive mode`); err != nil {
		t.Fatal(err)
	}
	unlocked := false
	unlock := func() {
		if !unlocked {
			unlocked = true
			if err := lock.Rollback(ctx); err != nil {
				t.Error(err)
			}
		}
	}
	defer unlock()

	held := make(chan int, perTenant)
	for i := 0; i < perTenant; i++ {
		go func() {
			held <- a.Do("POST", "/v1/documents", map[string]any{"title": fmt.Sprintf("a%d", i), "content": fmt.Sprintf("%s Document %d.", policy, i)}).Status
		}()
	}
	// Both wait on the lock, each on a connection of the pool.
	watch, err := pgx.Connect(ctx, catalogtest.ServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(ctx)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := watch.QueryRow(ctx, `select count(*) from pg_stat_activity where datname = $1 and wait_event_type = 'Lock'`, pool).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == perTenant {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of busy_a's ingestions wait on the lock, want %d", n, perTenant)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// calm_b is served at once, however long busy_a's requests take.
	type answer struct {
		status int
		took   time.Duration
	}
	calm := make(chan answer, 1)
	go func() {
		start := time.Now()
		var last int
		for range 2 * (perTenant + 1) { // more requests than busy_a's share, one after the other
			if last = b.Do("GET", "/v1/documents", nil).Status; last != http.StatusOK {
				break
			}
			if last = b.Do("POST", "/v1/search", map[string]any{"query": "Acme administrators", "retrieval_mode": "keyword"}).Status; last != http.StatusOK {
				break
			}
		}
		calm <- answer{last, time.Since(start)}
	}()
	select {
	case r := <-calm:
		if r.status != http.StatusOK {
			t.Fatalf("calm_b got %d while busy_a held its connections, want 200", r.status)
		}
		t.Logf("calm_b's requests took %v in all while busy_a held its connections", r.took)
	case <-time.After(10 * time.Second):
		unlock()
		<-calm // the lock is gone: its requests end
		t.Fatal("calm_b waited for busy_a's connections: it is not served while another tenant of its pool is busy")
	}

	// busy_a's next request finds its share taken: 503 with Retry-After once the wait is over.
	start := time.Now()
	r := a.Do("GET", "/v1/documents", nil)
	took := time.Since(start)
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("busy_a's request beyond its share: %d (Retry-After %q) %s, want 503 with Retry-After", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	if took < wait || took > wait+5*time.Second {
		t.Fatalf("busy_a's request was refused after %v, want after the %v wait", took, wait)
	}
	if strings.Contains(string(r.Body), "pg") || strings.Contains(string(r.Body), "sql") {
		t.Fatalf("the 503 shows internals: %s", r.Body)
	}

	// Once the lock goes, busy_a's ingestions finish.
	unlock()
	for i := 0; i < perTenant; i++ {
		if s := <-held; s != http.StatusCreated {
			t.Fatalf("a held ingestion of busy_a answered %d, want 201", s)
		}
	}
	mustStatus(t, a.Do("GET", "/v1/documents", nil), http.StatusOK)
}
