package ragplane

import "time"

// Document is a tenant's ingested document. Its text lives in the tenant's own database, split
// into chunks for retrieval.
type Document struct {
	// ID is a UUID.
	ID string `json:"id"`
	// Title and Source describe where the text came from (a file name, a URL).
	Title  string `json:"title"`
	Source string `json:"source"`
	// Metadata is the client's JSON object, filterable in searches.
	Metadata map[string]any `json:"metadata"`
	// ContentHash is the hex SHA-256 of the normalised text; a tenant never stores the same text twice.
	ContentHash string `json:"content_hash"`
	// Bytes is the size of the text; ChunkCount how many chunks it was split into.
	Bytes      int64 `json:"bytes"`
	ChunkCount int   `json:"chunk_count"`
	// Status is "ready" when every chunk has its vector, "embedding" while a large ingestion's
	// chunks are embedded in the background (keyword search finds them meanwhile).
	Status string `json:"status"`
	// Language is the PostgreSQL text-search configuration the document is indexed with: its
	// detected language ("english", "french", ...; "simple" for one PostgreSQL has no stemmer for),
	// or the tenant's language setting.
	Language string `json:"language"`
	// Content is the full text (only in single-document answers).
	Content string `json:"content,omitempty"`
	// CreatedAt and UpdatedAt are when it was ingested and last changed.
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Chunk is a retrievable piece of a document.
type Chunk struct {
	// ID is a UUID; DocumentID the document it belongs to; Ordinal its position in it.
	ID         string `json:"id"`
	DocumentID string `json:"document_id"`
	Ordinal    int    `json:"ordinal"`
	// Content is the chunk's text and Tokens its length in tokens.
	Content string `json:"content"`
	Tokens  int    `json:"tokens"`
	// Embedding is the chunk's vector (not returned by the API).
	Embedding []float32 `json:"-"`
}
