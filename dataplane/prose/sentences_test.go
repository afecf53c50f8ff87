package prose_test

import (
	"slices"
	"testing"

	"github.com/ragplane/ragplane/dataplane/prose"
)

// TestSentences holds the cases the extractive answerer and the graph extractor used to get wrong
// between them. github.com/neurosnap/sentences v1.1.2 passed 4 of the first 10 of these and
// github.com/clipperhouse/uax29/v2 v2.7.0 passed 6 (see doc.go).
func TestSentences(t *testing.T) {
	tests := []struct {
		name   string
		given  string
		expect []string
	}{
		{"dotted initials before a name", "We lit the U.S. National Christmas Tree in 1923. It stands near the White House.",
			[]string{"We lit the U.S. National Christmas Tree in 1923.", "It stands near the White House."}},
		{"e.g.", "Bring a document, e.g. a passport. Then wait.",
			[]string{"Bring a document, e.g. a passport.", "Then wait."}},
		{"title", "Dr. Smith approved it. The board agreed.",
			[]string{"Dr. Smith approved it.", "The board agreed."}},
		{"decimals", "The rate is 3.5 percent. It was 2.1 before.",
			[]string{"The rate is 3.5 percent.", "It was 2.1 before."}},
		{"heading without a period", "Refund policy\nRefunds take 14 days. Contact support.",
			[]string{"Refund policy", "Refunds take 14 days.", "Contact support."}},
		{"markdown heading", "# Shipping\n\nWe ship weekly. Orders ship on Monday.",
			[]string{"# Shipping", "We ship weekly.", "Orders ship on Monday."}},
		{"list items", "- First item\n- Second item\n1. Third item\n(a) Fourth item",
			[]string{"First item", "Second item", "Third item", "Fourth item"}},
		{"questions and exclamations", "Is it free? Yes! It costs nothing.",
			[]string{"Is it free?", "Yes!", "It costs nothing."}},
		{"company suffix and initial", "Globex Inc. was founded by J. Smith in 2001. It grew fast.",
			[]string{"Globex Inc. was founded by J. Smith in 2001.", "It grew fast."}},
		{"abbreviations before numbers", "Prices rose approx. 5 percent, i.e. a lot. See Fig. 3 for details.",
			[]string{"Prices rose approx. 5 percent, i.e. a lot.", "See Fig. 3 for details."}},
		{"initials end a sentence before an opener", "Acme is based in the U.S. The board meets in May.",
			[]string{"Acme is based in the U.S.", "The board meets in May."}},
		{"company suffix ends a sentence before a name", "We buy from Globex Ltd. Acme sells to us.",
			[]string{"We buy from Globex Ltd.", "Acme sells to us."}},
		{"abbreviated month", "Acme acquired Globex on Sept. 9, 2021. Nothing changed.",
			[]string{"Acme acquired Globex on Sept. 9, 2021.", "Nothing changed."}},
		{"hard-wrapped prose", "Refunds are issued to the original payment method within\nfourteen days of the request.",
			[]string{"Refunds are issued to the original payment method within fourteen days of the request."}},
		{"closing quote", `He said "we ship." Then he left.`, []string{`He said "we ship."`, "Then he left."}},
		{"no words", " \n\n ", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := prose.Sentences(tt.given); !slices.Equal(got, tt.expect) {
				t.Errorf("Sentences(%q)\n got %q\nwant %q", tt.given, got, tt.expect)
			}
		})
	}
}

func TestEndsSentence(t *testing.T) {
	tests := []struct {
		name      string
		word      string
		next      string
		lineStart bool
		expect    bool
	}{
		{"full stop", "done.", "Then", false, true},
		{"lower-case next", "approx.", "five", false, false},
		{"title", "Dr.", "Jane", false, false},
		{"initials before a name", "U.S.", "National", false, false},
		{"initials before an opener", "U.S.", "The", false, true},
		{"list number", "1.", "Install", true, false},
		{"number ending a sentence", "2001.", "It", false, true},
		{"question", "why?", "Because", false, true},
		{"no punctuation", "word", "Next", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := prose.EndsSentence(tt.word, tt.next, tt.lineStart); got != tt.expect {
				t.Errorf("EndsSentence(%q, %q, %v) = %v, want %v", tt.word, tt.next, tt.lineStart, got, tt.expect)
			}
		})
	}
}
