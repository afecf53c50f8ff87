package prose

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Sentences splits text into units, each trimmed, in order: sentences, and the headings, list
// items, table rows and other lines that stand on their own. IsSentence tells the two apart.
//
// Line structure comes first: a blank line, a list item ("- ", "* ", "• ", "1. ", "2) ", "a) ",
// "(a) ") and a Markdown heading ("# ") always start a new unit, and so does a line after one
// that ends in ".", "!", "?", ":" or ";". A structural line (a table row, a code fence, box
// drawing or other lines that are mostly symbols) is a unit of its own. A short line without that
// punctuation (at most headingWords words, not ending in a word such as "the" or "of" that
// continues onto the next line) standing at the start of a block, with a line that starts in
// upper case after it, is a heading and a unit of its own. Other line breaks (hard-wrapped text)
// are spaces. List markers are dropped.
//
// Within the remaining text, a sentence ends after a word for which EndsSentence holds, except
// inside a parenthesis opened in the same sentence ("(U.S. title: Maybe ... Maybe Not)"), and
// where a full stop is glued to a word that opens sentences ("associated.The film", common in
// text extracted from web pages). Text with no words gives no units.
func Sentences(text string) []string {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	lines := strings.Split(text, "\n")
	var out []string
	var cur []string // the lines of the current block
	flush := func() {
		out = appendSentences(out, strings.Join(cur, " "))
		cur = cur[:0]
	}
	for i, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" {
			flush()
			continue
		}
		if structural(line) {
			flush()
			out = append(out, strings.Join(strings.Fields(line), " "))
			continue
		}
		item, isItem := listItem(line)
		if isItem || strings.HasPrefix(line, "#") {
			flush()
		}
		cur = append(cur, item)
		last, _ := utf8.DecodeLastRuneInString(item)
		switch {
		case strings.ContainsRune(".!?:;", last), strings.HasPrefix(line, "#"):
			flush()
		case len(cur) == 1 && i+1 < len(lines) && headingLike(item) &&
			startsUpper(strings.TrimSpace(lines[i+1])):
			flush() // a heading
		}
	}
	flush()
	return out
}

// headingWords is the most words of a line that Sentences takes for a heading.
const headingWords = 8

// headingLike reports whether a line without final punctuation could be a heading: short, not
// ending in a comma, dash or open bracket, nor in a word that leads into the next line.
func headingLike(line string) bool {
	ws := strings.Fields(line)
	if len(ws) > headingWords {
		return false
	}
	last, _ := utf8.DecodeLastRuneInString(line)
	if strings.ContainsRune(",-–(&/", last) {
		return false
	}
	return !continuations[strings.ToLower(ws[len(ws)-1])]
}

// continuations are words a heading does not end in but a hard-wrapped line of prose often does.
var continuations = set("a", "an", "the", "of", "to", "from", "with", "and", "or", "but", "in", "on",
	"at", "by", "for", "as", "into", "than", "that", "which", "who", "is", "are", "was", "were",
	"be", "been", "has", "have", "had", "will", "would", "can", "could", "must", "should", "may",
	"not", "our", "their", "its", "his", "her", "your", "my", "this", "these", "those", "every",
	"each", "per", "via", "within", "without", "about", "after", "before", "between", "through")

// structural reports whether a line is a unit of its own that is not prose: a table row ("| a |
// b |"), a code fence, or a line of which less than half the non-space runes are letters or
// digits (box drawing, rules, code, dot leaders).
func structural(line string) bool {
	if strings.HasPrefix(line, "|") || strings.Count(line, "|") >= 2 ||
		strings.HasPrefix(line, "```") || strings.HasPrefix(line, "~~~") {
		return true
	}
	alnum, other := 0, 0
	for _, r := range line {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r):
			alnum++
		case !unicode.IsSpace(r):
			other++
		}
	}
	return other > alnum
}

// parenWords is how many words a parenthesis stays open for Sentences before it is taken as
// unbalanced (an emoticon, a stray bracket) and sentences may end again.
const parenWords = 30

// appendSentences appends the sentences of a block (one line of text) to out.
func appendSentences(out []string, block string) []string {
	ws := unglue(strings.Fields(block))
	start := 0
	depth, openedAt := 0, 0 // open parentheses and brackets in the current sentence, and where
	for i, w := range ws {
		if o, c := strings.Count(w, "(")+strings.Count(w, "["), strings.Count(w, ")")+strings.Count(w, "]"); o+c > 0 {
			if depth == 0 && o > c {
				openedAt = i
			}
			depth = max(0, depth+o-c)
		}
		if depth > 0 && i-openedAt > parenWords {
			depth = 0
		}
		if i+1 == len(ws) || depth == 0 && EndsSentence(w, ws[i+1], i == 0) {
			out = append(out, strings.Join(ws[start:i+1], " "))
			start = i + 1
			depth = 0
		}
	}
	return out
}

// unglue splits words where a sentence's full stop is followed by the next sentence without a
// space: "associated.The" becomes "associated." and "The". Only a capitalised word that opens
// sentences counts after at least two lower-case letters, so "prose.Sentences", "U.S.A", "e.g.The"
// and "ASP.NET" stay whole.
func unglue(ws []string) []string {
	var out []string
	for i, w := range ws {
		j := glued(w)
		if j < 0 {
			if out != nil {
				out = append(out, w)
			}
			continue
		}
		if out == nil {
			out = append(make([]string, 0, len(ws)+1), ws[:i]...)
		}
		out = append(out, w[:j], w[j:])
	}
	if out == nil {
		return ws
	}
	return out
}

// glued returns where the second sentence starts in a word such as "associated.The", or -1.
func glued(w string) int {
	p := strings.IndexAny(w, ".!?")
	for ; p >= 0; p = nextIndexAny(w, ".!?", p+1) {
		if p < 2 || !isLowerASCII(w[p-1]) || !isLowerASCII(w[p-2]) {
			continue
		}
		j := p + 1
		for j < len(w) && strings.IndexByte(`.!?"')]`, w[j]) >= 0 {
			j++
		}
		if j == len(w) || w[j] < 'A' || w[j] > 'Z' {
			continue
		}
		k := j + 1
		for k < len(w) && isLowerASCII(w[k]) {
			k++
		}
		if openers[strings.ToLower(w[j:k])] && (k == len(w) || strings.IndexByte(`,;:'`, w[k]) >= 0) {
			return j
		}
	}
	return -1
}

func nextIndexAny(s, chars string, from int) int {
	if i := strings.IndexAny(s[from:], chars); i >= 0 {
		return from + i
	}
	return -1
}

func isLowerASCII(c byte) bool { return c >= 'a' && c <= 'z' }

// listItem strips a list marker ("- ", "* ", "• ", "+ ", "1. ", "2) ", "a) ", "(a) ").
func listItem(line string) (string, bool) {
	for _, m := range []string{"- ", "* ", "• ", "+ ", "· ", "– ", "— "} {
		if rest, ok := strings.CutPrefix(line, m); ok {
			return strings.TrimSpace(rest), true
		}
	}
	i := 0
	for i < len(line) && i < 3 && line[i] >= '0' && line[i] <= '9' {
		i++
	}
	if i > 0 && i+1 < len(line) && (line[i] == '.' || line[i] == ')') && line[i+1] == ' ' {
		return strings.TrimSpace(line[i+2:]), true
	}
	// "a) item": a letter then ")" only; "a. " could be an initial ("J. Smith wrote").
	if len(line) > 3 && unicode.IsLetter(rune(line[0])) && line[1] == ')' && line[2] == ' ' {
		return strings.TrimSpace(line[3:]), true
	}
	if strings.HasPrefix(line, "(") {
		if j := strings.Index(line, ") "); j > 1 && j <= 5 && isAlnum(line[1:j]) {
			return strings.TrimSpace(line[j+2:]), true
		}
	}
	return line, false
}

func isAlnum(s string) bool {
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			return false
		}
	}
	return true
}

func startsUpper(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return unicode.IsUpper(r)
}

// abbreviations end in "." without ending a sentence unless an opener follows. Dotted initials
// ("U.S.", "e.g.", "J.", "Ph.D.") are recognised by shape and need no entry. Words that are also
// ordinary English words at the end of a sentence ("sat.", "sun.", "wed.") are left out, and so
// are those that abbreviate only before a number (numbered).
var abbreviations = set(
	// titles and ranks
	"mr", "mrs", "ms", "messrs", "mmes", "dr", "prof", "sr", "jr", "st", "rev", "hon", "pres",
	"gov", "sen", "rep", "gen", "lt", "col", "maj", "capt", "cmdr", "adm", "sgt", "cpl", "pvt",
	"supt", "fr", "mt", "ft",
	// organisations and places
	"inc", "ltd", "co", "corp", "llc", "plc", "bros", "dept", "univ", "assn", "assoc", "intl",
	"natl", "mfg", "ave", "blvd", "rd", "hwy",
	// Latin and references
	"vs", "cf", "viz", "al", "ca", "approx", "est", "etc", "ed", "eds", "trans",
	// months
	"jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
)

// numbered abbreviate only before a number or a Roman numeral ("No. 5", "Fig. 3", "Vol. II");
// elsewhere they are words ("the answer is no.").
var numbered = set("no", "nos", "art", "arts", "fig", "figs", "vol", "vols", "pp", "ch", "chap",
	"sec", "para", "eq", "ref", "op", "ex")

// openers are words that, capitalised after an abbreviation, start a sentence ("in the U.S. The
// board"), and that after a full stop glued to a word start one ("associated.The film").
var openers = set("the", "this", "these", "those", "it", "its", "they", "their", "we", "our", "he",
	"she", "his", "her", "there", "in", "on", "at", "for", "if", "when", "however", "all", "each",
	"a", "an", "as", "after", "although", "according", "before", "born", "both", "but", "despite",
	"during", "following", "from", "many", "most", "one", "prior", "several", "since", "some",
	"then", "today", "until", "while", "with")

// phraseEnds close a phrase ("Globex Inc.", "apples, pears, etc.", "at 5 p.m."), so a capitalised
// word after them starts a sentence.
var phraseEnds = set("inc", "corp", "ltd", "co", "llc", "plc", "etc", "a.m", "p.m")

func set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// EndsSentence reports whether w ends a sentence, given the word after it and whether w is the
// first word of a line.
//
// A word ends a sentence when it ends in ".", "!", "?" or an ellipsis, optionally followed by
// closing quotes or brackets, and next does not start in lower case. A full stop does not end a
// sentence after an abbreviation (Abbreviation) unless next opens sentences or the abbreviation
// closes a phrase ("Inc.", "etc.") and next is capitalised, after a number-only abbreviation
// ("No.", "Fig.") before a number, nor after a number at the start of a line ("1." numbering a
// list). A decimal point ("3.14") is inside a word and never a boundary.
func EndsSentence(w, next string, lineStart bool) bool {
	switch c := w[len(w)-1]; { // most words end in a letter: skip the Unicode work
	case c < utf8.RuneSelf && !strings.ContainsRune(`.!?"')]}`, rune(c)):
		return false
	}
	w = strings.TrimRight(w, `"')]}»”’`)
	last, _ := utf8.DecodeLastRuneInString(w)
	switch last {
	case '.', '!', '?', '…', '‽', '。', '！', '？':
	default:
		return false
	}
	if first, _ := utf8.DecodeRuneInString(next); unicode.IsLower(first) {
		return false // "e.g. the", "approx. five"
	}
	if last != '.' || strings.HasSuffix(w, "..") {
		return true
	}
	core := strings.TrimLeft(w, `"'([{«“‘`)
	lower := strings.ToLower(strings.TrimSuffix(core, "."))
	if numbered[lower] {
		return !numeral(next)
	}
	if Abbreviation(core) {
		// "in the U.S. The board", "Globex Inc. Acme": a word that only opens sentences, or a
		// capitalised word after a phrase's end, starts a new one; "Dr. Jane", "U.S. National"
		// do not.
		return openers[strings.ToLower(strings.Trim(next, `"'([{«“‘,;:`))] ||
			phraseEnds[lower] && startsUpper(next)
	}
	if lineStart && strings.TrimLeft(core[:len(core)-1], "0123456789") == "" {
		return false // "1." numbering a list
	}
	return true
}

// Abbreviation reports whether w, ending in ".", is an abbreviation whose full stop belongs to it
// rather than to a sentence: one of a list of English abbreviations ("Dr.", "etc.", "Inc.",
// "Sept.", any case) or dotted initials ("J.", "U.S.", "e.g.", "Ph.D."). Number-only
// abbreviations ("No.", "Fig.") are not included: whether they are depends on the next word.
func Abbreviation(w string) bool {
	core, ok := strings.CutSuffix(strings.TrimLeft(w, `"'([{«“‘`), ".")
	if !ok || core == "" {
		return false
	}
	return abbreviations[strings.ToLower(core)] || isInitials(core+".")
}

// numeral reports whether w starts with a digit or is a Roman numeral ("II", "iv.").
func numeral(w string) bool {
	w = strings.Trim(w, `"'([{«“‘,;:.)]}`)
	if w == "" {
		return false
	}
	if w[0] >= '0' && w[0] <= '9' {
		return true
	}
	return len(w) <= 6 && strings.Trim(strings.ToUpper(w), "IVXLC") == ""
}

// isInitials reports whether s is letters each followed by a dot: "J.", "U.S.", "e.g.", "a.m.",
// and, with two or more parts, parts of two letters: "Ph.D.", "M.Sc.". A lone two-letter word
// with a dot ("it.", "us.") is a word ending a sentence.
func isInitials(s string) bool {
	if s == "" {
		return false
	}
	parts := strings.Split(strings.TrimSuffix(s, "."), ".")
	if !strings.HasSuffix(s, ".") {
		return false
	}
	for _, p := range parts {
		n := utf8.RuneCountInString(p)
		if n == 0 || n > 2 || n == 2 && len(parts) == 1 {
			return false
		}
		for _, r := range p {
			if !unicode.IsLetter(r) {
				return false
			}
		}
	}
	return true
}
