package dataplane

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ragplane/ragplane"
)

// monthlyTokens enforces limits.monthly_tokens cheaply, before retrieval: a tenant whose shipped
// usage this calendar month (UTC) has reached the quota gets 429 on queries until the month turns
// or the quota is raised. The count lives in the catalog and is cached per tenant for a few
// seconds. A query that calls a model is then admitted by reserving its tokens in the catalog
// (reserve.go), which bounds what concurrent queries can use; one answered without a model (the
// extractive answerer) is checked only here.
type monthlyTokens struct {
	cfg monthlyTokensConfig

	mu    sync.Mutex
	cache map[ragplane.TenantID]tokenCount
}

// monthlyTokensConfig configures the monthly token counter.
type monthlyTokensConfig struct {
	// Load sums the tokens a tenant used since a time (catalog.Store.TokensSince).
	Load func(ctx context.Context, tenant ragplane.TenantID, since time.Time) (int64, error)
	// TTL is how long a count is served before it is read again (default 5s).
	TTL time.Duration
	// Now is the counter's clock: the cache's expiry and the start of the month (default time.Now).
	Now func() time.Time
}

type tokenCount struct {
	used int64
	at   time.Time
}

func newMonthlyTokens(cfg monthlyTokensConfig) *monthlyTokens {
	if cfg.TTL <= 0 {
		cfg.TTL = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &monthlyTokens{cfg: cfg, cache: map[ragplane.TenantID]tokenCount{}}
}

// used returns the tokens tenant used this calendar month (UTC), at most TTL old (fresh: read now).
func (m *monthlyTokens) used(ctx context.Context, tenant ragplane.TenantID, fresh bool) (int64, error) {
	m.mu.Lock()
	c, ok := m.cache[tenant]
	m.mu.Unlock()
	now := m.cfg.Now()
	if ok && !fresh && now.Sub(c.at) <= m.cfg.TTL {
		return c.used, nil
	}
	utc := now.UTC()
	used, err := m.cfg.Load(ctx, tenant, time.Date(utc.Year(), utc.Month(), 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	m.cache[tenant] = tokenCount{used: used, at: now}
	m.mu.Unlock()
	return used, nil
}

func (s *Server) checkMonthlyTokens(ctx context.Context, sc *scope) error {
	return s.checkTokens(ctx, sc, false)
}

// checkTokens refuses a tenant whose monthly tokens are used up, from a count at most the
// counter's TTL old, or read now (fresh).
func (s *Server) checkTokens(ctx context.Context, sc *scope, fresh bool) error {
	limit := int64(sc.cfg.Limits.MonthlyTokens)
	used, err := s.tokens.used(ctx, sc.tenant, fresh)
	if err != nil {
		// The catalog is away: serve rather than refuse; usage is still recorded.
		s.log.Warn("monthly token quota unchecked", "tenant_id", sc.tenant, "error", ragplane.ErrorMessage(err))
		return nil
	}
	if used >= limit {
		return &ragplane.Error{Code: ragplane.EQUOTA, Field: "monthly_tokens",
			Message: fmt.Sprintf("The tenant has used its %d tokens for this month.", limit)}
	}
	return nil
}

// checkPaidEmbeddings refuses a search or an ingestion that would embed with a provider the
// tenant pays per token (embedding_provider openai) once its monthly tokens are used up, as
// queries are: the embedding tokens count against monthly_tokens too. The count is read now (one
// catalog round trip next to a provider call), so the quota is overshot by at most the requests
// in flight. Local embedders cost no tokens and are never refused here.
func (s *Server) checkPaidEmbeddings(ctx context.Context, sc *scope) error {
	if sc.cfg.Settings.EmbeddingProvider != "openai" {
		return nil
	}
	return s.checkTokens(ctx, sc, true)
}
