// Package hashing is Ragplane's default embedder: local, network-free and weight-free.
//
// A text becomes a vector by feature hashing ("the hashing trick"): its lower-cased word
// unigrams, word bigrams and the character 3-grams of each word padded with spaces are each hashed
// to one of Dimension buckets and to a sign (+1 or -1), weighted by a sublinear term frequency
// (1 + ln tf) times a per-kind weight, summed, and the sum is L2-normalised. Texts that share words
// or word pieces get a high cosine similarity; unrelated texts are near-orthogonal. The hash is
// 64-bit FNV-1a (the hash/fnv algorithm, inlined to avoid allocations) finished with a fixed
// avalanche step, so vectors are identical across processes, machines and releases: changing any
// of it changes the model name.
//
// A text with no letters or digits (including "") embeds to a fixed unit vector, the vector of one
// reserved feature, rather than a zero vector: every vector then has norm 1, and cosine distance,
// which is undefined for a zero vector (pgvector returns NaN), stays defined.
package hashing

import (
	"context"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ragplane/ragplane"
)

// Name is the model name of this embedder, as stored with a tenant's vectors.
const Name = "local/ragplane-hash-v1"

// Bounds of the dimension. pgvector's vector type holds at most 16,000 dimensions; below 8
// buckets collisions swamp the signal.
const (
	MinDimension = 8
	MaxDimension = 16000
)

// Weights of the feature kinds. Words carry most of the meaning; bigrams add word order; the
// character 3-grams make morphological variants (policy/policies) and typos land close by, and
// are many per word, so each weighs less.
const (
	wordWeight    = 1.0
	bigramWeight  = 0.7
	trigramWeight = 0.3
)

// Seeds that keep the three kinds of features (and the empty-text feature) in separate hash
// spaces, so that the word "abc" and the 3-gram "abc" are different features.
const (
	seedWord byte = iota + 1
	seedBigram
	seedTrigram
	seedEmpty
)

// How often Embed checks its context, in texts.
const checkEvery = 64

// Embedder embeds texts by feature hashing. It holds no mutable state and is safe for concurrent
// use.
type Embedder struct {
	dim int
}

// New returns an embedder of dim dimensions. It returns EINVALID when dim is outside
// [MinDimension, MaxDimension].
func New(dim int) (*Embedder, error) {
	if dim < MinDimension || dim > MaxDimension {
		return nil, ragplane.FieldErrorf("embedding_dimension",
			"The embedding dimension must be between %d and %d, not %d.", MinDimension, MaxDimension, dim)
	}
	return &Embedder{dim: dim}, nil
}

// Dimension returns the length of the vectors.
func (e *Embedder) Dimension() int { return e.dim }

// Name returns "local/ragplane-hash-v1".
func (e *Embedder) Name() string { return Name }

// Embed returns one unit vector per text, in order. It stops with ctx.Err() when ctx is done,
// checking every 64 texts (about 3 ms of work).
func (e *Embedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	// One backing array for all vectors: fewer allocations, better locality for the caller.
	backing := make([]float32, len(texts)*e.dim)
	var feats []uint64
	var tab []slot
	for i, text := range texts {
		if i%checkEvery == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		out[i] = backing[i*e.dim : (i+1)*e.dim : (i+1)*e.dim]
		feats = e.embed(text, out[i], feats[:0], &tab)
	}
	return out, nil
}

// slot is an entry of the feature-counting table.
type slot struct {
	h uint64
	n uint32
}

// embed writes the vector of text into vec, using feats and tab as scratch space, and returns
// feats for reuse.
func (e *Embedder) embed(text string, vec []float32, feats []uint64, tab *[]slot) []uint64 {
	words := tokenize(text)
	if len(words) == 0 {
		h := finish(fnvString(fnvByte(fnvOffset, seedEmpty), "empty"))
		e.add(vec, h, 1)
		return feats
	}
	for i, w := range words {
		feats = append(feats, tag(finish(fnvString(fnvByte(fnvOffset, seedWord), w)), kindWord))
		if i > 0 {
			h := fnvString(fnvByte(fnvOffset, seedBigram), words[i-1])
			h = fnvString(fnvByte(h, ' '), w)
			feats = append(feats, tag(finish(h), kindBigram))
		}
		feats = appendTrigrams(feats, w)
	}

	// Count equal features: one of tf occurrences gets weight (1 + ln tf), times the weight of
	// the feature's kind, which tag stored in the hash. An open-addressing table beats sorting
	// (most features occur once) and its slot order, hence the float summation order, depends
	// only on the input.
	size := 1
	for size < 2*len(feats) {
		size <<= 1
	}
	if cap(*tab) < size {
		*tab = make([]slot, size)
	}
	slots := (*tab)[:size]
	clear(slots)
	for _, h := range feats {
		if h == 0 {
			h = 1 // 0 marks a free slot
		}
		for i := h & uint64(size-1); ; i = (i + 1) & uint64(size-1) {
			if slots[i].h == h {
				slots[i].n++
				break
			}
			if slots[i].h == 0 {
				slots[i] = slot{h: h, n: 1}
				break
			}
		}
	}
	for _, sl := range slots {
		if sl.n == 0 {
			continue
		}
		w := kindWeight(sl.h)
		if sl.n > 1 {
			w *= float32(1 + math.Log(float64(sl.n)))
		}
		e.add(vec, sl.h, w)
	}
	normalize(vec)
	return feats
}

// add adds ±weight to the bucket of h. The low bits pick the bucket, the top bit the sign; the
// two kind bits (see tag) are excluded from both.
func (e *Embedder) add(vec []float32, h uint64, weight float32) {
	b := (h & bucketMask) % uint64(e.dim)
	if h&signBit != 0 {
		weight = -weight
	}
	vec[b] += weight
}

// The feature kind is stored in two bits of the finished hash so that weighting can happen after
// sorting without carrying a second slice.
const (
	signBit    = 1 << 63
	kindShift  = 61
	kindMask   = 3 << kindShift
	bucketMask = 1<<kindShift - 1
)

func tag(h uint64, kind uint64) uint64 { return h&^kindMask | kind<<kindShift }

func kindWeight(h uint64) float32 {
	switch (h & kindMask) >> kindShift {
	case kindBigram:
		return bigramWeight
	case kindTrigram:
		return trigramWeight
	default:
		return wordWeight
	}
}

const (
	kindWord uint64 = iota
	kindBigram
	kindTrigram
)

// appendTrigrams appends the character 3-grams of " w " (runes, not bytes).
func appendTrigrams(feats []uint64, w string) []uint64 {
	// Rune boundaries of the padded word, computed without building it: position k of the
	// padded word is a space for k == 0 and k == n+1, else the (k-1)th rune of w.
	var starts [64]int
	offs := starts[:0]
	for i := range w {
		offs = append(offs, i)
	}
	n := len(offs)
	offs = append(offs, len(w))
	rune_ := func(h uint64, k int) uint64 {
		if k == 0 || k == n+1 {
			return fnvByte(h, ' ')
		}
		return fnvString(h, w[offs[k-1]:offs[k]])
	}
	for k := 0; k+2 <= n+1; k++ {
		h := fnvByte(fnvOffset, seedTrigram)
		h = rune_(h, k)
		h = rune_(h, k+1)
		h = rune_(h, k+2)
		feats = append(feats, tag(finish(h), kindTrigram))
	}
	return feats
}

// tokenize lower-cases text and splits it into words of letters and digits.
func tokenize(text string) []string {
	lower := toLower(text)
	return strings.FieldsFunc(lower, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// toLower is strings.ToLower with a fast path for ASCII text that is already lower case.
func toLower(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') {
			return strings.ToLower(s)
		}
	}
	return s
}

func normalize(vec []float32) {
	var sum float64
	for _, v := range vec {
		sum += float64(v) * float64(v)
	}
	if sum == 0 {
		return
	}
	inv := float32(1 / math.Sqrt(sum))
	for i := range vec {
		vec[i] *= inv
	}
}

// 64-bit FNV-1a, as hash/fnv.New64a computes it.
const (
	fnvOffset uint64 = 14695981039346656037
	fnvPrime  uint64 = 1099511628211
)

func fnvByte(h uint64, b byte) uint64 { return (h ^ uint64(b)) * fnvPrime }

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return h
}

// finish spreads FNV's weak high bits over the whole word (the splitmix64 finaliser), so bucket
// and sign bits are independent.
func finish(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
