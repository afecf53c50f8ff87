// Package ingest turns an uploaded file into the pieces Ragplane stores and retrieves: plain text
// (Extract, NormalizeText), a deduplication key (ContentHash) and overlapping chunks (Chunk),
// counted and cut at sentence ends by the rules of package prose.
//
// Everything here is a pure function of its arguments: no database, no network, no globals, so
// the data plane can run it in any worker and tests need no setup. The usual order is
//
//	text, err := ingest.Extract(mediaType, filename, body) // already normalised
//	hash := ingest.ContentHash(text)                       // dedup key, hex in Document.ContentHash
//	pieces, err := ingest.Chunk(text, size, overlap)       // one ragplane.Chunk per piece
//
// Errors are *ragplane.Error: EINVALID for input that is well formed but not acceptable
// (unsupported type, invalid UTF-8, empty or encrypted documents, bad chunk sizes), EMALFORMED for
// files that cannot be parsed (a corrupt PDF) and ETOOLARGE for text over MaxTextBytes.
package ingest
