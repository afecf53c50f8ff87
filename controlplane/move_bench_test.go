package controlplane_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/e2etest"
)

// BenchmarkTierMove moves a tenant with 10,000 chunks (10,000 one-chunk documents) from its own
// database to a pool and back while four clients keep writing (and deleting every fifth of what
// they wrote), and reports per direction: the move's duration (plan change to old copy removed),
// its first pass (copy from a snapshot) and how long the tenant's requests were held (catch-up and
// seal), the writes accepted during the move, those that got a 503 and were retried, and the
// slowest write. Every acknowledged write is checked to be there exactly once afterwards.
//
//	RAGPLANE_BENCH_MOVE=1 go test -run '^$' -bench TierMove -benchtime 1x -timeout 30m ./controlplane/
func BenchmarkTierMove(b *testing.B) {
	if os.Getenv("RAGPLANE_BENCH_MOVE") == "" {
		b.Skip("set RAGPLANE_BENCH_MOVE=1 to load 10,000 chunks and move them between tiers")
	}
	st := e2etest.Start(b, e2etest.Options{})
	cl := load10k(b, st, "bench_mv")
	b.ResetTimer()
	for b.Loop() {
		var w *writers
		for _, to := range []string{ragplane.TierPooled, ragplane.TierSiloed} {
			prev := w
			if prev == nil {
				prev = &writers{acked: map[string]string{}, deleted: map[string]bool{}, preexisting: 10_000}
			}
			w = startWriters(b, cl, "to-"+to, 4, prev)
			// The baseline: the same writers for 5 s before the move.
			baseStart := time.Now()
			for time.Since(baseStart) < 5*time.Second {
				time.Sleep(10 * time.Millisecond)
			}
			baseline := w.latencies(0)
			before, retriedBefore := w.accepted.Load(), w.retried.Load()
			mark := len(w.latencies(0))
			w.slowest.Store(0)
			start := time.Now()
			if r := st.Admin("PATCH", "/v1/tenants/bench_mv", map[string]any{"settings": map[string]any{"isolation_tier": to}}); r.Status != http.StatusOK {
				b.Fatalf("tier change: %d %s", r.Status, r.Body)
			}
			waitMovedB(b, st, "bench_mv", to)
			took := time.Since(start)
			accepted, retried, slowest := w.accepted.Load()-before, w.retried.Load()-retriedBefore, time.Duration(w.slowest.Load())
			during := w.latencies(mark)
			w.finish()
			stats := moveStats(b, st, "bench_mv")
			b.ReportMetric(took.Seconds(), "s-move-to-"+to)
			b.ReportMetric(stats.CopySeconds, "s-copy-to-"+to)
			b.ReportMetric(stats.HeldSeconds, "s-held-to-"+to)
			b.ReportMetric(float64(accepted), "writes-during-to-"+to)
			b.ReportMetric(float64(retried), "503-retried-to-"+to)
			b.ReportMetric(slowest.Seconds(), "s-slowest-write-to-"+to)
			b.ReportMetric(pct(baseline, 50).Seconds()*1000, "ms-write-p50-before-"+to)
			b.ReportMetric(pct(during, 50).Seconds()*1000, "ms-write-p50-during-"+to)
			b.ReportMetric(pct(baseline, 99).Seconds()*1000, "ms-write-p99-before-"+to)
			b.ReportMetric(pct(during, 99).Seconds()*1000, "ms-write-p99-during-"+to)
			b.Logf("to %s: writes p50/p99 %v/%v before (%d writes in 5 s), %v/%v during", to,
				pct(baseline, 50), pct(baseline, 99), len(baseline), pct(during, 50), pct(during, 99))
			b.Logf("to %s: %.2fs (copy %.2fs of %d chunks in %d passes, held %.3fs copying %v), %d writes accepted during it, %d retried, slowest write %v",
				to, took.Seconds(), stats.CopySeconds, stats.Copy.Rows["chunks"], stats.Passes, stats.HeldSeconds, stats.CatchUp.Copied, accepted, retried, slowest)
		}
	}
}

// pct is the p-th percentile of ds (nearest rank).
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, (len(s)*p+99)/100-1)]
}

func waitMovedB(b *testing.B, st *e2etest.Stack, tenant, tier string) {
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		var got tierOf
		st.Admin("GET", "/v1/tenants/"+tenant+"/move", nil).Decode(b, &got)
		if got.Tier == tier && got.Move == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("tenant %s did not move to %s", tenant, tier)
}

// switchStats are the statistics of a move's tenant.move.switch audit entry (provision.MoveStats).
type switchStats struct {
	CopySeconds float64 `json:"copy_seconds"`
	HeldSeconds float64 `json:"held_seconds"`
	Passes      int     `json:"passes"`
	Copy        struct {
		Rows map[string]int64 `json:"rows"`
	} `json:"copy"`
	CatchUp struct {
		Copied map[string]int64 `json:"copied"`
	} `json:"catch_up"`
}

// moveStats reads the last move's statistics from its audit entry.
func moveStats(b *testing.B, st *e2etest.Stack, tenant string) switchStats {
	var audit struct {
		Items []struct {
			After json.RawMessage `json:"after"`
		} `json:"items"`
	}
	st.Admin("GET", "/v1/audit?target=tenant/"+tenant+"&action=tenant.move.switch&limit=1", nil).Decode(b, &audit)
	var out struct {
		Stats switchStats `json:"stats"`
	}
	if len(audit.Items) == 0 {
		b.Fatal("no tenant.move.switch audit entry")
	}
	if err := json.Unmarshal(audit.Items[0].After, &out); err != nil {
		b.Fatal(err)
	}
	return out.Stats
}

// load10k creates tenant (pro: siloed) with room for them and loads 10,000 one-chunk documents
// into it through eight clients, returning its client.
func load10k(b *testing.B, st *e2etest.Stack, tenant string) *e2etest.Client {
	b.Helper()
	st.CreateTenant(tenant, "pro", nil)
	if r := st.Admin("PATCH", "/v1/tenants/"+tenant, map[string]any{"limits": map[string]any{"max_documents": 1_000_000}}); r.Status != http.StatusOK {
		b.Fatalf("limits: %d %s", r.Status, r.Body)
	}
	cl := st.Tenant(tenant)
	var wg sync.WaitGroup
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := c; batch < 100; batch += 8 {
				docs := make([]map[string]any, 100)
				for i := range docs {
					n := batch*100 + i
					docs[i] = map[string]any{"title": fmt.Sprintf("doc %d", n),
						"content": fmt.Sprintf("Record %d: the supplier agreement number %d renews every %d months unless cancelled in writing.", n, n*7, n%36+1)}
				}
				if r := cl.Do("POST", "/v1/documents/batch", map[string]any{"documents": docs}); r.Status >= 300 {
					b.Errorf("load: %d %s", r.Status, r.Body)
					return
				}
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return cl
}
