package answer

import (
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/prose"
)

// ExtractiveModel is the Model of extractive results.
const ExtractiveModel = "extractive"

// Defaults of the extractive answerer.
const (
	// DefaultMaxTokens is the answer budget when Request.MaxTokens is zero.
	DefaultMaxTokens = 256
	// DefaultMaxSentences is the most sentences an extractive answer quotes.
	DefaultMaxSentences = 4
)

// Scoring constants. A sentence's score is the IDF-weighted sum of the distinct query terms it
// contains, plus a bonus for query terms adjacent in query order, damped for very short and very
// long sentences, and scaled down with the rank of its source. Sentences far below the best one
// are not quoted, so a strong answer is not padded with weak ones.
const (
	phraseBonus    = 0.5 // times the mean IDF of an adjacent query-term pair
	rankDecay      = 0.1 // score / (1 + rankDecay*rank)
	longSentence   = 30  // words; longer sentences are damped proportionally
	shortSentence  = 4   // words; shorter ones are halved
	keepFraction   = 0.5 // quote sentences scoring at least this fraction of the best
	duplicateRatio = 0.8 // Jaccard similarity of word sets from which a sentence repeats a quoted one
)

// Extractive answers by quoting the sentences of the sources that best match the question, each
// followed by its citation. It uses no model, is deterministic, and is safe for concurrent use.
//
// What it quotes: only units that prose.IsSentence takes for sentences, so a heading ("Access
// reviews"), a label, a short list fragment or a table row is never quoted or cited; and no
// sentence that repeats one already quoted (overlapping chunks, the same text in two documents),
// whether equal up to case, spacing and punctuation or sharing at least duplicateRatio of their
// words (Jaccard similarity of the word sets) without differing in a number or a negation, which
// would make them two facts. Of repeats the best-scoring one is quoted: for the same text, the one
// in the best-ranked source.
//
// Citation style: the marker goes inside the sentence, before its final punctuation: "Refunds
// take 14 days [1]." A sentence without final punctuation gets a full stop after the marker (a
// trailing comma, colon or semicolon is dropped). A full stop that belongs to an abbreviation
// stays ("based in the U.S. [1]."); one inside closing quotes or brackets moves out after the
// marker ("He said "we ship" [1]."), while a quoted "?" or "!" stays inside ("She asked "why?"
// [1]."); an ellipsis stays ("And then... [1].").
//
// When no sentence shares a term with the question (retrieval may still have found the sources
// relevant, e.g. by vector similarity), it quotes the opening of the top-ranked source. With no
// sources it answers NotFound, without citations.
type Extractive struct {
	// MaxSentences caps the quoted sentences; DefaultMaxSentences if zero.
	MaxSentences int
}

// Answer returns the extractive answer to req. It returns EINVALID for an empty query and
// ctx.Err() when ctx is done.
func (x Extractive) Answer(ctx context.Context, req Request) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if strings.TrimSpace(req.Query) == "" {
		return Result{}, ragplane.FieldErrorf("query", "The query is empty.")
	}
	return Result{Answer: x.answer(req), Model: ExtractiveModel}, nil
}

// Stream is Answer, delivering the whole answer in one delta: there is nothing to wait for.
func (x Extractive) Stream(ctx context.Context, req Request, onDelta func(string) error) (Result, error) {
	res, err := x.Answer(ctx, req)
	if err != nil {
		return Result{}, err
	}
	if err := onDelta(res.Answer); err != nil {
		return Result{}, err
	}
	return res, nil
}

// sentence is a candidate for quoting.
type sentence struct {
	text   string
	source int // index in Request.Sources
	pos    int // index within its source
	words  []string
	score  float64
}

func (x Extractive) answer(req Request) string {
	maxTokens := req.MaxTokens
	if maxTokens <= 0 {
		maxTokens = DefaultMaxTokens
	}
	maxSentences := x.MaxSentences
	if maxSentences <= 0 {
		maxSentences = DefaultMaxSentences
	}

	var all []sentence
	df := map[string]int{} // in how many sources a term occurs
	for i, src := range req.Sources {
		text := src.Content
		if text == "" {
			text = src.Snippet
		}
		seen := map[string]bool{}
		for j, s := range prose.Sentences(text) {
			words := terms(s)
			for _, w := range words {
				if !seen[w] {
					seen[w] = true
					df[w]++
				}
			}
			// Headings, labels, list fragments and table rows count for the terms' document
			// frequencies but are never quoted. Nor is a source's first unit when it starts with a
			// lower-case word: a chunk that begins inside a sentence (the overlap with the chunk
			// before) holds only its tail.
			if prose.IsSentence(s) && !(j == 0 && startsLower(s)) {
				all = append(all, sentence{text: s, source: i, pos: j, words: words})
			}
		}
	}
	if len(all) == 0 {
		return NotFound
	}

	query := queryTerms(req.Query)
	idf := make(map[string]float64, len(query))
	for _, t := range query {
		if df[t] > 0 {
			idf[t] = math.Log(1 + float64(len(req.Sources))/float64(df[t]))
		}
	}
	var candidates []sentence
	for _, s := range all {
		if s.score = score(s, query, idf); s.score > 0 {
			candidates = append(candidates, s)
		}
	}
	if len(candidates) == 0 {
		// Nothing matches literally: quote the opening of the best source.
		for _, s := range all {
			if s.source == 0 {
				candidates = append(candidates, s)
			}
		}
		maxSentences = min(maxSentences, 2)
	} else {
		slices.SortStableFunc(candidates, func(a, b sentence) int {
			if a.score != b.score {
				if a.score > b.score {
					return -1
				}
				return 1
			}
			return 0 // stable: source order, then position
		})
	}

	var picked []sentence
	budget := maxTokens
	for _, s := range candidates {
		if len(picked) == maxSentences {
			break
		}
		if len(picked) > 0 && s.score < keepFraction*picked[0].score {
			break
		}
		if slices.ContainsFunc(picked, func(p sentence) bool { return duplicate(p, s) }) {
			continue
		}
		cost := prose.CountTokens(s.text)
		if cost > budget {
			if len(picked) == 0 {
				// The best sentence alone is over budget: quote its beginning.
				s.text = truncateWords(s.text, max(1, budget*3/4))
				picked = append(picked, s)
				break
			}
			continue
		}
		picked = append(picked, s)
		budget -= cost
	}

	// Readable order: by source rank, then as written.
	slices.SortFunc(picked, func(a, b sentence) int {
		if a.source != b.source {
			return a.source - b.source
		}
		return a.pos - b.pos
	})
	parts := make([]string, len(picked))
	for i, s := range picked {
		parts[i] = cite(s.text, s.source+1)
	}
	return strings.Join(parts, " ")
}

func score(s sentence, query []string, idf map[string]float64) float64 {
	if len(s.words) == 0 {
		return 0
	}
	var sum float64
	for _, t := range query {
		if slices.Contains(s.words, t) {
			sum += idf[t]
		}
	}
	if sum == 0 {
		return 0
	}
	for i := 0; i+1 < len(query); i++ {
		a, b := query[i], query[i+1]
		for j := 0; j+1 < len(s.words); j++ {
			if s.words[j] == a && s.words[j+1] == b {
				sum += phraseBonus * (idf[a] + idf[b]) / 2
				break
			}
		}
	}
	switch n := len(s.words); {
	case n < shortSentence:
		sum /= 2
	case n > longSentence:
		sum *= longSentence / float64(n)
	}
	return sum / (1 + rankDecay*float64(s.source))
}

// cite puts " [n]" before the sentence's final punctuation (see Extractive for the cases).
func cite(text string, n int) string {
	ref := " [" + strconv.Itoa(n) + "]"
	text = strings.TrimRight(text, " ,;:")
	body := strings.TrimRight(text, closers)
	closing := text[len(body):]
	switch r, size := utf8.DecodeLastRuneInString(body); {
	case r == '…' || strings.HasSuffix(body, ".."):
		return text + ref + "."
	case r == '.' && closing == "" && prose.Abbreviation(lastWord(body)):
		return text + ref + "."
	case r == '.':
		return body[:len(body)-size] + closing + ref + "."
	case (r == '!' || r == '?') && closing == "":
		return body[:len(body)-size] + ref + string(r)
	}
	return text + ref + "."
}

// closers are the closing quotes and brackets that may follow a sentence's final punctuation.
const closers = `"')]}»”’`

func lastWord(s string) string {
	return s[strings.LastIndexAny(s, " \t\n")+1:]
}

// startsLower reports whether s starts with an all-lower-case word: a sentence's continuation
// ("of the request."), not a name such as "iPhone" or "eBay".
func startsLower(s string) bool {
	w := s
	if i := strings.IndexFunc(s, unicode.IsSpace); i >= 0 {
		w = s[:i]
	}
	w = strings.TrimRight(w, ",;:.!?")
	if w == "" {
		return false
	}
	for _, r := range w {
		if !unicode.IsLower(r) {
			return false
		}
	}
	return true
}

// duplicate reports whether b repeats a: the same words (case, spacing and punctuation aside), or
// word sets with Jaccard similarity of at least duplicateRatio that do not differ in a number or
// a negation ("Keys rotate every 90 days" and "every 30 days" are two claims, and so are "are
// refunded" and "are not refunded").
func duplicate(a, b sentence) bool {
	if slices.Equal(a.words, b.words) {
		return len(a.words) > 0
	}
	if jaccard(a.words, b.words) < duplicateRatio {
		return false
	}
	for _, w := range symmetricDifference(a.words, b.words) {
		if negations[w] || strings.IndexFunc(w, unicode.IsDigit) >= 0 {
			return false
		}
	}
	return true
}

// negations are the (stemmed) words whose presence in only one of two sentences flips its claim.
var negations = map[string]bool{"not": true, "no": true, "never": true, "non": true, "none": true,
	"nor": true, "cannot": true, "without": true, "t": true} // "t" from "don't", "isn't"

func symmetricDifference(a, b []string) []string {
	var out []string
	for _, w := range a {
		if !slices.Contains(b, w) {
			out = append(out, w)
		}
	}
	for _, w := range b {
		if !slices.Contains(a, w) {
			out = append(out, w)
		}
	}
	return out
}

func truncateWords(s string, n int) string {
	f := strings.Fields(s)
	if len(f) <= n {
		return s
	}
	return strings.Join(f[:n], " ") + "…"
}

func jaccard(a, b []string) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	inter, union := 0, 0
	set := map[string]int{}
	for _, w := range a {
		set[w] |= 1
	}
	for _, w := range b {
		set[w] |= 2
	}
	for _, v := range set {
		union++
		if v == 3 {
			inter++
		}
	}
	return float64(inter) / float64(union)
}

// words returns the lower-cased runs of letters and digits of s.
func words(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// terms returns the normalised words of s, plural endings folded. Stop words are kept: sentences
// need them for phrase matching, and they never match a query term.
func terms(s string) []string {
	ws := words(s)
	for i, w := range ws {
		ws[i] = stem(w)
	}
	return ws
}

// queryTerms returns the distinct content terms of the query in order; if the query has only
// stop words, all its terms.
func queryTerms(q string) []string {
	var content, all []string
	for _, w := range words(q) {
		t := stem(w)
		if !slices.Contains(all, t) {
			all = append(all, t)
		}
		if !stopWords[w] && !slices.Contains(content, t) {
			content = append(content, t)
		}
	}
	if len(content) == 0 {
		return all
	}
	return content
}

// stem conflates English word forms by stripping common endings, so that refunds, refunded and
// refund, or encryption and encrypted, match. It is crude (not a dictionary stemmer) but applied
// alike to questions and sources, which is what matching needs.
func stem(w string) string {
	n := len(w)
	if n <= 3 {
		return w
	}
	// Plurals: policies -> policy, boxes -> box, refunds -> refund.
	switch {
	case n > 4 && strings.HasSuffix(w, "ies"):
		w = w[:n-3] + "y"
	case n > 4 && (strings.HasSuffix(w, "sses") || strings.HasSuffix(w, "xes") ||
		strings.HasSuffix(w, "ches") || strings.HasSuffix(w, "shes")):
		w = w[:n-2]
	case strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") &&
		!strings.HasSuffix(w, "us") && !strings.HasSuffix(w, "is"):
		w = w[:n-1]
	}
	// Verb and noun endings: shipping -> ship, encrypted/encryption -> encrypt, weekly -> week.
	for _, suf := range []struct {
		s    string
		keep int // letters that must remain
	}{{"ing", 3}, {"ion", 3}, {"ed", 3}, {"ly", 4}} {
		if strings.HasSuffix(w, suf.s) && len(w)-len(suf.s) >= suf.keep {
			w = w[:len(w)-len(suf.s)]
			if k := len(w); k >= 2 && w[k-1] == w[k-2] && !strings.ContainsRune("aeiouylsz", rune(w[k-1])) {
				w = w[:k-1] // shipp -> ship, logg -> log
			}
			break
		}
	}
	// A final e: issue/issued -> issu, locate/location -> locat.
	if len(w) > 3 && w[len(w)-1] == 'e' {
		w = w[:len(w)-1]
	}
	return w
}

var stopWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a an the and or but if then else of to in on at by for with from as
		into onto over under about after before between through during without within up down out off
		is are was were be been being am do does did done doing have has had having can could should
		would will shall may might must it its this that these those there here what which who whom
		whose when where why how i me my mine you your yours he him his she her hers we us our ours
		they them their theirs not no yes so than too very just also any all each some such only own
		same other more most few both nor s t don please tell know many much get gets got take takes
		took taken make makes made need needs want wants happen happens mean means give gives let say
		says see look come comes go goes went`) {
		m[w] = true
	}
	return m
}()
