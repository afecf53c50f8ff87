package provision_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/controlplane/provision"
)

// BenchmarkProvisionHundredAtOnce creates 100 tenants in the catalog at once and measures, per
// tenant, the time from creation to active through the real reconciler and local provisioner.
func BenchmarkProvisionHundredAtOnce(b *testing.B) {
	const n = 100
	var all []float64
	var walls []float64
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		store, _ := catalogtest.MustOpen(b)
		lp, prefix := mustLocalTB(b)
		ctx, cancel := context.WithCancel(context.Background())
		r := provision.NewReconciler(provision.ReconcilerConfig{Store: store, PollInterval: 20 * time.Millisecond,
			Provisioners: map[ragplane.Provider]provision.Provisioner{ragplane.ProviderLocal: lp}})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); r.Run(ctx) }()
		for !r.IsLeader() {
			time.Sleep(5 * time.Millisecond)
		}
		b.StartTimer()

		start := time.Now()
		created := make([]time.Time, n)
		var cw sync.WaitGroup
		for j := 0; j < n; j++ {
			cw.Add(1)
			go func(j int) {
				defer cw.Done()
				id := ragplane.TenantID(fmt.Sprintf("bench_%03d", j))
				created[j] = time.Now()
				if _, _, err := store.CreateTenant(context.Background(), catalog.NewTenant{ID: id, Name: string(id),
					Email: string(id) + "@bench.example", Plan: "free", Region: "local", Provider: ragplane.ProviderLocal}, nil, catalog.Actor{Name: "bench"}); err != nil {
					b.Error(err)
				}
				r.Kick()
			}(j)
		}
		cw.Wait()
		// Poll until every tenant is active; the catalog's updated_at is when it became active.
		for {
			ts, _, err := store.ListTenants(context.Background(), catalog.TenantFilter{Status: ragplane.StatusActive, Limit: 500})
			if err != nil {
				b.Fatal(err)
			}
			if len(ts) == n {
				for _, t := range ts {
					var j int
					fmt.Sscanf(string(t.ID), "bench_%d", &j)
					all = append(all, float64(t.UpdatedAt.Sub(created[j]).Milliseconds()))
				}
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		walls = append(walls, float64(time.Since(start).Milliseconds()))
		b.StopTimer()
		cancel()
		wg.Wait()
		catalogtest.DropTenantDatabases(b, prefix)
		b.StartTimer()
	}
	sort.Float64s(all)
	sort.Float64s(walls)
	b.ReportMetric(all[len(all)/2], "p50-ms")
	b.ReportMetric(all[len(all)*95/100], "p95-ms")
	b.ReportMetric(walls[len(walls)/2], "all-100-ms")
	b.ReportMetric(0, "ns/op")
}
