// Package graphtest holds the behaviour tests every graph.Store must pass, so that the PostgreSQL
// and Neo4j stores keep the same semantics. A store's own tests call Run with a Harness.
package graphtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/graph"
)

// Harness is a store under test.
type Harness struct {
	// Store is the store, with an empty graph for the tenant in Ctx.
	Store graph.Store
	// Ctx carries the tenant the store acts for.
	Ctx context.Context
	// NewDocument makes a document with n chunks where the store needs them to exist (the tenant
	// database's documents and chunks tables) and returns their ids.
	NewDocument func(tb testing.TB, chunks int) (documentID string, chunkIDs []string)
}

// Run runs the behaviour tests, each on a fresh Harness from newHarness.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	tests := []struct {
		name string
		run  func(t *testing.T, h Harness)
	}{
		{"FailsClosedWithoutTenant", testFailsClosed},
		{"AddFactsAndRead", testAddFactsAndRead},
		{"ValidatesInput", testValidatesInput},
		{"InvalidatesSingleValuedBySource", testInvalidatesBySource},
		{"InvalidatesSingleHolderByTarget", testInvalidatesByTarget},
		{"OlderFactArrivesRetired", testOlderFactArrivesRetired},
		{"UndatedFactRetiresAtNow", testUndatedFactRetiresAtNow},
		{"MultiValuedAccumulates", testMultiValuedAccumulates},
		{"AddFactsIsIdempotent", testAddFactsIsIdempotent},
		{"DeleteDocument", testDeleteDocument},
		{"SearchEntities", testSearchEntities},
		{"SearchEscapesWildcards", testSearchEscapesWildcards},
		{"FactsForEntities", testFactsForEntities},
		{"EntitiesInText", testEntitiesInText},
		{"ExtractedFactsRoundTrip", testExtractedFactsRoundTrip},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newHarness(t)) })
	}
}

// MustAddFacts adds facts and fails the test on error.
func MustAddFacts(tb testing.TB, h Harness, documentID string, facts ...graph.Fact) {
	tb.Helper()
	if err := h.Store.AddFacts(h.Ctx, documentID, facts); err != nil {
		tb.Fatalf("AddFacts: %v", err)
	}
}

// MustCode fails unless err carries code.
func MustCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := ragplane.ErrorCode(err); got != code {
		tb.Fatalf("error code %q, want %q (err: %v)", got, code, err)
	}
}

// Date returns a pointer to midnight UTC of a "2006-01-02" date.
func Date(s string) *time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return &t
}

// Fact builds a fact whose text states it.
func Fact(source, relation, target, chunkID string, validAt *time.Time) graph.Fact {
	return graph.Fact{
		Source: source, Target: target, Relation: relation, ChunkID: chunkID, ValidAt: validAt,
		Fact: fmt.Sprintf("%s %s %s.", source, strings.ReplaceAll(relation, "_", " "), target),
	}
}

// Edges renders relations as "source relation target" strings, with "(retired)" after those
// that are not current.
func Edges(rels []graph.Relation) []string {
	var out []string
	for _, r := range rels {
		s := r.Source + " " + r.Relation + " " + r.Target
		if !r.Current() {
			s += " (retired)"
		}
		out = append(out, s)
	}
	return out
}

func mustEdges(tb testing.TB, what string, rels []graph.Relation, err error, want ...string) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
	if got := Edges(rels); !slices.Equal(got, want) {
		tb.Fatalf("%s\n got: %q\nwant: %q", what, got, want)
	}
}

func mustNames(tb testing.TB, what string, ents []graph.Entity, err error, want ...string) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name)
	}
	if !slices.Equal(got, want) {
		tb.Fatalf("%s\n got: %q\nwant: %q", what, got, want)
	}
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

func testFailsClosed(t *testing.T, h Harness) {
	doc, chunks := h.NewDocument(t, 1)
	anon := context.Background()
	f := Fact("Acme Corp", "uses", "AWS", chunks[0], nil)
	MustCode(t, h.Store.AddFacts(anon, doc, []graph.Fact{f}), ragplane.EUNAUTHORIZED)
	MustCode(t, h.Store.DeleteDocument(anon, doc), ragplane.EUNAUTHORIZED)
	_, err := h.Store.SearchEntities(anon, "acme", 10)
	MustCode(t, err, ragplane.EUNAUTHORIZED)
	_, err = h.Store.EntityRelations(anon, "Acme Corp", 10)
	MustCode(t, err, ragplane.EUNAUTHORIZED)
	_, err = h.Store.EntityTimeline(anon, "Acme Corp")
	MustCode(t, err, ragplane.EUNAUTHORIZED)
	_, err = h.Store.FactsForEntities(anon, []string{"Acme Corp"}, 10)
	MustCode(t, err, ragplane.EUNAUTHORIZED)
	_, err = h.Store.EntitiesInText(anon, "Acme Corp", 10)
	MustCode(t, err, ragplane.EUNAUTHORIZED)
	// An identity without a tenant is no tenant.
	empty := ragplane.NewContextWithIdentity(anon, ragplane.Identity{Subject: "someone"})
	MustCode(t, h.Store.AddFacts(empty, doc, []graph.Fact{f}), ragplane.EUNAUTHORIZED)
	// Nothing was written.
	ents, err := h.Store.SearchEntities(h.Ctx, "acme", 10)
	mustNames(t, "entities after refused writes", ents, err)
}

func testAddFactsAndRead(t *testing.T, h Harness) {
	doc, chunks := h.NewDocument(t, 2)
	first := graph.Fact{Source: "Acme Corp.", Target: "Globex", Relation: "acquired", ChunkID: chunks[0],
		Fact: "Acme Corp. acquired Globex on March 3, 2024.", ValidAt: Date("2024-03-03"), TargetKind: "organization"}
	second := graph.Fact{Source: "ACME corp", SourceKind: "organization", Target: "GDPR", TargetKind: "regulation",
		Relation: "complies_with", ChunkID: chunks[1], Fact: "ACME corp complies with GDPR."}
	MustAddFacts(t, h, doc, first, second)

	rels, err := h.Store.EntityRelations(h.Ctx, "  acme CORP ", 10)
	// Most recent first: the undated fact was created now, after March 2024.
	mustEdges(t, "relations of Acme", rels, err, "Acme Corp. complies_with GDPR", "Acme Corp. acquired Globex")
	r := rels[1]
	if r.Fact != first.Fact || r.ChunkID != chunks[0] || r.DocumentID != doc || !sameTime(r.ValidAt, first.ValidAt) ||
		r.InvalidAt != nil || r.ExpiredAt != nil || r.CreatedAt.IsZero() || !graph.ValidID(r.ID) {
		t.Fatalf("relation read back wrong: %+v", r)
	}
	// The first display name stays; an empty kind is filled by a later fact, a set one is kept.
	ents, err := h.Store.SearchEntities(h.Ctx, "acme", 10)
	mustNames(t, "search acme", ents, err, "Acme Corp.")
	if ents[0].Kind != "organization" || !graph.ValidID(ents[0].ID) {
		t.Fatalf("entity %+v, want kind organization and a UUID", ents[0])
	}
	MustAddFacts(t, h, doc, graph.Fact{Source: "Globex", SourceKind: "person", Target: "Initech", Relation: "owns", Fact: "Globex owns Initech."})
	ents, err = h.Store.SearchEntities(h.Ctx, "globex", 10)
	mustNames(t, "search globex", ents, err, "Globex")
	if ents[0].Kind != "organization" {
		t.Fatalf("kind %q: a set kind must not be overwritten", ents[0].Kind)
	}
	// A target sees the relation too.
	rels, err = h.Store.EntityRelations(h.Ctx, "gdpr", 10)
	mustEdges(t, "relations of GDPR", rels, err, "Acme Corp. complies_with GDPR")
	rels, err = h.Store.EntityRelations(h.Ctx, "Acme Corp", 1)
	mustEdges(t, "limit 1", rels, err, "Acme Corp. complies_with GDPR")

	_, err = h.Store.EntityRelations(h.Ctx, "Umbrella", 10)
	MustCode(t, err, ragplane.ENOTFOUND)
	_, err = h.Store.EntityTimeline(h.Ctx, "Umbrella")
	MustCode(t, err, ragplane.ENOTFOUND)
	// Adding nothing is fine.
	MustAddFacts(t, h, doc)
}

func testValidatesInput(t *testing.T, h Harness) {
	doc, chunks := h.NewDocument(t, 1)
	good := Fact("Acme", "uses", "AWS", chunks[0], nil)
	MustCode(t, h.Store.AddFacts(h.Ctx, "not-a-uuid", []graph.Fact{good}), ragplane.EINVALID)
	MustCode(t, h.Store.DeleteDocument(h.Ctx, "not-a-uuid"), ragplane.EINVALID)
	bad := good
	bad.Relation = "USES ) DETACH DELETE n"
	err := h.Store.AddFacts(h.Ctx, doc, []graph.Fact{good, bad})
	MustCode(t, err, ragplane.EINVALID)
	if f := ragplane.ErrorField(err); f != "facts[1].relation" {
		t.Fatalf("field %q, want facts[1].relation", f)
	}
	// Nothing of a refused call was written.
	ents, err := h.Store.SearchEntities(h.Ctx, "acme", 10)
	mustNames(t, "entities after a refused call", ents, err)
	_, err = h.Store.SearchEntities(h.Ctx, " ,. ", 10)
	MustCode(t, err, ragplane.EINVALID)
	too := make([]graph.Fact, graph.MaxFacts+1)
	MustCode(t, h.Store.AddFacts(h.Ctx, doc, too), ragplane.EINVALID)
}

// Acme moves its headquarters: a source has one current target.
func testInvalidatesBySource(t *testing.T, h Harness) {
	doc1, c1 := h.NewDocument(t, 1)
	doc2, c2 := h.NewDocument(t, 1)
	MustAddFacts(t, h, doc1, Fact("Acme Corp", "headquartered_in", "Berlin", c1[0], Date("2019-05-01")))
	MustAddFacts(t, h, doc2, Fact("Acme Corp", "headquartered_in", "Munich", c2[0], Date("2023-01-01")))

	rels, err := h.Store.EntityRelations(h.Ctx, "Acme Corp", 10)
	mustEdges(t, "current relations", rels, err, "Acme Corp headquartered_in Munich")
	tl, err := h.Store.EntityTimeline(h.Ctx, "acme corp")
	mustEdges(t, "timeline", tl, err, "Acme Corp headquartered_in Berlin (retired)", "Acme Corp headquartered_in Munich")
	old := tl[0]
	if !sameTime(old.InvalidAt, Date("2023-01-01")) || old.ExpiredAt == nil || !sameTime(old.ValidAt, Date("2019-05-01")) {
		t.Fatalf("retired relation %+v: invalid_at must be the new fact's valid_at, expired_at set", old)
	}
	if time.Since(*old.ExpiredAt) > time.Hour || time.Until(*old.ExpiredAt) > time.Hour {
		t.Fatalf("expired_at %v is not now", old.ExpiredAt)
	}
	// Berlin has no current relation left but keeps its history.
	rels, err = h.Store.EntityRelations(h.Ctx, "Berlin", 10)
	mustEdges(t, "relations of Berlin", rels, err)
	tl, err = h.Store.EntityTimeline(h.Ctx, "Berlin")
	mustEdges(t, "timeline of Berlin", tl, err, "Acme Corp headquartered_in Berlin (retired)")
	// Another source is not affected.
	MustAddFacts(t, h, doc2, Fact("Globex", "headquartered_in", "Berlin", c2[0], Date("2024-01-01")))
	rels, err = h.Store.EntityRelations(h.Ctx, "Acme Corp", 10)
	mustEdges(t, "after Globex moved in", rels, err, "Acme Corp headquartered_in Munich")
}

// Acme gets a new CEO: a target has one current holder of a chief role.
func testInvalidatesByTarget(t *testing.T, h Harness) {
	doc, chunks := h.NewDocument(t, 2)
	MustAddFacts(t, h, doc, Fact("Jane Doe", "ceo_of", "Acme Corp", chunks[0], Date("2020-02-01")))
	MustAddFacts(t, h, doc, Fact("John Roe", "ceo_of", "Acme Corp", chunks[1], Date("2024-06-01")))
	rels, err := h.Store.EntityRelations(h.Ctx, "Acme Corp", 10)
	mustEdges(t, "current CEO", rels, err, "John Roe ceo_of Acme Corp")
	tl, err := h.Store.EntityTimeline(h.Ctx, "Acme Corp")
	mustEdges(t, "CEO timeline", tl, err, "Jane Doe ceo_of Acme Corp (retired)", "John Roe ceo_of Acme Corp")
	if !sameTime(tl[0].InvalidAt, Date("2024-06-01")) {
		t.Fatalf("invalid_at %v, want 2024-06-01", tl[0].InvalidAt)
	}
	// And a person holds one CEO role (ceo_of is single-valued by source too).
	MustAddFacts(t, h, doc, Fact("John Roe", "ceo_of", "Globex", chunks[1], Date("2025-01-01")))
	rels, err = h.Store.EntityRelations(h.Ctx, "John Roe", 10)
	mustEdges(t, "John's roles", rels, err, "John Roe ceo_of Globex")
}

// Documents arrive out of order: a fact older than the current one is recorded as already
// retired, and the current one stays (Graphiti's resolve_edge_contradictions).
func testOlderFactArrivesRetired(t *testing.T, h Harness) {
	doc, chunks := h.NewDocument(t, 2)
	MustAddFacts(t, h, doc, Fact("John Roe", "ceo_of", "Acme Corp", chunks[1], Date("2024-06-01")))
	MustAddFacts(t, h, doc, Fact("Jane Doe", "ceo_of", "Acme Corp", chunks[0], Date("2020-02-01")))
	rels, err := h.Store.EntityRelations(h.Ctx, "Acme Corp", 10)
	mustEdges(t, "current CEO", rels, err, "John Roe ceo_of Acme Corp")
	tl, err := h.Store.EntityTimeline(h.Ctx, "Acme Corp")
	mustEdges(t, "timeline", tl, err, "Jane Doe ceo_of Acme Corp (retired)", "John Roe ceo_of Acme Corp")
	if !sameTime(tl[0].InvalidAt, Date("2024-06-01")) || tl[0].ExpiredAt == nil {
		t.Fatalf("older fact %+v: want invalid_at 2024-06-01 and expired", tl[0])
	}
	// Both in one call, in either order, give the same result.
	MustAddFacts(t, h, doc,
		Fact("Acme Corp", "headquartered_in", "Munich", chunks[0], Date("2023-01-01")),
		Fact("Acme Corp", "headquartered_in", "Berlin", chunks[0], Date("2019-01-01")))
	rels, err = h.Store.EntityRelations(h.Ctx, "Munich", 10)
	mustEdges(t, "headquarters", rels, err, "Acme Corp headquartered_in Munich")
}

func testUndatedFactRetiresAtNow(t *testing.T, h Harness) {
	doc, chunks := h.NewDocument(t, 1)
	MustAddFacts(t, h, doc, Fact("Priya Patel", "reports_to", "John Roe", chunks[0], nil))
	before := time.Now().Add(-time.Hour)
	MustAddFacts(t, h, doc, Fact("Priya Patel", "reports_to", "Jane Doe", chunks[0], nil))
	tl, err := h.Store.EntityTimeline(h.Ctx, "Priya Patel")
	mustEdges(t, "timeline", tl, err, "Priya Patel reports_to John Roe (retired)", "Priya Patel reports_to Jane Doe")
	if tl[0].InvalidAt == nil || tl[0].InvalidAt.Before(before) {
		t.Fatalf("invalid_at %v, want about now", tl[0].InvalidAt)
	}
}

func testMultiValuedAccumulates(t *testing.T, h Harness) {
	doc, chunks := h.NewDocument(t, 1)
	MustAddFacts(t, h, doc,
		Fact("Acme", "uses", "AWS", chunks[0], Date("2019-01-01")),
		Fact("Acme", "uses", "Okta", chunks[0], Date("2023-01-01")),
		Fact("Acme", "complies_with", "SOC 2", chunks[0], Date("2021-01-01")))
	rels, err := h.Store.EntityRelations(h.Ctx, "Acme", 10)
	mustEdges(t, "current relations, most recent first", rels, err, "Acme uses Okta", "Acme complies_with SOC 2", "Acme uses AWS")
	tl, err := h.Store.EntityTimeline(h.Ctx, "Acme")
	mustEdges(t, "timeline, earliest first", tl, err, "Acme uses AWS", "Acme complies_with SOC 2", "Acme uses Okta")
}

func testAddFactsIsIdempotent(t *testing.T, h Harness) {
	doc1, c1 := h.NewDocument(t, 1)
	doc2, c2 := h.NewDocument(t, 1)
	jane := Fact("Jane Doe", "ceo_of", "Acme Corp", c1[0], nil)
	john := Fact("John Roe", "ceo_of", "Acme Corp", c2[0], nil)
	MustAddFacts(t, h, doc1, jane, jane)
	MustAddFacts(t, h, doc2, john)
	// Re-adding document 1 (a retried ingestion) neither duplicates Jane nor retires John.
	MustAddFacts(t, h, doc1, jane)
	tl, err := h.Store.EntityTimeline(h.Ctx, "Acme Corp")
	mustEdges(t, "timeline", tl, err, "Jane Doe ceo_of Acme Corp (retired)", "John Roe ceo_of Acme Corp")
	// The same fact from another document is more evidence, kept separately.
	MustAddFacts(t, h, doc1, Fact("Acme Corp", "uses", "AWS", c1[0], nil))
	MustAddFacts(t, h, doc2, Fact("Acme Corp", "uses", "AWS", c2[0], nil))
	facts, err := h.Store.FactsForEntities(h.Ctx, []string{"AWS"}, 10)
	mustEdges(t, "AWS facts", facts, err, "Acme Corp uses AWS", "Acme Corp uses AWS")
}

func testDeleteDocument(t *testing.T, h Harness) {
	doc1, c1 := h.NewDocument(t, 1)
	doc2, c2 := h.NewDocument(t, 1)
	MustAddFacts(t, h, doc1,
		Fact("Acme Corp", "uses", "AWS", c1[0], nil),
		Fact("Acme Corp", "acquired", "Globex", c1[0], nil))
	MustAddFacts(t, h, doc2, Fact("Initech", "uses", "AWS", c2[0], nil))
	if err := h.Store.DeleteDocument(h.Ctx, doc1); err != nil {
		t.Fatal(err)
	}
	// Acme and Globex had no other relation; AWS is still used by Initech.
	for _, gone := range []string{"Acme Corp", "Globex"} {
		_, err := h.Store.EntityRelations(h.Ctx, gone, 10)
		MustCode(t, err, ragplane.ENOTFOUND)
	}
	rels, err := h.Store.EntityRelations(h.Ctx, "AWS", 10)
	mustEdges(t, "AWS after delete", rels, err, "Initech uses AWS")
	// Deleting again, or an unknown document, is fine.
	if err := h.Store.DeleteDocument(h.Ctx, doc1); err != nil {
		t.Fatal(err)
	}
	// The entities come back with new facts.
	MustAddFacts(t, h, doc2, Fact("Acme Corp", "uses", "AWS", c2[0], nil))
	rels, err = h.Store.EntityRelations(h.Ctx, "Acme Corp", 10)
	mustEdges(t, "Acme again", rels, err, "Acme Corp uses AWS")
}

func testSearchEntities(t *testing.T, h Harness) {
	doc, chunks := h.NewDocument(t, 1)
	MustAddFacts(t, h, doc,
		Fact("Acme", "owns", "Acme Holdings", chunks[0], nil),
		Fact("Globex Acme Services", "uses", "Acme Cloud Platform", chunks[0], nil),
		Fact("Initech", "uses", "AWS", chunks[0], nil))
	ents, err := h.Store.SearchEntities(h.Ctx, "ACME", 10)
	// Prefix matches first, shortest first; then names that contain it.
	mustNames(t, "search acme", ents, err, "Acme", "Acme Holdings", "Acme Cloud Platform", "Globex Acme Services")
	ents, err = h.Store.SearchEntities(h.Ctx, "acme", 2)
	mustNames(t, "limit 2", ents, err, "Acme", "Acme Holdings")
	ents, err = h.Store.SearchEntities(h.Ctx, "tech", 10)
	mustNames(t, "contains", ents, err, "Initech")
	ents, err = h.Store.SearchEntities(h.Ctx, "umbrella", 10)
	mustNames(t, "no match", ents, err)
}

func testSearchEscapesWildcards(t *testing.T, h Harness) {
	doc, chunks := h.NewDocument(t, 1)
	MustAddFacts(t, h, doc,
		Fact("100% Compliance Ltd", "uses", "a_b Tool", chunks[0], nil),
		Fact("100x Compliance Ltd", "uses", "axb Tool", chunks[0], nil),
		Fact(`Back\slash Labs`, "uses", "Tool", chunks[0], nil))
	cases := []struct{ q, want string }{
		{"100%", "100% Compliance Ltd"},
		{"%", "100% Compliance Ltd"},
		{"a_b", "a_b Tool"},
		{`k\s`, `Back\slash Labs`},
	}
	for _, c := range cases {
		ents, err := h.Store.SearchEntities(h.Ctx, c.q, 10)
		mustNames(t, "search "+c.q, ents, err, c.want)
	}
	ents, err := h.Store.SearchEntities(h.Ctx, "%%%", 10)
	mustNames(t, "search %%%", ents, err)
}

func testFactsForEntities(t *testing.T, h Harness) {
	doc, chunks := h.NewDocument(t, 1)
	MustAddFacts(t, h, doc,
		Fact("Acme", "uses", "AWS", chunks[0], Date("2019-01-01")),
		Fact("Globex", "uses", "AWS", chunks[0], Date("2021-01-01")),
		Fact("Acme", "headquartered_in", "Berlin", chunks[0], Date("2018-01-01")),
		Fact("Acme", "headquartered_in", "Munich", chunks[0], Date("2022-01-01")),
		Fact("Initech", "uses", "Okta", chunks[0], Date("2024-01-01")))
	rels, err := h.Store.FactsForEntities(h.Ctx, []string{" acme ", "AWS", "nobody", "", "Acme"}, 10)
	mustEdges(t, "facts of Acme and AWS, current, most recent first", rels, err,
		"Acme headquartered_in Munich", "Globex uses AWS", "Acme uses AWS")
	rels, err = h.Store.FactsForEntities(h.Ctx, []string{"acme", "aws"}, 2)
	mustEdges(t, "limit", rels, err, "Acme headquartered_in Munich", "Globex uses AWS")
	rels, err = h.Store.FactsForEntities(h.Ctx, nil, 10)
	mustEdges(t, "no names", rels, err)
}

func testEntitiesInText(t *testing.T, h Harness) {
	doc, chunks := h.NewDocument(t, 1)
	MustAddFacts(t, h, doc,
		Fact("Acme Corp.", "complies_with", "GDPR", chunks[0], nil),
		Fact("Acme", "owns", "SOC 2 Report Portal", chunks[0], nil),
		Fact("Initech", "uses", "AT&T", chunks[0], nil))
	ents, err := h.Store.EntitiesInText(h.Ctx, "Does ACME Corp's platform comply with the gdpr? Ask at&t.", 10)
	// Longest names first, then by name; "acme" is found inside "acme corp"; Initech is not mentioned.
	mustNames(t, "entities in text", ents, err, "Acme Corp.", "Acme", "AT&T", "GDPR")
	ents, err = h.Store.EntitiesInText(h.Ctx, "Acmex and Initechnology are other companies.", 10)
	mustNames(t, "whole words only", ents, err)
	ents, err = h.Store.EntitiesInText(h.Ctx, "acme corp gdpr", 1)
	mustNames(t, "limit", ents, err, "Acme Corp.")
	ents, err = h.Store.EntitiesInText(h.Ctx, "", 10)
	mustNames(t, "empty text", ents, err)
}

// The rule-based extractor's output goes into the store as is.
func testExtractedFactsRoundTrip(t *testing.T, h Harness) {
	doc, chunks := h.NewDocument(t, 2)
	MustAddFacts(t, h, doc, graph.Extract(chunks[0],
		"Jane Doe is the CEO of Acme Corp, effective 2020-02-01. Acme Corp complies with SOC 2 Type II and GDPR.")...)
	MustAddFacts(t, h, doc, graph.Extract(chunks[1],
		"John Roe, the CEO of Acme Corp, reports to the Board of Directors as of March 1, 2024.")...)
	rels, err := h.Store.EntityRelations(h.Ctx, "Acme Corp", 10)
	// The undated facts were learned now, after 2024; equal times are ordered by relation, target.
	mustEdges(t, "Acme", rels, err, "Acme Corp complies_with GDPR", "Acme Corp complies_with SOC 2 Type II", "John Roe ceo_of Acme Corp")
	tl, err := h.Store.EntityTimeline(h.Ctx, "Jane Doe")
	mustEdges(t, "Jane", tl, err, "Jane Doe ceo_of Acme Corp (retired)")
	rels, err = h.Store.EntityRelations(h.Ctx, "Board of Directors", 10)
	mustEdges(t, "Board", rels, err, "John Roe reports_to Board of Directors")
	ents, err := h.Store.EntitiesInText(h.Ctx, "Who is the CEO of Acme Corp?", 10)
	mustNames(t, "entities in a question", ents, err, "Acme Corp")
	if ents[0].Kind != "organization" {
		t.Fatalf("kind %q", ents[0].Kind)
	}
}
