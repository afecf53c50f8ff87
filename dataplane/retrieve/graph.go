package retrieve

import (
	"context"
	"fmt"
	"math"
	"sort"

	"github.com/google/uuid"

	"github.com/ragplane/ragplane"
)

// FactSource is the tenant's knowledge graph as Graph needs it. The data plane adapts its graph
// store to it; methods return *ragplane.Error codes of their own, passed through by Graph.
type FactSource interface {
	// EntitiesInText returns up to limit known entities named in text.
	EntitiesInText(ctx context.Context, text string, limit int) ([]GraphEntity, error)
	// FactsForEntities returns up to limit current facts about the named entities, each with the
	// chunk it was extracted from.
	FactsForEntities(ctx context.Context, names []string, limit int) ([]GraphFact, error)
}

// GraphEntity is an entity of the knowledge graph.
type GraphEntity struct {
	// Name is how the graph names it, as FactsForEntities takes it.
	Name string
}

// GraphFact is one fact of the knowledge graph and where it was read.
type GraphFact struct {
	// Fact is the fact as a sentence.
	Fact string
	// ChunkID and DocumentID are the UUIDs of the chunk that supports it and its document. A fact
	// without a valid ChunkID cannot be turned into a hit and is ignored.
	ChunkID    string
	DocumentID string
}

// GraphInfo says how Graph found its hits.
type GraphInfo struct {
	// Fallback is true when the graph added nothing (no entity in the query, no facts about them,
	// or no supporting chunk passing the filters), so the hits are Hybrid's alone. Callers report
	// it, as graph_fallback.
	Fallback bool
	// Entities are the names of the entities found in the query.
	Entities []string
	// Facts is how many facts about them pointed at a chunk.
	Facts int
}

// Graph limits.
const (
	graphEntities = 10
	graphFacts    = 200
)

// Graph adds the knowledge graph to Hybrid: the entities named in req.Query, their facts, and
// the chunks those facts were extracted from (with req.Filters applied) make a third ranked list,
// ordered by the number of distinct facts a chunk supports, then by its best rank in the other
// two lists, then chunk ID. The three lists are fused by weighted Reciprocal Rank Fusion (the
// graph's weight is req.Weights.Graph), so graph facts lift the chunks they point at and never
// crowd out the rest: Graph returns TopK hits whenever Hybrid would.
//
// When the graph adds nothing, info.Fallback is set and the hits are Hybrid's. A nil facts
// always falls back. Errors of facts are returned, not hidden by the fallback.
func Graph(ctx context.Context, db DB, facts FactSource, req Request) ([]ragplane.SearchHit, GraphInfo, error) {
	var info GraphInfo
	req, err := validate(req, need{query: true, embedding: req.weights().Vector > 0})
	if err != nil {
		return nil, info, err
	}
	lists, err := hybridLists(ctx, db, req)
	if err != nil {
		return nil, info, err
	}
	w := req.weights()
	var g []scored
	if facts != nil && w.Graph > 0 {
		if g, err = graphList(ctx, db, facts, req, &info, lists); err != nil {
			return nil, info, err
		}
	}
	info.Fallback = len(g) == 0
	return finish(req.Query, fuse(req.TopK, []float64{w.Vector, w.Keyword, w.Graph}, lists[0], lists[1], g)), info, nil
}

// graphList is the graph's ranked list of chunks, at most candidates(req.TopK); others are the
// lists it is fused with, which break ties.
func graphList(ctx context.Context, db DB, facts FactSource, req Request, info *GraphInfo, others [][]scored) ([]scored, error) {
	entities, err := facts.EntitiesInText(ctx, req.Query, graphEntities)
	if err != nil {
		return nil, fmt.Errorf("graph entities: %w", err)
	}
	for _, e := range entities {
		if e.Name != "" {
			info.Entities = append(info.Entities, e.Name)
		}
	}
	if len(info.Entities) == 0 {
		return nil, nil
	}
	found, err := facts.FactsForEntities(ctx, info.Entities, graphFacts)
	if err != nil {
		return nil, fmt.Errorf("graph facts: %w", err)
	}
	// Distinct facts per chunk: a store may repeat a fact reached from two entities.
	support := map[string]map[string]bool{}
	var ids []string
	for _, f := range found {
		id, err := uuid.Parse(f.ChunkID)
		if err != nil {
			continue
		}
		key := id.String()
		if support[key] == nil {
			support[key] = map[string]bool{}
			ids = append(ids, key)
		}
		if !support[key][f.Fact] {
			support[key][f.Fact] = true
			info.Facts++
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}

	var q query
	q.sql.WriteString("select " + hitColumns + ", 0::float8 from chunks c join documents d on d.id = c.document_id")
	if err := q.where(req.Filters); err != nil {
		return nil, err
	}
	q.sql.WriteString(" where c.id = any(" + q.arg(ids) + "::uuid[])")
	rows, err := db.Query(ctx, q.sql.String(), q.args...)
	if err != nil {
		return nil, dbError("graph chunks", err)
	}
	s, err := scanHits(rows)
	if err != nil {
		return nil, dbError("graph chunks", err)
	}
	best := map[string]int{}
	for _, list := range others {
		for i, h := range list {
			if r, ok := best[h.hit.ChunkID]; !ok || i < r {
				best[h.hit.ChunkID] = i
			}
		}
	}
	rank := func(id string) int {
		if r, ok := best[id]; ok {
			return r
		}
		return math.MaxInt
	}
	for i := range s {
		s[i].hit.Score = float64(len(support[s[i].hit.ChunkID]))
	}
	sort.Slice(s, func(i, j int) bool {
		a, b := s[i], s[j]
		if a.hit.Score != b.hit.Score {
			return a.hit.Score > b.hit.Score
		}
		if ra, rb := rank(a.hit.ChunkID), rank(b.hit.ChunkID); ra != rb {
			return ra < rb
		}
		return a.hit.ChunkID < b.hit.ChunkID
	})
	return s[:min(candidates(req.TopK), len(s))], nil
}
