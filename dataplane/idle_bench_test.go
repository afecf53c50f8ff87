package dataplane_test

import (
	"context"
	"net/http"
	"sort"
	"testing"
	"time"

	"github.com/ragplane/ragplane/controlplane"
	"github.com/ragplane/ragplane/e2etest"
)

// BenchmarkIdleWake measures what sleeping costs a tenant's first request: each round marks the
// tenant idle (catalog.MarkIdle, as the reconciler does), waits for the worker to close its pool,
// then times a search, which wakes it; a second search right after is the warm reference.
// Reports p50/p95 of the waking search and of the warm one, in ms.
func BenchmarkIdleWake(b *testing.B) {
	st := e2etest.Start(b, e2etest.Options{ControlPlane: func(c *controlplane.Config) { c.Provision.IdleAfter = 0 }})
	st.CreateTenant("drowsy_co", "pro", nil)
	c := st.Tenant("drowsy_co")
	mustStatus(b, c.Do("POST", "/v1/documents", map[string]any{"content": "Backups are encrypted with AES-256 every night."}), http.StatusCreated)
	store := st.Store()
	metrics := func() string { return string(e2etest.Send(b, "GET", st.WorkerURL+"/metrics", nil).Body) }
	var wake, warm []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now := time.Now()
		marked, err := store.MarkIdle(context.Background(), now.Add(time.Hour), now, 10)
		if err != nil || len(marked) != 1 {
			b.Fatalf("MarkIdle: %v, %v", marked, err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for metricValue(metrics(), "ragplane_dataplane_db_pools_open") != 0 {
			if time.Now().After(deadline) {
				b.Fatal("the worker did not close the idle tenant's pool")
			}
			time.Sleep(5 * time.Millisecond)
		}
		start := time.Now()
		mustStatus(b, c.Do("POST", "/v1/search", map[string]any{"query": "backups"}), http.StatusOK)
		wake = append(wake, float64(time.Since(start).Microseconds())/1000)
		start = time.Now()
		mustStatus(b, c.Do("POST", "/v1/search", map[string]any{"query": "backups"}), http.StatusOK)
		warm = append(warm, float64(time.Since(start).Microseconds())/1000)
	}
	b.StopTimer()
	if got := metricValue(metrics(), "ragplane_dataplane_tenant_wakes_total"); got != float64(b.N) {
		b.Fatalf("wakes_total = %v, want %d", got, b.N)
	}
	sort.Float64s(wake)
	sort.Float64s(warm)
	b.ReportMetric(wake[len(wake)/2], "wake-p50-ms")
	b.ReportMetric(wake[len(wake)*95/100], "wake-p95-ms")
	b.ReportMetric(warm[len(warm)/2], "warm-p50-ms")
	b.ReportMetric(warm[len(warm)*95/100], "warm-p95-ms")
	b.ReportMetric(0, "ns/op")
}
