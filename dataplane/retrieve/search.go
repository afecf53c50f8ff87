package retrieve

import (
	"context"
	"math"
	"slices"
	"sort"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/ragplane/ragplane"
)

// RRFK is the k of Reciprocal Rank Fusion: a hit at rank r (from 1) in a list of weight w adds
// w/(RRFK+r).
const RRFK = 60

// Candidates each list of a fusion contributes: fusionCandidates per hit returned, at least
// minCandidates (so a small top_k still fuses lists deep enough to agree on something).
const (
	fusionCandidates = 4
	minCandidates    = 50
)

// candidates is how many hits each fused list contributes for topK hits.
func candidates(topK int) int { return max(fusionCandidates*topK, minCandidates) }

// Vector returns the req.TopK chunks nearest to req.Embedding by cosine distance, using the HNSW
// index, with Score = 1 - cosine distance (1 is identical, 0 orthogonal). req.Embedding is
// required and must have the tenant's dimension (EINVALID "embedding" otherwise).
//
// hnsw.ef_search is req.EFSearch (at least TopK). With filters, pgvector 0.8's iterative index
// scan (relaxed_order) keeps walking the graph until TopK chunks pass them. When few chunks pass
// (at most max(1000, 3*sqrt(TopK*chunks))) their distances are computed exactly instead, which is
// faster for them and never comes back short; the iterative scan then needs to visit at most
// about sqrt(TopK*chunks)/3 tuples, well within hnsw.max_scan_tuples (20,000 by default).
func Vector(ctx context.Context, db DB, req Request) ([]ragplane.SearchHit, error) {
	req, err := validate(req, need{embedding: true})
	if err != nil {
		return nil, err
	}
	tx, err := beginSearch(ctx, db, vectorSettings(req, req.TopK))
	if err != nil {
		return nil, err
	}
	defer endSearch(ctx, tx)
	s, err := vectorSearch(ctx, tx, req, req.TopK)
	if err != nil {
		return nil, err
	}
	return finish(req.Query, s), nil
}

// Keyword returns the req.TopK chunks that best match req.Query by full-text search ranked with
// BM25 (see keyword.go): any word may match, rarer words weigh more, titles more than body text;
// "quoted phrases" must match and -word must not. Score is the BM25 score (unbounded, higher is
// better). A query of stop words only matches nothing. req.Query is required (EINVALID "query").
//
// Every matching chunk is scored, so the cost grows with the number of matches: a query made of
// words that are in most chunks is the slow case.
func Keyword(ctx context.Context, db DB, req Request) ([]ragplane.SearchHit, error) {
	req, err := validate(req, need{query: true})
	if err != nil {
		return nil, err
	}
	tx, err := beginSearch(ctx, db, nil)
	if err != nil {
		return nil, err
	}
	defer endSearch(ctx, tx)
	s, err := keywordSearch(ctx, tx, req, req.TopK)
	if err != nil {
		return nil, err
	}
	return finish(req.Query, s), nil
}

// Hybrid fuses Vector and Keyword by weighted Reciprocal Rank Fusion: each takes
// candidates(TopK) hits and a chunk's Score is the sum over the lists it is in of
// weight/(RRFK + rank), with req.Weights (DefaultWeights when zero). Equal scores are ordered by
// the better single-list rank, then chunk ID. Query and Embedding are both required, unless the
// vector weight is zero (then Embedding is not needed and only Keyword runs); a query whose
// words match nothing leaves the vector ranking alone.
//
// The two searches run concurrently, each in its own transaction (so on two connections of db),
// and Hybrid takes about as long as the slower of them.
func Hybrid(ctx context.Context, db DB, req Request) ([]ragplane.SearchHit, error) {
	req, err := validate(req, need{query: true, embedding: req.weights().Vector > 0})
	if err != nil {
		return nil, err
	}
	lists, err := hybridLists(ctx, db, req)
	if err != nil {
		return nil, err
	}
	w := req.weights()
	return finish(req.Query, fuse(req.TopK, []float64{w.Vector, w.Keyword}, lists...)), nil
}

// hybridLists runs the vector and keyword searches of a validated request concurrently and returns
// their candidates, vector first. A list of weight zero is not searched (and comes back empty).
// The first error cancels the other search and is the one returned.
func hybridLists(ctx context.Context, db DB, req Request) ([][]scored, error) {
	n := candidates(req.TopK)
	w := req.weights()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		vec, kw []scored
		err     error
		once    sync.Once
		wg      sync.WaitGroup
	)
	fail := func(e error) { once.Do(func() { err = e; cancel() }) }
	if w.Keyword > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var e error
			if kw, e = search(ctx, db, nil, func(tx pgx.Tx) ([]scored, error) { return keywordSearch(ctx, tx, req, n) }); e != nil {
				fail(e)
			}
		}()
	}
	// The vector search's own copy of the request: the keyword search reads req concurrently.
	vreq := req
	if w.Vector > 0 && len(req.VectorConfigs) > 0 {
		// The embedder reads only some languages: its ranking of chunks in others is noise.
		read, used, e := readableConfigs(ctx, db, req.VectorConfigs)
		switch {
		case e != nil:
			fail(e)
			w.Vector = 0
		case len(read) == 0:
			w.Vector = 0
		case len(read) < len(used):
			vreq.onlyConfigs = read
			// A question in a language the embedder cannot read gets the keyword ranking alone
			// (its vector would place it at random among the chunks the embedder can read).
			if req.DetectLanguage != nil {
				if cfg, sure := req.DetectLanguage(req.Query, used); sure && !slices.Contains(req.VectorConfigs, cfg) {
					w.Vector = 0
				}
			}
		}
	}
	if w.Vector > 0 {
		var e error
		if vec, e = search(ctx, db, vectorSettings(vreq, n), func(tx pgx.Tx) ([]scored, error) { return vectorSearch(ctx, tx, vreq, n) }); e != nil {
			fail(e)
		}
	}
	wg.Wait()
	if err != nil {
		return nil, err
	}
	return [][]scored{vec, kw}, nil
}

// readableConfigs returns the text-search configurations of the tenant's documents that are in
// langs, and all the tenant's documents use.
func readableConfigs(ctx context.Context, db DB, langs []string) (read, used []string, err error) {
	rows, err := db.Query(ctx, `select config::text from text_configs order by 1`)
	if err != nil {
		return nil, nil, dbError("text configurations", err)
	}
	used, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, nil, dbError("text configurations", err)
	}
	for _, c := range used {
		if slices.Contains(langs, c) {
			read = append(read, c)
		}
	}
	return read, used, nil
}

// search runs one search in its own transaction.
func search(ctx context.Context, db DB, v *vectorTx, run func(pgx.Tx) ([]scored, error)) ([]scored, error) {
	tx, err := beginSearch(ctx, db, v)
	if err != nil {
		return nil, err
	}
	defer endSearch(ctx, tx)
	return run(tx)
}

// fuse ranks the union of lists by weighted Reciprocal Rank Fusion (weights[i] for lists[i]) and
// keeps the best k.
func fuse(k int, weights []float64, lists ...[]scored) []scored {
	type entry struct {
		scored
		best int // best rank in any list, from 1
	}
	byID := map[string]*entry{}
	var all []*entry
	for li, list := range lists {
		for i, s := range list {
			rank := i + 1
			e := byID[s.hit.ChunkID]
			if e == nil {
				e = &entry{scored: s, best: rank}
				e.hit.Score = 0
				byID[s.hit.ChunkID] = e
				all = append(all, e)
			}
			e.hit.Score += weights[li] / float64(RRFK+rank)
			e.best = min(e.best, rank)
		}
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if a.hit.Score != b.hit.Score {
			return a.hit.Score > b.hit.Score
		}
		if a.best != b.best {
			return a.best < b.best
		}
		return a.hit.ChunkID < b.hit.ChunkID
	})
	out := make([]scored, 0, min(k, len(all)))
	for _, e := range all[:min(k, len(all))] {
		out = append(out, e.scored)
	}
	return out
}

// vectorSettings are the hnsw settings for fetching limit nearest chunks: without an iterative
// scan the index returns at most ef_search rows. The scan is always iterative: besides the
// request's filters there may be row level security's, in a pool database whose index holds
// other tenants' chunks too, nearer ones among them; where every row is the tenant's (a siloed
// database, no filter) the scan stops at the first limit rows as a plain one would.
func vectorSettings(req Request, limit int) *vectorTx {
	return &vectorTx{efSearch: min(max(req.EFSearch, limit), maxEFSearch), iterative: true}
}

// vectorSearch returns up to limit chunks nearest to req.Embedding, nearest first.
//
// The query is "order by embedding <=> $v limit $n" over chunks, with documents joined for their
// title and filters: the form pgvector's HNSW index serves (an Index Scan using chunks_embedding
// under the Limit). Ties in distance are broken by chunk ID here rather than in SQL, where a
// second sort key would only add an incremental sort.
//
// A filtered search that few chunks pass is run exactly instead (see useExactScan): through the
// index it would walk a large part of the graph to find them, slowly, and could stop at
// hnsw.max_scan_tuples with fewer than limit.
func vectorSearch(ctx context.Context, tx pgx.Tx, req Request, limit int) ([]scored, error) {
	exact, err := useExactScan(ctx, tx, req, limit)
	if err != nil {
		return nil, err
	}
	var q query
	vec := q.arg(pgvector.NewVector(req.Embedding))
	if exact && len(req.Filters) == 0 {
		// No filter on documents: rank the chunks alone and join the limit nearest to their
		// documents, rather than join every chunk of the tenant (a pool's exact scan: about a
		// third of its time went to the join).
		q.sql.WriteString("select " + hitColumns + ", c.distance from (select c.id, c.document_id, c.content," +
			" (c.embedding <=> " + vec + ") + 0 as distance from chunks c where c.embedding is not null")
		q.onlyConfigs(req.onlyConfigs)
		q.sql.WriteString(" order by distance limit " + q.arg(limit) + ") c join documents d on d.id = c.document_id order by c.distance")
		return scanVector(ctx, tx, q)
	}
	q.sql.WriteString("select " + hitColumns + ", c.embedding <=> " + vec + " as distance" +
		" from chunks c join documents d on d.id = c.document_id")
	if err := q.where(req.Filters); err != nil {
		return nil, err
	}
	q.onlyConfigs(req.onlyConfigs)
	q.sql.WriteString(" and c.embedding is not null") // chunks still being embedded (docstore.EmbedPending)
	if exact {
		// "+ 0" makes the order an expression no index provides, so PostgreSQL computes the
		// distance of every chunk that passes the filters (found through documents) and sorts.
		q.sql.WriteString(" order by (c.embedding <=> " + vec + ") + 0 limit " + q.arg(limit))
	} else {
		q.sql.WriteString(" order by c.embedding <=> " + vec + " limit " + q.arg(limit))
	}
	return scanVector(ctx, tx, q)
}

// scanVector runs a vector search's query and reads its hits, scored 1 - distance.
func scanVector(ctx context.Context, tx pgx.Tx, q query) ([]scored, error) {
	rows, err := tx.Query(ctx, q.sql.String(), q.args...)
	if err != nil {
		return nil, dbError("vector search", err)
	}
	s, err := scanHits(rows)
	if err != nil {
		return nil, dbError("vector search", err)
	}
	for i := range s {
		s[i].hit.Score = 1 - s[i].rank
	}
	sortByScore(s)
	return s, nil
}

// Exact or index scan for filtered vector searches. An exact scan costs about one distance per
// chunk passing the filters (m of them); an iterative HNSW scan costs about limit/selectivity
// visited tuples, limit*total/m, each several times dearer (measured: ~6 µs against ~50 µs at
// dimension 384). The exact scan wins while m*m < ratio*limit*total, so below this cutoff:
const (
	exactScanRatio = 9    // (~50 µs / ~6 µs), rounded up: the exact scan is also exact
	exactScanFloor = 1000 // always exact below this many chunks: a few milliseconds
)

// useExactScan counts, up to the cutoff, the chunks that pass the filters. The total comes from
// the planner's statistics (pg_class.reltuples), which is all the precision this needs.
//
// Row level security is a filter too: in a pool database (the policies bind this session) the
// HNSW index holds every tenant's chunks, and a small tenant's are a small share of them, so the
// same choice is made with the filters and the tenant's rows; the count then reads the tenant's
// chunks through chunks_tenant. Where the policies bind nobody (a siloed tenant's own tables)
// and there is no filter, every chunk passes and the index is used as it is.
func useExactScan(ctx context.Context, tx pgx.Tx, req Request, limit int) (bool, error) {
	var total float64
	var bound bool
	err := tx.QueryRow(ctx, "select greatest(reltuples, 0)::float8, row_security_active('chunks') from pg_class where oid = 'chunks'::regclass").Scan(&total, &bound)
	if err != nil {
		return false, dbError("vector search statistics", err)
	}
	if !bound && len(req.Filters) == 0 && len(req.onlyConfigs) == 0 {
		return false, nil
	}
	cutoff := max(exactScanFloor, int(math.Sqrt(exactScanRatio*float64(limit)*total)))
	var q query
	q.sql.WriteString("select count(*) from (select from chunks c join documents d on d.id = c.document_id")
	if err := q.where(req.Filters); err != nil {
		return false, err
	}
	q.onlyConfigs(req.onlyConfigs)
	q.sql.WriteString(" and c.embedding is not null")
	q.sql.WriteString(" limit " + q.arg(cutoff+1) + ") m")
	var m int
	if err := tx.QueryRow(ctx, q.sql.String(), q.args...).Scan(&m); err != nil {
		return false, dbError("vector search count", err)
	}
	return m <= cutoff, nil
}
