package dataplane_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/controlplane/provision"
	"github.com/ragplane/ragplane/controlplane/provision/local"
	"github.com/ragplane/ragplane/dataplane"
	"github.com/ragplane/ragplane/e2etest"
)

// BenchmarkPooledTenants provisions RAGPLANE_BENCH_POOLED_TENANTS tenants (default 10,000) in the
// pooled tier with the local provisioner, one at a time, reporting the p50 and p95 of each
// Provision call; records them active in the catalog; then one worker (default connection budget)
// serves a document write and a keyword search for every one of them, from 32 clients, and
// reports the requests that failed (any non-2xx: a refused or exhausted connection would be a 503).
//
//	RAGPLANE_BENCH_POOLED=1 go test -run '^$' -bench PooledTenants -benchtime 1x -timeout 1h ./dataplane/
func BenchmarkPooledTenants(b *testing.B) {
	if os.Getenv("RAGPLANE_BENCH_POOLED") == "" {
		b.Skip("set RAGPLANE_BENCH_POOLED=1 to provision and serve 10,000 pooled tenants")
	}
	n := 10_000
	if v, err := strconv.Atoi(os.Getenv("RAGPLANE_BENCH_POOLED_TENANTS")); err == nil && v > 0 {
		n = v
	}
	st := e2etest.Start(b, e2etest.Options{Worker: func(c *dataplane.Config) { c.TenantCacheTTL = time.Minute }})
	st.CreateTenant("tmpl", "free", map[string]any{"isolation_tier": "pooled"})
	ctx := context.Background()
	p, err := local.New(ctx, local.Config{AdminURL: catalogtest.ServerURL(b), Prefix: st.Prefix})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	cat, err := pgx.Connect(ctx, st.CatalogURL)
	if err != nil {
		b.Fatal(err)
	}
	defer cat.Close(ctx)
	store := st.Store()
	ids := make([]string, n)
	lat := make([]float64, 0, n)
	b.ResetTimer()
	for b.Loop() {
		for i := range n {
			ids[i] = fmt.Sprintf("p%05d", i)
			t0 := time.Now()
			db, err := p.Provision(ctx, provision.Request{TenantID: ragplane.TenantID(ids[i]), EmbeddingDimension: 384, Pooled: true},
				func(string) error { return nil })
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
			sealed := store.Sealer().Seal([]byte(db.URL), "tenant-db:"+ids[i])
			if _, err := cat.Exec(ctx, `insert into tenants (id, name, email, plan, region, status, provider, provider_project_id,
				database_url_sealed, schema_version, settings)
				select $1, $1, $1 || '@bulk.example', plan, region, 'active', provider, $2, $3, $4, settings
				from tenants where id = 'tmpl'`, ids[i], db.ProjectID, sealed, db.SchemaVersion); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	pct := func(ms []float64, q float64) float64 {
		s := slices.Clone(ms)
		slices.Sort(s)
		return s[min(len(s)-1, int(q*float64(len(s))))]
	}
	b.ReportMetric(pct(lat, 0.5), "provision-p50-ms")
	b.ReportMetric(pct(lat, 0.95), "provision-p95-ms")
	b.ReportMetric(pct(lat, 1), "provision-max-ms")

	// One worker serves them all.
	var failed, unavailable, done atomic.Int64
	var mu sync.Mutex
	var served []float64
	var firstFailure atomic.Value
	work := make(chan string)
	var wg sync.WaitGroup
	start := time.Now()
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				c := st.Tenant(id)
				for _, req := range []struct {
					method, path string
					body         any
				}{
					{"POST", "/v1/documents", map[string]any{"title": "Note of " + id, "content": "Tenant " + id + " keeps its invoices for ten years."}},
					{"POST", "/v1/search", map[string]any{"query": "invoices", "retrieval_mode": "keyword", "top_k": 3}},
				} {
					t0 := time.Now()
					r := c.Do(req.method, req.path, req.body)
					ms := float64(time.Since(t0).Microseconds()) / 1000
					done.Add(1)
					if r.Status >= 300 {
						failed.Add(1)
						if r.Status == http.StatusServiceUnavailable {
							unavailable.Add(1)
						}
						firstFailure.CompareAndSwap(nil, fmt.Sprintf("%s %s %s: %d %s", id, req.method, req.path, r.Status, r.Body))
					}
					mu.Lock()
					served = append(served, ms)
					mu.Unlock()
				}
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	elapsed := time.Since(start)
	if f := firstFailure.Load(); f != nil {
		b.Logf("first failure: %v", f)
	}
	b.ReportMetric(float64(failed.Load()), "failed-requests")
	b.ReportMetric(float64(unavailable.Load()), "503-requests")
	b.ReportMetric(float64(done.Load())/elapsed.Seconds(), "served-req/s")
	b.ReportMetric(pct(served, 0.95), "served-p95-ms")
	b.ReportMetric(0, "ns/op")
}
