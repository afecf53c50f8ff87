package dataplane

import (
	"context"
	"fmt"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/answer"
	"github.com/ragplane/ragplane/dataplane/prose"
)

const (
	// reservationTTL is how long a reservation holds its tokens when its worker dies before
	// settling it, and how long a settled one waits for its usage event to be shipped. It
	// outlasts the longest model call (two retries of a 120 s attempt, or an agent's steps).
	reservationTTL = 15 * time.Minute
	// defaultAnswerTokens stands for max_tokens_per_query when it is unset (the model's default).
	defaultAnswerTokens = 4096
)

// reservation is a query's hold on its tenant's monthly tokens (limits.monthly_tokens), taken in
// the catalog before a model is called and settled to the tokens the query really used once its
// answer or stream has ended. It is shared by all workers: the catalog admits a query while the
// tenant's shipped usage plus every held reservation is below the quota, so the quota is passed
// by at most one reservation, however many queries run at once on however many workers.
type reservation struct {
	s      *Server
	tenant ragplane.TenantID
	// id is also the id of the query's usage event, whose shipping ends the reservation.
	id   string
	held bool
}

// reserveTokens admits a query that will call a model with an estimate of its tokens, or answers
// EQUOTA naming monthly_tokens. One catalog round trip. When the catalog is away the query is
// served unchecked (its usage is still recorded), as checkMonthlyTokens does.
func (s *Server) reserveTokens(ctx context.Context, sc *scope, estimate int) (*reservation, error) {
	r := &reservation{s: s, tenant: sc.tenant, id: ragplane.NewRequestID()}
	limit := int64(sc.cfg.Limits.MonthlyTokens)
	now := time.Now().UTC()
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	_, admitted, err := s.store.ReserveTokens(ctx, sc.tenant, r.id, int64(estimate), limit, month, reservationTTL)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.log.Warn("monthly token quota unchecked", "tenant_id", sc.tenant, "error", ragplane.ErrorMessage(err))
		return r, nil
	}
	if !admitted {
		return nil, &ragplane.Error{Code: ragplane.EQUOTA, Field: "monthly_tokens",
			Message: fmt.Sprintf("The tenant has used its %d tokens for this month.", limit)}
	}
	r.held = true
	return r, nil
}

// settle replaces the reservation's estimate by the tokens the query used (zero releases it). It
// runs once, even after the client has gone; a failure leaves the estimate held until the query's
// usage event is shipped or the reservation lapses.
func (r *reservation) settle(tokens int) {
	if r == nil || !r.held {
		return
	}
	r.held = false
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.s.store.SettleTokens(ctx, r.id, int64(tokens), reservationTTL); err != nil {
		r.s.log.Warn("token reservation not settled", "tenant_id", r.tenant, "error", ragplane.ErrorMessage(err))
	}
}

// countPrompt counts the prompt tokens a model is sent for req (prose.CountTokens and a few
// tokens per message): what a stream cut off before the provider's count is billed.
func countPrompt(req answer.Request) int {
	n := 0
	for _, m := range answer.BuildMessages(req) {
		n += prose.CountTokens(m.Content) + 4
	}
	return n
}

// promptTokens is countPrompt with a quarter more: model tokenizers differ from ours.
func promptTokens(req answer.Request) int {
	n := countPrompt(req)
	return n + n/4
}

// answerEstimate is what a query holds before its model writes the answer: the embedding tokens
// already spent, the prompt, and the whole answer budget.
func answerEstimate(req answer.Request, embedTokens int) int {
	return embedTokens + promptTokens(req) + answerTokens(req)
}

// agentEstimate is what an agentic query holds: every step's prompt without the tool results
// (unknown before they are fetched) and its answer budget. A long tool result can make the agent
// use more than this; it is settled to what it used.
func agentEstimate(req answer.Request, steps int) int {
	return steps * (promptTokens(answer.Request{Query: req.Query}) + answerTokens(req))
}

func answerTokens(req answer.Request) int {
	if req.MaxTokens > 0 {
		return req.MaxTokens
	}
	return defaultAnswerTokens
}
