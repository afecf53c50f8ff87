package dataplane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ragplane/ragplane/dataplane/embed/hashing"
	"github.com/ragplane/ragplane/dataplane/ingest"
	"github.com/ragplane/ragplane/e2etest"
)

// vocabulary is 5,000 made-up words; prose draws them with a Zipf distribution, like real text
// (a few very common words, a long tail), so full-text queries match realistic numbers of chunks.
var vocabulary = func() []string {
	syll := []string{"ka", "lo", "mi", "ren", "sa", "tor", "vi", "den", "pa", "qu", "el", "ost", "ar", "ni", "bel", "cor"}
	r := rand.New(rand.NewPCG(7, 7))
	seen := map[string]bool{}
	var out []string
	for len(out) < 5000 {
		w := ""
		for n := 2 + r.IntN(3); n > 0; n-- {
			w += syll[r.IntN(len(syll))]
		}
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}()

// prose returns n sentences of Zipf-distributed words, deterministic for r.
func prose(r *rand.Rand, n int) string {
	z := rand.NewZipf(r, 1.1, 2, uint64(len(vocabulary)-1))
	var b strings.Builder
	for i := 0; i < n; i++ {
		k := 8 + r.IntN(10)
		for j := 0; j < k; j++ {
			w := vocabulary[z.Uint64()]
			if j == 0 {
				w = strings.ToUpper(w[:1]) + w[1:]
			}
			b.WriteString(w)
			if j < k-1 {
				b.WriteByte(' ')
			}
		}
		b.WriteString(". ")
		if i%6 == 5 {
			b.WriteString("\n\n")
		}
	}
	return b.String()
}

// BenchmarkIngest measures ingestion through one worker with the local embedder: documents of
// about 2,000 tokens in batches of 10, chunked at the system default (256/32), embedded, written
// with COPY. The baseline is the local embedder alone on the same chunks, in the same run.
func BenchmarkIngest(b *testing.B) {
	st := e2etest.Start(b, e2etest.Options{})
	st.CreateTenant("bench_co", "enterprise", nil)
	c := st.Tenant("bench_co")
	r := rand.New(rand.NewPCG(1, 2))
	b.Run("worker", func(b *testing.B) {
		chunks := 0
		start := time.Now()
		for i := 0; b.Loop(); i++ {
			docs := make([]map[string]any, 10)
			for j := range docs {
				docs[j] = map[string]any{"title": fmt.Sprintf("doc %d-%d", i, j), "content": prose(r, 120)}
			}
			resp := c.Do("POST", "/v1/documents/batch", map[string]any{"documents": docs})
			if resp.Status != http.StatusCreated {
				b.Fatalf("%d %s", resp.Status, resp.Body)
			}
			var out struct {
				Documents []docResp `json:"documents"`
			}
			resp.Decode(b, &out)
			for _, d := range out.Documents {
				chunks += d.ChunkCount
			}
		}
		b.ReportMetric(float64(chunks)/time.Since(start).Seconds(), "chunks/s")
		b.ReportMetric(0, "ns/op")
	})
	// A worker serves many tenants: four ingesting at once keep both cores busy (one tenant's
	// writes are serialised by its quota lock, and HNSW insertion dominates them).
	for _, id := range []string{"bench_p0", "bench_p1", "bench_p2", "bench_p3"} {
		st.CreateTenant(id, "enterprise", nil)
	}
	b.Run("worker-4-tenants", func(b *testing.B) {
		var chunks atomic.Int64
		start := time.Now()
		for i := 0; b.Loop(); i++ {
			var wg sync.WaitGroup
			for p := 0; p < 4; p++ {
				wg.Add(1)
				go func(p int) {
					defer wg.Done()
					rr := rand.New(rand.NewPCG(uint64(i), uint64(p)))
					docs := make([]map[string]any, 10)
					for j := range docs {
						docs[j] = map[string]any{"title": fmt.Sprintf("doc %d-%d", i, j), "content": prose(rr, 120)}
					}
					resp := st.Tenant(fmt.Sprintf("bench_p%d", p)).Do("POST", "/v1/documents/batch", map[string]any{"documents": docs})
					var out struct {
						Documents []docResp `json:"documents"`
					}
					if resp.Status == http.StatusCreated && json.Unmarshal(resp.Body, &out) == nil {
						for _, d := range out.Documents {
							chunks.Add(int64(d.ChunkCount))
						}
					}
				}(p)
			}
			wg.Wait()
		}
		b.ReportMetric(float64(chunks.Load())/time.Since(start).Seconds(), "chunks/s")
		b.ReportMetric(0, "ns/op")
	})
	b.Run("embedder-only-baseline", func(b *testing.B) {
		emb, _ := hashing.New(384)
		pieces, _ := ingest.Chunk(prose(r, 1200), 256, 32)
		texts := make([]string, len(pieces))
		for i, p := range pieces {
			texts[i] = p.Content
		}
		chunks := 0
		start := time.Now()
		for b.Loop() {
			if _, err := emb.Embed(context.Background(), texts); err != nil {
				b.Fatal(err)
			}
			chunks += len(texts)
		}
		b.ReportMetric(float64(chunks)/time.Since(start).Seconds(), "chunks/s")
		b.ReportMetric(0, "ns/op")
	})
}

// BenchmarkSearchHTTP measures POST /v1/search through the worker for each mode, in one tenant
// holding 10k chunks (100k with RAGPLANE_BENCH_LARGE=1), seeded through the ingestion API.
func BenchmarkSearchHTTP(b *testing.B) {
	target := 10_000
	if os.Getenv("RAGPLANE_BENCH_LARGE") != "" {
		target = 100_000
	}
	st := e2etest.Start(b, e2etest.Options{})
	st.CreateTenant("bench_co", "enterprise", nil)
	mustStatusB(b, st.Admin("PATCH", "/v1/tenants/bench_co", map[string]any{"limits": map[string]any{"max_storage_mb": 100000}}))
	time.Sleep(300 * time.Millisecond)
	c := st.Tenant("bench_co")
	r := rand.New(rand.NewPCG(3, 4))
	chunks := 0
	for i := 0; chunks < target; i++ {
		docs := make([]map[string]any, 50)
		for j := range docs {
			docs[j] = map[string]any{"title": fmt.Sprintf("doc %d-%d", i, j), "content": prose(r, 48),
				"metadata": map[string]any{"team": []string{"security", "legal", "it"}[j%3]}}
		}
		resp := c.Do("POST", "/v1/documents/batch", map[string]any{"documents": docs})
		if resp.Status != http.StatusCreated {
			b.Fatalf("seed: %d %s", resp.Status, resp.Body)
		}
		var out struct {
			Documents []docResp `json:"documents"`
		}
		resp.Decode(b, &out)
		for _, d := range out.Documents {
			chunks += d.ChunkCount
		}
	}
	b.Logf("seeded %d chunks", chunks)
	// Two-word queries of mid-frequency words (ranks 50-500), as people search.
	var queries []string
	qr := rand.New(rand.NewPCG(9, 9))
	for i := 0; i < 50; i++ {
		queries = append(queries, vocabulary[50+qr.IntN(450)]+" "+vocabulary[50+qr.IntN(450)])
	}
	for _, mode := range []string{"vector", "keyword", "hybrid", "graph"} {
		b.Run(fmt.Sprintf("%s-%dk", mode, target/1000), func(b *testing.B) {
			var lat []float64
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				resp := c.Do("POST", "/v1/search", map[string]any{"query": queries[i%len(queries)], "retrieval_mode": mode, "top_k": 10})
				lat = append(lat, float64(time.Since(start).Microseconds())/1000)
				if resp.Status != http.StatusOK {
					b.Fatalf("%d %s", resp.Status, resp.Body)
				}
			}
			sort.Float64s(lat)
			b.ReportMetric(lat[len(lat)/2], "p50-ms")
			b.ReportMetric(lat[len(lat)*95/100], "p95-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func mustStatusB(b *testing.B, r e2etest.Response) {
	b.Helper()
	if r.Status >= 300 {
		b.Fatalf("%d %s", r.Status, r.Body)
	}
}
