package use_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ragplane/ragplane/dataplane/embed/use"
)

// Benchmarks, on one core (-cpu 1; the kernel is single-threaded anyway):
//
//	RAGPLANE_MODEL_DIR=... go test -run '^$' -bench . -cpu 1 ./dataplane/embed/use/
//
// chunks/s is wall-clock; chunks/cpu-s and cpu-ms/query divide by the process's CPU time, which
// a busy machine disturbs less (it includes the garbage collector's share).

var benchWords = strings.Fields(`Retrieval-augmented generation grounds a language model in the tenant's
own documents. Each tenant keeps its own index, quota and settings; chunks are embedded, stored in
pgvector and ranked by cosine similarity, and the proxy enforces rate limits before a request
reaches the data plane. Invoices from 2023 show revenue of $4.2M across 37 regions, up 12.5%.`)

// chunk returns a text of about n tokens, different for each seed.
func chunk(m *use.Model, n, seed int) string {
	var b strings.Builder
	for k := 0; ; k++ {
		w := benchWords[(k*7+seed*13)%len(benchWords)]
		b.WriteString(w)
		b.WriteByte(' ')
		if k%8 == 0 && len(m.Tokens(b.String())) >= n {
			return b.String()
		}
		if n > use.MaxTokens && k > n {
			return b.String() // long texts: stop at ~n words (> n tokens), no token count needed
		}
	}
}

func benchEmbed(b *testing.B, tokens, batch int) {
	m := MustModel(b)
	texts := make([]string, batch)
	for i := range texts {
		texts[i] = chunk(m, tokens, i)
	}
	var cpu time.Duration
	for b.Loop() {
		c0 := cpuTime()
		if _, err := m.Embed(context.Background(), texts); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - c0
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "chunks/s")
	if cpu > 0 {
		b.ReportMetric(float64(b.N*batch)/cpu.Seconds(), "chunks/cpu-s")
	}
}

func BenchmarkEmbed(b *testing.B) {
	for _, tc := range []struct{ tokens, batch int }{{100, 1}, {100, 16}, {2000, 16}} {
		b.Run(fmt.Sprintf("tokens=%d/batch=%d", tc.tokens, tc.batch), func(b *testing.B) {
			benchEmbed(b, tc.tokens, tc.batch)
		})
	}
}

// BenchmarkQuery is the latency of one short search query.
func BenchmarkQuery(b *testing.B) {
	m := MustModel(b)
	q := []string{"How do I rotate my API key?"}
	var cpu time.Duration
	for b.Loop() {
		c0 := cpuTime()
		if _, err := m.Embed(context.Background(), q); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - c0
	}
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/query")
	}
}
