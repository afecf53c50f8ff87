package prose

import (
	"unicode"
	"unicode/utf8"
)

// CountTokens estimates how many tokens a BPE tokenizer (the cl100k/o200k family used by current
// embedding and chat models) would produce for s, without a vocabulary file.
//
// The approximation, rune by rune:
//   - whitespace costs nothing and ends the current run (BPE folds a leading space into the word);
//   - a run of Latin letters costs one token per started 4 runes, a run of digits one per started
//     3 digits (cl100k splits numbers in groups of three), a run of letters of another alphabet
//     (Greek, Cyrillic, Arabic...) one per started 2 runes, since BPE vocabularies hold fewer of
//     their merges;
//   - each Han, Hiragana, Katakana or Hangul rune is one token;
//   - every other rune (punctuation, symbols, emoji) is one token; combining marks, zero-width
//     joiners and emoji skin-tone modifiers are ignored (they ride on the rune before them).
//
// On English prose this lands close to the usual "one token per 4 characters" rule (the tests
// hold it within ±30%); it over-counts code and under-counts rare words, which is the safe side
// for a limit. Two properties matter more than precision and are tested: the count never
// decreases when text is added (so a chunk that fits stays within its limit when trimmed), and it
// is additive across whitespace (the count of "a b" is the count of "a" plus that of "b"), which
// lets a chunker (ingest.Chunk) sum per-word counts instead of recounting.
func CountTokens(s string) int {
	var c Counter
	for i := 0; i < len(s); {
		r, n := rune(s[i]), 1
		if r >= utf8.RuneSelf {
			r, n = utf8.DecodeRuneInString(s[i:])
		}
		c.add(classify(r))
		i += n
	}
	return c.n
}

// runeClass is the role of a rune in CountTokens.
type runeClass uint8

const (
	classNone   runeClass = iota // no run in progress (start, or after whitespace)
	classSpace                   // whitespace: ends a run, costs nothing
	classLatin                   // Latin letters: 4 runes per token
	classDigit                   // decimal digits: 3 per token
	classLetter                  // letters of other alphabets: 2 per token
	classIdeo                    // CJK ideographs, kana, Hangul: 1 per token
	classSymbol                  // punctuation, symbols, emoji: 1 per token
	classCont                    // combining marks, ZWJ, skin tones: ignored
)

// pieceRunes is how many runes of a run's class make one token; 0 for classes counted otherwise.
var pieceRunes = [...]int{classLatin: 4, classDigit: 3, classLetter: 2, classCont: 0}

// asciiClass classifies the ASCII range without the unicode tables, which is most of most text.
var asciiClass = func() (t [utf8.RuneSelf]runeClass) {
	for r := range t {
		switch {
		case r == ' ', r >= '\t' && r <= '\r':
			t[r] = classSpace
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
			t[r] = classLatin
		case r >= '0' && r <= '9':
			t[r] = classDigit
		default:
			t[r] = classSymbol
		}
	}
	return t
}()

func classify(r rune) runeClass {
	if r < utf8.RuneSelf {
		return asciiClass[r]
	}
	switch {
	case unicode.IsSpace(r):
		return classSpace
	case unicode.IsLetter(r):
		switch {
		case unicode.Is(unicode.Latin, r):
			return classLatin
		case unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul):
			return classIdeo
		}
		return classLetter
	case unicode.IsDigit(r):
		return classDigit
	case unicode.IsMark(r), r == '\u200d', r >= 0x1f3fb && r <= 0x1f3ff: // ZWJ, skin tones
		return classCont
	}
	return classSymbol
}

// Counter is CountTokens one rune at a time, so that a chunker can count words as it finds them
// and find the longest prefix of an oversized word that fits. The zero Counter is empty.
type Counter struct {
	n     int       // tokens so far
	class runeClass // class of the run in progress
	left  int       // runes the run's current token can still absorb
}

// Add counts the rune r.
func (c *Counter) Add(r rune) { c.add(classify(r)) }

// Tokens is the count so far.
func (c *Counter) Tokens() int { return c.n }

// Joins reports whether r rides on the rune before it (a combining mark, a zero-width joiner, an
// emoji skin tone): text is never cut before such a rune, and it costs nothing.
func Joins(r rune) bool { return classify(r) == classCont }

// IsSymbol reports whether r is punctuation, a symbol or an emoji, each one token.
func IsSymbol(r rune) bool { return classify(r) == classSymbol }

// add counts one rune of class k (from classify).
func (c *Counter) add(k runeClass) {
	switch k {
	case classSpace:
		c.class, c.left = classNone, 0
	case classCont:
		// Transparent: it neither costs nor breaks a run. Counting a lone mark would make the
		// count drop when its base letter is prepended and the two join the run before.
	case classIdeo, classSymbol:
		c.n++
		c.class, c.left = k, 0
	default:
		if c.class != k || c.left == 0 {
			c.n++
			c.class, c.left = k, pieceRunes[k]
		}
		c.left--
	}
}
