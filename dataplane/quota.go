package dataplane

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ragplane/ragplane"
)

// monthlyTokens enforces limits.monthly_tokens: a tenant whose shipped usage this calendar month
// (UTC) has reached the quota gets 429 on queries until the month turns or the quota is raised.
// The count lives in the catalog and is cached per tenant for a few seconds.
type monthlyTokens struct {
	mu    sync.Mutex
	cache map[ragplane.TenantID]tokenCount
}

type tokenCount struct {
	used int64
	at   time.Time
}

const tokenCacheTTL = 5 * time.Second

func (s *Server) checkMonthlyTokens(ctx context.Context, sc *scope) error {
	limit := int64(sc.cfg.Limits.MonthlyTokens)
	s.tokens.mu.Lock()
	c, ok := s.tokens.cache[sc.tenant]
	s.tokens.mu.Unlock()
	if !ok || time.Since(c.at) > tokenCacheTTL {
		now := time.Now().UTC()
		used, err := s.store.TokensSince(ctx, sc.tenant, time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC))
		if err != nil {
			// The catalog is away: serve rather than refuse; usage is still recorded.
			s.log.Warn("monthly token quota unchecked", "tenant_id", sc.tenant, "error", ragplane.ErrorMessage(err))
			return nil
		}
		c = tokenCount{used: used, at: time.Now()}
		s.tokens.mu.Lock()
		s.tokens.cache[sc.tenant] = c
		s.tokens.mu.Unlock()
	}
	if c.used >= limit {
		return &ragplane.Error{Code: ragplane.EQUOTA, Field: "monthly_tokens",
			Message: fmt.Sprintf("The tenant has used its %d tokens for this month.", limit)}
	}
	return nil
}
