package catalog

import (
	"context"
	"encoding/json"
	"time"

	"github.com/ragplane/ragplane"
)

// Price is what a model costs per 1,000 tokens, in the operator's currency.
type Price struct {
	PromptPer1K     float64 `json:"prompt_per_1k"`
	CompletionPer1K float64 `json:"completion_per_1k"`
}

// DefaultPrices is the built-in price table (RAGPLANE_PRICES, a JSON object of model -> Price,
// replaces it). The local embedder and the extractive answerer cost nothing.
func DefaultPrices() map[string]Price {
	return map[string]Price{
		"extractive":  {},
		"gpt-4o-mini": {PromptPer1K: 0.00015, CompletionPer1K: 0.0006},
		"gpt-4o":      {PromptPer1K: 0.0025, CompletionPer1K: 0.01},
		"gpt-4.1":     {PromptPer1K: 0.002, CompletionPer1K: 0.008},
	}
}

// ParsePrices reads a price table: a JSON object of model -> {prompt_per_1k, completion_per_1k}.
func ParsePrices(s string) (map[string]Price, error) {
	var p map[string]Price
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return nil, err
	}
	return p, nil
}

// TenantMetrics is the compliance seed's GET /metrics/{tenant_id}, field for field: queries
// (searches and questions) over a window, and what they cost. A query failed only when the
// platform failed it (5xx); a client's error (4xx: bad input, quota) is not a failure.
type TenantMetrics struct {
	TenantID          ragplane.TenantID `json:"tenant_id"`
	TimeWindowHours   int               `json:"time_window_hours"`
	TotalQueries      int               `json:"total_queries"`
	SuccessfulQueries int               `json:"successful_queries"`
	AvgLatencyMS      float64           `json:"avg_latency_ms"`
	Costs             MetricsCosts      `json:"costs"`
}

// MetricsCosts is the costs part of TenantMetrics.
type MetricsCosts struct {
	// TotalTokens are the prompt, completion and embedding tokens of every request in the window.
	TotalTokens int64 `json:"total_tokens"`
	// EstimatedLLMCost prices the model tokens with the operator's price table.
	EstimatedLLMCost float64 `json:"estimated_llm_cost"`
	// TotalRequests counts every metered request (ingestion, documents, queries ...).
	TotalRequests int `json:"total_requests"`
	// SuccessRate is successful_queries / total_queries (0 without queries).
	SuccessRate float64 `json:"success_rate"`
}

// queryRoutes are the routes TenantMetrics counts as queries.
var queryRoutes = []string{"POST /v1/query", "POST /v1/search"}

// TenantMetrics computes a tenant's metrics over the hours before now, pricing model tokens with
// prices (a model missing from the table costs nothing).
func (s *Store) TenantMetrics(ctx context.Context, tenant ragplane.TenantID, hours int, now time.Time, prices map[string]Price) (TenantMetrics, error) {
	m := TenantMetrics{TenantID: tenant, TimeWindowHours: hours}
	from := now.Add(-time.Duration(hours) * time.Hour)
	err := s.pool.QueryRow(ctx, `select count(*) filter (where route = any($4)),
			count(*) filter (where route = any($4) and status < 500),
			coalesce(avg(latency_ms) filter (where route = any($4)), 0),
			count(*),
			coalesce(sum(prompt_tokens + completion_tokens + embedding_tokens), 0)
		from usage_events where tenant_id = $1 and at >= $2 and at < $3`,
		tenant, from, now, queryRoutes).Scan(&m.TotalQueries, &m.SuccessfulQueries, &m.AvgLatencyMS,
		&m.Costs.TotalRequests, &m.Costs.TotalTokens)
	if err != nil {
		return m, pgError(err, "Usage")
	}
	if m.TotalQueries > 0 {
		m.Costs.SuccessRate = float64(m.SuccessfulQueries) / float64(m.TotalQueries)
	}
	rows, err := s.pool.Query(ctx, `select model, coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0)
		from usage_events where tenant_id = $1 and at >= $2 and at < $3 and model <> '' group by model`, tenant, from, now)
	if err != nil {
		return m, pgError(err, "Usage")
	}
	defer rows.Close()
	for rows.Next() {
		var model string
		var prompt, completion int64
		if err := rows.Scan(&model, &prompt, &completion); err != nil {
			return m, pgError(err, "Usage")
		}
		p := prices[model]
		m.Costs.EstimatedLLMCost += float64(prompt)/1000*p.PromptPer1K + float64(completion)/1000*p.CompletionPer1K
	}
	return m, pgError(rows.Err(), "Usage")
}
