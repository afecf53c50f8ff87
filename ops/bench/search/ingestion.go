package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/docstore"
	"github.com/ragplane/ragplane/dataplane/graph"
	"github.com/ragplane/ragplane/dataplane/graph/postgres"
	"github.com/ragplane/ragplane/dataplane/ingest"
	"github.com/ragplane/ragplane/dataplane/lang"
	"github.com/ragplane/ragplane/dataplane/prose"
)

// The system defaults the worker chunks with, and its batch size in this benchmark (as the
// dataplane's BenchmarkIngest sends them).
const (
	ingestChunkSize    = 256
	ingestChunkOverlap = 32
	ingestBatch        = 10
)

// rawDoc is a document to ingest.
type rawDoc struct {
	Title, Text string
}

// wordStream hands out the corpus's text in consecutive, non-overlapping runs of words, paragraph
// breaks kept, so every made document is distinct natural text.
type wordStream struct {
	docs      []*loadedDoc
	doc, para int
	words     []string
}

// next returns a document of about tokens tokens (prose.CountTokens), titled after the corpus
// document its text starts in; false when the text runs out.
func (w *wordStream) next(tokens int) (rawDoc, bool) {
	var b strings.Builder
	title := ""
	n := 0
	for n < tokens {
		if len(w.words) == 0 {
			if w.doc >= len(w.docs) {
				return rawDoc{}, false
			}
			paras := strings.Split(w.docs[w.doc].text, "\n\n")
			if w.para >= len(paras) {
				w.doc, w.para = w.doc+1, 0
				continue
			}
			w.words = strings.Fields(paras[w.para])
			w.para++
			if b.Len() > 0 {
				b.WriteString("\n\n")
			}
			continue
		}
		if title == "" {
			title = w.docs[w.doc].src.Title
		}
		if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n\n") {
			b.WriteByte(' ')
		}
		b.WriteString(w.words[0])
		n += prose.CountTokens(w.words[0])
		w.words = w.words[1:]
	}
	return rawDoc{Title: title, Text: strings.TrimSpace(b.String())}, true
}

// ingestResult is one ingestion measurement.
type ingestResult struct {
	Embedder       string  `json:"embedder"`
	DocTokens      int     `json:"document_tokens"`
	Documents      int     `json:"documents"`
	Chunks         int     `json:"chunks"`
	ChunksPerSec   float64 `json:"chunks_per_second"`      // the worker's path, one goroutine
	PrepareShare   float64 `json:"prepare_share"`          // of its time: normalise, chunk, embed, detect language, extract facts
	EmbedShare     float64 `json:"embed_share"`            // of its time: the embedder alone
	DetectShare    float64 `json:"detect_share"`           // of its time: language detection (lang.Config "auto")
	ExtractShare   float64 `json:"extract_share"`          // of its time: graph.Extract
	CopyChunksSec  float64 `json:"copy_chunks_per_second"` // baseline: COPY of the same rows
	RatioToCopy    float64 `json:"ratio_to_copy"`          // ChunksPerSec / CopyChunksSec
	PipelineSecond float64 `json:"pipeline_seconds"`
	CopySeconds    float64 `json:"copy_seconds"`
}

// measureIngestion ingests docs through the worker's sequence (dataplane/documents.go: normalise,
// chunk at the system defaults, embed title + content, detect the language, extract graph facts
// with the rule-based extractor, then docstore.Store.Write with the PostgreSQL graph store, in
// batches of ingestBatch documents) into one fresh tenant database, and the same rows with COPY
// (precomputed embeddings; documents and chunks, one transaction per batch) into another. One
// goroutine each: chunks/s per worker.
func measureIngestion(ctx context.Context, adminURL, name string, emb Embedder, dim int, docs []rawDoc, docTokens int) (ingestResult, error) {
	res := ingestResult{Embedder: name, DocTokens: docTokens, Documents: len(docs)}
	pipe, err := newTenantDB(ctx, adminURL, "ingest", dim, 2)
	if err != nil {
		return res, err
	}
	defer pipe.drop()
	raw, err := newTenantDB(ctx, adminURL, "copy", dim, 2)
	if err != nil {
		return res, err
	}
	defer raw.drop()

	store := docstore.New(docstore.Config{DB: pipe.Pool, Graph: func(tx pgx.Tx) graph.Store { return postgres.New(tx) }})
	tctx := tenantContext(ctx)
	limits := ragplane.Limits{MaxDocuments: 1 << 30, MaxStorageMB: 1 << 30}
	var prepared []docstore.NewDocument
	var prepareTime time.Duration
	var parts prepTimes
	start := time.Now()
	for i := 0; i < len(docs); i += ingestBatch {
		batch := docs[i:min(i+ingestBatch, len(docs))]
		var w docstore.Write
		w.Limits = limits
		p0 := time.Now()
		for _, d := range batch {
			nd, pt, err := prepareDoc(ctx, emb, d)
			if err != nil {
				return res, err
			}
			parts.embed += pt.embed
			parts.detect += pt.detect
			parts.extract += pt.extract
			w.Documents = append(w.Documents, nd)
		}
		prepareTime += time.Since(p0)
		if _, _, err := store.Write(tctx, w); err != nil {
			return res, fmt.Errorf("docstore write: %w", err)
		}
		prepared = append(prepared, w.Documents...)
	}
	pipeTime := time.Since(start)
	for _, d := range prepared {
		res.Chunks += len(d.Chunks)
	}

	// The baseline: the same documents and chunks, new ids, COPY only.
	start = time.Now()
	for i := 0; i < len(prepared); i += ingestBatch {
		batch := prepared[i:min(i+ingestBatch, len(prepared))]
		var docRows, chunkRows [][]any
		for _, d := range batch {
			id := uuid.New()
			docRows = append(docRows, []any{id, d.Title, d.Source, d.Hash, map[string]any{}, int64(len(d.Text)), len(d.Chunks), d.Text})
			for _, c := range d.Chunks {
				chunkRows = append(chunkRows, []any{uuid.New(), id, c.Ordinal, c.Content, c.Tokens, pgvector.NewVector(c.Embedding), d.Title})
			}
		}
		err := pgx.BeginFunc(ctx, raw.Pool, func(tx pgx.Tx) error {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"documents"}, []string{"id", "title", "source", "content_hash", "metadata", "bytes", "chunk_count", "content"},
				pgx.CopyFromRows(docRows)); err != nil {
				return err
			}
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"chunks"}, []string{"id", "document_id", "ordinal", "content", "tokens", "embedding", "title"},
				pgx.CopyFromRows(chunkRows))
			return err
		})
		if err != nil {
			return res, fmt.Errorf("copy baseline: %w", err)
		}
	}
	copyTime := time.Since(start)

	res.PipelineSecond, res.CopySeconds = pipeTime.Seconds(), copyTime.Seconds()
	res.ChunksPerSec = float64(res.Chunks) / pipeTime.Seconds()
	res.CopyChunksSec = float64(res.Chunks) / copyTime.Seconds()
	res.RatioToCopy = res.ChunksPerSec / res.CopyChunksSec
	res.PrepareShare = prepareTime.Seconds() / pipeTime.Seconds()
	res.EmbedShare = parts.embed.Seconds() / pipeTime.Seconds()
	res.DetectShare = parts.detect.Seconds() / pipeTime.Seconds()
	res.ExtractShare = parts.extract.Seconds() / pipeTime.Seconds()
	return res, nil
}

// prepTimes is where a document's preparation spent its time.
type prepTimes struct{ embed, detect, extract time.Duration }

// prepareDoc is the worker's prepare step (dataplane/documents.go) for one document with the
// system default settings (language "auto").
func prepareDoc(ctx context.Context, emb Embedder, d rawDoc) (docstore.NewDocument, prepTimes, error) {
	var pt prepTimes
	text, err := ingest.NormalizeText(d.Text)
	if err != nil {
		return docstore.NewDocument{}, pt, err
	}
	pieces, err := ingest.Chunk(text, ingestChunkSize, ingestChunkOverlap)
	if err != nil {
		return docstore.NewDocument{}, pt, err
	}
	texts := make([]string, len(pieces))
	for i, p := range pieces {
		texts[i] = embedText(d.Title, p.Content)
	}
	start := time.Now()
	vecs, err := emb.Embed(ctx, texts)
	if err != nil {
		return docstore.NewDocument{}, pt, err
	}
	pt.embed = time.Since(start)
	start = time.Now()
	cfg := lang.Config(lang.Auto, d.Title+"\n"+text)
	pt.detect = time.Since(start)
	nd := docstore.NewDocument{Title: d.Title, Source: "bench", Metadata: map[string]any{}, Text: text, Hash: ingest.ContentHash(text), TextConfig: cfg}
	docID := uuid.NewString()
	start = time.Now()
	for i, p := range pieces {
		c := ragplane.Chunk{ID: uuid.NewString(), DocumentID: docID, Ordinal: i, Content: p.Content, Tokens: p.Tokens, Embedding: vecs[i]}
		nd.Chunks = append(nd.Chunks, c)
		nd.Facts = append(nd.Facts, graph.Extract(c.ID, c.Content)...)
	}
	pt.extract = time.Since(start)
	return nd, pt, nil
}
