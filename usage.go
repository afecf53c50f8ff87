package ragplane

import "time"

// UsageEvent is one metered request, attributed to a tenant for billing.
type UsageEvent struct {
	// ID makes delivery idempotent: the same event shipped twice is counted once.
	ID string `json:"id"`
	// TenantID and Subject say who used it.
	TenantID TenantID `json:"tenant_id"`
	Subject  string   `json:"subject,omitempty"`
	// Route, RetrievalMode and Model say what was used.
	Route         string `json:"route"`
	RetrievalMode string `json:"retrieval_mode,omitempty"`
	Model         string `json:"model,omitempty"`
	// Token counts.
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	EmbeddingTokens  int `json:"embedding_tokens"`
	// DocumentsWritten and ChunksWritten count ingestion.
	DocumentsWritten int `json:"documents_written"`
	ChunksWritten    int `json:"chunks_written"`
	// LatencyMS and Status describe the response.
	LatencyMS int `json:"latency_ms"`
	Status    int `json:"status"`
	// RequestID is the request's id; At is when it finished.
	RequestID string    `json:"request_id"`
	At        time.Time `json:"at"`
}
