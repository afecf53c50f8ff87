package retrieve

import (
	"strings"
	"unicode"
)

// Snippets are cut in Go rather than by ts_headline: the same code serves every mode (vector hits
// have no tsquery), the result is plain text with no markup to escape, its length is bounded in
// characters, and it costs nothing in the database.

// stopwords are query words not worth placing a snippet around.
var stopwords = map[string]bool{
	"a": true, "an": true, "and": true, "are": true, "as": true, "at": true, "be": true, "by": true,
	"can": true, "do": true, "does": true, "for": true, "from": true, "has": true, "have": true,
	"how": true, "i": true, "in": true, "is": true, "it": true, "its": true, "of": true, "on": true,
	"or": true, "that": true, "the": true, "this": true, "to": true, "was": true, "were": true,
	"what": true, "when": true, "where": true, "which": true, "who": true, "why": true, "will": true,
	"with": true, "you": true, "your": true, "not": true, "we": true, "our": true,
}

// maxTerms bounds the words of a query a snippet looks for.
const maxTerms = 32

// queryTerms returns the distinct lower-cased words of a query to place a snippet around,
// crudely stemmed, leaving out stopwords and negated words ("-word").
func queryTerms(q string) []string {
	var terms []string
	seen := map[string]bool{}
	for _, field := range strings.Fields(q) {
		if strings.HasPrefix(field, "-") {
			continue
		}
		for _, w := range strings.FieldsFunc(field, notWordRune) {
			w = stem(strings.ToLower(w))
			if len(w) < 2 || stopwords[w] || seen[w] {
				continue
			}
			seen[w] = true
			terms = append(terms, w)
			if len(terms) == maxTerms {
				return terms
			}
		}
	}
	return terms
}

// stem strips a common English suffix, keeping at least three letters, so that "policies"
// finds "policy" and "running" finds "runner" by prefix.
func stem(w string) string {
	for _, suffix := range []string{"ies", "ing", "es", "ed", "ly", "s"} {
		if strings.HasSuffix(w, suffix) && len(w)-len(suffix) >= 3 {
			return strings.TrimSuffix(w, suffix)
		}
	}
	return w
}

func notWordRune(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }

// snippet returns at most size runes of content as one line of plain text: the whole of it when it
// fits, otherwise the window holding the most distinct terms (then the most matches), cut at
// word boundaries and marked with "…" where text was left out.
func snippet(content string, terms []string, size int) string {
	text := []rune(strings.Join(strings.FieldsFunc(content, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " "))
	n := len(text)
	if n <= size {
		return string(text)
	}
	// Words that match a term, in order.
	type match struct{ start, term int }
	var matches []match
	if len(terms) > 0 {
		for i := 0; i < n; {
			if notWordRune(text[i]) {
				i++
				continue
			}
			j := i
			for j < n && !notWordRune(text[j]) {
				j++
			}
			word := strings.ToLower(string(text[i:j]))
			for t, term := range terms {
				if strings.HasPrefix(word, term) {
					matches = append(matches, match{i, t})
					break
				}
			}
			i = j
		}
	}
	// Windows start a little before a match, so the match is read in context.
	lead := size / 5
	best, bestDistinct, bestTotal := 0, 0, 0
	for _, m := range matches {
		start := max(min(m.start-lead, n-size), 0)
		seen := map[int]bool{}
		total := 0
		for _, o := range matches {
			if o.start >= start && o.start < start+size {
				seen[o.term] = true
				total++
			}
		}
		if len(seen) > bestDistinct || (len(seen) == bestDistinct && total > bestTotal) {
			best, bestDistinct, bestTotal = start, len(seen), total
		}
	}
	start := best
	// Begin at a word: skip a partial word, unless it is one very long word.
	if start > 0 && !unicode.IsSpace(text[start-1]) {
		for k := start; k < n && k < start+30; k++ {
			if unicode.IsSpace(text[k]) {
				start = k + 1
				break
			}
		}
	}
	body := size
	if start > 0 {
		body-- // leading "…"
	}
	end := n
	if start+body < n {
		body-- // trailing "…"
		end = start + body
		// End after a word, unless that would lose more than half the window.
		for k := end; k > start+body/2; k-- {
			if unicode.IsSpace(text[k]) {
				end = k
				break
			}
		}
	}
	var b strings.Builder
	if start > 0 {
		b.WriteString("…")
	}
	b.WriteString(strings.TrimSpace(string(text[start:end])))
	if end < n {
		b.WriteString("…")
	}
	return b.String()
}
