package graph_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ragplane/ragplane/dataplane/graph"
)

// triple is the part of a Fact the extractor tests compare; kinds and the date are included
// because the stores rely on them.
type triple struct {
	Source, SourceKind, Relation, Target, TargetKind, ValidAt string
}

func triples(facts []graph.Fact) []triple {
	var out []triple
	for _, f := range facts {
		t := triple{Source: f.Source, SourceKind: f.SourceKind, Relation: f.Relation, Target: f.Target, TargetKind: f.TargetKind}
		if f.ValidAt != nil {
			t.ValidAt = f.ValidAt.Format(time.DateOnly)
		}
		out = append(out, t)
	}
	return out
}

func TestExtract(t *testing.T) {
	const org, person, std, reg, loc = "organization", "person", "standard", "regulation", "location"
	tests := []struct {
		name   string
		given  string
		expect []triple
	}{
		{
			name:   "acquisition with a full date",
			given:  "Acme Corp acquired Globex Inc. on March 3, 2024.",
			expect: []triple{{"Acme Corp", org, "acquired", "Globex Inc.", org, "2024-03-03"}},
		},
		{
			name:   "leading year",
			given:  "In 2023, Acme Corp acquired Globex.",
			expect: []triple{{"Acme Corp", org, "acquired", "Globex", org, "2023-01-01"}},
		},
		{
			name:   "passive is stored in the active direction",
			given:  "Globex was acquired by Acme Corp in 2021.",
			expect: []triple{{"Acme Corp", org, "acquired", "Globex", org, "2021-01-01"}},
		},
		{
			name:   "role with a long title",
			given:  "Jane Doe is the Chief Executive Officer of Acme Corp, effective 2024-07-01.",
			expect: []triple{{"Jane Doe", person, "ceo_of", "Acme Corp", org, "2024-07-01"}},
		},
		{
			name:  "appositive and main clause",
			given: "Jane Doe, the CEO of Acme Corp, reports to John Roe.",
			expect: []triple{
				{"Jane Doe", "", "reports_to", "John Roe", "", ""},
				{"Jane Doe", person, "ceo_of", "Acme Corp", org, ""},
			},
		},
		{
			name:   "parenthetical appositive",
			given:  "The processing is overseen by Maria Lopez (the Data Protection Officer of Globex GmbH).",
			expect: []triple{{"Maria Lopez", person, "dpo_of", "Globex GmbH", org, ""}},
		},
		{
			name:   "a single-valued relation takes one object",
			given:  "Acme Corp is headquartered in Berlin, Germany.",
			expect: []triple{{"Acme Corp", org, "headquartered_in", "Berlin", loc, ""}},
		},
		{
			name:  "object lists and as of",
			given: "As of January 2025, Acme uses AWS, Okta and Datadog.",
			expect: []triple{
				{"Acme", "", "uses", "AWS", "", "2025-01-01"},
				{"Acme", "", "uses", "Okta", "", "2025-01-01"},
				{"Acme", "", "uses", "Datadog", "", "2025-01-01"},
			},
		},
		{
			name:  "standards with numbers and an ISO date",
			given: "Effective 2024-07-01, Acme Corp complies with SOC 2 Type II and ISO 27001.",
			expect: []triple{
				{"Acme Corp", org, "complies_with", "SOC 2 Type II", std, "2024-07-01"},
				{"Acme Corp", org, "complies_with", "ISO 27001", std, "2024-07-01"},
			},
		},
		{
			name:   "regulation and an aside before the verb",
			given:  "Acme Corp, a Delaware corporation, is fully compliant with GDPR since 25 May 2018.",
			expect: nil, // "fully" sits inside the verb phrase: not a known shape
		},
		{
			name:   "aside before the verb",
			given:  "Acme Corp, a Delaware corporation, complies with GDPR since 25 May 2018.",
			expect: []triple{{"Acme Corp", org, "complies_with", "GDPR", reg, "2018-05-25"}},
		},
		{
			name:   "subsidiary with an aside",
			given:  "Initech, a software vendor, is a wholly owned subsidiary of Globex Holdings.",
			expect: []triple{{"Initech", "", "subsidiary_of", "Globex Holdings", org, ""}},
		},
		{
			name:   "owned by, with an end date that is not a start",
			given:  "Initech is owned by Globex until 2025.",
			expect: []triple{{"Initech", "", "owned_by", "Globex", "", ""}},
		},
		{
			name:   "replaced",
			given:  "Okta replaced OneLogin in 2022 as the identity provider.",
			expect: []triple{{"Okta", "", "replaced", "OneLogin", "", "2022-01-01"}},
		},
		{
			name:   "org name with of, act as regulation",
			given:  "Bank of America complies with the Gramm-Leach-Bliley Act.",
			expect: []triple{{"Bank of America", org, "complies_with", "Gramm-Leach-Bliley Act", reg, ""}},
		},
		{
			name:   "requires under a regulation",
			given:  "Under HIPAA, Acme Health requires MFA for remote access.",
			expect: []triple{{"Acme Health", "", "requires", "MFA", "", ""}},
		},
		{
			name:   "title before a name is dropped",
			given:  "Acme's CISO Priya Patel reports to John Roe.",
			expect: []triple{{"Priya Patel", "", "reports_to", "John Roe", "", ""}},
		},
		{
			name:   "the subject of a preposition is not the subject",
			given:  "The CEO of Acme Corp reports to the Board of Directors.",
			expect: nil,
		},
		{name: "negation", given: "Acme Corp does not use Azure.", expect: nil},
		{name: "modal", given: "Acme Corp may use Azure for backups.", expect: nil},
		{name: "future", given: "Acme Corp will acquire Globex.", expect: nil},
		{name: "no longer", given: "Acme Corp no longer uses Azure.", expect: nil},
		{name: "conditional", given: "If Acme uses AWS, Globex uses Azure.", expect: nil},
		{name: "question", given: "Does Acme use AWS?", expect: nil},
		{name: "former role", given: "John Roe was the former CEO of Acme Corp.", expect: nil},
		{name: "lower-case object", given: "Acme Corp requires encryption at rest.", expect: nil},
		{name: "pronoun subject", given: "It acquired Globex in 2020.", expect: nil},
		{name: "defined term", given: "The Company uses AWS.", expect: nil},
		{name: "sentence-initial plural", given: "Contractors use Okta.", expect: nil},
		{
			name:  "two clauses",
			given: "Acme uses AWS, Globex uses Azure.",
			expect: []triple{
				{"Acme", "", "uses", "AWS", "", ""},
				{"Globex", "", "uses", "Azure", "", ""},
			},
		},
		{
			name:  "sentences, bullets and abbreviations",
			given: "Vendor overview\n\n- Acme Corp. uses Snowflake.\n- Globex Ltd. The company supports SCIM.\nU.S. Bank acquired Initech on Jan. 5, 2022. It is a bank.",
			expect: []triple{
				{"Acme Corp.", org, "uses", "Snowflake", "", ""},
				{"U.S. Bank", org, "acquired", "Initech", org, "2022-01-05"},
			},
		},
		{
			name:   "repeated fact in one chunk is kept once",
			given:  "Acme uses Okta. Acme uses Okta.",
			expect: []triple{{"Acme", "", "uses", "Okta", "", ""}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := triples(graph.Extract("8a1f0b9e-5d0b-4c55-9f5c-0e6f2f6a7b10", tt.given))
			if !reflect.DeepEqual(got, tt.expect) {
				t.Errorf("Extract(%q)\n got: %+v\nwant: %+v", tt.given, got, tt.expect)
			}
		})
	}
}

func TestExtractFactTextAndChunk(t *testing.T) {
	const chunk = "8a1f0b9e-5d0b-4c55-9f5c-0e6f2f6a7b10"
	facts := graph.Extract(chunk, "Our policy is strict.\nIn 2023, Acme Corp\nacquired   Globex. Nothing else.")
	if len(facts) != 1 {
		t.Fatalf("got %d facts, want 1: %+v", len(facts), facts)
	}
	f := facts[0]
	if f.ChunkID != chunk || f.Fact != "In 2023, Acme Corp acquired Globex." {
		t.Fatalf("chunk %q, fact %q", f.ChunkID, f.Fact)
	}
	if err := f.Validate(); err != nil {
		t.Fatalf("an extracted fact does not validate: %v", err)
	}
}

func TestExtractIsDeterministicAndBounded(t *testing.T) {
	text := strings.Repeat("Acme Corp uses AWS, Okta and Datadog as of March 2024. Jane Doe is the CEO of Acme Corp. ", 50)
	first := graph.Extract("", text)
	for range 5 {
		if again := graph.Extract("", text); !reflect.DeepEqual(first, again) {
			t.Fatal("Extract is not deterministic")
		}
	}
	if len(first) != 4 {
		t.Fatalf("got %d facts, want 4 after de-duplication", len(first))
	}
	// A 400 KB run-on sentence full of dates and verbs finishes (its cost is measured by
	// BenchmarkExtractRunOn, not asserted with a timer: chunks are ~1 KB in practice).
	graph.Extract("", strings.Repeat("Acme uses Okta until 2020 and ", 16000))
	long := "Acme uses Okta " + strings.Repeat("and more ", 400) + "."
	for _, f := range graph.Extract("", long) {
		if err := f.Validate(); err != nil {
			t.Fatalf("fact over the limits: %v", err)
		}
	}
}

func TestExtractDates(t *testing.T) {
	tests := []struct {
		name   string
		given  string
		expect string
	}{
		{name: "on month day year", given: "Acme acquired Globex on March 3, 2024.", expect: "2024-03-03"},
		{name: "day month year", given: "Acme acquired Globex on 3rd March 2024.", expect: "2024-03-03"},
		{name: "abbreviated month", given: "Acme acquired Globex on Sept. 9, 2021.", expect: "2021-09-09"},
		{name: "as of month", given: "As of January 2025, Acme uses Okta.", expect: "2025-01-01"},
		{name: "iso", given: "Acme uses Okta effective 2024-07-01.", expect: "2024-07-01"},
		{name: "since year", given: "Acme has used Okta since 2019.", expect: "2019-01-01"},
		{name: "in year", given: "Acme acquired Globex in 2019.", expect: "2019-01-01"},
		{name: "until is an end", given: "Acme uses Okta until December 2025.", expect: ""},
		{name: "from .. to", given: "From 2020 to 2023, Acme used Okta.", expect: "2020-01-01"},
		{name: "impossible date", given: "Acme acquired Globex on February 30, 2024.", expect: ""},
		{name: "standard number is no year", given: "Acme complies with ISO 27001:2022.", expect: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			facts := graph.Extract("", tt.given)
			got := ""
			if len(facts) > 0 && facts[0].ValidAt != nil {
				got = facts[0].ValidAt.Format(time.DateOnly)
			}
			if tt.expect != "" && len(facts) == 0 {
				t.Fatalf("no fact in %q", tt.given)
			}
			if got != tt.expect {
				t.Errorf("ValidAt of %q = %q, want %q", tt.given, got, tt.expect)
			}
		})
	}
}

func TestNormalizeName(t *testing.T) {
	tests := []struct{ given, expect string }{
		{"Acme Corp", "acme corp"},
		{"  ACME   corp. ", "acme corp"},
		{"Acme Corp.'s", "acme corp"},
		{"“Acme, Inc.”", "acme inc"},
		{"AT&T", "at&t"},
		{"C#", "c#"},
		{"SOC 2 Type II", "soc 2 type ii"},
		{"U.S. Bank", "u.s bank"},
		{"Acme\u200b Corp\x00", "acme corp"},
		{"...", ""},
		{"Müller GmbH", "müller gmbh"},
	}
	for _, tt := range tests {
		if got := graph.NormalizeName(tt.given); got != tt.expect {
			t.Errorf("NormalizeName(%q) = %q, want %q", tt.given, got, tt.expect)
		}
	}
}

func TestCandidateNames(t *testing.T) {
	got := graph.CandidateNames("Does Acme Corp's CISO comply with SOC 2?")
	want := map[string]bool{"acme corp": true, "soc 2": true, "acme": true, "ciso": true, "does acme corp ciso comply with soc 2": true}
	for _, c := range got {
		delete(want, c)
	}
	if len(want) != 0 {
		t.Fatalf("missing candidates %v in %v", want, got)
	}
	long := graph.CandidateNames(strings.Repeat("word ", 5000))
	if len(long) != graph.MaxNameWords {
		t.Fatalf("duplicates kept: %d candidates", len(long))
	}
	many := graph.CandidateNames(strings.Repeat("a b c d e f g h i j ", 500))
	if len(many) > 1000*graph.MaxNameWords {
		t.Fatalf("%d candidates, more than the cap", len(many))
	}
}

func TestFactValidate(t *testing.T) {
	valid := graph.Fact{Source: "Acme", Target: "Globex", Relation: "acquired", Fact: "Acme acquired Globex."}
	tests := []struct {
		name   string
		when   func(*graph.Fact)
		expect string // the field named, "" for valid
	}{
		{name: "valid", when: func(*graph.Fact) {}},
		{name: "empty source", when: func(f *graph.Fact) { f.Source = " ,. " }, expect: "source"},
		{name: "long target", when: func(f *graph.Fact) { f.Target = strings.Repeat("x", graph.MaxNameLen+1) }, expect: "target"},
		{name: "self relation", when: func(f *graph.Fact) { f.Target = "ACME." }, expect: "target"},
		{name: "relation not snake case", when: func(f *graph.Fact) { f.Relation = "Acquired By" }, expect: "relation"},
		{name: "relation injection", when: func(f *graph.Fact) { f.Relation = "x]->(n) DETACH DELETE n //" }, expect: "relation"},
		{name: "no fact text", when: func(f *graph.Fact) { f.Fact = "" }, expect: "fact"},
		{name: "NUL in fact", when: func(f *graph.Fact) { f.Fact = "a\x00b" }, expect: "fact"},
		{name: "chunk not a uuid", when: func(f *graph.Fact) { f.ChunkID = "chunk-1" }, expect: "chunk_id"},
		{name: "kind too long", when: func(f *graph.Fact) { f.SourceKind = strings.Repeat("k", graph.MaxKindLen+1) }, expect: "source_kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := valid
			tt.when(&f)
			err := f.Validate()
			if tt.expect == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			mustField(t, err, tt.expect)
		})
	}
}

func FuzzExtract(f *testing.F) {
	for _, s := range []string{
		"Acme Corp acquired Globex Inc. on March 3, 2024.",
		"Jane Doe, the CEO of Acme Corp, reports to John Roe.",
		"Maria Lopez (the Data Protection Officer of Globex GmbH) uses AT&T.",
		"U.S. Bank acquired Initech on Jan. 5, 2022. It is a bank.",
		"- A.\n\n1) B's C is the D of E, F and G, effective 2024-07-01",
		"B(\xa1)use B0\x00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		for _, fact := range graph.Extract("", text) {
			if err := fact.Validate(); err != nil {
				t.Fatalf("Extract(%q) gave an invalid fact %+v: %v", text, fact, err)
			}
		}
	})
}

// BenchmarkExtractRunOn measures extraction of a 400 KB run-on sentence, the worst case.
func BenchmarkExtractRunOn(b *testing.B) {
	text := strings.Repeat("Acme uses Okta until 2020 and ", 16000)
	for b.Loop() {
		graph.Extract("", text)
	}
}

// A Markdown heading is not a statement: "## Acme acquires Globex" over a section states no fact;
// a list item does.
func TestExtractSkipsHeadings(t *testing.T) {
	facts := graph.Extract("c1", "## Acme acquires Globex\n\nThe board met on Monday.\n\n- Initech uses Stripe")
	if len(facts) != 1 || facts[0].Source != "Initech" || facts[0].Target != "Stripe" {
		t.Fatalf("facts %+v, want one: Initech uses Stripe", facts)
	}
}
