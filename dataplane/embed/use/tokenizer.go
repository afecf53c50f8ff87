package use

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf16"

	"golang.org/x/text/unicode/norm"
)

// The tokenizer reproduces the one that feeds this graph in TF.js
// (@tensorflow-models/universal-sentence-encoder, src/tokenizer): a SentencePiece unigram
// segmentation done by a Viterbi pass over a trie of the vocabulary's pieces, with that code's
// particular choices, which decide which ids the model sees:
//   - the text is NFKC-normalised, not lower-cased; if non-empty, every ' ' (U+0020 only)
//     becomes '▁' (U+2581) and one '▁' is put in front;
//   - the first six vocabulary entries (unknown, control and user-defined symbols) are never
//     matched; a position where no piece starts gets the unknown id 0 as a one-symbol piece with
//     score 0;
//   - the best score per end position starts at 0 and "0" also means "unset", so the first
//     candidate always wins at a position whose best is still 0, and ties go to the later
//     candidate (candidates in order of start position);
//   - the backward pass steps back by the UTF-16 length of the chosen piece's text;
//   - runs of unknown ids are merged into one.

// sep is SentencePiece's word-boundary mark, LOWER ONE EIGHTH BLOCK.
const sep = '\u2581'

// reservedPieces is how many leading vocabulary entries the tokenizer never matches.
const reservedPieces = 6

type trieNode struct {
	children map[rune]*trieNode
	end      bool
	score    float64
	id       int32
}

type tokenizer struct {
	root trieNode
	// back[id] is the UTF-16 length of piece id, the backward pass's step.
	back []int
	// cutAtSpaces: no piece has a '▁' past its start, so long texts can be cut at spaces.
	cutAtSpaces bool
}

func loadTokenizer(dir string) (*tokenizer, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "vocab.json"))
	if err != nil {
		return nil, err
	}
	var vocab []struct {
		Piece string
		Score float64
	}
	var entries [][2]json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("vocab.json: %w", err)
	}
	for k, e := range entries {
		var p string
		var s float64
		if err := json.Unmarshal(e[0], &p); err != nil {
			return nil, fmt.Errorf("vocab.json entry %d: %w", k, err)
		}
		if err := json.Unmarshal(e[1], &s); err != nil {
			return nil, fmt.Errorf("vocab.json entry %d: %w", k, err)
		}
		vocab = append(vocab, struct {
			Piece string
			Score float64
		}{p, s})
	}
	if len(vocab) <= reservedPieces {
		return nil, fmt.Errorf("vocab.json: %d entries", len(vocab))
	}
	t := &tokenizer{back: make([]int, len(vocab)), cutAtSpaces: true}
	for id, v := range vocab {
		if strings.ContainsRune(strings.TrimPrefix(v.Piece, string(sep)), sep) {
			t.cutAtSpaces = false
		}
		t.back[id] = max(1, len(utf16.Encode([]rune(v.Piece))))
		if id < reservedPieces {
			continue
		}
		n := &t.root
		rs := []rune(v.Piece)
		for k, r := range rs {
			c := n.children[r]
			if c == nil {
				if n.children == nil {
					n.children = map[rune]*trieNode{}
				}
				c = &trieNode{}
				n.children[r] = c
			}
			n = c
			if k == len(rs)-1 { // a later duplicate replaces an earlier one, as in the JS trie
				n.end, n.score, n.id = true, v.Score, int32(id)
			}
		}
	}
	return t, nil
}

// maxRunesPerWord bounds the characters kept from a text with few spaces: maxWords times this.
// The longest piece has 16 characters, so a cut there still leaves at least 4×maxWords tokens
// before it.
const maxRunesPerWord = 64

// normalize applies the TF.js preprocessing to the start of text that can yield the first
// maxWords tokens, and returns it as symbols.
//
// When no piece holds a '▁' after its first symbol (true of this vocabulary, checked at load),
// every segmentation passes through each '▁', so the pieces before one do not depend on what
// follows it: the text is cut before its (maxWords+1)th space, raw (NFKC composes nothing across
// U+0020) and again after normalisation (which can make spaces, e.g. of U+00A0), which keeps
// exactly the ids the whole text would start with. A text with fewer spaces is also cut after
// maxWords×64 characters; only that cut is not exact in theory (the best path near the end of a
// long space-less run could differ), and it is hundreds of tokens past the ones kept.
func (t *tokenizer) normalize(text string, maxWords int) []rune {
	if t.cutAtSpaces {
		spaces := 0
		for i := 0; i < len(text); i++ {
			if text[i] == ' ' {
				if spaces++; spaces > maxWords {
					text = text[:i]
					break
				}
			}
		}
	}
	runes := 0
	for i := range text {
		if runes++; runes > maxWords*maxRunesPerWord {
			text = text[:i]
			break
		}
	}
	s := norm.NFKC.String(text)
	if s == "" {
		return nil
	}
	out := make([]rune, 0, min(len(s)+1, maxWords*maxRunesPerWord))
	out = append(out, sep)
	words := 1
	for _, r := range s {
		if r == ' ' {
			r = sep
		}
		if r == sep && t.cutAtSpaces {
			if words == maxWords {
				break
			}
			words++
		}
		out = append(out, r)
	}
	return out
}

type edge struct {
	start int
	score float64
	id    int32
}

// encode returns the token ids of text, at most the first limit of them (see normalize).
func (t *tokenizer) encode(text string, limit int) []int32 {
	syms := t.normalize(text, limit)
	if len(syms) == 0 {
		return nil
	}
	n := len(syms)
	ends := make([][]edge, n+1)
	for i := range n {
		found := false
		node := t.root.children[syms[i]]
		for j := i; node != nil; {
			if node.end {
				ends[j+1] = append(ends[j+1], edge{start: i, score: node.score, id: node.id})
				found = true
			}
			j++
			if j >= n {
				break
			}
			node = node.children[syms[j]]
		}
		if !found {
			ends[i+1] = append(ends[i+1], edge{start: i, score: 0, id: 0})
		}
	}
	best := make([]float64, n+1)
	words := make([]int32, n+1)
	for e := 0; e <= n; e++ {
		for _, c := range ends[e] {
			s := c.score + best[c.start]
			if best[e] == 0 || s >= best[e] {
				best[e] = s
				words[e] = c.id
			}
		}
	}
	var rev []int32
	prevUnk := false
	for it := n; it > 0; it -= t.back[words[it]] {
		id := words[it]
		if !(prevUnk && id == 0) {
			rev = append(rev, id)
		}
		prevUnk = id == 0
	}
	ids := make([]int32, len(rev))
	for k, id := range rev {
		ids[len(rev)-1-k] = id
	}
	if len(ids) > limit {
		ids = ids[:limit]
	}
	return ids
}
