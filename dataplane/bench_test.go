package dataplane_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ragplane/ragplane/dataplane/embed/hashing"
	"github.com/ragplane/ragplane/dataplane/ingest"
	"github.com/ragplane/ragplane/internal/e2etest"
)

var words = strings.Fields(`access control policy encryption keys rotation backup retention vendor risk assessment
incident response audit logging network segmentation identity provider authentication authorization least privilege
data classification privacy impact assessment business continuity disaster recovery change management vulnerability
scanning patch management secure development training awareness physical security asset inventory monitoring alerting`)

// prose returns n sentences of compliance-flavoured text, deterministic for a seed.
func prose(r *rand.Rand, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		k := 8 + r.IntN(10)
		for j := 0; j < k; j++ {
			w := words[r.IntN(len(words))]
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
	queries := []string{"encryption key rotation policy", "incident response and disaster recovery",
		"vendor risk assessment", "least privilege access control", "backup retention"}
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
