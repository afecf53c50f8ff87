// Package lang maps text to the PostgreSQL text-search configuration that indexes it: the
// language is detected with lingua-go (github.com/pemistahl/lingua-go) among the languages whose
// configuration PostgreSQL ships (Snowball stemmers and stop words), plus common languages it has
// none for, which are indexed with 'simple' (lower-cased words, no stemming, no stop words).
//
// Detection looks at the first DetectBytes of a text, in lingua's low-accuracy mode (trigrams
// only: fast and small, and accurate on paragraphs; short texts are where it errs). A text it is
// not confident about is Default.
package lang

import (
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/pemistahl/lingua-go"
)

// Simple is the configuration for languages PostgreSQL has no stemmer for.
const Simple = "simple"

// Default is the configuration of a text whose language is not recognised.
const Default = "english"

// Auto is the setting value that asks for detection.
const Auto = "auto"

// DetectBytes is how much of a text detection reads.
const DetectBytes = 2048

// configs maps each language detection considers to its PostgreSQL 17 configuration.
var configs = map[lingua.Language]string{
	lingua.Arabic: "arabic", lingua.Armenian: "armenian", lingua.Basque: "basque", lingua.Catalan: "catalan",
	lingua.Danish: "danish", lingua.Dutch: "dutch", lingua.English: "english", lingua.Finnish: "finnish",
	lingua.French: "french", lingua.German: "german", lingua.Greek: "greek", lingua.Hindi: "hindi",
	lingua.Hungarian: "hungarian", lingua.Indonesian: "indonesian", lingua.Irish: "irish",
	lingua.Italian: "italian", lingua.Lithuanian: "lithuanian", lingua.Bokmal: "norwegian",
	lingua.Nynorsk: "norwegian", lingua.Portuguese: "portuguese", lingua.Romanian: "romanian",
	lingua.Russian: "russian", lingua.Serbian: "serbian", lingua.Spanish: "spanish",
	lingua.Swedish: "swedish", lingua.Tamil: "tamil", lingua.Turkish: "turkish",
	// No PostgreSQL configuration: recognised so they are not mistaken for one that has one.
	lingua.Chinese: Simple, lingua.Japanese: Simple, lingua.Korean: Simple, lingua.Polish: Simple,
	lingua.Czech: Simple, lingua.Ukrainian: Simple, lingua.Vietnamese: Simple, lingua.Thai: Simple,
	lingua.Hebrew: Simple, lingua.Persian: Simple, lingua.Bulgarian: Simple, lingua.Croatian: Simple,
	lingua.Slovak: Simple, lingua.Slovene: Simple, lingua.Estonian: Simple, lingua.Latvian: Simple,
}

// Configs lists the configurations a tenant's language setting may name, Simple included, sorted.
func Configs() []string {
	seen := map[string]bool{Simple: true}
	out := []string{Simple}
	for _, c := range configs {
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

var detector = sync.OnceValue(func() lingua.LanguageDetector {
	langs := make([]lingua.Language, 0, len(configs))
	for l := range configs {
		langs = append(langs, l)
	}
	return lingua.NewLanguageDetectorBuilder().FromLanguages(langs...).WithLowAccuracyMode().
		WithMinimumRelativeDistance(0.1).Build()
})

// englishWords are English function words that are not words of the other languages detection
// considers (no "a", "in", "die", "was", "or", "an"...).
var englishWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`the of and is are were with for from by which that this these those who
		what where when how his her their its has have had been not at it he she they we you does did into
		about between after before than then there would should could will can also such other most`) {
		englishWords[w] = true
	}
}

// englishShare is the share of text's words that are English function words.
func englishShare(text string) float64 {
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && r != '\'' })
	if len(words) == 0 {
		return 0
	}
	n := 0
	for _, w := range words {
		if englishWords[w] {
			n++
		}
	}
	return float64(n) / float64(len(words))
}

// englishText: a text at least this share of whose words are English function words is English,
// whatever the trigrams say. Lingua's low-accuracy mode reads English that is dense with foreign
// names (encyclopaedia abstracts, people, places) as Dutch, Danish, German... (4% of the DBpedia
// abstracts of the evaluation set), and such text has plenty of "the", "of" and "is".
const englishText = 0.12

// Detect returns the configuration for text's language, Default when it is not recognised.
func Detect(text string) string {
	if len(text) > DetectBytes {
		text = text[:DetectBytes]
		for len(text) > 0 && !utf8.ValidString(text) {
			text = text[:len(text)-1]
		}
	}
	if englishShare(text) >= englishText {
		return "english"
	}
	l, ok := detector().DetectLanguageOf(text)
	if !ok {
		return Default
	}
	if c, ok := configs[l]; ok {
		return c
	}
	return Default
}

// among caches detectors restricted to a set of configurations, keyed by the sorted set.
var among sync.Map // string -> lingua.LanguageDetector

// Query detection: at least this many words, and this confidence in the language found.
const (
	amongMinWords   = 3
	amongConfidence = 0.9
)

// DetectAmong returns the configuration, of those given, whose language text (a question) is
// written in, and false when it is not sure. Restricting detection to the languages a tenant's
// documents use makes it usable on short texts; still, it answers only for a text of at least
// three words, with lingua's confidence of at least 0.9, and a text with an English function
// word in it is English (names read as any language: "keith urban", "laura bush").
func DetectAmong(text string, candidates []string) (string, bool) {
	langs := map[lingua.Language]bool{}
	for l, c := range configs {
		if slices.Contains(candidates, c) {
			langs[l] = true
		}
	}
	if len(langs) < 2 || len(strings.Fields(text)) < amongMinWords {
		return "", false
	}
	if englishShare(text) > 0 {
		if slices.Contains(candidates, "english") {
			return "english", true
		}
		return "", false
	}
	keys := slices.Clone(candidates)
	slices.Sort(keys)
	key := strings.Join(keys, ",")
	d, ok := among.Load(key)
	if !ok {
		list := make([]lingua.Language, 0, len(langs))
		for l := range langs {
			list = append(list, l)
		}
		d, _ = among.LoadOrStore(key, lingua.NewLanguageDetectorBuilder().FromLanguages(list...).
			WithLowAccuracyMode().WithMinimumRelativeDistance(0.1).Build())
	}
	det := d.(lingua.LanguageDetector)
	l, ok := det.DetectLanguageOf(text)
	if !ok || det.ComputeLanguageConfidence(text, l) < amongConfidence {
		return "", false
	}
	return configs[l], true
}

// Config is the configuration for a document given the tenant's language setting: Detect(text)
// for Auto (or empty), else the setting itself (validated against Configs by the settings layer).
func Config(setting, text string) string {
	if setting == "" || setting == Auto {
		return Detect(text)
	}
	return setting
}
