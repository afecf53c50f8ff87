package ingest

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/prose"
)

// Piece is one chunk of a text, ready to embed and store as a ragplane.Chunk.
type Piece struct {
	// Content is text[Start:End]: whole words, no leading or trailing whitespace.
	Content string
	// Tokens is prose.CountTokens(Content), never more than the size Chunk was given.
	Tokens int
	// Start and End are the byte offsets of Content in the chunked text. Pieces come in order;
	// a piece may start before the previous one ends (the overlap).
	Start, End int
}

// Chunk splits text into pieces of at most size tokens (prose.CountTokens), each after the first
// repeating about overlap tokens from the end of the one before, so that a passage cut in two
// still appears whole in one of them.
//
// A piece ends at the strongest boundary in the back half of its budget: a paragraph break (a
// blank line), then a sentence end, then a line break, then any whitespace; among equals, the
// latest. When the back half has no paragraph or sentence end, one in the back three quarters is
// taken before a line break or space; earlier ones are passed over so that pieces stay near size.
// The budget includes the overlap. A sentence ends at ".", "!" or "?" (optionally followed by closing quotes or
// brackets) then whitespace, except after abbreviations ("e.g.", "Dr.", "U.S.", initials), list
// numbers at the start of a line ("1.") or before a lowercase word; a decimal point is never a
// boundary because it is not followed by whitespace. Overlap starts at the earliest sentence or
// line start in the last overlap tokens of the previous piece if that gives at least half of
// overlap, else at the earliest word that fits. A word is split only when it alone is over size
// (a long URL, CJK text without spaces); it is then cut at rune boundaries, preferring just after
// punctuation, and its parts carry no overlap.
//
// Chunk is deterministic and treats any whitespace (unicode.IsSpace) as a word gap; it expects
// normalised text but works on any string. Text with no words gives no pieces. It returns
// EINVALID unless size > overlap >= 0.
func Chunk(text string, size, overlap int) ([]Piece, error) {
	if overlap < 0 || size <= overlap {
		return nil, ragplane.Errorf(ragplane.EINVALID,
			"chunk size must be greater than overlap and overlap at least 0 (size %d, overlap %d)", size, overlap)
	}
	ws := splitWords(text)
	n := len(ws)
	if n == 0 {
		return nil, nil
	}
	// cum[i] is the tokens of words [0, i); since counts add up across whitespace, the tokens of
	// text[ws[a].start:ws[c-1].end] are cum[c]-cum[a].
	cum := make([]int, n+1)
	for i, w := range ws {
		cum[i+1] = cum[i] + w.tokens
	}
	gaps := gapStrengths(text, ws)
	strength := func(c int) boundary { // of a cut before word c
		if c >= n {
			return boundaryEnd
		}
		return gaps[c-1]
	}

	pieces := make([]Piece, 0, cum[n]/max(size-overlap, 1)+1)
	emit := func(a, c int) {
		start, end := ws[a].start, ws[c-1].end
		pieces = append(pieces, Piece{Content: text[start:end], Tokens: cum[c] - cum[a], Start: start, End: end})
	}

	a, done := 0, 0 // the next piece starts at word a and must end after word done-1
	for a < n {
		if ws[a].tokens > size {
			pieces = splitWord(pieces, text, ws[a], size)
			a++
			done = a
			continue
		}
		// b: the most words from a that fit.
		b := a + sort.Search(n-a, func(k int) bool { return cum[a+k+1]-cum[a] > size })
		// best returns the strongest cut in (done, b], latest among equals, among those that fill
		// at least minFill tokens if any does.
		best := func(minFill int) int {
			lo := done + 1
			if k := a + sort.Search(b-a, func(k int) bool { return cum[a+k+1]-cum[a] >= minFill }) + 1; k > lo && k <= b {
				lo = k
			}
			c := b
			for k := b - 1; k >= lo; k-- {
				if strength(k) > strength(c) {
					c = k
				}
			}
			return c
		}
		c := b
		if b < n {
			// A cut in the back half of the budget; but an end of sentence in the back three
			// quarters beats a line break or a space in the back half.
			if c = best((size + 1) / 2); strength(c) < boundarySentence {
				if q := best((size + 3) / 4); strength(q) >= boundarySentence {
					c = q
				}
			}
		}
		emit(a, c)
		if c == n {
			break
		}
		next := overlapStart(cum, gaps, a, c, overlap)
		// The next piece must take at least word c.
		for next < c && cum[c+1]-cum[next] > size {
			next++
		}
		a, done = next, c
	}
	return pieces, nil
}

// overlapStart returns where the piece after words [a, c) starts: a word in (a, c] whose tail
// up to c holds at most overlap tokens.
func overlapStart(cum []int, gaps []boundary, a, c, overlap int) int {
	if overlap == 0 {
		return c
	}
	// p0: the earliest word that fits in the overlap, but never the previous piece's first word.
	p0 := a + 1 + sort.Search(c-a-1, func(k int) bool { return cum[c]-cum[a+1+k] <= overlap })
	for p := p0; p < c && 2*(cum[c]-cum[p]) >= overlap; p++ {
		if gaps[p-1] >= boundaryLine {
			return p
		}
	}
	return p0
}

// word is a maximal run of non-space runes.
type word struct {
	start, end int // byte offsets
	tokens     int // prose.CountTokens(text[start:end])
}

func splitWords(text string) []word {
	ws := make([]word, 0, len(text)/5+1) // English words take ~6 bytes with their space: no regrowth
	var c prose.Counter
	start := -1
	for i := 0; i < len(text); {
		r, size := rune(text[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(text[i:])
		}
		if unicode.IsSpace(r) {
			if start >= 0 {
				ws = append(ws, word{start: start, end: i, tokens: c.Tokens()})
				start = -1
			}
		} else {
			if start < 0 {
				start = i
				c = prose.Counter{}
			}
			c.Add(r)
		}
		i += size
	}
	if start >= 0 {
		ws = append(ws, word{start: start, end: len(text), tokens: c.Tokens()})
	}
	return ws
}

// boundary is how good a place to cut a gap between two words is.
type boundary uint8

const (
	boundarySpace     boundary = iota // any whitespace
	boundaryLine                      // a line break
	boundarySentence                  // after the end of a sentence
	boundaryParagraph                 // a blank line
	boundaryEnd                       // the end of the text
)

// gapStrengths returns the boundary after each word but the last.
func gapStrengths(text string, ws []word) []boundary {
	gaps := make([]boundary, len(ws))
	for i := 0; i+1 < len(ws); i++ {
		gap := text[ws[i].end:ws[i+1].start]
		lines := strings.Count(gap, "\n")
		switch {
		case lines >= 2:
			gaps[i] = boundaryParagraph
		case prose.EndsSentence(text[ws[i].start:ws[i].end], text[ws[i+1].start:ws[i+1].end],
			i == 0 || strings.Contains(text[ws[i-1].end:ws[i].start], "\n")):
			gaps[i] = boundarySentence
		case lines == 1:
			gaps[i] = boundaryLine
		}
	}
	return gaps
}

// splitWord appends pieces of a word over size tokens, each the longest run of whole runes that
// fits, cut preferably just after sentence punctuation, then after other punctuation, if that
// keeps at least half the budget. It never cuts before a combining mark or joiner.
func splitWord(pieces []Piece, text string, w word, size int) []Piece {
	for s := w.start; s < w.end; {
		var c prose.Counter
		cut, cutTokens := w.end, 0 // the latest cut that fits
		punct, punctTokens := -1, 0
		stop, stopTokens := -1, 0
		prev := rune(-1)
		for i := s; i < w.end; {
			r, n := utf8.DecodeRuneInString(text[i:])
			if i > s && !prose.Joins(r) {
				cut, cutTokens = i, c.Tokens()
				if 2*c.Tokens() >= size {
					switch {
					case strings.ContainsRune(".!?…。！？", prev):
						stop, stopTokens = i, c.Tokens()
					case prose.IsSymbol(prev):
						punct, punctTokens = i, c.Tokens()
					}
				}
			}
			c.Add(r)
			if c.Tokens() > size {
				break
			}
			prev = r
			i += n
			if i == w.end {
				cut, cutTokens = i, c.Tokens()
			}
		}
		if cut < w.end {
			if stop > 0 {
				cut, cutTokens = stop, stopTokens
			} else if punct > 0 {
				cut, cutTokens = punct, punctTokens
			}
		}
		pieces = append(pieces, Piece{Content: text[s:cut], Tokens: cutTokens, Start: s, End: cut})
		s = cut
	}
	return pieces
}
