package use

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func withStrs(op string, strs map[string]string) *node {
	return &node{name: "test", op: op, strs: strs}
}

func i32T(shape []int, v ...int32) *tensor { return &tensor{dt: i32, shape: shape, i: v} }
func f32T(shape []int, v ...float32) *tensor {
	return &tensor{dt: f32, shape: shape, f: v}
}

func withAttr(op string, attr map[string]attrValue) *node {
	return &node{name: "test", op: op, attr: attr}
}

func intAttr(v string) attrValue  { return attrValue{I: []byte(`"` + v + `"`)} }
func boolAttr(v bool) attrValue   { return attrValue{B: &v} }
func typeAttr(v string) attrValue { return attrValue{Type: []byte(v)} }

// The ops on small hand-checked cases (the golden test covers them on the real graph).
func TestOps(t *testing.T) {
	for _, tc := range []struct {
		name   string
		given  []*tensor
		when   *node
		expect *tensor
	}{
		{
			name:   "Add broadcasts a column",
			given:  []*tensor{f32T([]int{2, 3}, 1, 2, 3, 4, 5, 6), f32T([]int{2, 1}, 10, 20)},
			when:   withAttr("Add", nil),
			expect: f32T([]int{2, 3}, 11, 12, 13, 24, 25, 26),
		},
		{
			name:   "Less against a scalar",
			given:  []*tensor{i32T([]int{3}, 1, 5, 9), i32T(nil, 5)},
			when:   withAttr("Less", nil),
			expect: &tensor{dt: boolean, shape: []int{3}, b: []bool{true, false, false}},
		},
		{
			name:  "StridedSlice column with shrink",
			given: []*tensor{i32T([]int{3, 2}, 0, 7, 1, 8, 2, 9), i32T([]int{2}, 0, 1), i32T([]int{2}, 0, 2), i32T([]int{2}, 1, 1)},
			when: withAttr("StridedSlice", map[string]attrValue{"begin_mask": intAttr("1"), "end_mask": intAttr("1"),
				"shrink_axis_mask": intAttr("2")}),
			expect: i32T([]int{3}, 7, 8, 9),
		},
		{
			name:   "StridedSlice tail of a shape",
			given:  []*tensor{i32T([]int{3}, 4, 5, 6), i32T([]int{1}, 1), i32T([]int{1}, 0), i32T([]int{1}, 1)},
			when:   withAttr("StridedSlice", map[string]attrValue{"end_mask": intAttr("1")}),
			expect: i32T([]int{2}, 5, 6),
		},
		{
			name:   "Transpose 0213",
			given:  []*tensor{f32T([]int{1, 2, 2, 1}, 1, 2, 3, 4), i32T([]int{4}, 0, 2, 1, 3)},
			when:   withAttr("Transpose", nil),
			expect: f32T([]int{1, 2, 2, 1}, 1, 3, 2, 4),
		},
		{
			name:   "Sum over axis 1",
			given:  []*tensor{f32T([]int{2, 2, 2}, 1, 2, 3, 4, 5, 6, 7, 8), i32T(nil, 1)},
			when:   withAttr("Sum", nil),
			expect: f32T([]int{2, 2}, 4, 6, 12, 14),
		},
		{
			name:   "Mean of the last axis, kept",
			given:  []*tensor{f32T([]int{2, 2}, 1, 3, 5, 9), i32T([]int{1}, -1)},
			when:   withAttr("Mean", map[string]attrValue{"keep_dims": boolAttr(true)}),
			expect: f32T([]int{2, 1}, 2, 7),
		},
		{
			name:   "Where",
			given:  []*tensor{{dt: boolean, shape: []int{2, 2}, b: []bool{false, true, true, false}}},
			when:   withAttr("Where", nil),
			expect: i32T([]int{2, 2}, 0, 1, 1, 0),
		},
		{
			name:   "ScatterNd then GatherNd round trip",
			given:  []*tensor{i32T([]int{2, 2}, 0, 1, 1, 0), f32T([]int{2, 2}, 1, 2, 3, 4), i32T([]int{3}, 2, 2, 2)},
			when:   withAttr("ScatterNd", nil),
			expect: f32T([]int{2, 2, 2}, 0, 0, 1, 2, 3, 4, 0, 0),
		},
		{
			name:   "SparseToDense",
			given:  []*tensor{i32T([]int{2, 2}, 0, 1, 1, 0), i32T([]int{2}, 2, 2), i32T([]int{2}, 7, 8), i32T(nil, -1)},
			when:   withAttr("SparseToDense", nil),
			expect: i32T([]int{2, 2}, -1, 7, 8, -1),
		},
		{
			name:   "Cast bool to float",
			given:  []*tensor{{dt: boolean, shape: []int{2}, b: []bool{true, false}}},
			when:   withAttr("Cast", map[string]attrValue{"DstT": typeAttr("1")}),
			expect: f32T([]int{2}, 1, 0),
		},
		{
			name:   "BiasAdd NHWC",
			given:  []*tensor{f32T([]int{2, 2}, 1, 2, 3, 4), f32T([]int{2}, 10, 20)},
			when:   withStrs("BiasAdd", map[string]string{"data_format": "NHWC"}),
			expect: f32T([]int{2, 2}, 11, 22, 13, 24),
		},
		{
			name:   "BatchMatMul with adj_y",
			given:  []*tensor{f32T([]int{1, 1, 2}, 1, 2), f32T([]int{1, 2, 2}, 1, 0, 3, 4)},
			when:   withAttr("BatchMatMul", map[string]attrValue{"adj_y": boolAttr(true)}),
			expect: f32T([]int{1, 1, 2}, 1, 11),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := ops[tc.when.op](tc.when, tc.given)
			if err != nil {
				t.Fatal(err)
			}
			got := out[0]
			if got.dt != tc.expect.dt || !slices.Equal(got.shape, tc.expect.shape) ||
				!slices.Equal(got.f, tc.expect.f) || !slices.Equal(got.i, tc.expect.i) || !slices.Equal(got.b, tc.expect.b) {
				t.Errorf("got %s %v f=%v i=%v b=%v, want %s %v f=%v i=%v b=%v", got.dt, got.shape, got.f, got.i, got.b,
					tc.expect.dt, tc.expect.shape, tc.expect.f, tc.expect.i, tc.expect.b)
			}
		})
	}
}

// TestOpList pins the set of ops the shipped graph runs, so that a different model file shows up
// here first.
func TestOpList(t *testing.T) {
	dir := os.Getenv("RAGPLANE_MODEL_DIR")
	if dir == "" {
		if os.Getenv("RAGPLANE_REQUIRE_STACK") != "" {
			t.Fatal("RAGPLANE_MODEL_DIR is not set: run `make up` (it runs ops/models.sh)")
		}
		t.Skip("RAGPLANE_MODEL_DIR not set")
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for op := range m.g.opList() {
		got = append(got, op)
	}
	slices.Sort(got)
	want := "Add BatchMatMul BiasAdd Cast ConcatV2 Const Conv2D Cos ExpandDims GatherNd GatherV2 " +
		"Greater Less LogicalNot MatMul Max Maximum Mean Mul Pack Placeholder Prod Range RealDiv Relu " +
		"Reshape Rsqrt ScatterNd Shape Sin Slice Softmax SparseToDense SplitV Square Squeeze " +
		"StridedSlice Sub Sum Tanh Transpose Where"
	if strings.Join(got, " ") != want {
		t.Errorf("ops = %s\nwant %s", strings.Join(got, " "), want)
	}
}

// gemm against a naive product, over shapes that exercise partial tiles, several depth blocks
// and both transpositions.
func TestGemm(t *testing.T) {
	rng := uint32(1)
	rnd := func() float32 {
		rng = rng*1664525 + 1013904223
		return float32(rng>>8)/float32(1<<24) - 0.5
	}
	for _, s := range [][3]int{{1, 1, 1}, {3, 5, 7}, {4, 16, 8}, {5, 17, 300}, {33, 70, 513}, {128, 512, 64}} {
		m, n, k := s[0], s[1], s[2]
		for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
			ta, tb := tr[0], tr[1]
			a := make([]float32, m*k)
			b := make([]float32, k*n)
			for i := range a {
				a[i] = rnd()
			}
			for i := range b {
				b[i] = rnd()
			}
			lda, ldb := k, n
			if ta {
				lda = m
			}
			if tb {
				ldb = k
			}
			at := func(i, kk int) float32 {
				if ta {
					return a[kk*lda+i]
				}
				return a[i*lda+kk]
			}
			bt := func(kk, j int) float32 {
				if tb {
					return b[j*ldb+kk]
				}
				return b[kk*ldb+j]
			}
			c := make([]float32, m*n)
			for i := range c {
				c[i] = 99 // gemm overwrites
			}
			for _, impl := range []struct {
				name string
				gemm func(ta, tb bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32)
			}{{"gemm", gemm}, {"gonum", gemmGonum}} {
				impl.gemm(ta, tb, m, n, k, a, lda, b, ldb, c)
				for i := range m {
					for j := range n {
						var want float64
						for kk := range k {
							want += float64(at(i, kk)) * float64(bt(kk, j))
						}
						if d := float64(c[i*n+j]) - want; d > 1e-4 || d < -1e-4 {
							t.Fatalf("%s %v ta=%v tb=%v: c[%d][%d] = %v, want %v", impl.name, s, ta, tb, i, j, c[i*n+j], want)
						}
					}
				}
			}
		}
	}
}

// Cutting a long text before tokenising (normalize) must not change the ids that are kept, for
// texts with spaces (the exact cut) and without (the character bound).
func TestTruncationKeepsPrefix(t *testing.T) {
	dir := os.Getenv("RAGPLANE_MODEL_DIR")
	if dir == "" {
		if os.Getenv("RAGPLANE_REQUIRE_STACK") != "" {
			t.Fatal("RAGPLANE_MODEL_DIR is not set: run `make up` (it runs ops/models.sh)")
		}
		t.Skip("RAGPLANE_MODEL_DIR not set")
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	words := strings.Fields("Ünïcödé  naïve café 漢字 ?! 3.14159 e-mail x\u00a0y  tabs\tand\nnewlines " +
		"antidisestablishmentarianism the of and a to in is you that it he was for on are as with")
	for seed := range 20 {
		var b strings.Builder
		for k := range 400 {
			b.WriteString(words[(k*7+seed*11)%len(words)])
			b.WriteString([]string{" ", "  ", "", " "}[(k+seed)%4])
		}
		text := b.String()
		full := m.tok.encode(text, 1<<20)
		got := m.tok.encode(text, MaxTokens)
		if len(full) < MaxTokens || !slices.Equal(got, full[:MaxTokens]) {
			t.Fatalf("seed %d: truncated ids differ from the first %d of %d", seed, MaxTokens, len(full))
		}
		glued := strings.Repeat(strings.ReplaceAll(text, " ", ""), 4) // > 8,192 characters
		full = m.tok.encode(glued, 1<<20)
		if got := m.tok.encode(glued, MaxTokens); !slices.Equal(got, full[:MaxTokens]) {
			t.Fatalf("seed %d without spaces: truncated ids differ from the first %d of %d", seed, MaxTokens, len(full))
		}
	}
	if !m.tok.cutAtSpaces {
		t.Error("the vocabulary has a piece with an inner '▁': long texts are no longer cut at spaces")
	}
}
