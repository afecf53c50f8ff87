// Package retrieve finds the chunks of a tenant's own database (schema in catalog/tenantdb) that
// best answer a query, in the retrieval modes of ragplane.Settings: Vector (pgvector HNSW, cosine),
// Keyword (PostgreSQL full-text search), Hybrid (Reciprocal Rank Fusion of the two) and Graph
// (facts of a knowledge graph pointing at their supporting chunks, falling back to Hybrid).
//
// Every search takes a DB for one tenant's database, so tenant isolation is the database's: no
// query here names a tenant. User input (query text, embedding, filter fields and values) only
// ever reaches PostgreSQL as bind parameters; the SQL text is built from constants alone.
//
// Errors are *ragplane.Error: EINVALID (with Field naming the input: "query", "embedding",
// "top_k", "ef_search", "filters[i].op", ...) for a request that cannot be run, EUNAVAILABLE when
// the database timed out or the context ended; anything else is wrapped with context (EINTERNAL).
package retrieve

import (
	"context"
	"errors"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/internal/pgerr"
)

// DB is the part of a tenant database connection the searches use, satisfied by *pgxpool.Pool.
// It must be safe for concurrent use: Hybrid, and Graph when it falls back to it, run two searches
// at once, each in a transaction of its own. Vectors are sent as pgvector.Vector, fastest when the
// pool registers pgvector's pgx types in its AfterConnect (pgxvec.RegisterTypes); without them
// they go as text.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Request is one search. Which fields are required depends on the mode: Vector needs Embedding,
// Keyword needs Query, Hybrid and Graph need both. Query, when present, also places snippets.
type Request struct {
	// Query is the user's text: a websearch_to_tsquery expression for keyword search ("quoted
	// phrases", -negation, or), the text scanned for entities by graph search.
	Query string
	// Embedding is Query's vector, of the tenant's embedding dimension.
	Embedding []float32
	// TopK is how many hits to return, 1..MaxTopK.
	TopK int
	// EFSearch is pgvector's hnsw.ef_search, 1..1000; zero means DefaultEFSearch. It is raised to
	// the number of vector candidates a search needs when that is larger.
	EFSearch int
	// Filters restrict hits to documents whose metadata matches all of them (see ValidateFilters).
	Filters []ragplane.Filter
	// Weights weigh the lists Hybrid and Graph fuse; all zero means DefaultWeights.
	Weights Weights
	// VectorConfigs, when not empty, are the text-search configurations (languages) the
	// embedder reads: Hybrid and Graph then fuse the vector ranking of chunks in those alone, and
	// leave it out for a tenant with none.
	VectorConfigs []string
	// DetectLanguage, when set with VectorConfigs, names the configuration of the query's
	// language among those the tenant's documents use (false when unsure); a query in one the
	// embedder cannot read is not embedded into the fusion. dataplane/lang.DetectAmong.
	DetectLanguage func(text string, among []string) (string, bool)

	onlyConfigs []string // set by hybridLists from VectorConfigs
}

// Weights are the weights of the ranked lists in a fusion, each 0..10 (0 leaves a list out).
type Weights struct {
	Keyword, Vector, Graph float64
}

// DefaultWeights are the system defaults of the fusion_*_weight settings.
var DefaultWeights = Weights{Keyword: 1, Vector: 1, Graph: 0.5}

// weights returns req.Weights, or DefaultWeights when they are all zero.
func (req Request) weights() Weights {
	if req.Weights == (Weights{}) {
		return DefaultWeights
	}
	return req.Weights
}

// Bounds of a Request.
const (
	// MaxTopK matches the upper bound of the top_k setting.
	MaxTopK = 100
	// DefaultEFSearch is the system default of the ef_search setting.
	DefaultEFSearch = 100
	// maxEFSearch is pgvector's own upper bound for hnsw.ef_search.
	maxEFSearch = 1000
	// MaxQueryBytes bounds Query; a longer text is EINVALID rather than silently cut.
	MaxQueryBytes = 4096
	// MaxSnippet is the longest SearchHit.Snippet, in characters (runes).
	MaxSnippet = 300
)

// need says which inputs a mode requires.
type need struct{ query, embedding bool }

// validate checks req for a mode and returns it with defaults applied.
func validate(req Request, n need) (Request, error) {
	if req.TopK < 1 || req.TopK > MaxTopK {
		return req, ragplane.FieldErrorf("top_k", "top_k must be between 1 and %d.", MaxTopK)
	}
	if req.EFSearch == 0 {
		req.EFSearch = DefaultEFSearch
	} else if req.EFSearch < 1 || req.EFSearch > maxEFSearch {
		return req, ragplane.FieldErrorf("ef_search", "ef_search must be between 1 and %d.", maxEFSearch)
	}
	if len(req.Query) > MaxQueryBytes {
		return req, ragplane.FieldErrorf("query", "The query is longer than %d bytes.", MaxQueryBytes)
	}
	if !utf8.ValidString(req.Query) || strings.ContainsRune(req.Query, 0) {
		return req, ragplane.FieldErrorf("query", "The query is not valid UTF-8 text.")
	}
	if n.query && strings.TrimSpace(req.Query) == "" {
		return req, ragplane.FieldErrorf("query", "A query is required.")
	}
	if n.embedding {
		if len(req.Embedding) == 0 {
			return req, ragplane.FieldErrorf("embedding", "An embedding is required.")
		}
		for _, f := range req.Embedding {
			if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
				return req, ragplane.FieldErrorf("embedding", "The embedding has a value that is not a finite number.")
			}
		}
	}
	if err := ValidateFilters(req.Filters); err != nil {
		return req, err
	}
	for _, w := range []float64{req.Weights.Keyword, req.Weights.Vector, req.Weights.Graph} {
		if w < 0 || w > 10 || math.IsNaN(w) {
			return req, ragplane.FieldErrorf("weights", "Fusion weights must be between 0 and 10.")
		}
	}
	return req, nil
}

// vectorTx configures the hnsw settings of a search transaction; nil for keyword-only searches.
type vectorTx struct {
	efSearch  int
	iterative bool
}

// beginSearch opens the transaction a search runs in and applies its settings with set_config(...,
// true), so they end with the transaction and never leak to the pooled connection's next user.
//
// plan_cache_mode=force_custom_plan: pgx prepares statements, and a generic plan of "order by
// embedding <=> $1 limit $2" does not know the limit, so after a few executions PostgreSQL may
// switch to a plan that sorts the whole table instead of walking the HNSW index.
func beginSearch(ctx context.Context, db DB, v *vectorTx) (pgx.Tx, error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, dbError("begin search", err)
	}
	ef, iterative := strconv.Itoa(DefaultEFSearch), "off"
	if v != nil {
		ef = strconv.Itoa(v.efSearch)
		if v.iterative {
			// relaxed_order: pgvector 0.8 keeps walking the graph until LIMIT rows pass the
			// filters (up to hnsw.max_scan_tuples); rows may come slightly out of order, which
			// the caller's sort by distance fixes.
			iterative = "relaxed_order"
		}
	}
	_, err = tx.Exec(ctx, `select set_config('plan_cache_mode', 'force_custom_plan', true),
		set_config('hnsw.ef_search', $1, true), set_config('hnsw.iterative_scan', $2, true)`, ef, iterative)
	if err != nil {
		tx.Rollback(context.WithoutCancel(ctx))
		return nil, dbError("configure search", err)
	}
	return tx, nil
}

// endSearch ends a read-only search transaction. Rolling back is as good as committing here, and
// its error is irrelevant once the rows are read: a broken connection is discarded by the pool.
func endSearch(ctx context.Context, tx pgx.Tx) {
	tx.Rollback(context.WithoutCancel(ctx))
}

// hitColumns are the columns scanHits reads first, from chunks c join documents d.
const hitColumns = `c.id::text, c.document_id::text, d.title, d.source, c.content`

// scored is a hit with the value it was ranked by.
type scored struct {
	hit  ragplane.SearchHit
	rank float64 // the mode's own measure: distance (lower is better) or a score (higher is better)
}

// scanHits reads rows of hitColumns followed by one float column.
func scanHits(rows pgx.Rows) ([]scored, error) {
	var out []scored
	for rows.Next() {
		var s scored
		if err := rows.Scan(&s.hit.ChunkID, &s.hit.DocumentID, &s.hit.Title, &s.hit.Source, &s.hit.Content, &s.rank); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// finish turns ranked rows into hits with snippets.
func finish(query string, in []scored) []ragplane.SearchHit {
	hits := make([]ragplane.SearchHit, len(in))
	terms := queryTerms(query)
	for i, s := range in {
		hits[i] = s.hit
		hits[i].Snippet = snippet(s.hit.Content, terms, MaxSnippet)
	}
	return hits
}

// sortByScore orders hits by descending score, then chunk ID, so equal scores come back in the
// same order every time.
func sortByScore(s []scored) {
	sort.SliceStable(s, func(i, j int) bool {
		if s[i].hit.Score != s[j].hit.Score {
			return s[i].hit.Score > s[j].hit.Score
		}
		return s[i].hit.ChunkID < s[j].hit.ChunkID
	})
}

// dbError translates a database error at the package boundary.
func dbError(op string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "22000" && strings.HasPrefix(pgErr.Message, "different vector dimensions") {
		// pgvector: "different vector dimensions 64 and 3".
		return ragplane.FieldErrorf("embedding", "The embedding does not have the tenant's dimension.")
	}
	return pgerr.Translate(err, "tenant database", op)
}
