package graph

import (
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ragplane/ragplane/dataplane/prose"
)

// Extract finds facts in a chunk's text with fixed rules: no network, no model, and the same
// output for the same input. It is the extractor a tenant gets without an LLM, tuned for the plain
// declarative sentences of policies, contracts and compliance reports.
//
// Entities are capitalised phrases and acronyms ("Acme Corp", "GDPR", "SOC 2 Type II", "Bank of
// America", "Johnson & Johnson"), with leading job titles dropped ("CEO Jane Doe" is "Jane Doe").
// Relations come from these sentence shapes, X and Y being entities:
//
//   - X acquired | owns | requires | uses | supports | complies with | reports to | is
//     headquartered in | replaced Y (other tenses and plural forms too; the relation is the verb
//     phrase in snake_case: acquired, owns, requires, uses, supports, complies_with, reports_to,
//     headquartered_in, replaced), and Y lists ("uses AWS, Okta and Datadog") give one fact each;
//   - the passives "Y was acquired by X", "Y is used by X" ... (stored in the active direction) and
//     "X is owned by Y" (owned_by);
//   - X is | was | became | serves as [the|a|an] ROLE of Y, and the appositives "X, [the] ROLE of
//     Y," and "X (the ROLE of Y)": relation ROLE_of, with common titles shortened ("Chief Executive
//     Officer" -> ceo_of); "former", "ex-", "future" roles are skipped, "interim"/"current" dropped;
//   - a short aside between X and the verb is skipped: "Acme Corp, a Delaware corporation,
//     acquired ...", "Acme Corp (Acme) acquired ...", "Acme Corp also uses ...".
//
// The first date in the sentence that is not an end date ("until", "by", "through" ...) becomes
// ValidAt, at midnight UTC: "on March 3, 2024", "3 March 2024", "2024-07-01", "as of January 2025"
// (the first of the month), "in 2023" / "since 2021" / "effective 2022" (January 1). The fact text
// is the sentence, whitespace collapsed.
//
// Limits, honestly: it reads one sentence at a time and resolves no pronouns or defined terms
// ("It acquired Globex", "the Company uses AWS" yield nothing); lower-case objects are not entities
// ("requires encryption at rest" yields nothing); compound subjects keep only the last conjunct;
// negated, modal, future and conditional sentences are skipped rather than understood ("does not
// use", "may use", "will acquire", "If ...", questions), and so is "no longer uses", which a reader
// would take as an invalidation; past tense is recorded as a current fact ("was the CEO of" with no
// end date stays current until contradicted); kinds are guesses from name suffixes, a few known
// regulation and standard names, and the relation; Markdown headings are skipped but a plain title-cased line can be read as a statement;
// sentence splitting knows common abbreviations but not all. Use LLMExtractor where recall matters.
func Extract(chunkID, text string) []Fact {
	text = strings.ReplaceAll(strings.ToValidUTF8(text, "\uFFFD"), "\x00", " ")
	var sentences [][]token
	var texts []string
	for _, sentence := range prose.Sentences(text) {
		if strings.HasSuffix(sentence, "?") {
			continue // questions assert nothing
		}
		if strings.HasPrefix(strings.TrimSpace(sentence), "#") {
			continue // a Markdown heading names a section; it states no fact
		}
		if s := tokenize(sentence); slices.ContainsFunc(s, func(t token) bool { return t.word }) {
			sentences = append(sentences, s)
			texts = append(texts, collapseSpace(sentence))
		}
	}
	// Words capitalised somewhere other than at the start of a sentence are proper nouns in this
	// chunk; a single capitalised word that opens a sentence is only trusted if it is one.
	proper := map[string]bool{}
	for _, s := range sentences {
		first := true
		for _, t := range s {
			if !t.word {
				continue
			}
			if !first && startsUpper(t.text) {
				proper[t.lower] = true
			}
			first = false
		}
	}
	var facts []Fact
	seen := map[string]bool{}
	for i, s := range sentences {
		x := sentenceExtractor{toks: s, proper: proper}
		found := x.facts()
		if len(found) == 0 {
			continue
		}
		sentence, validAt := truncateRunes(texts[i], MaxFactLen), sentenceDate(texts[i])
		for _, f := range found {
			f.ChunkID, f.Fact = chunkID, sentence
			if validAt != nil {
				v := *validAt
				f.ValidAt = &v
			}
			key := NormalizeName(f.Source) + "\x00" + f.Relation + "\x00" + NormalizeName(f.Target)
			if seen[key] || NormalizeName(f.Source) == NormalizeName(f.Target) {
				continue
			}
			seen[key] = true
			facts = append(facts, f)
		}
	}
	return facts
}

// token is a word (letters and digits, with inner joiners such as "AT&T", "U.S", "27001:2022",
// "multi-factor") or one punctuation character, with its byte offsets in the block.
type token struct {
	text, lower string
	start, end  int
	word        bool
	abbrev      bool // a word that took the full stop after it ("Inc.", "U.S.")
}

func tokenize(s string) []token {
	var toks []token
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case unicode.IsSpace(r):
			i += size
		case isWordRune(r):
			j := i + size
			for j < len(s) {
				r2, n2 := utf8.DecodeRuneInString(s[j:])
				if isWordRune(r2) {
					j += n2
					continue
				}
				if strings.ContainsRune("&'’-./:", r2) && j+n2 < len(s) {
					if r3, n3 := utf8.DecodeRuneInString(s[j+n2:]); isWordRune(r3) {
						j += n2 + n3
						continue
					}
				}
				break
			}
			toks = append(toks, token{text: s[i:j], start: i, end: j, word: true})
			i = j
		default:
			toks = append(toks, token{text: s[i : i+size], start: i, end: i + size})
			i += size
		}
	}
	// An abbreviation takes the full stop right after it, so that "Globex Inc. on" stays one
	// sentence and the name keeps its spelling.
	out := toks[:0]
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.word && i+1 < len(toks) && toks[i+1].text == "." && toks[i+1].start == t.end && isAbbrev(t.text) {
			t.text += "."
			t.end++
			t.abbrev = true
			i++
		}
		t.lower = strings.ToLower(t.text)
		out = append(out, t)
	}
	return out
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) }

// isAbbrev reports whether a word followed by a full stop is an abbreviation rather than the end
// of a sentence: a known one, an initial ("J."), or dotted initials ("U.S", "e.g").
func isAbbrev(w string) bool {
	lw := strings.ToLower(w)
	if abbreviations[lw] {
		return true
	}
	if utf8.RuneCountInString(w) == 1 {
		r, _ := utf8.DecodeRuneInString(w)
		return unicode.IsUpper(r)
	}
	parts := strings.Split(lw, ".")
	if len(parts) < 2 {
		return false
	}
	for _, p := range parts {
		if utf8.RuneCountInString(p) != 1 {
			return false
		}
	}
	return true
}

// phrase is an entity mention: tokens [start, end) of a sentence.
type phrase struct {
	start, end int
	name       string
	possessive bool // "Acme Corp's": the mention modifies what follows
}

type sentenceExtractor struct {
	toks    []token
	proper  map[string]bool
	byStart map[int]phrase
	byEnd   map[int]phrase
}

func (x *sentenceExtractor) facts() []Fact {
	if first := x.firstWord(); first >= 0 && conditionals[x.toks[first].lower] {
		return nil
	}
	x.findPhrases()
	var facts []Fact
	for i := 0; i < len(x.toks); i++ {
		if f := x.roleAt(i); f != nil {
			facts = append(facts, f...)
			continue
		}
		if f := x.verbAt(i); f != nil {
			facts = append(facts, f...)
		}
	}
	for _, p := range x.sortedPhrases() {
		facts = append(facts, x.appositive(p)...)
	}
	return facts
}

func (x *sentenceExtractor) firstWord() int {
	for i, t := range x.toks {
		if t.word {
			return i
		}
	}
	return -1
}

// findPhrases marks the entity mentions of the sentence.
func (x *sentenceExtractor) findPhrases() {
	x.byStart, x.byEnd = map[int]phrase{}, map[int]phrase{}
	toks := x.toks
	first := x.firstWord()
	for i := 0; i < len(toks); {
		if !x.nameWord(i) {
			i++
			continue
		}
		j := i + 1
	extend:
		for j < len(toks) && !isPossessive(toks[j-1].text) {
			t := toks[j]
			switch {
			case x.nameWord(j) || t.word && isNumberish(t.text):
				j++
			case (t.text == "&" || particles[t.lower]) && j+1 < len(toks) && x.nameWord(j+1):
				j += 2
			case (t.lower == "of" || t.lower == "for") && orgHeads[toks[j-1].lower] && j+1 < len(toks) && x.nameWord(j+1):
				j += 2
			default:
				break extend
			}
		}
		possessive := isPossessive(toks[j-1].text)
		start := i
		// "CEO Jane Doe" is Jane Doe; a phrase of titles only is no entity.
		for start < j && titles[strings.TrimSuffix(toks[start].lower, ".")] {
			start++
		}
		if p, ok := x.makePhrase(start, j, possessive, first); ok {
			x.byStart[p.start] = p
			x.byEnd[p.end] = p
		}
		i = j
	}
}

func (x *sentenceExtractor) makePhrase(start, end int, possessive bool, first int) (phrase, bool) {
	toks := x.toks
	if start >= end || end-start > MaxNameWords || !x.nameWord(start) {
		return phrase{}, false
	}
	if end-start == 1 {
		t := toks[start]
		if genericTerms[strings.TrimSuffix(stripPossessive(t.lower), ".")] {
			return phrase{}, false
		}
		// A lone plural opening the sentence ("Contractors use ...") is a common noun unless it
		// looks like an acronym or is capitalised elsewhere in the chunk.
		if start == first && pluralLike(t.lower) && !acronymLike(t.text) && !x.proper[t.lower] {
			return phrase{}, false
		}
	}
	name := collapseSpace(joinTokens(toks[start:end]))
	if possessive {
		name = stripPossessive(name)
	}
	name = strings.TrimRight(name, ",;:")
	if NormalizeName(name) == "" || utf8.RuneCountInString(name) > MaxNameLen {
		return phrase{}, false
	}
	return phrase{start: start, end: end, name: name, possessive: possessive}, true
}

// nameWord reports whether token i can be part of a name: a capitalised word or an acronym that
// is not a function word, month, weekday or bare job title.
func (x *sentenceExtractor) nameWord(i int) bool {
	t := x.toks[i]
	if !t.word || !startsUpper(t.text) {
		return false
	}
	base := strings.TrimSuffix(stripPossessive(t.lower), ".")
	if allCaps(t.text) && !capsStopwords[base] {
		return true // "IT", "US": acronyms that look like function words
	}
	return !stopwords[base] && !months[base]
}

// allCaps reports whether a word has two or more letters, all capitals.
func allCaps(w string) bool {
	letters := 0
	for _, r := range w {
		if unicode.IsLetter(r) {
			if !unicode.IsUpper(r) {
				return false
			}
			letters++
		}
	}
	return letters >= 2
}

// pluralLike reports whether a lower-case word looks like an English plural.
func pluralLike(w string) bool {
	return strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") && !strings.HasSuffix(w, "us") && !strings.HasSuffix(w, "is")
}

func joinTokens(toks []token) string {
	var b strings.Builder
	for i, t := range toks {
		if i > 0 && t.start > toks[i-1].end {
			b.WriteByte(' ')
		}
		b.WriteString(t.text)
	}
	return b.String()
}

func (x *sentenceExtractor) sortedPhrases() []phrase {
	var ps []phrase
	for i := range x.toks {
		if p, ok := x.byStart[i]; ok {
			ps = append(ps, p)
		}
	}
	return ps
}

// verbAt matches a relation verb starting at token i.
func (x *sentenceExtractor) verbAt(i int) []Fact {
	for _, v := range relationVerbs {
		if !x.wordsAt(i, v.words) {
			continue
		}
		subj, ok := x.subjectBefore(i)
		if !ok {
			return nil
		}
		// A list of objects shares the subject: fine unless the relation is exclusive on that side.
		single := !v.reverse && SingleValued(v.relation) || v.reverse && SingleHolder(v.relation)
		var facts []Fact
		for _, obj := range x.objectsAfter(i+len(v.words), single) {
			src, dst := subj, obj
			if v.reverse {
				src, dst = obj, subj
			}
			facts = append(facts, Fact{
				Source: src.name, SourceKind: kindOf(src.name, v.sourceKind),
				Target: dst.name, TargetKind: kindOf(dst.name, v.targetKind),
				Relation: v.relation,
			})
		}
		return facts
	}
	return nil
}

// roleAt matches "X is [the] ROLE of Y" with the copula at token i.
func (x *sentenceExtractor) roleAt(i int) []Fact {
	var j int
	switch {
	case x.wordsAt(i, []string{"has", "been"}), x.wordsAt(i, []string{"serves", "as"}),
		x.wordsAt(i, []string{"acts", "as"}), x.wordsAt(i, []string{"served", "as"}):
		j = i + 2
	case x.wordsAt(i, []string{"is"}), x.wordsAt(i, []string{"was"}), x.wordsAt(i, []string{"became"}),
		x.wordsAt(i, []string{"remains"}):
		j = i + 1
	default:
		return nil
	}
	relation, end := x.role(j)
	if relation == "" {
		return nil
	}
	subj, ok := x.subjectBefore(i)
	if !ok {
		return nil
	}
	return x.roleFacts(subj, relation, x.objectsAfter(end, SingleValued(relation)))
}

// appositive matches "X, [the] ROLE of Y," and "X ([the] ROLE of Y)" after the phrase p.
func (x *sentenceExtractor) appositive(p phrase) []Fact {
	if p.possessive || p.end >= len(x.toks) {
		return nil
	}
	open := x.toks[p.end].text
	if open != "," && open != "(" {
		return nil
	}
	relation, end := x.role(p.end + 1)
	if relation == "" {
		return nil
	}
	objs := x.objectsAfter(end, true)
	if len(objs) == 0 {
		return nil
	}
	after := objs[0].end
	switch {
	case open == "(" && after < len(x.toks) && x.toks[after].text == ")":
	case open == "," && (after == len(x.toks) || x.toks[after].text == "," || x.toks[after].text == "."):
	default:
		return nil
	}
	return x.roleFacts(p, relation, objs)
}

func (x *sentenceExtractor) roleFacts(subj phrase, relation string, objs []phrase) []Fact {
	var facts []Fact
	for _, obj := range objs {
		sk, tk := "", ""
		if personRole(relation) {
			sk, tk = "person", "organization"
		}
		facts = append(facts, Fact{
			Source: subj.name, SourceKind: kindOf(subj.name, sk),
			Target: obj.name, TargetKind: kindOf(obj.name, tk),
			Relation: relation,
		})
	}
	return facts
}

// role reads "[the|a|an] ROLE of" from token j and returns the relation name (ROLE_of) and the
// index after "of", or "" when the words are not a usable role.
func (x *sentenceExtractor) role(j int) (string, int) {
	toks := x.toks
	if j < len(toks) && articles[toks[j].lower] {
		j++
	}
	var words []string
	for ; j < len(toks) && toks[j].word && toks[j].lower != "of"; j++ {
		w := toks[j].lower
		switch {
		case len(words) >= 6:
			return "", 0
		case w == "former" || w == "previous" || w == "past" || w == "outgoing" || w == "future" ||
			w == "incoming" || w == "prospective" || w == "proposed" || w == "potential" || strings.HasPrefix(w, "ex-"):
			return "", 0
		case w == "current" || w == "new" || w == "sole" || w == "interim" || w == "acting" || w == "present":
			continue
		case stopwords[w] || months[w]:
			return "", 0
		}
		words = append(words, strings.TrimSuffix(w, "."))
	}
	if len(words) == 0 || len(words) > 4 || j >= len(toks) || toks[j].lower != "of" {
		return "", 0
	}
	r := strings.Join(words, " ")
	if short, ok := titleAbbrev[r]; ok {
		r = short
	}
	relation := snakeCase(r + " of")
	if relation == "" {
		return "", 0
	}
	return relation, j + 1
}

// subjectBefore finds the entity that ends where the verb at token i begins, skipping adverbs
// ("also") and one aside in commas or brackets. A mention that follows a preposition ("the CEO of
// Acme reports to ...") or is possessive is no subject.
func (x *sentenceExtractor) subjectBefore(i int) (phrase, bool) {
	toks := x.toks
	k := i
	for k > 0 && adverbs[toks[k-1].lower] {
		k--
	}
	if k > 0 {
		switch toks[k-1].text {
		case ")":
			k = x.back(k-1, "(", 20)
		case ",":
			k = x.back(k-1, ",", 16)
		}
	}
	p, ok := x.byEnd[k]
	if !ok || k <= 0 || p.possessive {
		return phrase{}, false
	}
	if p.start > 0 && prepositions[toks[p.start-1].lower] {
		return phrase{}, false
	}
	return p, true
}

// back returns the index of the nearest token text before i, within max tokens, or -1.
func (x *sentenceExtractor) back(i int, text string, max int) int {
	for m := i - 1; m >= 0 && i-m <= max; m-- {
		if x.toks[m].text == text {
			return m
		}
	}
	return -1
}

// objectsAfter reads the entity at token j (after an optional article or possessive determiner)
// and, unless single, a list continuing it with commas and "and".
func (x *sentenceExtractor) objectsAfter(j int, single bool) []phrase {
	toks := x.toks
	for j < len(toks) && determiners[toks[j].lower] {
		j++
	}
	p, ok := x.byStart[j]
	if !ok || p.possessive {
		return nil
	}
	objs := []phrase{p}
	for k := p.end; !single; {
		m := k
		if m < len(toks) && toks[m].text == "," {
			m++
		}
		if m < len(toks) && toks[m].lower == "and" {
			m++
		}
		if m == k {
			break
		}
		for m < len(toks) && determiners[toks[m].lower] {
			m++
		}
		q, ok := x.byStart[m]
		if !ok || q.possessive || x.startsVerb(q.end) {
			break
		}
		objs = append(objs, q)
		k = q.end
	}
	return objs
}

// startsVerb reports whether a relation verb or copula begins at token i (after adverbs): the
// entity before it starts a new clause rather than continuing a list.
func (x *sentenceExtractor) startsVerb(i int) bool {
	for i < len(x.toks) && adverbs[x.toks[i].lower] {
		i++
	}
	if i >= len(x.toks) {
		return false
	}
	for _, v := range relationVerbs {
		if x.wordsAt(i, v.words) {
			return true
		}
	}
	return copulas[x.toks[i].lower]
}

func (x *sentenceExtractor) wordsAt(i int, words []string) bool {
	if i+len(words) > len(x.toks) {
		return false
	}
	for k, w := range words {
		if !x.toks[i+k].word || x.toks[i+k].lower != w {
			return false
		}
	}
	return true
}

// relationVerb is one verb phrase the rules know. reverse means the grammatical subject is the
// relation's target ("Globex was acquired by Acme": Acme acquired Globex).
type relationVerb struct {
	words                  []string
	relation               string
	reverse                bool
	sourceKind, targetKind string
}

// relationVerbs is read-only; longer phrases come first so that "is owned by" wins over "owned".
var relationVerbs = func() []relationVerb {
	var vs []relationVerb
	add := func(relation string, reverse bool, sk, tk string, phrases ...string) {
		for _, p := range phrases {
			vs = append(vs, relationVerb{words: strings.Fields(p), relation: relation, reverse: reverse, sourceKind: sk, targetKind: tk})
		}
	}
	const org, loc = "organization", "location"
	add("acquired", true, org, org, "has been acquired by", "was acquired by", "is acquired by", "were acquired by")
	add("owned_by", false, "", "", "is wholly owned by", "is majority owned by", "is owned by", "was owned by", "are owned by")
	add("headquartered_in", false, org, loc, "is headquartered in", "was headquartered in", "are headquartered in", "headquartered in")
	add("complies_with", false, "", "", "is compliant with", "are compliant with", "remains compliant with",
		"is in compliance with", "complies with", "comply with", "complied with", "has complied with")
	add("reports_to", false, "", "", "reports directly to", "reports to", "report to", "reported to")
	add("replaced", true, "", "", "has been replaced by", "was replaced by", "is replaced by", "is being replaced by")
	add("uses", true, "", "", "is used by", "are used by", "was used by")
	add("requires", true, "", "", "is required by", "are required by")
	add("supports", true, "", "", "is supported by", "are supported by")
	add("acquired", false, org, org, "has acquired", "acquired", "acquires", "completed the acquisition of")
	add("owns", false, "", "", "owns", "own", "owned")
	add("requires", false, "", "", "requires", "require", "required")
	add("uses", false, "", "", "uses", "use", "used")
	add("supports", false, "", "", "supports", "support", "supported")
	add("replaced", false, "", "", "has replaced", "replaced", "replaces", "replace")
	return vs
}()

// kindOf guesses an entity's kind from its name, else uses the kind its role in the sentence
// suggests.
func kindOf(name, fallback string) string {
	n := NormalizeName(name)
	words := strings.Fields(n)
	if len(words) == 0 {
		return fallback
	}
	first, last := words[0], words[len(words)-1]
	switch {
	case regulations[n] || len(words) > 1 && (last == "act" || last == "regulation" || last == "directive"):
		return "regulation"
	case standards[n] || standardPrefixes[first] && len(words) > 1:
		return "standard"
	case len(words) > 1 && (orgSuffixes[strings.TrimSuffix(last, ".")] || orgHeads[first]):
		return "organization"
	}
	return fallback
}

// personRole reports whether a ROLE_of relation is held by a person.
func personRole(relation string) bool {
	role := strings.TrimSuffix(relation, "_of")
	if i := strings.LastIndexByte(role, '_'); i >= 0 {
		role = role[i+1:]
	}
	return personTitles[role]
}

// sentenceDate returns the first date in the sentence that is not an end date.
func sentenceDate(s string) *time.Time {
	type candidate struct {
		pos, end int
		t        time.Time
	}
	var best *candidate
	consider := func(re *regexp.Regexp, parse func(m []string) (time.Time, bool)) {
		for _, idx := range re.FindAllStringSubmatchIndex(s, -1) {
			m := make([]string, len(idx)/2)
			for k := range m {
				if idx[2*k] >= 0 {
					m[k] = s[idx[2*k]:idx[2*k+1]]
				}
			}
			t, ok := parse(m)
			// "2024" in "effective 2024-07-01" is part of a fuller date.
			partial := idx[1] < len(s) && (s[idx[1]] == '-' || s[idx[1]] == '/')
			if !ok || partial || endCue(s[max(0, idx[0]-32):idx[0]]) {
				continue
			}
			if best == nil || idx[0] < best.pos || idx[0] == best.pos && idx[1] > best.end {
				best = &candidate{pos: idx[0], end: idx[1], t: t}
			}
			break // later matches of this pattern are later in the sentence
		}
	}
	consider(dateISO, func(m []string) (time.Time, bool) { return makeDate(m[1], m[2], m[3]) })
	consider(dateMDY, func(m []string) (time.Time, bool) { return makeDate(m[3], monthNumber(m[1]), m[2]) })
	consider(dateDMY, func(m []string) (time.Time, bool) { return makeDate(m[3], monthNumber(m[2]), m[1]) })
	consider(dateMY, func(m []string) (time.Time, bool) { return makeDate(m[2], monthNumber(m[1]), "1") })
	consider(dateYear, func(m []string) (time.Time, bool) { return makeDate(m[1], "1", "1") })
	if best == nil {
		return nil
	}
	return &best.t
}

const monthPattern = `(January|February|March|April|May|June|July|August|September|October|November|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?`

var (
	dateISO  = regexp.MustCompile(`\b(\d{4})-(\d{2})-(\d{2})\b`)
	dateMDY  = regexp.MustCompile(`\b` + monthPattern + `\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b`)
	dateDMY  = regexp.MustCompile(`\b(\d{1,2})(?:st|nd|rd|th)?\s+` + monthPattern + `,?\s+(\d{4})\b`)
	dateMY   = regexp.MustCompile(`\b` + monthPattern + `,?\s+(\d{4})\b`)
	dateYear = regexp.MustCompile(`(?i)\b(?:in|since|from|as of|effective|during|starting|beginning)\s+(?:(?:early|late|mid|fiscal year|fiscal|FY)\s+)?(\d{4})\b`)
	lastWord = regexp.MustCompile(`([A-Za-z]+)\W*$`)
)

// endCue reports whether the text before a date makes it an end date ("until March 2025").
func endCue(before string) bool {
	m := lastWord.FindStringSubmatch(before)
	if m == nil {
		return false
	}
	switch strings.ToLower(m[1]) {
	case "until", "till", "through", "thru", "before", "by", "to", "ending", "ended", "ends",
		"expires", "expired", "expiring", "deadline":
		return true
	}
	return false
}

func makeDate(year, month, day string) (time.Time, bool) {
	y, err1 := strconv.Atoi(year)
	m, err2 := strconv.Atoi(month)
	d, err3 := strconv.Atoi(day)
	if err1 != nil || err2 != nil || err3 != nil || y < 1900 || y > 2100 {
		return time.Time{}, false
	}
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	if t.Year() != y || int(t.Month()) != m || t.Day() != d {
		return time.Time{}, false // "February 30"
	}
	return t, true
}

func monthNumber(name string) string {
	prefix := strings.ToLower(name)
	if len(prefix) < 3 {
		return ""
	}
	for i, full := range monthNames {
		if strings.HasPrefix(full, prefix[:3]) {
			return strconv.Itoa(i + 1)
		}
	}
	return ""
}

func startsUpper(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return unicode.IsUpper(r)
}

// acronymLike reports whether a word has a second capital letter or a digit ("GDPR", "McKinsey",
// "S3"), which a sentence-initial common noun does not.
func acronymLike(w string) bool {
	for i, r := range w {
		if i > 0 && (unicode.IsUpper(r) || unicode.IsDigit(r)) {
			return true
		}
	}
	return false
}

// isNumberish reports whether a word can continue a name ("SOC 2", "ISO 27001", "PCI DSS 4.0"):
// it starts with a digit and is not a year, which would more likely be a date.
func isNumberish(w string) bool {
	r, _ := utf8.DecodeRuneInString(w)
	if !unicode.IsDigit(r) {
		return false
	}
	if n, err := strconv.Atoi(w); err == nil && n >= 1900 && n <= 2100 {
		return false
	}
	return true
}

func isPossessive(w string) bool { return strings.HasSuffix(w, "'s") || strings.HasSuffix(w, "’s") }

func stripPossessive(w string) string {
	for _, suffix := range []string{"'s", "’s"} {
		if strings.HasSuffix(w, suffix) {
			return w[:len(w)-len(suffix)]
		}
	}
	return w
}

func collapseSpace(s string) string { return strings.Join(strings.Fields(s), " ") }

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// Word lists. Read-only.
var (
	monthNames = []string{"january", "february", "march", "april", "may", "june", "july", "august",
		"september", "october", "november", "december"}
	months = set("january", "february", "march", "april", "may", "june", "july", "august", "september",
		"october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept",
		"oct", "nov", "dec", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
	// stopwords are words that, capitalised, open sentences rather than names.
	stopwords = set("the", "a", "an", "this", "that", "these", "those", "our", "we", "us", "it", "its",
		"their", "they", "them", "he", "she", "his", "her", "you", "your", "i", "my", "on", "in", "at",
		"as", "of", "for", "by", "with", "to", "from", "under", "after", "before", "during", "since",
		"until", "effective", "per", "each", "every", "all", "any", "some", "no", "not", "if", "when",
		"where", "while", "although", "though", "however", "moreover", "furthermore", "additionally",
		"also", "then", "there", "here", "both", "either", "neither", "and", "or", "but", "so", "upon",
		"within", "without", "between", "among", "through", "following", "pursuant", "according",
		"is", "are", "was", "were", "be", "been", "has", "have", "had", "will", "shall", "may", "must",
		"can", "should", "would", "could", "what", "which", "who", "whom", "whose", "how", "why",
		"note", "see", "yes", "today", "yesterday", "tomorrow", "unless", "whether", "because",
		"therefore", "thus", "hence", "such", "other", "another", "further", "last", "next", "first",
		"finally", "currently", "today's", "about", "over", "into", "onto", "than", "via", "do", "does",
		"did", "once", "only", "even", "still", "now", "well", "like", "just", "more", "most", "many",
		"much", "few", "several", "new", "former")
	capsStopwords = set("a", "i", "an", "and", "or", "the", "of", "not", "no", "to", "in", "on", "at", "by",
		"for", "is", "are", "be", "all", "any", "note", "if", "as", "may", "must", "shall", "will", "with",
		"from", "this", "that", "we", "our", "it's")
	conditionals = set("if", "unless", "whether", "should", "when", "once", "suppose", "assuming")
	adverbs      = set("also", "now", "currently", "formally", "officially", "still", "already", "has",
		"have", "fully", "recently", "subsequently", "later", "directly")
	copulas      = set("is", "was", "are", "were", "became", "remains")
	articles     = set("the", "a", "an")
	determiners  = set("the", "a", "an", "its", "their", "our", "his", "her")
	prepositions = set("of", "for", "at", "from", "by", "with", "to", "in", "on", "under", "about",
		"than", "into", "onto", "via", "per", "against", "between", "among", "like", "unlike")
	particles   = set("de", "da", "di", "du", "del", "der", "den", "van", "von", "la", "le", "bin", "al")
	orgHeads    = set("bank", "department", "university", "institute", "office", "ministry", "board", "commission", "council", "bureau", "center", "centre", "school", "college", "federation", "association", "society", "republic", "kingdom", "state", "states", "court", "committee", "agency", "authority", "union", "chamber", "league", "academy")
	orgSuffixes = set("inc", "corp", "corporation", "ltd", "limited", "llc", "plc", "gmbh", "ag", "sa", "s.a", "bv", "b.v", "nv", "co", "company", "group", "holdings", "bank", "partners", "lp", "llp", "technologies", "systems", "labs", "foundation", "association", "institute", "university", "agency", "authority", "commission", "board", "committee")
	// genericTerms are contract defined terms ("the Processor shall ..."), not names.
	genericTerms = set("company", "companies", "customer", "customers", "vendor", "vendors", "supplier",
		"suppliers", "processor", "processors", "subprocessor", "sub-processor", "controller", "controllers",
		"provider", "providers", "party", "parties", "client", "clients", "user", "users", "service",
		"services", "agreement", "section", "schedule", "annex", "appendix", "exhibit", "article",
		"clause", "policy", "data", "personnel", "employees", "employee", "licensee", "licensor")
	titles = set("ceo", "cfo", "cto", "coo", "cio", "ciso", "dpo", "cpo", "cco", "president",
		"chairman", "chairwoman", "chairperson", "chair", "director", "founder", "co-founder", "mr",
		"mrs", "ms", "dr", "prof", "sir", "dame", "vp", "svp", "evp", "gc")
	personTitles = set("ceo", "cfo", "cto", "coo", "cio", "ciso", "dpo", "cpo", "cco", "president",
		"chairman", "chairwoman", "chairperson", "chair", "director", "founder", "cofounder", "officer",
		"manager", "counsel", "head", "lead", "vp", "secretary", "treasurer", "auditor", "controller")
	titleAbbrev = map[string]string{
		"chief executive officer":            "ceo",
		"chief executive":                    "ceo",
		"chief financial officer":            "cfo",
		"chief operating officer":            "coo",
		"chief technology officer":           "cto",
		"chief information officer":          "cio",
		"chief information security officer": "ciso",
		"data protection officer":            "dpo",
		"parent company":                     "parent_company",
		"parent":                             "parent_company",
		"wholly owned subsidiary":            "subsidiary",
		"wholly-owned subsidiary":            "subsidiary",
	}
	regulations = set("gdpr", "uk gdpr", "hipaa", "ccpa", "cpra", "sox", "glba", "ferpa", "coppa",
		"pipeda", "lgpd", "dora", "nis2", "nis 2", "pdpa", "appi", "fisma", "itar", "psd2", "mifid ii",
		"eu ai act", "ai act", "hitech")
	standards        = set("pci dss", "soc 1", "soc 2", "soc 3", "fedramp", "hitrust", "tisax", "cmmc", "csa star", "iso 27001", "iso 27701", "iso 9001")
	standardPrefixes = set("iso", "iso/iec", "soc", "nist", "pci", "fedramp", "hitrust", "cis", "cobit", "itil", "ssae", "isae", "cmmc")
	abbreviations    = set("inc", "corp", "ltd", "co", "llc", "plc", "bros", "mr", "mrs", "ms", "dr",
		"prof", "st", "jr", "sr", "no", "nos", "vs", "etc", "approx", "dept", "est", "fig", "jan", "feb",
		"mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "sec", "art", "para", "cf")
)

func set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}
