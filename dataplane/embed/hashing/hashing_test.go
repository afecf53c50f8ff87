package hashing_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/embed/hashing"
)

func MustNew(tb testing.TB, dim int) *hashing.Embedder {
	tb.Helper()
	e, err := hashing.New(dim)
	if err != nil {
		tb.Fatalf("New(%d): %v", dim, err)
	}
	return e
}

func MustEmbed(tb testing.TB, e *hashing.Embedder, texts ...string) [][]float32 {
	tb.Helper()
	vecs, err := e.Embed(context.Background(), texts)
	if err != nil {
		tb.Fatalf("Embed: %v", err)
	}
	if len(vecs) != len(texts) {
		tb.Fatalf("Embed returned %d vectors for %d texts", len(vecs), len(texts))
	}
	return vecs
}

func cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return dot / math.Sqrt(na*nb)
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func TestNew(t *testing.T) {
	tests := []struct {
		name   string
		given  int
		expect string // error code
	}{
		{name: "minimum", given: hashing.MinDimension},
		{name: "typical", given: 384},
		{name: "maximum", given: hashing.MaxDimension},
		{name: "zero", given: 0, expect: ragplane.EINVALID},
		{name: "negative", given: -5, expect: ragplane.EINVALID},
		{name: "too small", given: hashing.MinDimension - 1, expect: ragplane.EINVALID},
		{name: "too large", given: hashing.MaxDimension + 1, expect: ragplane.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := hashing.New(tt.given)
			if got := ragplane.ErrorCode(err); got != tt.expect {
				t.Fatalf("New(%d) code = %q, want %q (err %v)", tt.given, got, tt.expect, err)
			}
			if err == nil && (e.Dimension() != tt.given || e.Name() != "local/ragplane-hash-v1") {
				t.Fatalf("Dimension() = %d, Name() = %q", e.Dimension(), e.Name())
			}
		})
	}
}

func TestEmbedDimensionAndUnitNorm(t *testing.T) {
	texts := []string{
		"", "   ", "!!! ???", "a", "Hello, world!", "Ünïcödé wörds and 数字 123",
		strings.Repeat("the quick brown fox jumps over the lazy dog ", 200),
	}
	for _, dim := range []int{8, 64, 384, 1536} {
		e := MustNew(t, dim)
		for i, v := range MustEmbed(t, e, texts...) {
			if len(v) != dim {
				t.Errorf("dim %d text %d: len = %d", dim, i, len(v))
			}
			if n := norm(v); math.Abs(n-1) > 1e-5 {
				t.Errorf("dim %d text %q: norm = %v, want 1", dim, texts[i], n)
			}
		}
	}
}

func TestEmbedDeterministic(t *testing.T) {
	text := "Refunds are issued within 14 days of a return request."
	a := MustEmbed(t, MustNew(t, 384), text, "other", text)
	b := MustEmbed(t, MustNew(t, 384), text)
	for i := range a[0] {
		if a[0][i] != a[2][i] || a[0][i] != b[0][i] {
			t.Fatalf("component %d differs: %v %v %v", i, a[0][i], a[2][i], b[0][i])
		}
	}
}

// TestEmbedGolden pins the vectors across processes and releases: stored vectors must keep
// matching new query vectors. If this fails, the model changed and needs a new name.
func TestEmbedGolden(t *testing.T) {
	v := MustEmbed(t, MustNew(t, 16), "Hello world")[0]
	got := make([]string, len(v))
	for i, x := range v {
		got[i] = fmt.Sprintf("%.4f", x)
	}
	const expect = "0.0000 -0.1502 -0.1502 -0.1502 0.0000 0.5006 0.3004 0.3004 0.0000 0.0000 0.0000 -0.5006 0.0000 -0.5006 0.0000 0.0000"
	if strings.Join(got, " ") != expect {
		t.Fatalf("golden vector changed:\n got %s\nwant %s", strings.Join(got, " "), expect)
	}
}

func TestEmbedEmptyTextIsFixedUnitVector(t *testing.T) {
	vecs := MustEmbed(t, MustNew(t, 64), "", " \n\t", "--- ...", "hello")
	if c := cosine(vecs[0], vecs[1]); math.Abs(c-1) > 1e-6 {
		t.Fatalf("empty and blank differ: cosine %v", c)
	}
	if c := cosine(vecs[0], vecs[2]); math.Abs(c-1) > 1e-6 {
		t.Fatalf("empty and punctuation differ: cosine %v", c)
	}
	if c := cosine(vecs[0], vecs[3]); c > 0.9 {
		t.Fatalf("empty vector too close to a word: cosine %v", c)
	}
}

func TestEmbedSimilarTextsAreCloser(t *testing.T) {
	tests := []struct {
		name                    string
		anchor, near, unrelated string
	}{
		{
			name:      "shared words",
			anchor:    "How do I reset my account password?",
			near:      "To reset your password, open account settings.",
			unrelated: "The quarterly revenue grew by twelve percent.",
		},
		{
			name:      "morphology",
			anchor:    "refund policies",
			near:      "the refund policy",
			unrelated: "kubernetes deployment",
		},
		{
			name:      "case and punctuation",
			anchor:    "Invoice NUMBER: 4711",
			near:      "invoice number 4711",
			unrelated: "shipping address",
		},
	}
	e := MustNew(t, 384)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := MustEmbed(t, e, tt.anchor, tt.near, tt.unrelated)
			near, far := cosine(v[0], v[1]), cosine(v[0], v[2])
			if near <= far {
				t.Fatalf("cosine(anchor, near) = %.3f <= cosine(anchor, unrelated) = %.3f", near, far)
			}
		})
	}
}

// Bigrams make word order count a little: the same words in another order are close, not equal.
func TestEmbedWordOrderMatters(t *testing.T) {
	v := MustEmbed(t, MustNew(t, 384), "the dog bit the man", "the man bit the dog")
	if c := cosine(v[0], v[1]); c > 0.99 || c < 0.5 {
		t.Fatalf("cosine = %.3f, want in [0.5, 0.99]", c)
	}
}

func TestEmbedHonoursContext(t *testing.T) {
	e := MustNew(t, 384)
	texts := make([]string, 10_000)
	for i := range texts {
		texts[i] = chunk(i)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	vecs, err := e.Embed(ctx, texts)
	if !errors.Is(err, context.Canceled) || vecs != nil {
		t.Fatalf("Embed(canceled) = %d vectors, %v; want nil, context.Canceled", len(vecs), err)
	}

	// Cancelled while running: the embedder notices between texts.
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := e.Embed(ctx, texts)
		done <- err
	}()
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Embed: %v", err)
	}
}

func TestEmbedNoTexts(t *testing.T) {
	vecs, err := MustNew(t, 8).Embed(context.Background(), nil)
	if err != nil || len(vecs) != 0 {
		t.Fatalf("Embed(nil) = %v, %v", vecs, err)
	}
}

var vocabulary = strings.Fields(`tenant document retrieval vector index policy refund invoice
customer account password security compliance audit report quarterly revenue growth latency
throughput database replica backup restore region cluster node shard query answer citation source
chunk embedding model token budget limit plan quota usage billing contract renewal support ticket
escalation incident outage recovery deployment release version upgrade migration schema table row`)

// chunk returns a deterministic text of about 256 tokens (192 words).
func chunk(seed int) string {
	var sb strings.Builder
	x := uint32(seed*2654435761 + 1)
	for i := 0; i < 192; i++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		if i > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(vocabulary[x%uint32(len(vocabulary))])
		if x%11 == 0 {
			sb.WriteString(".")
		}
	}
	return sb.String()
}

// BenchmarkEmbed embeds batches of ~256-token chunks; chunks/s is the throughput of one core.
func BenchmarkEmbed(b *testing.B) {
	e := MustNew(b, 384)
	texts := make([]string, 64)
	var bytes int
	for i := range texts {
		texts[i] = chunk(i)
		bytes += len(texts[i])
	}
	ctx := context.Background()
	b.SetBytes(int64(bytes))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.Embed(ctx, texts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(texts))/b.Elapsed().Seconds(), "chunks/s")
}
