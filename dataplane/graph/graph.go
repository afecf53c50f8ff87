// Package graph is a tenant's knowledge graph: entities, the relations between them with
// bi-temporal validity (in the style of Graphiti's edges), the extractors that turn chunk text into
// facts, and the contract of the stores that keep them.
//
// Two stores implement Store: graph/postgres (the default, in the tenant's own database, so the
// database itself is the tenant boundary) and graph/neo4j (one shared database for every tenant,
// every node and edge carrying group_id = tenant id). Both take the tenant from the context and fail
// closed without one. graph/graphtest holds the behaviour tests both must pass.
//
// Time has two axes, as in Graphiti: ValidAt/InvalidAt say when a fact held in the world;
// CreatedAt/ExpiredAt say when the store learned it and when it stopped believing it. A relation is
// current while both InvalidAt and ExpiredAt are nil.
package graph

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/ragplane/ragplane"
)

// Limits on what a store keeps and returns. Extractors cut their output to them; stores reject
// input over them with EINVALID.
const (
	// MaxNameLen is the longest entity name, in runes.
	MaxNameLen = 200
	// MaxKindLen is the longest entity kind, in runes.
	MaxKindLen = 40
	// MaxRelationLen is the longest relation name, in bytes (relation names are ASCII snake_case).
	MaxRelationLen = 64
	// MaxFactLen is the longest fact text, in runes.
	MaxFactLen = 2000
	// MaxFacts is the most facts one AddFacts call takes.
	MaxFacts = 1000
	// DefaultLimit is the number of rows a read returns when asked for limit <= 0.
	DefaultLimit = 20
	// MaxLimit is the most rows any read returns, EntityTimeline included.
	MaxLimit = 1000
)

// Entity is a node of the graph: something facts are about (an organisation, a person, a
// regulation, a standard, a place). Entities are identified by their normalised name
// (NormalizeName), so "Acme Corp." and "ACME corp" are one entity.
type Entity struct {
	// ID is a UUID.
	ID string `json:"id"`
	// Name is the display name: the spelling first seen.
	Name string `json:"name"`
	// Kind is a lower-case category such as "organization", "person", "regulation", "standard" or
	// "location"; empty when unknown.
	Kind string `json:"kind"`
	// Summary is a short description, empty until something writes one.
	Summary string `json:"summary"`
}

// Relation is an edge of the graph: Source relates to Target, as stated by Fact in one chunk.
type Relation struct {
	// ID is a UUID.
	ID string `json:"id"`
	// Source and Target are the display names of the two entities.
	Source string `json:"source"`
	Target string `json:"target"`
	// Relation is a snake_case name such as "acquired", "complies_with" or "ceo_of".
	Relation string `json:"relation"`
	// Fact is the sentence the relation was extracted from.
	Fact string `json:"fact"`
	// ChunkID and DocumentID say where the fact was found; ChunkID may be empty.
	ChunkID    string `json:"chunk_id"`
	DocumentID string `json:"document_id"`
	// ValidAt is when the fact started to hold, if known; InvalidAt when it stopped holding, set
	// when a later fact contradicted it.
	ValidAt   *time.Time `json:"valid_at,omitempty"`
	InvalidAt *time.Time `json:"invalid_at,omitempty"`
	// ExpiredAt is when the store stopped treating the relation as current.
	ExpiredAt *time.Time `json:"expired_at,omitempty"`
	// CreatedAt is when the store learned the fact.
	CreatedAt time.Time `json:"created_at"`
}

// Current reports whether the relation still holds as far as the store knows.
func (r Relation) Current() bool { return r.InvalidAt == nil && r.ExpiredAt == nil }

// Fact is what an extractor yields from a chunk: one relation between two named entities.
type Fact struct {
	// Source and Target are entity names as written; SourceKind and TargetKind their kinds, or
	// empty when the extractor cannot tell.
	Source     string `json:"source"`
	SourceKind string `json:"source_kind"`
	Target     string `json:"target"`
	TargetKind string `json:"target_kind"`
	// Relation is a snake_case relation name.
	Relation string `json:"relation"`
	// Fact is the sentence stating it.
	Fact string `json:"fact"`
	// ChunkID is the chunk it came from (a UUID), or empty.
	ChunkID string `json:"chunk_id"`
	// ValidAt is when the fact started to hold, if the text says.
	ValidAt *time.Time `json:"valid_at,omitempty"`
}

// Validate checks f against the limits a store enforces. It returns an EINVALID error naming the
// offending field ("source", "target", "relation", "fact", "chunk_id", "source_kind",
// "target_kind").
func (f Fact) Validate() error {
	for _, n := range []struct{ field, value string }{{"source", f.Source}, {"target", f.Target}} {
		if NormalizeName(n.value) == "" {
			return ragplane.FieldErrorf(n.field, "An entity name is required.")
		}
		if utf8.RuneCountInString(n.value) > MaxNameLen || !storable(n.value) {
			return ragplane.FieldErrorf(n.field, "An entity name is at most %d characters of UTF-8.", MaxNameLen)
		}
	}
	if NormalizeName(f.Source) == NormalizeName(f.Target) {
		return ragplane.FieldErrorf("target", "A fact relates two different entities.")
	}
	for _, k := range []struct{ field, value string }{{"source_kind", f.SourceKind}, {"target_kind", f.TargetKind}} {
		if utf8.RuneCountInString(k.value) > MaxKindLen || !storable(k.value) {
			return ragplane.FieldErrorf(k.field, "A kind is at most %d characters.", MaxKindLen)
		}
	}
	if !ValidRelation(f.Relation) {
		return ragplane.FieldErrorf("relation", "A relation is snake_case: a-z, 0-9 and _, starting with a letter, at most %d characters.", MaxRelationLen)
	}
	if strings.TrimSpace(f.Fact) == "" || utf8.RuneCountInString(f.Fact) > MaxFactLen || !storable(f.Fact) {
		return ragplane.FieldErrorf("fact", "The fact text is required and at most %d characters.", MaxFactLen)
	}
	if f.ChunkID != "" && !ValidID(f.ChunkID) {
		return ragplane.FieldErrorf("chunk_id", "A chunk id is a UUID.")
	}
	return nil
}

// ValidateFacts checks a call to Store.AddFacts before anything is written: the document id is a
// UUID, there are at most MaxFacts facts, and each passes Validate. Its EINVALID error names the
// field as "document_id", "facts" or "facts[i].field".
func ValidateFacts(documentID string, facts []Fact) error {
	if !ValidID(documentID) {
		return ragplane.FieldErrorf("document_id", "A document id is a UUID.")
	}
	if len(facts) > MaxFacts {
		return ragplane.FieldErrorf("facts", "At most %d facts per call.", MaxFacts)
	}
	for i, f := range facts {
		if err := f.Validate(); err != nil {
			return &ragplane.Error{Code: ragplane.EINVALID, Field: fmt.Sprintf("facts[%d].%s", i, ragplane.ErrorField(err)),
				Message: ragplane.ErrorMessage(err)}
		}
	}
	return nil
}

// FactEntities returns the distinct entities facts mention, sorted by normalised name, each with
// the first spelling seen (trimmed) and the first non-empty kind (lower-cased); IDs are empty.
// Stores upsert them in this order, so concurrent writers lock entities in one order.
func FactEntities(facts []Fact) []Entity {
	byNorm := map[string]int{}
	var ents []Entity
	var norms []string
	add := func(name, kind string) {
		n := NormalizeName(name)
		kind = strings.ToLower(strings.TrimSpace(kind))
		if i, ok := byNorm[n]; !ok {
			byNorm[n] = len(ents)
			ents = append(ents, Entity{Name: strings.TrimSpace(name), Kind: kind})
			norms = append(norms, n)
		} else if ents[i].Kind == "" {
			ents[i].Kind = kind
		}
	}
	for _, f := range facts {
		add(f.Source, f.SourceKind)
		add(f.Target, f.TargetKind)
	}
	order := make([]int, len(ents))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(norms[a], norms[b]) })
	out := make([]Entity, len(ents))
	for i, k := range order {
		out[i] = ents[k]
	}
	return out
}

// storable reports whether s is text every store can keep (PostgreSQL text cannot hold NUL).
func storable(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// ValidRelation reports whether s is a usable relation name: ASCII snake_case starting with a
// letter, at most MaxRelationLen bytes.
func ValidRelation(s string) bool {
	if s == "" || len(s) > MaxRelationLen || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// ValidID reports whether s is a UUID in its canonical text form.
func ValidID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// SingleValued reports whether a source has at most one current target for relation: a new fact
// "X relation B" invalidates a current "X relation A". The set is small on purpose, because a wrong
// entry silently retires true facts:
//
//   - headquartered_in: an organisation has one headquarters;
//   - reports_to: a person or team has one line manager;
//   - owned_by, subsidiary_of: one (majority) owner or parent at a time;
//   - ceo_of, cfo_of, coo_of, cto_of, cio_of, ciso_of: one chief role held by a person at a time.
//
// Anything else (acquired, uses, requires, complies_with, member_of, ...) accumulates.
func SingleValued(relation string) bool {
	switch relation {
	case "headquartered_in", "reports_to", "owned_by", "subsidiary_of",
		"ceo_of", "cfo_of", "coo_of", "cto_of", "cio_of", "ciso_of":
		return true
	}
	return false
}

// SingleHolder reports whether a target has at most one current source for relation: a new fact
// "B relation Y" invalidates a current "A relation Y". This is the other half of the classic
// example (Acme has one CEO at a time):
//
//   - ceo_of, cfo_of, coo_of, cto_of, cio_of, ciso_of, dpo_of: an organisation has one holder of
//     each chief role and one data protection officer;
//   - parent_company_of: a company has one parent.
func SingleHolder(relation string) bool {
	switch relation {
	case "ceo_of", "cfo_of", "coo_of", "cto_of", "cio_of", "ciso_of", "dpo_of", "parent_company_of":
		return true
	}
	return false
}

// ClampLimit maps limit <= 0 to DefaultLimit and caps it at MaxLimit.
func ClampLimit(limit int) int {
	if limit <= 0 {
		return DefaultLimit
	}
	return min(limit, MaxLimit)
}

// Store keeps one tenant's graph. The tenant is the one in the context
// (ragplane.TenantFromContext); every method fails with EUNAUTHORIZED when there is none. Names
// passed in are normalised with NormalizeName before they are compared.
type Store interface {
	// AddFacts records facts found in a document: it creates missing entities (keeping the first
	// display name, filling an empty kind), adds one relation per fact, and retires current
	// relations that a new fact contradicts (SingleValued, SingleHolder). Adding the same fact of
	// the same chunk again changes nothing. Errors: EINVALID (a bad document id or fact, naming
	// the field as "facts[i].field"), ENOTFOUND (the document or a chunk does not exist, where the
	// store checks), EUNAUTHORIZED.
	AddFacts(ctx context.Context, documentID string, facts []Fact) error
	// DeleteDocument removes the relations of a document and the entities left without any
	// relation. Relations it had retired stay retired. Deleting an unknown document is not an
	// error. Errors: EINVALID, EUNAUTHORIZED.
	DeleteDocument(ctx context.Context, documentID string) error
	// SearchEntities returns entities whose normalised name starts with, then contains, the
	// normalised q, matched literally; shorter names first, then by name.
	// Errors: EINVALID (q is empty once normalised), EUNAUTHORIZED.
	SearchEntities(ctx context.Context, q string, limit int) ([]Entity, error)
	// EntityRelations returns the current relations of the named entity, as source or target,
	// most recent first: by ValidAt, else CreatedAt, descending; ties by CreatedAt descending, then
	// relation, target and source names ascending. Errors: ENOTFOUND (no such entity),
	// EUNAUTHORIZED.
	EntityRelations(ctx context.Context, name string, limit int) ([]Relation, error)
	// EntityTimeline returns every relation of the named entity, retired ones included, ordered
	// by when they started to hold (ValidAt, else CreatedAt; ties as EntityRelations, ascending);
	// at most MaxLimit, the earliest.
	// Errors: ENOTFOUND (no such entity), EUNAUTHORIZED.
	EntityTimeline(ctx context.Context, name string) ([]Relation, error)
	// FactsForEntities returns the current relations touching any of the named entities, most
	// recent first. Unknown names are ignored, and at most MaxLimit names are looked up.
	// Errors: EUNAUTHORIZED.
	FactsForEntities(ctx context.Context, names []string, limit int) ([]Relation, error)
	// EntitiesInText returns known entities whose normalised name occurs in the text as whole
	// words (see CandidateNames), longest names first. Errors: EUNAUTHORIZED.
	EntitiesInText(ctx context.Context, text string, limit int) ([]Entity, error)
}
