package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/ragplane/ragplane"
)

// localShares are the in-process limiters used while Redis is away: one token bucket per tenant
// and scope holding this replica's share of the limit. They start full, so after an outage begins
// a tenant may get up to one extra burst per replica; the map holds one entry per tenant seen,
// which the catalog bounds.
type localShares struct {
	replicas int
	mu       sync.Mutex
	limiters map[localKey]*rate.Limiter
}

type localKey struct {
	tenant ragplane.TenantID
	scope  string
}

func newLocalShares(replicas int) *localShares {
	return &localShares{replicas: replicas, limiters: make(map[localKey]*rate.Limiter)}
}

// take counts one request against this replica's share of s. It returns the decision and a
// function that gives the request back.
func (ls *localShares) take(tenant ragplane.TenantID, s spec, now time.Time) (Decision, func()) {
	perSecond := s.perSecond / float64(ls.replicas)
	burst := max(1, s.burst/ls.replicas)
	lim := ls.limiter(localKey{tenant, s.scope}, rate.Limit(perSecond), burst, now)

	d := Decision{Limit: burst, Scope: s.scope}
	r := lim.ReserveN(now, 1)
	undo := func() {}
	if delay := r.DelayFrom(now); delay > 0 {
		r.CancelAt(now)
		d.RetryAfter = delay
	} else {
		d.Allowed = true
		undo = func() { r.CancelAt(now) }
	}
	tokens := max(0, lim.TokensAt(now))
	d.Remaining = int(tokens)
	d.ResetAfter = time.Duration((float64(burst) - tokens) / perSecond * float64(time.Second))
	return d, undo
}

// limiter returns the bucket for k, created full, with its rate and burst updated when the
// tenant's limits changed.
func (ls *localShares) limiter(k localKey, r rate.Limit, burst int, now time.Time) *rate.Limiter {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	lim, ok := ls.limiters[k]
	if !ok {
		lim = rate.NewLimiter(r, burst)
		ls.limiters[k] = lim
		return lim
	}
	if lim.Limit() != r {
		lim.SetLimitAt(now, r)
	}
	if lim.Burst() != burst {
		lim.SetBurstAt(now, burst)
	}
	return lim
}
