package ingest

import "crypto/sha256"

// ContentHash returns the SHA-256 of normalizedText, the key a tenant's documents are
// deduplicated on (hex-encoded, it is ragplane.Document.ContentHash).
//
// Pass text from Extract or NormalizeText: deduplication is on normalised text, so the same text
// uploaded with CRLF line ends, trailing spaces or extra blank lines hashes the same, while any
// change of wording, spacing within a line or Unicode form (there is no NFC) does not.
func ContentHash(normalizedText string) []byte {
	h := sha256.Sum256([]byte(normalizedText))
	return h[:]
}
