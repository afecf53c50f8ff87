package ragplane

// Filter restricts a search by document metadata. Op is one of the FilterOps; Field is a
// top-level metadata key. Values are always passed to the database as parameters.
type Filter struct {
	Field string `json:"field"`
	Op    string `json:"op"`
	Value any    `json:"value"`
}

// FilterOps are the allowed filter operators: "eq" (the metadata value at field is the given
// JSON string, number or boolean; "2024" and 2024 differ), "in" (is one of a list of those),
// "contains" (the metadata value, an array or object, contains the given JSON), "exists" (the key
// is present; value must be true).
var FilterOps = []string{"eq", "in", "contains", "exists"}

// SearchHit is one ranked chunk.
type SearchHit struct {
	DocumentID string  `json:"document_id"`
	ChunkID    string  `json:"chunk_id"`
	Title      string  `json:"title"`
	Source     string  `json:"source"`
	Score      float64 `json:"score"`
	Snippet    string  `json:"snippet"`
	// Content is the chunk's full text, used to build answers; not returned by the search API.
	Content string `json:"-"`
}

// AnswerMetadata describes how an answer was made.
type AnswerMetadata struct {
	TenantID      TenantID `json:"tenant_id"`
	Model         string   `json:"model"`
	RetrievalMode string   `json:"retrieval_mode"`
	TokensUsed    int      `json:"tokens_used"`
	LatencyMS     int64    `json:"latency_ms"`
	ConfigVersion int64    `json:"config_version"`
	// GraphFallback is true when graph retrieval added nothing (no known entity or fact in the
	// query), so the sources are hybrid retrieval's, as /v1/search reports it.
	GraphFallback bool `json:"graph_fallback,omitempty"`
	// Sanitized counts what was removed from the answer text because a client rendering it would
	// fetch or open a URL on a host the tenant does not allow (Settings.AnswerLinkHosts): keys
	// "images", "links" and "html", each present only when not zero; absent when nothing was.
	Sanitized map[string]int `json:"sanitized,omitempty"`
	// Clamped lists the request's values that a limit cut down; absent when none was.
	Clamped []Clamp `json:"clamped,omitempty"`
	// Fallback says the request's retrieval mode was not the one used, and why; absent when it was.
	Fallback *Fallback `json:"fallback,omitempty"`
}

// Clamp is a request value that a limit of the tenant cut down.
type Clamp struct {
	// Field is the request field as the client sent it (top_k, max_results, model_tier ...).
	Field string `json:"field"`
	// Requested is the value sent, Applied the value used.
	Requested any `json:"requested"`
	Applied   any `json:"applied"`
	// Limit is the limit that bounds it (max_top_k, max_model_tier, max_tokens_per_query).
	Limit string `json:"limit"`
}

// Fallback is a retrieval mode that gave way to another.
type Fallback struct {
	Requested string `json:"requested"`
	Used      string `json:"used"`
	Reason    string `json:"reason"`
}

// AnswerSource is a source of an answer: the hit, and the number the answer cites it by ([ID]).
type AnswerSource struct {
	ID int `json:"id"`
	SearchHit
}

// Answer is the response to a query: the text, with [n] markers citing the source whose id is n
// (Sources[n-1]).
type Answer struct {
	Answer   string         `json:"answer"`
	Sources  []AnswerSource `json:"sources"`
	Metadata AnswerMetadata `json:"metadata"`
}
