package prose

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Sentences splits text into sentences, each trimmed, in order.
//
// Line structure comes first: a blank line, a list item ("- ", "* ", "• ", "1. ", "2) ", "(a) ")
// and a Markdown heading ("# ") always start a new sentence, and so does a line after one that
// ends in ".", "!", "?", ":" or ";". A short line without that punctuation (at most
// headingWords words) standing at the start of a block, with a line that starts in upper case
// after it, is a heading and a sentence of its own. Other line breaks (hard-wrapped text) are
// spaces. List markers are dropped. Within the remaining text, a sentence ends after a word for
// which EndsSentence holds. Text with no words gives no sentences.
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
		item, isItem := listItem(line)
		if isItem || strings.HasPrefix(line, "#") {
			flush()
		}
		cur = append(cur, item)
		last, _ := utf8.DecodeLastRuneInString(item)
		switch {
		case strings.ContainsRune(".!?:;", last), strings.HasPrefix(line, "#"):
			flush()
		case len(cur) == 1 && len(strings.Fields(item)) <= headingWords && i+1 < len(lines) &&
			startsUpper(strings.TrimSpace(lines[i+1])) && !strings.ContainsRune(",-–(", last):
			flush() // a heading
		}
	}
	flush()
	return out
}

// headingWords is the most words of a line that Sentences takes for a heading.
const headingWords = 8

// appendSentences appends the sentences of a block (one line of text) to out.
func appendSentences(out []string, block string) []string {
	ws := strings.Fields(block)
	start := 0
	for i, w := range ws {
		if i+1 == len(ws) || EndsSentence(w, ws[i+1], i == 0) {
			out = append(out, strings.Join(ws[start:i+1], " "))
			start = i + 1
		}
	}
	return out
}

// listItem strips a list marker ("- ", "* ", "• ", "+ ", "1. ", "2) ", "(a) ").
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

// abbreviations end in "." without ending a sentence. Dotted initials ("U.S.", "e.g.", "J.") are
// recognised by shape and need no entry.
var abbreviations = []string{
	"mr.", "mrs.", "ms.", "dr.", "prof.", "sr.", "jr.", "st.", "vs.", "cf.", "fig.", "figs.",
	"no.", "nos.", "vol.", "pp.", "approx.", "inc.", "ltd.", "co.", "corp.", "dept.", "est.",
	"gen.", "gov.", "sen.", "rep.", "rev.", "lt.", "col.", "capt.", "sgt.", "mt.", "ave.", "llc.",
	"plc.", "etc.", "bros.", "sec.", "art.", "para.", "jan.", "feb.", "mar.", "apr.", "jun.", "jul.",
	"aug.", "sep.", "sept.", "oct.", "nov.", "dec.",
}

// openers are words that, capitalised after an abbreviation, start a sentence.
var openers = set("the", "this", "these", "those", "it", "its", "they", "their", "we", "our", "he",
	"she", "his", "her", "there", "in", "on", "at", "for", "if", "when", "however", "all", "each",
	"a", "an")

// companySuffixes end a company's name, so a capitalised word after them starts a sentence.
var companySuffixes = set("inc", "corp", "ltd", "co", "llc", "plc")

func set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// EndsSentence reports whether w ends a sentence, given the word after it and whether w is the
// first word of a line.
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
	abbrev := isInitials(core)
	for _, a := range abbreviations {
		if strings.EqualFold(core, a) {
			abbrev = true
			break
		}
	}
	if abbrev {
		// "in the U.S. The board", "Globex Inc. Acme": a word that only opens sentences, or a
		// capitalised word after a company suffix, starts a new one; "Dr. Jane", "U.S. National"
		// do not.
		lower := strings.ToLower(strings.TrimRight(core, "."))
		return openers[strings.ToLower(strings.Trim(next, `"'([{«“‘,;:`))] ||
			companySuffixes[lower] && startsUpper(next)
	}
	if lineStart && strings.TrimLeft(core[:len(core)-1], "0123456789") == "" {
		return false // "1." numbering a list
	}
	return true
}

// isInitials reports whether s is letters each followed by a dot: "J.", "U.S.", "e.g.", "a.m.".
func isInitials(s string) bool {
	if s == "" {
		return false
	}
	for s != "" {
		r, n := utf8.DecodeRuneInString(s)
		if !unicode.IsLetter(r) || len(s) == n || s[n] != '.' {
			return false
		}
		s = s[n+1:]
	}
	return true
}
