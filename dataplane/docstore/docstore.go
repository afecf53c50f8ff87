// Package docstore keeps a tenant's documents in the tenant's own database: the documents, their
// chunks, content deduplication, the document and storage quotas, the idempotency records of
// ingestion requests and the answers of queries sent with an idempotency key (answers.go). The
// schema is catalog/tenantdb's.
//
// The database is the tenant boundary, so no query filters by tenant; every method still requires
// a tenant in the context and fails closed without one (EUNAUTHORIZED), like the graph stores, so
// that a call path that lost the caller's identity cannot read or write documents.
package docstore

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/graph"
	"github.com/ragplane/ragplane/dataplane/lang"
	"github.com/ragplane/ragplane/internal/pgerr"
)

// DB is the part of pgx the store uses; *pgxpool.Pool satisfies it, for the tenant's database. Its
// connections must have pgvector's types registered (pgvector-go/pgx RegisterTypes in
// AfterConnect): chunks are copied in binary.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Config configures a Store.
type Config struct {
	// DB is the tenant's database.
	DB DB
	// Graph returns the graph store a write or delete keeps the document's facts in, given the
	// transaction the document is written or deleted in (a store in the tenant database joins it).
	Graph func(tx pgx.Tx) graph.Store
}

// Store is one tenant's documents. It is cheap: build one per request.
type Store struct {
	db    DB
	graph func(tx pgx.Tx) graph.Store
}

// New returns a store on cfg.DB.
func New(cfg Config) *Store { return &Store{db: cfg.DB, graph: cfg.Graph} }

// Document statuses.
const (
	StatusReady     = "ready"
	StatusEmbedding = "embedding"
)

// NewDocument is a document ready to write: normalised, chunked, embedded, its facts extracted.
// Chunks without an Embedding are stored without a vector and the document is StatusEmbedding
// until EmbedPending gives them one.
type NewDocument struct {
	Title    string
	Source   string
	Metadata map[string]any
	// Text is the normalised content; Hash its content hash (ingest.ContentHash), by which
	// duplicates are found.
	Text string
	// TextConfig is the PostgreSQL text-search configuration the document is indexed with (see
	// dataplane/lang); empty means lang.Default.
	TextConfig string
	Hash       []byte
	// Chunks all carry the document id the document is stored under.
	Chunks []ragplane.Chunk
	Facts  []graph.Fact
}

// Result is what a write answers for one document.
type Result struct {
	ragplane.Document
	// Duplicate is true when the same text was already stored (the existing document is returned).
	Duplicate bool `json:"duplicate"`
}

// Write is one ingestion request.
type Write struct {
	Documents []NewDocument
	// Limits are the tenant's quotas: MaxDocuments and MaxStorageMB are checked exactly.
	Limits ragplane.Limits
	// IdempotencyKey, when not empty, records the request under the key: a request with the same
	// key and RequestHash gets the first one's results again.
	IdempotencyKey string
	RequestHash    []byte
}

// ingestLock serialises writers within one tenant database, so quota checks are exact.
const ingestLock = 0x52504931 // "RPI1"

// Write stores documents in one transaction: the documents, their chunks (COPY), their graph facts
// and the idempotency record; a worker killed at any point leaves all or nothing. A document whose
// text is stored already is not written again: its result is the existing document, marked
// Duplicate. It reports whether the results are a replay of an earlier request with the same
// idempotency key. Errors: ECONFLICT (the key was used for a different request), EQUOTA
// ("max_documents"), ETOOLARGE ("max_storage_mb"), EINVALID (a graph fact), EUNAVAILABLE,
// EUNAUTHORIZED.
func (s *Store) Write(ctx context.Context, w Write) ([]Result, bool, error) {
	if _, err := ragplane.TenantFromContext(ctx); err != nil {
		return nil, false, err
	}
	var results []Result
	replayed := false
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `select pg_advisory_xact_lock($1)`, ingestLock); err != nil {
			return err
		}
		// Looked up again under the lock: of two first requests with one key, the second to get
		// here answers the first one's results (the caller bills it nothing).
		if w.IdempotencyKey != "" {
			var err error
			if results, replayed, err = lookupIngestion(ctx, tx, w.IdempotencyKey, w.RequestHash); err != nil || replayed {
				return err
			}
		}
		var count, bytes int64
		if err := tx.QueryRow(ctx, `select count(*), coalesce(sum(bytes), 0) from documents`).Scan(&count, &bytes); err != nil {
			return err
		}
		for _, d := range w.Documents {
			var existing string
			err := tx.QueryRow(ctx, `select id::text from documents where content_hash = $1`, d.Hash).Scan(&existing)
			if err == nil {
				r, err := loadResults(ctx, tx, []string{existing})
				if err != nil {
					return err
				}
				r[0].Duplicate = true
				results = append(results, r[0])
				continue
			} else if err != pgx.ErrNoRows {
				return err
			}
			if count+1 > int64(w.Limits.MaxDocuments) {
				return &ragplane.Error{Code: ragplane.EQUOTA, Field: "max_documents",
					Message: fmt.Sprintf("The tenant's quota of %d documents is used up.", w.Limits.MaxDocuments)}
			}
			if bytes+int64(len(d.Text)) > int64(w.Limits.MaxStorageMB)<<20 {
				return &ragplane.Error{Code: ragplane.ETOOLARGE, Field: "max_storage_mb",
					Message: fmt.Sprintf("The tenant's storage quota of %d MB would be exceeded.", w.Limits.MaxStorageMB)}
			}
			count++
			bytes += int64(len(d.Text))
			r, err := s.insert(ctx, tx, d)
			if err != nil {
				return err
			}
			results = append(results, r)
		}
		if w.IdempotencyKey != "" {
			ids := make([]string, len(results))
			for i, r := range results {
				ids[i] = r.ID
			}
			if _, err := tx.Exec(ctx, `insert into idempotency_keys (key, request_hash, result) values ($1, $2, $3)`,
				w.IdempotencyKey, w.RequestHash, strings.Join(ids, ",")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, dbError(err)
	}
	return results, replayed, nil
}

// Replay returns the results of the ingestion request recorded under an idempotency key, and
// whether there is one: a cheap read, so that a retried request costs no chunking and no
// embedding. Write checks the key again in its transaction. Errors: ECONFLICT (the key was used
// for a request with another hash), EUNAVAILABLE, EUNAUTHORIZED.
func (s *Store) Replay(ctx context.Context, key string, requestHash []byte) ([]Result, bool, error) {
	if _, err := ragplane.TenantFromContext(ctx); err != nil {
		return nil, false, err
	}
	results, found, err := lookupIngestion(ctx, s.db, key, requestHash)
	if err != nil {
		return nil, false, dbError(err)
	}
	return results, found, nil
}

// querier is what a read needs: the pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var errKeyReused = &ragplane.Error{Code: ragplane.ECONFLICT, Field: "Idempotency-Key", Message: "This Idempotency-Key was used for a different request."}

// lookupIngestion reads the ingestion request recorded under key: its documents (those not
// deleted since) and true, or false when the key is new.
func lookupIngestion(ctx context.Context, q querier, key string, requestHash []byte) ([]Result, bool, error) {
	var hash []byte
	var ids string
	err := q.QueryRow(ctx, `select request_hash, coalesce(result, '') from idempotency_keys where key = $1`, key).Scan(&hash, &ids)
	if err == pgx.ErrNoRows {
		return nil, false, nil
	} else if err != nil {
		return nil, false, err
	}
	if string(hash) != string(requestHash) {
		return nil, false, errKeyReused
	}
	results, err := loadResults(ctx, q, strings.Split(ids, ","))
	if err != nil {
		return nil, false, err
	}
	return results, true, nil
}

// insert writes one document, its chunks and its facts in tx.
func (s *Store) insert(ctx context.Context, tx pgx.Tx, d NewDocument) (Result, error) {
	doc := ragplane.Document{ID: d.documentID(), Title: d.Title, Source: d.Source, Metadata: d.Metadata,
		ContentHash: hex.EncodeToString(d.Hash), Bytes: int64(len(d.Text)), ChunkCount: len(d.Chunks), Status: StatusReady}
	doc.Language = d.TextConfig
	if doc.Language == "" {
		doc.Language = lang.Default
	}
	for _, c := range d.Chunks {
		if c.Embedding == nil {
			doc.Status = StatusEmbedding
		}
	}
	cfg := d.TextConfig
	if cfg == "" {
		cfg = lang.Default
	}
	// The insert into text_configs records that the tenant now has text in it (a no-op after
	// the first time).
	if _, err := tx.Exec(ctx, `insert into text_configs (config) values ($1::regconfig) on conflict do nothing`, cfg); err != nil {
		return Result{}, err
	}
	if err := tx.QueryRow(ctx, `insert into documents (id, title, source, content_hash, metadata, bytes, chunk_count, content, text_config, status)
		values ($1, $2, $3, $4, $5, $6, $7, $8, $9::regconfig, $10) returning created_at, updated_at`,
		doc.ID, doc.Title, doc.Source, d.Hash, doc.Metadata, doc.Bytes, doc.ChunkCount, d.Text, cfg, doc.Status).Scan(&doc.CreatedAt, &doc.UpdatedAt); err != nil {
		return Result{}, err
	}
	// One insert of arrays rather than COPY, which PostgreSQL refuses on tables with row level
	// security (every tenant table: see tenantdb's 008).
	n := len(d.Chunks)
	ids, ordinals, contents, tokens := make([]uuid.UUID, n), make([]int32, n), make([]string, n), make([]int32, n)
	vecs := make([]*pgvector.Vector, n) // nil: NULL, embedded later (Pending)
	for i, c := range d.Chunks {
		id, err := uuid.Parse(c.ID)
		if err != nil {
			return Result{}, fmt.Errorf("chunk id: %w", err)
		}
		ids[i], ordinals[i], contents[i], tokens[i] = id, int32(c.Ordinal), c.Content, int32(c.Tokens)
		if c.Embedding != nil {
			v := pgvector.NewVector(c.Embedding)
			vecs[i] = &v
		}
	}
	if _, err := tx.Exec(ctx, `insert into chunks (id, document_id, ordinal, content, tokens, embedding, title, text_config)
		select u.id, $1, u.ordinal, u.content, u.tokens, u.embedding, $2, $3::regconfig
		from unnest($4::uuid[], $5::int[], $6::text[], $7::int[], $8::vector[]) as u(id, ordinal, content, tokens, embedding)`,
		doc.ID, doc.Title, cfg, ids, ordinals, contents, tokens, vecs); err != nil {
		return Result{}, err
	}
	for facts := d.Facts; len(facts) > 0; {
		n := min(len(facts), graph.MaxFacts)
		if err := s.graph(tx).AddFacts(ctx, doc.ID, facts[:n]); err != nil {
			return Result{}, err
		}
		facts = facts[n:]
	}
	return Result{Document: doc}, nil
}

// documentID is the document id the chunks were made for.
func (d NewDocument) documentID() string {
	if len(d.Chunks) > 0 {
		return d.Chunks[0].DocumentID
	}
	return uuid.NewString()
}

func loadResults(ctx context.Context, q querier, ids []string) ([]Result, error) {
	out := make([]Result, 0, len(ids))
	for _, id := range ids {
		if id == "" {
			continue
		}
		d, err := scanDocument(q.QueryRow(ctx, `select `+documentColumns+` from documents where id = $1`, id), false)
		if err == pgx.ErrNoRows {
			continue // deleted since
		} else if err != nil {
			return nil, err
		}
		out = append(out, Result{Document: d})
	}
	return out, nil
}

const documentColumns = `id::text, title, source, encode(content_hash, 'hex'), metadata, bytes, chunk_count, status, text_config::text, created_at, updated_at`

func scanDocument(row pgx.Row, withContent bool) (ragplane.Document, error) {
	var d ragplane.Document
	dst := []any{&d.ID, &d.Title, &d.Source, &d.ContentHash, &d.Metadata, &d.Bytes, &d.ChunkCount, &d.Status, &d.Language, &d.CreatedAt, &d.UpdatedAt}
	if withContent {
		dst = append(dst, &d.Content)
	}
	err := row.Scan(dst...)
	return d, err
}

// Page is a position in the list of documents, newest first.
type Page struct {
	// AfterCreatedAt and AfterID are the last document of the previous page; AfterID empty means
	// the first page.
	AfterCreatedAt time.Time
	AfterID        string
	// Limit is the most documents returned.
	Limit int
}

// List returns documents without their content, newest first (ties by id, descending), after
// p's position. Errors: EUNAVAILABLE, EUNAUTHORIZED.
func (s *Store) List(ctx context.Context, p Page) ([]ragplane.Document, error) {
	if _, err := ragplane.TenantFromContext(ctx); err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `select `+documentColumns+` from documents
		where $1::text = '' or (created_at, id) < ($2, nullif($1::text, '')::uuid) order by created_at desc, id desc limit $3`,
		p.AfterID, p.AfterCreatedAt, p.Limit)
	if err != nil {
		return nil, dbError(err)
	}
	docs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ragplane.Document, error) { return scanDocument(r, false) })
	return docs, dbError(err)
}

// Get returns the document with id (a UUID), content included.
// Errors: ENOTFOUND, EUNAVAILABLE, EUNAUTHORIZED.
func (s *Store) Get(ctx context.Context, id string) (ragplane.Document, error) {
	if _, err := ragplane.TenantFromContext(ctx); err != nil {
		return ragplane.Document{}, err
	}
	d, err := scanDocument(s.db.QueryRow(ctx, `select `+documentColumns+`, content from documents where id = $1`, id), true)
	return d, dbError(err)
}

// Excerpt returns the document with id, any text, and the first maxChars characters of its content.
// Errors: ENOTFOUND, EUNAVAILABLE, EUNAUTHORIZED.
func (s *Store) Excerpt(ctx context.Context, id string, maxChars int) (ragplane.Document, error) {
	if _, err := ragplane.TenantFromContext(ctx); err != nil {
		return ragplane.Document{}, err
	}
	d, err := scanDocument(s.db.QueryRow(ctx, `select `+documentColumns+`, left(content, $2) from documents where id::text = $1`, id, maxChars), true)
	return d, dbError(err)
}

// Recent returns the ids and titles of the limit most recently created documents, newest first.
// Errors: EUNAVAILABLE, EUNAUTHORIZED.
func (s *Store) Recent(ctx context.Context, limit int) ([]ragplane.Document, error) {
	if _, err := ragplane.TenantFromContext(ctx); err != nil {
		return nil, err
	}
	rows, err := s.db.Query(ctx, `select id::text, title from documents order by created_at desc limit $1`, limit)
	if err != nil {
		return nil, dbError(err)
	}
	docs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ragplane.Document, error) {
		var d ragplane.Document
		err := r.Scan(&d.ID, &d.Title)
		return d, err
	})
	return docs, dbError(err)
}

// Delete removes the document with id (a UUID), its chunks (cascade) and its graph facts, in one
// transaction. Errors: ENOTFOUND, EUNAVAILABLE, EUNAUTHORIZED.
func (s *Store) Delete(ctx context.Context, id string) error {
	if _, err := ragplane.TenantFromContext(ctx); err != nil {
		return err
	}
	return dbError(pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if err := s.graph(tx).DeleteDocument(ctx, id); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `delete from documents where id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return pgx.ErrNoRows
		}
		return nil
	}))
}

// dbError translates tenant-database errors at the boundary: no rows -> ENOTFOUND, overload and
// timeouts -> EUNAVAILABLE; *ragplane.Error passes through; anything else is internal.
// TODO: use the shared PostgreSQL error translator (internal/pgerr) once it lands.
func dbError(err error) error {
	return pgerr.Translate(err, "tenant database", "Document")
}

// PendingBatch is how many chunks EmbedPending embeds per transaction.
const PendingBatch = 32

// EmbedPending gives up to PendingBatch chunks stored without a vector one, with embed (which gets
// each chunk's title and content and must return vectors of the tenant's dimension), and marks
// the documents whose chunks all have vectors ready. The chunks are locked while embedded
// (FOR UPDATE SKIP LOCKED), so workers that embed the same tenant at once share the work. It
// returns how many chunks it embedded; 0 means none is left (or all are being embedded by others).
func (s *Store) EmbedPending(ctx context.Context, embed func(ctx context.Context, titles, contents []string) ([][]float32, error)) (int, error) {
	if _, err := ragplane.TenantFromContext(ctx); err != nil {
		return 0, err
	}
	n := 0
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		ids, err := EmbedMissing(ctx, tx, ColumnEmbedding, embed)
		if err != nil {
			return err
		}
		n = len(ids)
		if n == 0 {
			// Documents whose last chunks were embedded by concurrent transactions, each of
			// which saw the other's chunks still pending.
			_, err := tx.Exec(ctx, `update documents d set status = 'ready', updated_at = now() where status = 'embedding'
				and not exists (select from chunks c where c.document_id = d.id and c.embedding is null)`)
			return err
		}
		_, err = tx.Exec(ctx, `update documents d set status = 'ready', updated_at = now()
			where d.id in (select document_id from chunks where id = any($1::uuid[]))
			and not exists (select from chunks c where c.document_id = d.id and c.embedding is null)`, ids)
		return err
	})
	if err != nil {
		return 0, dbError(err)
	}
	return n, nil
}

// The vector columns EmbedMissing fills: the tenant's vectors, and the next model's while a
// tenant is re-embedded (dataplane.Reembed).
const (
	ColumnEmbedding     = "embedding"
	ColumnEmbeddingNext = "embedding_next"
)

// EmbedMissing gives up to PendingBatch chunks whose column (ColumnEmbedding or
// ColumnEmbeddingNext) is NULL a vector from embed, which gets each chunk's title and content,
// in tx. The chunks are locked while embedded (FOR UPDATE SKIP LOCKED), so concurrent callers
// share the work. It returns the ids of the chunks it filled; none means nothing is left (or all
// of it is being embedded by others).
func EmbedMissing(ctx context.Context, tx pgx.Tx, column string, embed func(ctx context.Context, titles, contents []string) ([][]float32, error)) ([]string, error) {
	if column != ColumnEmbedding && column != ColumnEmbeddingNext {
		return nil, fmt.Errorf("docstore: no vector column %q", column) // the SQL is built from these constants alone
	}
	rows, err := tx.Query(ctx, `select id::text, title, content from chunks where `+column+` is null
		order by document_id, ordinal limit $1 for update skip locked`, PendingBatch)
	if err != nil {
		return nil, err
	}
	var ids, titles, contents []string
	for rows.Next() {
		var id, title, content string
		if err := rows.Scan(&id, &title, &content); err != nil {
			rows.Close()
			return nil, err
		}
		ids, titles, contents = append(ids, id), append(titles, title), append(contents, content)
	}
	if err := rows.Err(); err != nil || len(ids) == 0 {
		return nil, err
	}
	vecs, err := embed(ctx, titles, contents)
	if err != nil {
		return nil, err
	}
	vs := make([]pgvector.Vector, len(vecs))
	for i, v := range vecs {
		vs[i] = pgvector.NewVector(v)
	}
	if _, err := tx.Exec(ctx, `update chunks c set `+column+` = u.v from unnest($1::uuid[], $2::vector[]) u(id, v) where c.id = u.id`, ids, vs); err != nil {
		return nil, err
	}
	return ids, nil
}

// HasPending says whether any chunk waits for its vector.
func (s *Store) HasPending(ctx context.Context) (bool, error) {
	if _, err := ragplane.TenantFromContext(ctx); err != nil {
		return false, err
	}
	var pending bool
	err := s.db.QueryRow(ctx, `select exists (select from chunks where embedding is null)`).Scan(&pending)
	return pending, dbError(err)
}
