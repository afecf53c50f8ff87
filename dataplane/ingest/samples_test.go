package ingest_test

import (
	"math/rand/v2"
	"strings"
)

// Sample texts shared by the tests and benchmarks.
const (
	englishProse = `The history of the printing press is, in many ways, the history of modern Europe. Before
Gutenberg's movable type, books were copied by hand, usually in monasteries, and a single Bible
could take a scribe more than a year to finish. Knowledge travelled slowly, and it travelled with
errors: every copy introduced new mistakes, and the mistakes were copied in turn.

Around 1450, Johannes Gutenberg combined several existing technologies (the screw press used for
wine and olive oil, oil-based inks, and a hand mould for casting metal letters) into a system that
could produce hundreds of identical pages a day. Within fifty years, presses were operating in more
than two hundred cities, and an estimated twenty million volumes had been printed.

The consequences were enormous. Scholars could compare the same edition of a text across countries;
reformers could spread pamphlets faster than authorities could suppress them; and merchants could
rely on printed price lists, maps and contracts. Literacy rose, vernacular languages were
standardised, and the idea of an author as the owner of a work slowly took shape.`

	greekProse = `Η ιστορία της τυπογραφίας είναι, με πολλούς τρόπους, η ιστορία της σύγχρονης Ευρώπης. Πριν από
τον Γουτεμβέργιο, τα βιβλία αντιγράφονταν με το χέρι. Η γνώση ταξίδευε αργά!`

	cjkProse = `印刷术的历史在很多方面就是现代欧洲的历史。在古腾堡之前，书籍都是手工抄写的。知识传播得很慢，而且错误百出。` +
		`活版印刷は十五世紀に発明されました。한국어 문장도 여기에 있습니다.`

	emojiProse = `Launch day 🚀🚀! The team 👩🏽‍💻👨‍👩‍👧 shipped it 🎉. Café, naïve, coöperate — combining: e` + "\u0301" + `e` + "\u0301" + `.`
)

// allSamples is every sample, by name.
var allSamples = map[string]string{
	"english": englishProse,
	"greek":   greekProse,
	"cjk":     cjkProse,
	"emoji":   emojiProse,
}

// generateProse returns about n bytes of English-like prose in paragraphs, with abbreviations,
// numbers and the odd long word, the same for the same seed.
func generateProse(n int, seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	words := strings.Fields(`the of and to a in is that for it as was with be by on not he I this are
		or his from at which but have an they you were her she there been one all we their has would
		when if so no what up out more time only new some could these two may then do first any my now
		such like our over man me even most made after also did many before must through years where
		much your way well down should because each just those people how too little state good very
		make world still own see men work long get here between both life being under never day same
		another know while last might us great old year off come since against go came right used take
		three printing retrieval embedding tenant chunking boundary internationalization`)
	abbrevs := []string{"e.g.", "i.e.", "Dr.", "Mr.", "U.S.", "approx.", "3.14", "2026", "v1.2.3"}
	var b strings.Builder
	b.Grow(n + 200)
	for b.Len() < n {
		for s := 3 + rng.IntN(5); s > 0; s-- { // sentences in a paragraph
			nw := 5 + rng.IntN(20)
			for w := 0; w < nw; w++ {
				word := words[rng.IntN(len(words))]
				switch {
				case w == 0:
					word = strings.ToUpper(word[:1]) + word[1:]
				case rng.IntN(30) == 0:
					word = abbrevs[rng.IntN(len(abbrevs))]
				case rng.IntN(12) == 0:
					word += ","
				}
				b.WriteString(word)
				if w < nw-1 {
					b.WriteByte(' ')
				}
			}
			b.WriteString([]string{".", ".", ".", "?", "!"}[rng.IntN(5)])
			if s > 1 {
				b.WriteByte(' ')
			}
		}
		b.WriteString("\n\n")
	}
	return b.String()
}
