// Package prose reads plain text the way the data plane needs it: Sentences splits it into
// sentences (the extractive answerer quotes them, the graph extractor reads facts from them, the
// chunker cuts at their ends through EndsSentence), and CountTokens estimates the tokens a model
// would see (chunk sizes, answer budgets, usage). One rule for each, so that what is counted or
// cut in one place is counted or cut the same way everywhere.
//
// Maintained libraries were measured first (github.com/neurosnap/sentences v1.1.2, the Punkt
// model, and github.com/clipperhouse/uax29/v2 v2.7.0, Unicode sentence boundaries): on the
// abbreviation, initial, decimal, heading and list cases of sentences_test.go they got 4 and 6 of
// 10 right against 10 here, because neither knows line structure (headings, list items) and both
// split after titles or initials ("Dr.", "J. Smith") or not after a sentence at all.
package prose
