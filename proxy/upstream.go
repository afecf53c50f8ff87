package proxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ragplane/ragplane"
)

// balancer picks workers: least requests in flight among the healthy ones, with passive health
// checks. A worker that fails EjectAfter times in a row (connection refused, reset, timeout) is
// ejected for EjectFor; if every worker is ejected, they are all tried again (better a likely
// failure than a certain one).
type balancer struct {
	after int
	for_  time.Duration

	mu    sync.Mutex
	stats map[string]*workerStats
	next  int
}

type workerStats struct {
	inFlight     int
	failures     int
	ejectedUntil time.Time
}

func newBalancer(after int, ejectFor time.Duration) *balancer {
	return &balancer{after: after, for_: ejectFor, stats: map[string]*workerStats{}}
}

// pick returns the best worker of addrs other than skip, and a done func to report the outcome.
func (b *balancer) pick(addrs []string, skip string) (string, func(failed bool), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	best := ""
	var bestStats *workerStats
	for pass := 0; pass < 2 && best == ""; pass++ {
		// Start at a rotating offset so equal loads spread round-robin.
		b.next++
		for i := range addrs {
			a := addrs[(b.next+i)%len(addrs)]
			if a == skip {
				continue
			}
			st := b.stats[a]
			if st == nil {
				st = &workerStats{}
				b.stats[a] = st
			}
			if pass == 0 && st.ejectedUntil.After(now) {
				continue
			}
			if best == "" || st.inFlight < bestStats.inFlight {
				best, bestStats = a, st
			}
		}
	}
	if best == "" {
		return "", nil, ragplane.Errorf(ragplane.EUNAVAILABLE, "No data-plane worker is available.")
	}
	bestStats.inFlight++
	var once sync.Once
	return best, func(failed bool) {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			bestStats.inFlight--
			if !failed {
				bestStats.failures = 0
				return
			}
			bestStats.failures++
			if bestStats.failures >= b.after {
				bestStats.ejectedUntil = time.Now().Add(b.for_)
				bestStats.failures = 0
			}
		})
	}, nil
}

// forget drops the stats of workers no longer in the endpoint set.
func (b *balancer) forget(addrs []string) {
	keep := map[string]bool{}
	for _, a := range addrs {
		keep[a] = true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for a, st := range b.stats {
		if !keep[a] && st.inFlight == 0 {
			delete(b.stats, a)
		}
	}
}

// connectFailure reports whether err means the request never reached the worker, so another
// worker may safely be tried.
func connectFailure(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// isIdempotent reports whether a request may be sent again to another worker after the first one
// failed without answering.
func isIdempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodDelete:
		return true
	}
	// Ingestion with an Idempotency-Key is safe to resend: the worker deduplicates it.
	return r.Header.Get("Idempotency-Key") != "" && r.GetBody != nil
}

// retryTransport sends a request to the worker chosen for it, and once more to another worker if
// the first could not be reached, or if it failed without answering and the request is idempotent.
type retryTransport struct {
	base     http.RoundTripper
	balancer *balancer
	workers  func() []string
}

type workerKey struct{}

func (t *retryTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	addrs := t.workers()
	skip := ""
	for attempt := 0; ; attempt++ {
		addr, done, err := t.balancer.pick(addrs, skip)
		if err != nil {
			return nil, err
		}
		// A shallow copy with its own URL: the reverse proxy's outgoing request is already
		// private to this call, and the transport below clones it before adding headers.
		req := r.WithContext(context.WithValue(r.Context(), workerKey{}, addr))
		u := *r.URL
		u.Scheme, u.Host = "http", addr
		req.URL, req.Host = &u, addr
		if attempt > 0 && r.GetBody != nil {
			if req.Body, err = r.GetBody(); err != nil {
				done(false)
				return nil, err
			}
		}
		resp, err := t.base.RoundTrip(req)
		failed := err != nil || (resp != nil && (resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == ""))
		done(failed)
		if err == nil {
			return resp, nil
		}
		// Another worker gets the request if it never reached this one, or, for a request that is
		// safe to repeat, if this one died before answering (no response at all came back).
		if attempt > 0 || len(addrs) < 2 || r.Context().Err() != nil || !(connectFailure(err) || isIdempotent(r)) {
			return nil, err
		}
		skip = addr
	}
}
