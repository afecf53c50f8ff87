package ragplane

import (
	"fmt"
	"strings"
)

// Settings are the knobs of a tenant's retrieval and answering, resolved by the cascade
// system -> plan -> tenant -> request (see Resolve).
type Settings struct {
	// ModelTier picks the answer model class: "small", "standard" or "large".
	ModelTier string `json:"model_tier"`
	// RetrievalMode is one of "vector", "keyword", "hybrid", "graph" or "agentic".
	RetrievalMode string `json:"retrieval_mode"`
	// TopK is how many chunks a search returns.
	TopK int `json:"top_k"`
	// MaxTokensPerQuery caps the tokens an answer may use; clamped by the limit of the same name.
	MaxTokensPerQuery int `json:"max_tokens_per_query"`
	// Temperature is the sampling temperature of a generative answerer.
	Temperature float64 `json:"temperature"`
	// ChunkSize and ChunkOverlap are in tokens.
	ChunkSize    int `json:"chunk_size"`
	ChunkOverlap int `json:"chunk_overlap"`
	// EmbeddingProvider ("local" or "openai"), EmbeddingModel and EmbeddingDimension are fixed when
	// the tenant is provisioned: its vectors are stored with that dimension.
	EmbeddingProvider  string `json:"embedding_provider"`
	EmbeddingModel     string `json:"embedding_model"`
	EmbeddingDimension int    `json:"embedding_dimension"`
	// AnswerProvider is "extractive" (no model: the best sentences, cited) or "openai" (any
	// OpenAI-compatible chat model the worker is configured with).
	AnswerProvider string `json:"answer_provider"`
	// EFSearch is pgvector's hnsw.ef_search: higher is more accurate and slower.
	EFSearch int `json:"ef_search"`
	// Language is the PostgreSQL text-search configuration new documents are indexed with, or
	// "auto" to detect each document's language.
	Language string `json:"language"`
	// FusionKeywordWeight, FusionVectorWeight and FusionGraphWeight weigh each ranked list in the
	// weighted Reciprocal Rank Fusion of hybrid and graph retrieval: a hit at rank r of a list adds
	// weight/(60+r).
	FusionKeywordWeight float64 `json:"fusion_keyword_weight"`
	FusionVectorWeight  float64 `json:"fusion_vector_weight"`
	FusionGraphWeight   float64 `json:"fusion_graph_weight"`
	// AnswerLinkHosts is a comma-separated list of host names that links and images in answers
	// may point to (http or https, exact host match); empty, the default: none. Everything else
	// is removed from answers before they reach the client (see dataplane/answer/sanitize).
	AnswerLinkHosts string `json:"answer_link_hosts"`
	// IsolationTier is where a new tenant's data is provisioned: "siloed" (a database of its own)
	// or "pooled" (a pool database shared with other tenants, confined by row level security).
	// A new tenant is provisioned in it; changing a tenant's own value later, or its plan to one with
	// another, moves an active tenant's data to the other tier online (see catalog.Move). A change of
	// a plan's value applies to tenants provisioned afterwards.
	IsolationTier string `json:"isolation_tier"`
}

// Isolation tiers.
const (
	TierSiloed = "siloed"
	TierPooled = "pooled"
)

// PooledProjectPrefix starts the provider project id of a tenant in the pooled tier: "pool:" and
// the pool's name.
const PooledProjectPrefix = "pool:"

// Tier is the tier the tenant's data is in now: pooled when its project is a pool, else siloed.
func (t *Tenant) Tier() string {
	if strings.HasPrefix(t.ProviderProjectID, PooledProjectPrefix) {
		return TierPooled
	}
	return TierSiloed
}

// TextSearchConfigs are the PostgreSQL 17 text-search configurations the language setting may
// name besides "auto" ("simple": words lower-cased, no stemming, no stop words).
var TextSearchConfigs = []string{"arabic", "armenian", "basque", "catalan", "danish", "dutch", "english",
	"finnish", "french", "german", "greek", "hindi", "hungarian", "indonesian", "irish", "italian",
	"lithuanian", "norwegian", "portuguese", "romanian", "russian", "serbian", "simple", "spanish",
	"swedish", "tamil", "turkish"}

// Model tiers, in increasing order of cost.
var modelTiers = []string{"small", "standard", "large"}

// ModelTierAliases maps model names a client may send as model_tier (the compliance seed sends
// "gpt-4") to the tier whose cost class they belong to. The model that answers is the one the
// workers configure for that tier (RAGPLANE_MODEL_SMALL|STANDARD|LARGE).
var ModelTierAliases = map[string]string{
	"gpt-3.5-turbo": "small",
	"gpt-4o-mini":   "small",
	"gpt-4.1-mini":  "small",
	"gpt-4.1-nano":  "small",
	"gpt-4o":        "standard",
	"gpt-4-turbo":   "standard",
	"gpt-4":         "large",
	"gpt-4.1":       "large",
}

// Retrieval modes.
const (
	RetrievalVector  = "vector"
	RetrievalKeyword = "keyword"
	RetrievalHybrid  = "hybrid"
	RetrievalGraph   = "graph"
	RetrievalAgentic = "agentic"
)

// settingFields describes every setting: its type, bounds, and whether a request may override it.
var settingFields = []field{
	{Key: "model_tier", Kind: kindEnum, Enum: modelTiers, Aliases: ModelTierAliases, PerRequest: true, ClampBy: "max_model_tier",
		Doc: "Answer model class; a model name of a tier (gpt-4, gpt-4o-mini, ...) stands for its tier."},
	{Key: "retrieval_mode", Kind: kindEnum, PerRequest: true,
		Enum: []string{RetrievalVector, RetrievalKeyword, RetrievalHybrid, RetrievalGraph, RetrievalAgentic},
		Doc:  "How chunks are retrieved."},
	{Key: "top_k", Kind: kindInt, Min: 1, Max: 100, PerRequest: true, ClampBy: "max_top_k",
		Doc: "Chunks returned by a search."},
	{Key: "max_tokens_per_query", Kind: kindInt, Min: 1, Max: 1_000_000, PerRequest: true, ClampBy: "max_tokens_per_query",
		Doc: "Tokens an answer may use."},
	{Key: "temperature", Kind: kindFloat, Min: 0, Max: 2, PerRequest: true, Doc: "Sampling temperature."},
	{Key: "chunk_size", Kind: kindInt, Min: 32, Max: 8192, Doc: "Chunk size in tokens."},
	{Key: "chunk_overlap", Kind: kindInt, Min: 0, Max: 4096, Doc: "Overlap between chunks in tokens."},
	{Key: "embedding_provider", Kind: kindEnum, Enum: []string{"local", "openai"}, Fixed: true,
		Doc: "Embedding provider; fixed at provisioning."},
	{Key: "embedding_model", Kind: kindString, Fixed: true, Doc: "Embedding model; fixed at provisioning."},
	{Key: "embedding_dimension", Kind: kindInt, Min: 8, Max: 2000, Fixed: true,
		Doc: "Vector dimension (pgvector HNSW indexes up to 2000); fixed at provisioning."},
	{Key: "answer_provider", Kind: kindEnum, Enum: []string{"extractive", "openai"},
		Doc: "Who writes answers: extractive (no model) or an OpenAI-compatible model."},
	{Key: "ef_search", Kind: kindInt, Min: 10, Max: 1000, PerRequest: true,
		Doc: "pgvector hnsw.ef_search for vector retrieval."},
	{Key: "language", Kind: kindEnum, Enum: append([]string{"auto"}, TextSearchConfigs...),
		Doc: "Text-search configuration of new documents, or auto to detect each document's language."},
	{Key: "fusion_keyword_weight", Kind: kindFloat, Min: 0, Max: 10, PerRequest: true,
		Doc: "Weight of the keyword list in hybrid and graph fusion."},
	{Key: "fusion_vector_weight", Kind: kindFloat, Min: 0, Max: 10, PerRequest: true,
		Doc: "Weight of the vector list in hybrid and graph fusion."},
	{Key: "fusion_graph_weight", Kind: kindFloat, Min: 0, Max: 10, PerRequest: true,
		Doc: "Weight of the knowledge-graph list in graph fusion."},
	{Key: "answer_link_hosts", Kind: kindString, Check: checkLinkHosts,
		Doc: "Comma-separated host names that links and images in answers may point to; empty (the default): none."},
	{Key: "isolation_tier", Kind: kindEnum, Enum: []string{TierSiloed, TierPooled},
		Doc: "Where the tenant's data lives: siloed (its own database) or pooled (a shared pool database). Changing a tenant's own value, or its plan to one with another, moves an active tenant online (a plan's value itself applies to tenants provisioned afterwards); GET /v1/tenants/{id}/move shows the move."},
}

// maxLinkHosts bounds the answer_link_hosts list.
const maxLinkHosts = 50

// checkLinkHosts validates answer_link_hosts: up to maxLinkHosts comma-separated DNS host names
// (no scheme, port, path or wildcard), returned lower-cased and joined by ",", or the problem.
// Empty is valid.
func checkLinkHosts(list string) (norm, problem string) {
	if strings.TrimSpace(list) == "" {
		return "", ""
	}
	parts := strings.Split(list, ",")
	if len(parts) > maxLinkHosts {
		return "", fmt.Sprintf("At most %d host names.", maxLinkHosts)
	}
	hosts := make([]string, 0, len(parts))
	for _, h := range parts {
		h = strings.ToLower(strings.TrimSpace(h))
		if !isHostName(h) {
			return "", fmt.Sprintf("%q is not a host name: list host names such as docs.example.com, separated by commas.", h)
		}
		hosts = append(hosts, h)
	}
	return strings.Join(hosts, ","), ""
}

// isHostName reports whether h is a lower-case DNS name: dot-separated labels of 1-63 letters,
// digits and inner hyphens, 253 characters at most.
func isHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// SystemSettings returns the built-in system defaults, the bottom layer of the cascade.
func SystemSettings() Overrides {
	return Overrides{
		"model_tier":            "standard",
		"retrieval_mode":        RetrievalHybrid,
		"top_k":                 int64(5),
		"max_tokens_per_query":  int64(1024),
		"temperature":           0.2,
		"chunk_size":            int64(256),
		"chunk_overlap":         int64(32),
		"embedding_provider":    "local",
		"embedding_model":       "use-lite-512",
		"embedding_dimension":   int64(512),
		"answer_provider":       "extractive",
		"ef_search":             int64(100),
		"language":              "auto",
		"fusion_keyword_weight": 1.0,
		"fusion_vector_weight":  1.0,
		"fusion_graph_weight":   0.5,
		"answer_link_hosts":     "",
		"isolation_tier":        TierSiloed,
	}
}

// FixedSettingKeys lists the settings that are fixed once a tenant is provisioned.
func FixedSettingKeys() []string {
	var keys []string
	for _, f := range settingFields {
		if f.Fixed {
			keys = append(keys, f.Key)
		}
	}
	return keys
}

// ValidateSettings checks a layer of setting overrides: known keys, types and bounds. Errors are
// EINVALID naming "<prefix>.<key>".
func ValidateSettings(prefix string, o Overrides) error {
	return validateOverrides(prefix, settingFields, o, false)
}

// ValidateRequestSettings is ValidateSettings for per-request overrides, which may only name the
// settings in the request allow-list.
func ValidateRequestSettings(prefix string, o Overrides) error {
	return validateOverrides(prefix, settingFields, o, true)
}
