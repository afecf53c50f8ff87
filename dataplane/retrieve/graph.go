package retrieve

import (
	"context"
	"fmt"
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
	// Fallback is true when the graph gave no hits (no entity in the query, no facts about them,
	// or no supporting chunk passing the filters) and the hits are Hybrid's instead. Callers
	// report it, as graph_fallback.
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

// Graph answers from the knowledge graph: the entities named in req.Query, their facts, and the
// chunks those facts were extracted from (with req.Filters applied), ranked by the number of
// distinct facts a chunk supports (its Score), then by its document's last update, newest first,
// then chunk ID; at most req.TopK.
//
// When that yields nothing, Graph returns Hybrid's hits for req with info.Fallback set, so a
// graph query is never empty just because the graph knows nothing about it; hence Query and
// Embedding are both required. A nil facts always falls back. Errors of facts are returned,
// not hidden by the fallback.
func Graph(ctx context.Context, db DB, facts FactSource, req Request) ([]ragplane.SearchHit, GraphInfo, error) {
	var info GraphInfo
	req, err := validate(req, need{query: true, embedding: true})
	if err != nil {
		return nil, info, err
	}
	if facts != nil {
		hits, err := graphHits(ctx, db, facts, req, &info)
		if err != nil || len(hits) > 0 {
			return hits, info, err
		}
	}
	info.Fallback = true
	hits, err := hybrid(ctx, db, req)
	return hits, info, err
}

// graphHits is Graph without the fallback.
func graphHits(ctx context.Context, db DB, facts FactSource, req Request, info *GraphInfo) ([]ragplane.SearchHit, error) {
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
	q.sql.WriteString("select " + hitColumns + ", extract(epoch from d.updated_at)::float8" +
		" from chunks c join documents d on d.id = c.document_id")
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
	for i := range s {
		s[i].hit.Score = float64(len(support[s[i].hit.ChunkID]))
	}
	sort.Slice(s, func(i, j int) bool {
		a, b := s[i], s[j]
		if a.hit.Score != b.hit.Score {
			return a.hit.Score > b.hit.Score
		}
		if a.rank != b.rank { // updated_at
			return a.rank > b.rank
		}
		return a.hit.ChunkID < b.hit.ChunkID
	})
	return finish(req.Query, s[:min(req.TopK, len(s))]), nil
}
