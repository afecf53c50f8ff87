package prose

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Shape constants of IsSentence.
const (
	// minWords is the fewest words of a sentence that ends in terminal punctuation; a single
	// word ("Description.", "Yes!") says nothing that can be quoted.
	minWords = 2
	// minBareWords is the fewest words of a unit without terminal punctuation that can still be
	// a sentence (a list item written as one, a sentence whose full stop was lost).
	minBareWords = 6
)

// IsSentence reports whether a unit from Sentences reads as a sentence that can be quoted, rather
// than a heading, a label, a list fragment, a table row or code. The rules, in order:
//
//   - a Markdown heading ("# Title") and a structural line (a table row with "|", a code fence,
//     a line mostly of symbols; see Sentences) are not sentences;
//   - a unit ending in terminal punctuation (".", "!", "?", an ellipsis, possibly inside closing
//     quotes or brackets) is a sentence if it has at least minWords words and, when it has fewer
//     than minBareWords, does not look like code (an "=", a brace, "&&", "->", a call such as
//     "f(x)": "await client.query(...)");
//   - any other unit, including one ending in ":" that introduces a list, is a sentence only if
//     it has at least minBareWords words, is not a record of "label: value" pairs, is not code,
//     and has either an auxiliary verb in lower case after its first word ("is", "has", "can")
//     or, weaker, a verb-like word (an auxiliary anywhere, a lower-case word ending in "-ed" or
//     "-s") while not being in title case (at most half its words after the first capitalised,
//     short function words aside).
//
// So "Access reviews", "Description", "Refund Policy For Enterprise Customers", "First item" and
// "Plan: Pro; Price: 10 EUR" are not sentences, and "Audit logs are kept for one year" is.
func IsSentence(unit string) bool {
	unit = strings.TrimSpace(unit)
	if unit == "" || strings.HasPrefix(unit, "#") || structural(unit) {
		return false
	}
	ws := strings.Fields(unit)
	words := 0
	for _, w := range ws {
		if strings.IndexFunc(w, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) >= 0 {
			words++
		}
	}
	end := strings.TrimRight(unit, `"')]}»”’`)
	last, _ := utf8.DecodeLastRuneInString(end)
	switch last {
	case '.', '!', '?', '…', '‽', '。', '！', '？':
		return words >= minWords && (words >= minBareWords || !code(unit))
	}
	if words < minBareWords || strings.Count(unit, ": ") >= 2 || code(unit) {
		return false
	}
	capitals, letterWords, verb, auxiliary := 0, 0, false, false
	for i, w := range ws {
		w = strings.Trim(w, `"'([{«“‘,;:.!?)]}»”’`)
		r, _ := utf8.DecodeRuneInString(w)
		if !unicode.IsLetter(r) {
			continue
		}
		lower := strings.ToLower(w)
		if i > 0 && !continuations[lower] {
			letterWords++
			if unicode.IsUpper(r) {
				capitals++
			}
		}
		switch {
		case i > 0 && unicode.IsLower(r) && verbs[w]:
			auxiliary = true
		case verbs[lower] || i > 0 && unicode.IsLower(r) && verbLike(lower):
			verb = true
		}
	}
	// An auxiliary in lower case makes a clause of even a line full of names ("The station is
	// connected to the St-Michel – Notre-Dame RER station"); a weaker cue needs prose around it.
	return auxiliary || verb && capitals*2 <= letterWords
}

// verbs are the auxiliaries and common verbs that make a run of words a clause.
var verbs = set("is", "are", "was", "were", "be", "been", "being", "am", "has", "have", "had",
	"do", "does", "did", "can", "cannot", "could", "will", "would", "shall", "should", "may",
	"might", "must", "isn't", "aren't", "wasn't", "doesn't", "don't", "can't", "won't")

// verbLike reports whether a lower-case word has the ending of a past tense or a third person
// ("approved", "rotates"). It is a guess, and nouns in the plural pass too; with the length and
// title-case rules of IsSentence it is enough to tell a clause from a label.
func verbLike(w string) bool {
	n := len(w)
	switch {
	case n >= 4 && strings.HasSuffix(w, "ed"):
		return true
	case n >= 4 && strings.HasSuffix(w, "s"):
		return !strings.HasSuffix(w, "ss") && !strings.HasSuffix(w, "us") && !strings.HasSuffix(w, "is")
	}
	return false
}

// code reports whether a unit has the marks of source code rather than prose: an assignment or
// comparison, braces, logical operators, an arrow or a call ("len(xs)").
func code(unit string) bool {
	if strings.ContainsAny(unit, "={}") || strings.Contains(unit, "&&") || strings.Contains(unit, "||") ||
		strings.Contains(unit, "->") {
		return true
	}
	for i := 1; i < len(unit); i++ {
		if unit[i] == '(' && (isLowerASCII(unit[i-1]) || unit[i-1] >= 'A' && unit[i-1] <= 'Z' || unit[i-1] == '_') {
			return true
		}
	}
	return false
}
