package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ragplane/ragplane"
)

// balancer picks workers: least requests in flight among the healthy ones, with passive health
// checks. A worker that fails EjectAfter times in a row (connection refused, reset, no answer or
// a stalled stream within its timeout) is ejected for EjectFor; back from an ejection it is on
// probation: its first failure before a success ejects it again, so a worker that stays hung
// costs one request per EjectFor, not EjectAfter. If every worker is ejected, they are all tried
// again (better a likely failure than a certain one).
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
	probation    bool // ejected before and not answered well since
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
				bestStats.failures, bestStats.probation = 0, false
				return
			}
			bestStats.failures++
			if bestStats.failures >= b.after || bestStats.probation && !bestStats.ejectedUntil.After(time.Now()) {
				bestStats.ejectedUntil = time.Now().Add(b.for_)
				bestStats.failures, bestStats.probation = 0, true
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
// have acted on it, and the client gets 502 (504 if it timed out). The body of a retry comes
// from GetBody (makeReplayable); a request without one is not retried.
//
// Each attempt has the route's timeout to get the worker's response headers, counted from the
// moment it is sent; the response body then may go at most idle without a byte from the worker
// (see idleBody). Either timeout ends the attempt's request to the worker, so that the worker
// sees its client gone, and counts as a failure of the worker for ejection; the balancer hears
// of a response's outcome once its body is closed.
type retryTransport struct {
	base     http.RoundTripper
	balancer *balancer
	workers  func() []string
	// timeout is the time a worker has to send the response headers of r.
	timeout func(r *http.Request) time.Duration
	// idle bounds the time between two reads of a response body that return bytes (0: none).
	idle time.Duration
	// retried, if set, is told of each retry: "connect" or "idempotent".
	retried func(reason string)
	// timedOut, if set, is told of each timeout: "headers" or "idle".
	timedOut func(reason string)
}

type workerKey struct{}

// errHeadersTimeout ends an attempt whose worker sent no response headers within the route's
// timeout; errIdleTimeout ends a response whose worker sent nothing for the idle timeout.
var (
	errHeadersTimeout = errors.New("proxy: the worker sent no response within the route's timeout")
	errIdleTimeout    = errors.New("proxy: the worker sent nothing within the idle timeout")
)

// timeoutError is an attempt that timed out waiting for its worker's response headers.
type timeoutError struct{ after time.Duration }

func (e *timeoutError) Error() string {
	return errHeadersTimeout.Error() + " (" + e.after.String() + ")"
}

func (e *timeoutError) Unwrap() error { return errHeadersTimeout }

func (t *retryTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	addrs := t.workers()
	skip := ""
	var body io.ReadCloser
	for attempt := 0; ; attempt++ {
		addr, done, err := t.balancer.pick(addrs, skip)
		if err != nil {
			return nil, err
		}
		// A shallow copy with its own URL and a context the timeouts end: the reverse proxy's
		// outgoing request is already private to this call, and the transport below clones it
		// before adding headers.
		ctx, cancel := context.WithCancelCause(context.WithValue(r.Context(), workerKey{}, addr))
		req := r.WithContext(ctx)
		u := *r.URL
		u.Scheme, u.Host = "http", addr
		req.URL, req.Host = &u, addr
		if attempt > 0 {
			req.Body = body
		}
		timeout := t.timeout(r)
		hd := newHeaderDeadline(timeout, func() { cancel(errHeadersTimeout) })
		if req.Body != nil && req.Body != http.NoBody {
			req.Body = &pacedBody{ReadCloser: req.Body, deadline: hd}
		}
		resp, err := t.base.RoundTrip(req)
		if hd.end() && r.Context().Err() == nil {
			// The worker did not answer in time, whatever the transport made of the cancel.
			if err == nil {
				resp.Body.Close()
				resp = nil
			}
			err = &timeoutError{after: timeout}
			if t.timedOut != nil {
				t.timedOut("headers")
			}
		}
		if err == nil {
			// A 502, or a 503 that does not say when to come back, is the worker failing.
			failed := resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == ""
			resp.Body = newIdleBody(resp, t.idle, cancel, func(idled bool) { done(failed || idled) }, t.timedOut)
			return resp, nil
		}
		done(true)
		cancel(nil)
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

// headerDeadline is the time a worker has left to send its response headers. It runs while the
// proxy sends the request and waits for the answer, and stands still while the proxy waits for
// the client's next bytes of a streamed body: a slow upload is the client's doing, not the
// worker's, and must not get a healthy worker ejected.
type headerDeadline struct {
	mu      sync.Mutex
	timer   *time.Timer
	d       time.Duration
	started time.Time // when the timer last started running
	left    time.Duration
	ended   bool // the headers came, or the time ran out
	fired   bool
}

func newHeaderDeadline(d time.Duration, expire func()) *headerDeadline {
	hd := &headerDeadline{d: d, left: d, started: time.Now()}
	hd.timer = time.AfterFunc(d, func() {
		hd.mu.Lock()
		hd.fired = !hd.ended
		hd.ended = true
		hd.mu.Unlock()
		if hd.fired {
			expire()
		}
	})
	return hd
}

// pause stops the clock while the client is waited on; resume starts it again.
func (hd *headerDeadline) pause() {
	hd.mu.Lock()
	defer hd.mu.Unlock()
	if !hd.ended && hd.timer.Stop() {
		hd.left -= time.Since(hd.started)
	}
}

func (hd *headerDeadline) resume() {
	hd.mu.Lock()
	defer hd.mu.Unlock()
	if !hd.ended {
		hd.started = time.Now()
		hd.timer.Reset(max(hd.left, 0))
	}
}

// end stops the clock for good and reports whether the time ran out first.
func (hd *headerDeadline) end() bool {
	hd.mu.Lock()
	defer hd.mu.Unlock()
	hd.ended = true
	hd.timer.Stop()
	return hd.fired
}

// pacedBody is a request body whose reads from the client do not count against the worker's
// header deadline.
type pacedBody struct {
	io.ReadCloser
	deadline *headerDeadline
}

func (b *pacedBody) Read(p []byte) (int, error) {
	b.deadline.pause()
	defer b.deadline.resume()
	return b.ReadCloser.Read(p)
}

// idleBody is a worker's response body that may go at most idle without a byte. When it does,
// the request to the worker is ended (the worker sees its client gone) and the response ends
// for the client: a server-sent event stream, whose headers are long gone, ends cleanly with an
// "error" event in the shape the workers use (code "timeout"), any other body with a read error
// (the reverse proxy then aborts the client's response). Close tells the balancer the outcome.
type idleBody struct {
	rc       io.ReadCloser
	idle     time.Duration
	sse      bool
	cancel   context.CancelCauseFunc
	done     func(idled bool)
	timedOut func(reason string)
	timer    *time.Timer // nil without an idle timeout
	idled    atomic.Bool
	last     [2]byte // the last two bytes passed on, to find where an event ends
	tail     []byte  // what is left to send of the closing error event
	ended    bool    // the closing event is sent: EOF
}

func newIdleBody(resp *http.Response, idle time.Duration, cancel context.CancelCauseFunc, done func(idled bool), timedOut func(string)) *idleBody {
	mt, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	b := &idleBody{rc: resp.Body, idle: idle, sse: strings.EqualFold(strings.TrimSpace(mt), "text/event-stream"),
		cancel: cancel, done: done, timedOut: timedOut, last: [2]byte{'\n', '\n'}}
	if idle > 0 {
		b.timer = time.AfterFunc(idle, func() {
			b.idled.Store(true)
			if b.timedOut != nil {
				b.timedOut("idle")
			}
			cancel(errIdleTimeout)
		})
		b.timer.Stop() // it runs only while a Read waits on the worker
	}
	return b
}

// Read passes on the worker's bytes. Only the time spent waiting on the worker counts: a client
// that is slow to take the response holds up the next Read, and is not the worker's fault.
func (b *idleBody) Read(p []byte) (int, error) {
	if b.tail != nil || b.ended {
		return b.sendTail(p)
	}
	if b.timer != nil && !b.idled.Load() {
		b.timer.Reset(b.idle)
	}
	n, err := b.rc.Read(p)
	if b.timer != nil {
		b.timer.Stop()
	}
	if n >= 2 {
		b.last = [2]byte{p[n-2], p[n-1]}
	} else if n == 1 {
		b.last = [2]byte{b.last[1], p[0]}
	}
	if err == nil || err == io.EOF || !b.idled.Load() {
		return n, err
	}
	if !b.sse {
		return n, errIdleTimeout
	}
	// Headers went out long ago: the stream ends with an error event, on a line of its own.
	b.tail = nil
	if b.last != [2]byte{'\n', '\n'} {
		b.tail = append(b.tail, "\n\n"...)
	}
	b.tail = append(b.tail, "event: error\ndata: {\"code\":\""+ragplane.ETIMEOUT+"\",\"detail\":\"The data-plane worker sent nothing for "+
		b.idle.String()+"; the stream is cut.\"}\n\n"...)
	if n > 0 {
		return n, nil
	}
	return b.sendTail(p)
}

func (b *idleBody) sendTail(p []byte) (int, error) {
	if len(b.tail) == 0 {
		b.tail, b.ended = nil, true
		return 0, io.EOF
	}
	n := copy(p, b.tail)
	b.tail = b.tail[n:]
	return n, nil
}

func (b *idleBody) Close() error {
	if b.timer != nil {
		b.timer.Stop()
	}
	err := b.rc.Close()
	b.cancel(nil)
	b.done(b.idled.Load())
	return err
}
