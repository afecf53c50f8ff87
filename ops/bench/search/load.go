package main

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"

	"github.com/ragplane/ragplane/dataplane/ingest"
)

// Embedder is what the benchmark needs of an embedder; the local ones satisfy it.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// embedText is what the worker embeds for a chunk (dataplane/documents.go): the title, then the
// content.
func embedText(title, content string) string {
	if title == "" {
		return content
	}
	return title + "\n\n" + content
}

// loadedDoc is a document of the search corpus and its chunks.
type loadedDoc struct {
	id     uuid.UUID
	src    sourceDoc
	text   string
	hash   []byte
	chunks []loadedChunk
}

type loadedChunk struct {
	id      uuid.UUID
	ordinal int
	content string
	tokens  int
	emb     []float32
}

// corpusStats describes what was loaded.
type corpusStats struct {
	Documents      int            `json:"documents"`
	Chunks         int            `json:"chunks"`
	ByKind         map[string]int `json:"chunks_by_kind"`
	MeanTokens     float64        `json:"mean_tokens"`
	GatherSeconds  float64        `json:"gather_chunk_seconds"`
	EmbedSeconds   float64        `json:"embed_seconds"`
	CopySeconds    float64        `json:"copy_seconds"`
	IndexSeconds   float64        `json:"index_seconds"`
	EmbedChunksSec float64        `json:"embed_chunks_per_second"`
}

// buildCorpus reads documents from src, chunks them with the ingestion chunker at size/overlap
// until there are want chunks, and hands each document to qm for questions. Documents are in
// English, as the schema's default text configuration says.
func buildCorpus(src corpusSources, want, size, overlap int, qm *questionMaker) ([]*loadedDoc, error) {
	var docs []*loadedDoc
	n := 0
	hashes := map[string]bool{}
	var ferr error
	err := gather(src, func(d sourceDoc) bool {
		text, err := ingest.NormalizeText(d.Text)
		if err != nil {
			return true // not text: skip
		}
		h := ingest.ContentHash(text)
		if hashes[string(h)] {
			return true
		}
		pieces, err := ingest.Chunk(text, size, overlap)
		if err != nil {
			ferr = err
			return false
		}
		if len(pieces) == 0 {
			return true
		}
		hashes[string(h)] = true
		qm.add(d)
		ld := &loadedDoc{id: uuid.New(), src: d, text: text, hash: h}
		for i, p := range pieces {
			if n == want {
				break
			}
			ld.chunks = append(ld.chunks, loadedChunk{id: uuid.New(), ordinal: i, content: p.Content, tokens: p.Tokens})
			n++
		}
		docs = append(docs, ld)
		return n < want
	})
	if ferr != nil {
		return nil, ferr
	}
	return docs, err
}

// embedCorpus embeds every chunk (title and content, as the worker does) in batches on all cores.
func embedCorpus(ctx context.Context, emb Embedder, docs []*loadedDoc) error {
	type job struct {
		chunks []*loadedChunk
		texts  []string
	}
	const batch = 64
	jobs := make(chan job)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for j := range jobs {
				vecs, err := emb.Embed(ctx, j.texts)
				if err != nil {
					select {
					case errc <- err:
					default:
					}
					continue
				}
				for i, c := range j.chunks {
					c.emb = vecs[i]
				}
			}
		})
	}
	var cur job
	for _, d := range docs {
		for i := range d.chunks {
			cur.chunks = append(cur.chunks, &d.chunks[i])
			cur.texts = append(cur.texts, embedText(d.src.Title, d.chunks[i].content))
			if len(cur.chunks) == batch {
				jobs <- cur
				cur = job{}
			}
		}
	}
	if len(cur.chunks) > 0 {
		jobs <- cur
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// seedCorpus copies the documents and chunks into the tenant database with COPY, with the
// chunks' search indexes dropped during the load and built afterwards exactly as the migrations
// define them (much faster than maintaining them row by row), then VACUUM ANALYZE.
func seedCorpus(ctx context.Context, pool *pgxpool.Pool, docs []*loadedDoc, st *corpusStats) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	rows, err := conn.Query(ctx, `select indexname, indexdef from pg_indexes
		where tablename = 'chunks' and indexname in ('chunks_embedding', 'chunks_tsv') order by indexname`)
	if err != nil {
		return err
	}
	var names, defs []string
	for rows.Next() {
		var n, d string
		if err := rows.Scan(&n, &d); err != nil {
			return err
		}
		names, defs = append(names, n), append(defs, d)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, n := range names {
		if _, err := conn.Exec(ctx, "drop index "+pgx.Identifier{n}.Sanitize()); err != nil {
			return fmt.Errorf("drop index %s: %w", n, err)
		}
	}
	start := time.Now()
	docRows := make([][]any, len(docs))
	for i, d := range docs {
		docRows[i] = []any{d.id, d.src.Title, d.src.Source, d.hash, map[string]any{"kind": d.src.Kind},
			int64(len(d.text)), len(d.chunks), d.text}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"documents"},
		[]string{"id", "title", "source", "content_hash", "metadata", "bytes", "chunk_count", "content"}, pgx.CopyFromRows(docRows)); err != nil {
		return fmt.Errorf("copy documents: %w", err)
	}
	di, ci := 0, 0
	chunkRows := pgx.CopyFromFunc(func() ([]any, error) {
		for di < len(docs) && ci == len(docs[di].chunks) {
			di, ci = di+1, 0
		}
		if di == len(docs) {
			return nil, nil
		}
		d, c := docs[di], docs[di].chunks[ci]
		ci++
		return []any{c.id, d.id, c.ordinal, c.content, c.tokens, pgvector.NewVector(c.emb), d.src.Title}, nil
	})
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"chunks"},
		[]string{"id", "document_id", "ordinal", "content", "tokens", "embedding", "title"}, chunkRows); err != nil {
		return fmt.Errorf("copy chunks: %w", err)
	}
	st.CopySeconds = time.Since(start).Seconds()
	start = time.Now()
	// The HNSW build is the slow part: give it memory to keep the graph in and both cores.
	stmts := []string{"set maintenance_work_mem = '2GB'", "set max_parallel_maintenance_workers = 2"}
	stmts = append(stmts, defs...)
	stmts = append(stmts, "reset maintenance_work_mem", "reset max_parallel_maintenance_workers",
		"vacuum analyze documents", "vacuum analyze chunks")
	for _, stmt := range stmts {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	st.IndexSeconds = time.Since(start).Seconds()
	return nil
}
