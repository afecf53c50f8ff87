// Package prose reads plain text the way the data plane needs it: Sentences splits it into
// sentences and the headings, list items and table rows around them (the extractive answerer
// quotes the sentences, the graph extractor reads facts from them, the chunker cuts at their ends
// through EndsSentence), IsSentence tells a quotable sentence from a heading or fragment, and
// CountTokens estimates the tokens a model would see (chunk sizes, answer budgets, usage). One
// rule for each, so that what is counted or cut in one place is counted or cut the same way
// everywhere.
//
// Maintained libraries were measured first (github.com/neurosnap/sentences v1.1.2, the Punkt
// model, and github.com/clipperhouse/uax29/v2 v2.7.0, Unicode sentence boundaries): on the
// abbreviation, initial, decimal, heading and list cases of sentences_test.go they got 4 and 6 of
// 10 right against 10 here, because neither knows line structure (headings, list items) and both
// split after titles or initials ("Dr.", "J. Smith") or not after a sentence at all.
//
// Checked again for issue 10: neurosnap/sentences has had no release since v1.1.2 (February
// 2023), and on the newer cases of sentences_test.go (number-only abbreviations such as "No. 5"
// and "Fig. 3", "a.m." ending a sentence, ellipses, an ellipsis inside a parenthesis, a full stop
// glued to the next sentence, headings) it still got 7 of 13 right.
package prose
