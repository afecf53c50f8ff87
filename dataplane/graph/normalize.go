package graph

import (
	"strings"
	"unicode"
)

// MaxNameWords is the most words of an entity name that CandidateNames can find in a text.
const MaxNameWords = 8

// maxCandidateWords is how much of a text CandidateNames looks at.
const maxCandidateWords = 1000

// NormalizeName returns the key entities are identified by: lower-case, words separated by single
// spaces, punctuation stripped from both ends of every word (keeping '#', '&', '%' and '@', so
// "C#" and "AT&T" survive) and a possessive "'s" dropped, with control and format characters
// removed. "  Acme Corp.'s " and "ACME corp" both give "acme corp".
//
// Working word by word, not only at the two ends of the name, is what lets CandidateNames find a
// name in running text, where words carry commas and full stops. The price: names that differ only
// in punctuation at word ends ("U.S. Bank", "US Bank" do not, but "Acme, Inc." and "Acme Inc" do)
// are one entity, and no Unicode compatibility folding is done (full-width letters stay distinct).
func NormalizeName(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Cc, r) && !unicode.IsSpace(r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, s)
	words := strings.Fields(strings.ToLower(s))
	out := words[:0]
	for _, w := range words {
		if w = trimWord(w); w != "" {
			out = append(out, w)
		}
	}
	return strings.Join(out, " ")
}

// trimWord strips edge punctuation and a possessive suffix from one lower-case word.
func trimWord(w string) string {
	w = strings.TrimFunc(w, isEdgePunct)
	for _, suffix := range []string{"'s", "’s"} {
		if len(w) > len(suffix) && strings.HasSuffix(w, suffix) {
			w = strings.TrimFunc(w[:len(w)-len(suffix)], isEdgePunct)
		}
	}
	return w
}

func isEdgePunct(r rune) bool {
	switch r {
	case '#', '&', '%', '@':
		return false
	case '`', '´':
		return true
	}
	return unicode.IsPunct(r)
}

// CandidateNames returns the normalised word n-grams (1 to MaxNameWords words) of the first 1000
// words of text, without duplicates: every string that could be the norm_name of an entity
// mentioned in the text. Stores look them up by equality on the unique name index, which costs one
// index probe per candidate (at most 8,000) instead of a scan of every entity; the price is that a
// name of more than MaxNameWords words is never found in a text.
func CandidateNames(text string) []string {
	words := strings.Fields(NormalizeName(text))
	if len(words) > maxCandidateWords {
		words = words[:maxCandidateWords]
	}
	seen := make(map[string]bool, len(words)*2)
	var out []string
	for i := range words {
		for n := 1; n <= MaxNameWords && i+n <= len(words); n++ {
			c := strings.Join(words[i:i+n], " ")
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out
}

// snakeCase turns a phrase into a relation name ("Complies With" -> "complies_with"), or "" when
// nothing usable is left.
func snakeCase(s string) string {
	var b strings.Builder
	underscore := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if underscore && b.Len() > 0 {
				b.WriteByte('_')
			}
			underscore = false
			b.WriteRune(r)
		} else {
			underscore = true
		}
	}
	out := b.String()
	if len(out) > MaxRelationLen {
		out = strings.TrimRight(out[:MaxRelationLen], "_")
	}
	if !ValidRelation(out) {
		return ""
	}
	return out
}
