package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
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

// ejected counts the workers of addrs that are out of rotation now.
func (b *balancer) ejected(addrs []string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	now, n := time.Now(), 0
	for _, a := range addrs {
		if st := b.stats[a]; st != nil && st.ejectedUntil.After(now) {
			n++
		}
	}
	return n
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

// connectFailure reports whether err means the request never reached the worker: the connection
// to it could not be made (refused, no route, dial timeout), so not a byte of it was sent.
func connectFailure(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// isIdempotent reports whether a request may be sent again to another worker after it may have
// reached the first one: an idempotent method (RFC 9110, section 9.2.2), or a request carrying an
// Idempotency-Key, which the workers deduplicate.
func isIdempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return r.Header.Get("Idempotency-Key") != ""
}

// errBodySent is GetBody's answer for a streamed body that another attempt has started to read.
var errBodySent = errors.New("proxy: the request body was already sent to a worker")

// makeReplayable gives r a GetBody, so that a retry on another worker sends the body intact (the
// reverse proxy's copy of the body cannot be read again once an attempt has failed):
//   - a request that is safe to repeat (isIdempotent) is read whole first, up to limit (the
//     tenant's max_request_bytes, already enforced by r.Body), and every attempt reads its own
//     copy of the buffer;
//   - any other request keeps streaming to the first worker; it can go to another one only if
//     the first could not be connected to, and then not a byte of it has been read, so the retry
//     gets the same unread stream (GetBody fails once any of it was read).
//
// It fails with the body's read error, *http.MaxBytesError for a body over the limit.
func makeReplayable(r *http.Request, limit int64) error {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return nil // nothing to replay: the reverse proxy sends no body
	}
	if !isIdempotent(r) {
		b := &unsentBody{rc: r.Body}
		r.Body = b
		r.GetBody = func() (io.ReadCloser, error) {
			if b.read.Load() {
				return nil, errBodySent
			}
			return b, nil
		}
		return nil
	}
	var buf []byte
	var err error
	if r.ContentLength > 0 && r.ContentLength <= limit {
		buf = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, buf)
	} else {
		buf, err = io.ReadAll(r.Body) // chunked: counted against the limit as it arrives
	}
	if err != nil {
		return err
	}
	r.ContentLength, r.TransferEncoding = int64(len(buf)), nil
	r.Body = io.NopCloser(bytes.NewReader(buf))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	return nil
}

// unsentBody is a streamed request body that notes whether any of it was read. Close does
// nothing: the server closes the client's body when the handler returns.
type unsentBody struct {
	rc   io.ReadCloser
	read atomic.Bool
}

func (b *unsentBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.rc.Read(p)
}

func (b *unsentBody) Close() error { return nil }

// retryTransport sends a request to the worker chosen for it, and once more to another worker
// when no response came back and sending it again is safe: always if the first worker could not
// be connected to (nothing was sent), and after a failure once the request may have reached the
// worker (reset, closed before answering, timed out) only if it is idempotent (isIdempotent).
// A POST without an Idempotency-Key that reached a dying worker is not repeated: the worker may
// have acted on it, and the client gets 502. The body of a retry comes from GetBody
// (makeReplayable); a request without one is not retried.
type retryTransport struct {
	base     http.RoundTripper
	balancer *balancer
	workers  func() []string
	// retried, if set, is told of each retry: "connect" or "idempotent".
	retried func(reason string)
}

type workerKey struct{}

func (t *retryTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	addrs := t.workers()
	skip := ""
	var body io.ReadCloser
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
		if attempt > 0 {
			req.Body = body
		}
		resp, err := t.base.RoundTrip(req)
		failed := err != nil || (resp != nil && (resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == ""))
		done(failed)
		if err == nil {
			return resp, nil
		}
		if attempt > 0 || len(addrs) < 2 || r.Context().Err() != nil || !(connectFailure(err) || isIdempotent(r)) {
			return nil, err
		}
		if r.Body != nil {
			if r.GetBody == nil {
				return nil, err
			}
			var gerr error
			if body, gerr = r.GetBody(); gerr != nil {
				return nil, err // the body is gone: the first attempt's error is the one to report
			}
		}
		if t.retried != nil {
			reason := "idempotent"
			if connectFailure(err) {
				reason = "connect"
			}
			t.retried(reason)
		}
		skip = addr
	}
}
