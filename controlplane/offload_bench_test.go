package controlplane_test

import (
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/ragplane/ragplane/e2etest"
)

// BenchmarkOffloadRestore offloads a tenant with 10,000 chunks (10,000 one-chunk documents) to an
// archive and restores it on a search, several times, and reports the archive's size, the
// offload's duration (from its start to the archive recorded, as the catalog has them), what the
// search that restored the tenant took (as a client sees it) and, as the baseline measured in the
// same run, a search of the awake tenant.
//
//	RAGPLANE_BENCH_OFFLOAD=1 go test -run '^$' -bench OffloadRestore -benchtime 5x -timeout 30m ./controlplane/
func BenchmarkOffloadRestore(b *testing.B) {
	if os.Getenv("RAGPLANE_BENCH_OFFLOAD") == "" {
		b.Skip("set RAGPLANE_BENCH_OFFLOAD=1 to load 10,000 chunks and offload and restore them")
	}
	dir := b.TempDir()
	st := e2etest.Start(b, e2etest.Options{ControlPlane: offloadConfig(dir)})
	cl := load10k(b, st, "bench_off")
	query := map[string]any{"query": "supplier agreement 4242 renews", "retrieval_mode": "hybrid", "top_k": 10}
	search := func() time.Duration {
		start := time.Now()
		if r := cl.Do("POST", "/v1/search", query); r.Status != http.StatusOK {
			b.Fatalf("search: %d %s", r.Status, r.Body)
		}
		return time.Since(start)
	}
	var offloads, restores, warm []time.Duration
	var bytes int64
	var rows map[string]int64
	b.ResetTimer()
	for b.Loop() {
		o := waitOffloaded(b, st, "bench_off")
		offloads = append(offloads, o.OffloadedAt.Sub(o.StartedAt))
		bytes, rows = o.Bytes, o.Rows
		restores = append(restores, search())
		for range 5 {
			warm = append(warm, search())
		}
	}
	b.StopTimer()
	med := func(d []time.Duration) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[len(s)/2]
	}
	b.ReportMetric(float64(bytes)/(1<<20), "archive_MiB")
	b.ReportMetric(med(offloads).Seconds(), "offload_s")
	b.ReportMetric(med(restores).Seconds(), "restoring_search_s")
	b.ReportMetric(med(warm).Seconds()*1000, "warm_search_ms")
	b.Logf("rows %v; offloads %v; restoring searches %v; warm searches (median of %d) %v", rows, offloads, restores, len(warm), med(warm))
}
