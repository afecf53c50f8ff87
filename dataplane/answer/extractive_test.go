package answer_test

import (
	"strings"
	"testing"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/answer"
)

// accessControl is ops/samples/acme_corp/access-control.md as ingestion leaves it: Markdown
// headings become lines of their own.
const accessControl = "Acme Corp Access Control Policy\n\n" +
	"Acme Corp is headquartered in Berlin. Acme Corp complies with ISO 27001 and SOC 2.\n\n" +
	"Authentication\n\n" +
	"Every administrator account requires multi-factor authentication. Passwords must be at least 14 characters long and are rotated every 90 days.\n\n" +
	"Access reviews\n\n" +
	"Access reviews happen quarterly. The Security Team reports to the Chief Information Security Officer, who signs off every review.\n\n" +
	"Privileged access\n\n" +
	"Production access is granted just in time through the bastion host and expires after 8 hours."

// Headings, labels, list fragments and table rows are never quoted, however well they match.
func TestExtractiveNeverCitesHeadings(t *testing.T) {
	tests := []struct {
		name        string
		given       answer.Request
		expect      string // in the answer
		expectCites string // all citations, in order
		expectNotIn []string
	}{
		{
			name:        "heading line above its section",
			given:       answer.Request{Query: "access reviews", Sources: []ragplane.SearchHit{hit("Access", accessControl)}},
			expect:      "Access reviews happen quarterly [1].",
			expectCites: "1",
			expectNotIn: []string{"Access reviews [1]", "Privileged access [1]"},
		},
		{
			name: "one-word heading",
			given: answer.Request{Query: "description of the bridge", Sources: []ragplane.SearchHit{
				hit("Bridge", "Description\nA steel bridge spans the river near the old mill."),
			}},
			expect:      "A steel bridge spans the river near the old mill [1].",
			expectNotIn: []string{"Description [1]"},
		},
		{
			name: "markdown heading, list fragments and a table",
			given: answer.Request{Query: "pro plan price", Sources: []ragplane.SearchHit{
				hit("Pricing", "# Pro plan price\n\n- Pro plan\n- Price list\n\n| Plan | Price |\n|---|---|\n| Pro plan | 10 EUR |\n\n"+
					"The Pro plan has a price of 10 EUR per month."),
			}},
			expect:      "The Pro plan has a price of 10 EUR per month [1].",
			expectCites: "1",
			expectNotIn: []string{"#", "Pro plan [1]", "Price list", "|"},
		},
		{
			name: "the heading's source is passed over for the one that says it",
			given: answer.Request{Query: "access reviews", Sources: []ragplane.SearchHit{
				hit("Index", "Access reviews\n\nAccess reviews\n\nPrivileged access"),
				hit("Policy", "Access reviews happen quarterly."),
			}},
			expect:      "Access reviews happen quarterly [2].",
			expectCites: "2",
		},
		{
			name: "nothing but headings",
			given: answer.Request{Query: "access reviews", Sources: []ragplane.SearchHit{
				hit("Index", "Access reviews\n\nPrivileged access"),
			}},
			expect: answer.NotFound,
		},
		{
			name: "a chunk that starts inside a sentence",
			given: answer.Request{Query: "refund request days", Sources: []ragplane.SearchHit{
				hit("Tail", "days of the refund request. Refunds are paid within 14 days of the request."),
			}},
			expect:      "Refunds are paid within 14 days of the request [1].",
			expectNotIn: []string{"days of the refund request [1]"},
		},
		{
			name: "no literal match quotes a sentence, not the heading",
			given: answer.Request{Query: "cancellation?", Sources: []ragplane.SearchHit{
				hit("Refunds", "Refund policy\n\nOur refund policy is simple. Refunds take 14 days."),
			}},
			expect:      "Our refund policy is simple [1].",
			expectNotIn: []string{"Refund policy [1]"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := MustAnswer(t, answer.Extractive{}, tt.given).Answer
			if !strings.Contains(got, tt.expect) {
				t.Errorf("answer %q lacks %q", got, tt.expect)
			}
			for _, s := range tt.expectNotIn {
				if strings.Contains(got, s) {
					t.Errorf("answer %q contains %q", got, s)
				}
			}
			if tt.expectCites != "" {
				if cites := citations(got); cites != tt.expectCites {
					t.Errorf("citations %s, want %s in %q", cites, tt.expectCites, got)
				}
			}
		})
	}
}

// The marker goes inside the sentence, before its final punctuation.
func TestExtractiveCitationPlacement(t *testing.T) {
	tests := []struct {
		name   string
		given  string // the only sentence of the source
		expect string
	}{
		{"full stop", "Refunds take 14 days.", "Refunds take 14 days [1]."},
		{"question", "Do refunds take 14 days?", "Do refunds take 14 days [1]?"},
		{"exclamation", "Refunds take only 14 days!", "Refunds take only 14 days [1]!"},
		{"no final punctuation", "Refunds take 14 days from the request", "Refunds take 14 days from the request [1]."},
		{"trailing semicolon", "Refunds take 14 days from the request;", "Refunds take 14 days from the request [1]."},
		{"abbreviation keeps its full stop", "Refunds take 14 days in the U.S.", "Refunds take 14 days in the U.S. [1]."},
		{"company suffix", "Refunds take 14 days at Globex Inc.", "Refunds take 14 days at Globex Inc. [1]."},
		{"full stop inside quotes", `Support said "refunds take 14 days."`, `Support said "refunds take 14 days" [1].`},
		{"full stop inside brackets", "(Refunds take 14 days.)", "(Refunds take 14 days) [1]."},
		{"question inside quotes", `Support asked "do refunds take 14 days?"`, `Support asked "do refunds take 14 days?" [1].`},
		{"ellipsis", "Refunds take 14 days...", "Refunds take 14 days... [1]."},
		{"decimal at the end", "Refunds take 14 days in version 2.1.", "Refunds take 14 days in version 2.1 [1]."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := answer.Request{Query: "refunds 14 days", Sources: []ragplane.SearchHit{hit("Doc", tt.given)}}
			if got := MustAnswer(t, answer.Extractive{}, req).Answer; got != tt.expect {
				t.Errorf("answer = %q, want %q", got, tt.expect)
			}
		})
	}
}

// Overlapping chunks repeat sentences; a repeat is quoted once, from the best-ranked source.
func TestExtractiveDuplicates(t *testing.T) {
	tests := []struct {
		name        string
		given       []ragplane.SearchHit
		expect      []string // each exactly once in the answer
		expectCites string
	}{
		{
			name: "same sentence in overlapping chunks",
			given: []ragplane.SearchHit{
				hit("Part 1", "Backups run nightly. Backups are encrypted with AES-256 and kept for 35 days."),
				hit("Part 2", "Backups are encrypted with AES-256 and kept for 35 days. Restores take an hour."),
			},
			expect:      []string{"Backups are encrypted with AES-256 and kept for 35 days [1]."},
			expectCites: "1",
		},
		{
			name: "same words, other case, spacing and punctuation",
			given: []ragplane.SearchHit{
				hit("A", "Backups are encrypted with AES-256, and kept for 35 days."),
				hit("B", "backups  are encrypted with AES 256 and kept for 35 days!"),
			},
			expect:      []string{"Backups are encrypted with AES-256, and kept for 35 days [1]."},
			expectCites: "1",
		},
		{
			name: "nearly the same words",
			given: []ragplane.SearchHit{
				hit("A", "Backups are encrypted with AES-256 and kept for 35 days in Frankfurt."),
				hit("B", "All backups are encrypted with AES-256 and kept for 35 days in Frankfurt."),
			},
			expect:      []string{"Backups are encrypted with AES-256 and kept for 35 days in Frankfurt [1]."},
			expectCites: "1",
		},
		{
			name: "a different number is a different claim",
			given: []ragplane.SearchHit{
				hit("A", "Backups are encrypted with AES-256 and kept for 35 days in Frankfurt."),
				hit("B", "Backups are encrypted with AES-256 and kept for 90 days in Frankfurt."),
			},
			expect:      []string{"kept for 35 days in Frankfurt [1].", "kept for 90 days in Frankfurt [2]."},
			expectCites: "1,2",
		},
		{
			name: "a negation is a different claim",
			given: []ragplane.SearchHit{
				hit("A", "Backups are encrypted with AES-256 and kept in Frankfurt for auditors."),
				hit("B", "Backups are not encrypted with AES-256 and kept in Frankfurt for auditors."),
			},
			expect:      []string{"Backups are encrypted", "Backups are not encrypted"},
			expectCites: "1,2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := answer.Request{Query: "backups encrypted AES-256 kept days", Sources: tt.given}
			got := MustAnswer(t, answer.Extractive{}, req).Answer
			for _, s := range tt.expect {
				if n := strings.Count(got, s); n != 1 {
					t.Errorf("answer %q has %q %d times, want once", got, s, n)
				}
			}
			if cites := citations(got); cites != tt.expectCites {
				t.Errorf("citations %s, want %s in %q", cites, tt.expectCites, got)
			}
		})
	}
}

// Abbreviations, initials and numbers do not cut a quoted sentence short.
func TestExtractiveWholeSentences(t *testing.T) {
	src := []ragplane.SearchHit{hit("Tree", "The ceremony features the lighting of the U.S. National Christmas Tree by "+
		"President George W. Bush. About 1.5 million people watched it on Dec. 4 in Washington, D.C. and online.")}
	got := MustAnswer(t, answer.Extractive{}, answer.Request{Query: "national christmas tree lighting", Sources: src}).Answer
	want := "The ceremony features the lighting of the U.S. National Christmas Tree by President George W. Bush [1]."
	if !strings.HasPrefix(got, want) {
		t.Errorf("answer = %q, want it to start with %q", got, want)
	}
	got = MustAnswer(t, answer.Extractive{}, answer.Request{Query: "how many people watched", Sources: src}).Answer
	if want := "About 1.5 million people watched it on Dec. 4 in Washington, D.C. and online [1]."; got != want {
		t.Errorf("answer = %q, want %q", got, want)
	}
}

// citations returns the answer's citation numbers, in order, joined by commas.
func citations(answer string) string {
	var cites []string
	for _, m := range citation.FindAllStringSubmatch(answer, -1) {
		cites = append(cites, m[1])
	}
	return strings.Join(cites, ",")
}
