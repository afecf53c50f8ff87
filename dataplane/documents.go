package dataplane

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/docstore"
	"github.com/ragplane/ragplane/dataplane/graph"
	"github.com/ragplane/ragplane/dataplane/ingest"
	"github.com/ragplane/ragplane/dataplane/lang"
	"github.com/ragplane/ragplane/dataplane/prose"
	"github.com/ragplane/ragplane/internal/httpjson"
)

// documentInput is one document to ingest.
type documentInput struct {
	Title    string         `json:"title"`
	Source   string         `json:"source"`
	Content  string         `json:"content"`
	Metadata map[string]any `json:"metadata"`
}

// prepared is a document ready to write: normalised, chunked, embedded, its facts extracted.
type prepared struct {
	in     documentInput
	text   string
	hash   []byte
	chunks []ragplane.Chunk
	facts  []graph.Fact
	tokens int // embedding tokens
	// textConfig is the text-search configuration of the document's language.
	textConfig string
}

// documentResult is what ingestion answers for one document.
type documentResult = docstore.Result

const (
	maxBatch       = 100
	maxTitleLen    = 500
	maxSourceLen   = 2000
	maxMetadataLen = 64 << 10
)

// validate checks one input; field names are prefixed with prefix ("" or "documents[3].").
func (s *Server) validate(prefix string, in *documentInput) error {
	if utf8.RuneCountInString(in.Title) > maxTitleLen || !utf8.ValidString(in.Title) || strings.ContainsRune(in.Title, 0) {
		return ragplane.FieldErrorf(prefix+"title", "title must be valid UTF-8 of at most %d characters.", maxTitleLen)
	}
	if utf8.RuneCountInString(in.Source) > maxSourceLen || !utf8.ValidString(in.Source) || strings.ContainsRune(in.Source, 0) {
		return ragplane.FieldErrorf(prefix+"source", "source must be valid UTF-8 of at most %d characters.", maxSourceLen)
	}
	if in.Metadata == nil {
		in.Metadata = map[string]any{}
	}
	if b, _ := json.Marshal(in.Metadata); len(b) > maxMetadataLen || strings.Contains(string(b), `\u0000`) {
		return ragplane.FieldErrorf(prefix+"metadata", "metadata must be a JSON object of at most %d bytes without NUL characters.", maxMetadataLen)
	}
	if int64(len(in.Content)) > s.cfg.MaxDocumentBytes {
		return &ragplane.Error{Code: ragplane.ETOOLARGE, Field: prefix + "content",
			Message: fmt.Sprintf("content is %d bytes; a document may have at most %d.", len(in.Content), s.cfg.MaxDocumentBytes)}
	}
	return nil
}

// prepare normalises and chunks a document and extracts its facts, outside any transaction. The
// caller has validated in (all of a batch first, so a bad last document costs no work) and embeds
// the chunks with embed, now or in the background.
func (s *Server) prepare(ctx context.Context, sc *scope, prefix string, in documentInput) (*prepared, error) {
	text, err := ingest.NormalizeText(in.Content)
	if err != nil {
		return nil, withField(err, prefix+"content")
	}
	pieces, err := ingest.Chunk(text, sc.cfg.Settings.ChunkSize, sc.cfg.Settings.ChunkOverlap)
	if err != nil {
		return nil, err
	}
	extract := s.extractor(sc)
	p := &prepared{in: in, text: text, hash: ingest.ContentHash(text),
		textConfig: lang.Config(sc.cfg.Settings.Language, in.Title+"\n"+text)}
	docID := uuid.New()
	for i, piece := range pieces {
		c := ragplane.Chunk{ID: uuid.NewString(), DocumentID: docID.String(), Ordinal: i, Content: piece.Content, Tokens: piece.Tokens}
		p.chunks = append(p.chunks, c)
		p.tokens += prose.CountTokens(embedText(in.Title, piece.Content))
		p.facts = append(p.facts, extract(ctx, c.ID, c.Content)...)
	}
	return p, nil
}

// embed gives every chunk of docs its vector.
func (s *Server) embed(ctx context.Context, sc *scope, docs []*prepared) error {
	for _, d := range docs {
		titles := make([]string, len(d.chunks))
		contents := make([]string, len(d.chunks))
		for i, c := range d.chunks {
			titles[i], contents[i] = d.in.Title, c.Content
		}
		vecs, err := s.embedChunks(ctx, sc.cfg.Settings, titles, contents)
		if err != nil {
			return err
		}
		for i := range d.chunks {
			d.chunks[i].Embedding = vecs[i]
		}
	}
	return nil
}

// embedChunks embeds chunks (a title and a content each) with the tenant's embedder.
func (s *Server) embedChunks(ctx context.Context, set ragplane.Settings, titles, contents []string) ([][]float32, error) {
	emb, err := s.providers.embedder(set)
	if err != nil {
		return nil, err
	}
	return embedTexts(ctx, emb, set.EmbeddingDimension, titles, contents)
}

// embedTexts embeds chunks (a title and a content each, see embedText) with emb, checking that
// every vector has dim dimensions.
func embedTexts(ctx context.Context, emb Embedder, dim int, titles, contents []string) ([][]float32, error) {
	// A chunk is embedded with its document's title: the title says what the chunk is about.
	texts := make([]string, len(contents))
	for i := range contents {
		texts[i] = embedText(titles[i], contents[i])
	}
	vecs, err := emb.Embed(ctx, texts)
	if err != nil {
		return nil, err
	}
	for _, v := range vecs {
		if len(v) != dim {
			return nil, ragplane.Errorf(ragplane.EUPSTREAM, "The embedding provider returned %d dimensions; the tenant stores %d.", len(v), dim)
		}
	}
	return vecs, nil
}

// embedText is what is embedded for a chunk: its document's title, then its content.
func embedText(title, content string) string {
	if title == "" {
		return content
	}
	return title + "\n\n" + content
}

// extractor returns the tenant's fact extractor: the tenant's model when it has one (answer_provider
// openai on a worker with a provider), else the rule-based one. A failed model call falls back to
// the rules for that chunk: the graph is an aid to retrieval, not worth failing an ingestion for.
func (s *Server) extractor(sc *scope) func(ctx context.Context, chunkID, text string) []graph.Fact {
	rules := func(_ context.Context, chunkID, text string) []graph.Fact { return graph.Extract(chunkID, text) }
	set := sc.cfg.Settings
	if set.AnswerProvider != "openai" {
		return rules
	}
	client, err := s.providers.chat(set)
	if err != nil {
		return rules
	}
	x := &graph.LLMExtractor{Complete: func(ctx context.Context, system, user string) (string, error) {
		return client.Complete(ctx, set.ModelTier, system, user, 2048)
	}}
	return func(ctx context.Context, chunkID, text string) []graph.Fact {
		facts, err := x.Extract(ctx, chunkID, text)
		if err != nil {
			s.log.Warn("model graph extraction failed; using the rule-based extractor", "tenant_id", sc.tenant,
				"error", ragplane.ErrorMessage(err))
			return graph.Extract(chunkID, text)
		}
		return facts
	}
}

func withField(err error, field string) error {
	if e, ok := err.(*ragplane.Error); ok && e.Field == "" {
		return &ragplane.Error{Code: e.Code, Message: e.Message, Field: field}
	}
	return err
}

// docs returns the document store of the tenant a request is scoped to.
func (s *Server) docs(sc *scope) *docstore.Store {
	return docstore.New(docstore.Config{DB: sc.pool, Graph: func(tx pgx.Tx) graph.Store { return s.graph(tx) }})
}

// write stores prepared documents in one transaction (docstore.Store.Write).
func (s *Server) write(ctx context.Context, sc *scope, docs []*prepared, idemKey string, idemHash []byte) ([]documentResult, bool, error) {
	w := docstore.Write{Limits: sc.cfg.Limits, IdempotencyKey: idemKey, RequestHash: idemHash}
	for _, d := range docs {
		w.Documents = append(w.Documents, docstore.NewDocument{Title: d.in.Title, Source: d.in.Source, Metadata: d.in.Metadata, TextConfig: d.textConfig,
			Text: d.text, Hash: d.hash, Chunks: d.chunks, Facts: d.facts})
	}
	return s.docs(sc).Write(ctx, w)
}

// ingestDocuments handles the shared tail of every ingestion endpoint. It reports whether the
// results are a replay of an earlier request with the request's Idempotency-Key.
func (s *Server) ingestDocuments(c echo.Context, inputs []documentInput, prefix func(i int) string, body []byte) ([]documentResult, bool, error) {
	ctx := c.Request().Context()
	sc, err := s.open(ctx, nil)
	if err != nil {
		return nil, false, err
	}
	defer sc.release()
	start := time.Now()
	// A retry of a request already done is answered from its record before anything else: it
	// costs no chunking, no embedding and no provider call, and it is billed nothing.
	key := c.Request().Header.Get("Idempotency-Key")
	sum := sha256.Sum256(body)
	if key != "" {
		results, found, err := s.docs(sc).Replay(ctx, key, sum[:])
		if err != nil {
			return nil, false, err
		}
		if found {
			return results, true, nil
		}
	}
	for i := range inputs {
		if err := s.validate(prefix(i), &inputs[i]); err != nil {
			return nil, false, err
		}
	}
	if err := s.checkPaidEmbeddings(ctx, sc); err != nil {
		return nil, false, err
	}
	docs := make([]*prepared, len(inputs))
	chunks := 0
	for i, in := range inputs {
		if docs[i], err = s.prepare(ctx, sc, prefix(i), in); err != nil {
			return nil, false, err
		}
		chunks += len(docs[i].chunks)
	}
	// A large ingestion is stored at once, searchable by keyword, and embedded in the background
	// (the documents' status says "embedding" until then); a small one is embedded before it is
	// stored. Its embedding tokens are billed here either way.
	deferred := chunks > s.cfg.SyncEmbedChunks
	if !deferred {
		if err := s.embed(ctx, sc, docs); err != nil {
			return nil, false, err
		}
	} else if _, err := s.providers.embedder(sc.cfg.Settings); err != nil {
		return nil, false, err // an embedder that cannot be built would never embed them
	}
	results, replayed, err := s.write(ctx, sc, docs, key, sum[:])
	if err != nil {
		return nil, false, err
	}
	if replayed {
		// Another request with the key (a retry sent before this one's first attempt answered)
		// wrote first, between the look-up above and the write's lock: its results are the
		// answer, and it was billed. This one's embeddings were computed and are thrown away,
		// at the platform's cost, so that the tenant pays for the request once.
		return results, true, nil
	}
	if deferred {
		s.backfill.add(sc.tenant)
	} else if pending, err := s.docs(sc).HasPending(ctx); err == nil && pending {
		s.backfill.add(sc.tenant) // left by a worker that stopped before it was done
	}
	label := s.metrics.tenant(sc.tenant)
	var tokens int
	for _, d := range docs {
		tokens += d.tokens
	}
	rec := usageOf(c)
	rec.embedding = tokens
	for _, r := range results {
		if !r.Duplicate {
			s.metrics.documents.WithLabelValues(label).Inc()
			s.metrics.chunks.WithLabelValues(label).Add(float64(r.ChunkCount))
			rec.documents++
			rec.chunks += r.ChunkCount
		}
	}
	s.metrics.tokens.WithLabelValues(label, "embedding").Add(float64(tokens))
	s.metrics.ingestSecs.WithLabelValues(label).Observe(time.Since(start).Seconds())
	return results, replayed, nil
}

func checkIdempotencyKey(c echo.Context) error {
	if k := c.Request().Header.Get("Idempotency-Key"); len(k) > 255 {
		return ragplane.FieldErrorf("Idempotency-Key", "Idempotency-Key must be at most 255 characters.")
	}
	return nil
}

// createDocument ingests one document: JSON {title, source, content, metadata}, or a multipart
// upload with a "file" part (plain text, Markdown, HTML or PDF) and optional title, source and
// metadata fields.
func (s *Server) createDocument(c echo.Context) error {
	if err := checkIdempotencyKey(c); err != nil {
		return err
	}
	var in documentInput
	var body []byte
	mt, _, _ := mime.ParseMediaType(c.Request().Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		var err error
		if in, body, err = s.readUpload(c); err != nil {
			return err
		}
	} else {
		var err error
		if body, err = httpjson.ReadBody(c); err != nil {
			return err
		}
		if err := httpjson.Decode(c, body, &in); err != nil {
			return err
		}
	}
	if strings.TrimSpace(in.Content) == "" {
		return ragplane.FieldErrorf("content", "content is required.")
	}
	results, replayed, err := s.ingestDocuments(c, []documentInput{in}, func(int) string { return "" }, body)
	if err != nil {
		return err
	}
	if len(results) == 0 {
		// A replay whose document was deleted since.
		return ragplane.Errorf(ragplane.ENOTFOUND, "The document created with this Idempotency-Key has been deleted.")
	}
	status := http.StatusCreated
	if replayed || results[0].Duplicate {
		status = http.StatusOK
	}
	if replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	c.Response().Header().Set("Location", "/v1/documents/"+results[0].ID)
	return c.JSON(status, results[0])
}

func (s *Server) readUpload(c echo.Context) (documentInput, []byte, error) {
	var in documentInput
	fh, err := c.FormFile("file")
	if err != nil {
		if he, ok := err.(*echo.HTTPError); ok && he.Code == http.StatusRequestEntityTooLarge {
			return in, nil, he
		}
		return in, nil, ragplane.FieldErrorf("file", "A multipart upload needs a \"file\" part.")
	}
	f, err := fh.Open()
	if err != nil {
		return in, nil, ragplane.FieldErrorf("file", "The uploaded file cannot be read.")
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, s.cfg.MaxDocumentBytes*4+1))
	if err != nil {
		return in, nil, ragplane.FieldErrorf("file", "The uploaded file cannot be read.")
	}
	if int64(len(data)) > s.cfg.MaxDocumentBytes*4 {
		return in, nil, &ragplane.Error{Code: ragplane.ETOOLARGE, Field: "file", Message: "The uploaded file is too large."}
	}
	text, err := ingest.Extract(fh.Header.Get("Content-Type"), fh.Filename, data)
	if err != nil {
		return in, nil, withField(err, "file")
	}
	in.Content = text
	in.Title = c.FormValue("title")
	if in.Title == "" {
		in.Title = fh.Filename
	}
	in.Source = c.FormValue("source")
	if in.Source == "" {
		in.Source = fh.Filename
	}
	if m := c.FormValue("metadata"); m != "" {
		if err := json.Unmarshal([]byte(m), &in.Metadata); err != nil {
			return in, nil, ragplane.FieldErrorf("metadata", "metadata must be a JSON object.")
		}
	}
	// The idempotency fingerprint of an upload is its extracted text and fields.
	fp, _ := json.Marshal(in)
	return in, fp, nil
}

// batchRequest is the body of POST /v1/documents/batch.
type batchRequest struct {
	Documents []documentInput `json:"documents"`
}

func (s *Server) createDocuments(c echo.Context) error {
	if err := checkIdempotencyKey(c); err != nil {
		return err
	}
	body, err := httpjson.ReadBody(c)
	if err != nil {
		return err
	}
	var req batchRequest
	if err := httpjson.Decode(c, body, &req); err != nil {
		return err
	}
	if len(req.Documents) == 0 || len(req.Documents) > maxBatch {
		return ragplane.FieldErrorf("documents", "documents must hold 1 to %d documents.", maxBatch)
	}
	for i, d := range req.Documents {
		if strings.TrimSpace(d.Content) == "" {
			return ragplane.FieldErrorf(fmt.Sprintf("documents[%d].content", i), "content is required.")
		}
	}
	results, replayed, err := s.ingestDocuments(c, req.Documents, func(i int) string { return fmt.Sprintf("documents[%d].", i) }, body)
	if err != nil {
		return err
	}
	if replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	return c.JSON(http.StatusCreated, map[string]any{"documents": results})
}

// ingestRequest is the seed's shape: {"documents": [{"text", "metadata"}]}.
type ingestRequest struct {
	Documents []struct {
		Text     string         `json:"text"`
		Metadata map[string]any `json:"metadata"`
	} `json:"documents"`
}

func (s *Server) ingest(c echo.Context) error {
	if err := checkIdempotencyKey(c); err != nil {
		return err
	}
	body, err := httpjson.ReadBody(c)
	if err != nil {
		return err
	}
	var req ingestRequest
	if err := httpjson.Decode(c, body, &req); err != nil {
		return err
	}
	if len(req.Documents) == 0 || len(req.Documents) > maxBatch {
		return ragplane.FieldErrorf("documents", "documents must hold 1 to %d documents.", maxBatch)
	}
	inputs := make([]documentInput, len(req.Documents))
	for i, d := range req.Documents {
		if strings.TrimSpace(d.Text) == "" {
			return ragplane.FieldErrorf(fmt.Sprintf("documents[%d].text", i), "text is required.")
		}
		title, _ := d.Metadata["title"].(string)
		source, _ := d.Metadata["source"].(string)
		inputs[i] = documentInput{Title: title, Source: source, Content: d.Text, Metadata: d.Metadata}
	}
	results, _, err := s.ingestDocuments(c, inputs, func(i int) string { return fmt.Sprintf("documents[%d].", i) }, body)
	if err != nil {
		return err
	}
	chunks := 0
	ids := make([]string, len(results))
	for i, r := range results {
		chunks += r.ChunkCount
		ids[i] = r.ID
	}
	return c.JSON(http.StatusOK, map[string]any{"status": "success", "documents_processed": len(results),
		"chunks_created": chunks, "document_ids": ids})
}

// listDocuments pages through documents, newest first; the cursor is opaque.
func (s *Server) listDocuments(c echo.Context) error {
	limit := 50
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			return ragplane.FieldErrorf("limit", "limit must be a whole number from 1 to 200.")
		}
		limit = n
	}
	var afterAt time.Time
	afterID := ""
	if v := c.QueryParam("cursor"); v != "" {
		raw, err := base64.RawURLEncoding.DecodeString(v)
		at, id, ok := strings.Cut(string(raw), "|")
		t, terr := time.Parse(time.RFC3339Nano, at)
		if err != nil || !ok || terr != nil || uuid.Validate(id) != nil {
			return ragplane.FieldErrorf("cursor", "The cursor is not valid.")
		}
		afterAt, afterID = t, id
	}
	ctx := c.Request().Context()
	sc, err := s.open(ctx, nil)
	if err != nil {
		return err
	}
	defer sc.release()
	docs, err := s.docs(sc).List(ctx, docstore.Page{AfterCreatedAt: afterAt, AfterID: afterID, Limit: limit + 1})
	if err != nil {
		return err
	}
	resp := map[string]any{"items": docs}
	if docs == nil {
		resp["items"] = []ragplane.Document{}
	}
	if len(docs) > limit {
		docs = docs[:limit]
		last := docs[limit-1]
		resp["items"] = docs
		resp["next_cursor"] = base64.RawURLEncoding.EncodeToString([]byte(last.CreatedAt.Format(time.RFC3339Nano) + "|" + last.ID))
	}
	return c.JSON(http.StatusOK, resp)
}

// documentID reads the :id parameter; anything but a UUID cannot exist, so it is 404.
func documentID(c echo.Context) (string, error) {
	id := c.Param("id")
	if uuid.Validate(id) != nil {
		return "", ragplane.Errorf(ragplane.ENOTFOUND, "Document not found.")
	}
	return id, nil
}

func (s *Server) getDocument(c echo.Context) error {
	id, err := documentID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	sc, err := s.open(ctx, nil)
	if err != nil {
		return err
	}
	defer sc.release()
	d, err := s.docs(sc).Get(ctx, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, d)
}

// deleteDocument removes a document, its chunks (cascade) and its graph facts, in one transaction.
func (s *Server) deleteDocument(c echo.Context) error {
	id, err := documentID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	sc, err := s.open(ctx, nil)
	if err != nil {
		return err
	}
	defer sc.release()
	if err := s.docs(sc).Delete(ctx, id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
