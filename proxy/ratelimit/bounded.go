package ratelimit

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// warnInterval is the shortest gap between two warnings about the same failing dependency: a Redis
// outage must not turn every request into a log line.
const warnInterval = 10 * time.Second

// bounded runs fn with a context that ends after timeout and returns as soon as fn returns or that
// context ends, whichever comes first.
//
// go-redis applies context deadlines to its sockets only when the client was built with
// ContextTimeoutEnabled; otherwise a hung Redis blocks a call for ReadTimeout (seconds). Running the
// call on its own goroutine makes the bound hold for any client. A call that is left behind keeps
// its goroutine until the client's own timeouts end it; orphan, if not nil, then receives its
// result, so that the caller can undo what the call did after all (an Acquire whose reply came too
// late must not leave its lease behind).
func bounded[T any](ctx context.Context, timeout time.Duration, fn func(context.Context) (T, error), orphan func(T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	type result struct {
		v   T
		err error
	}
	// done is unbuffered: once left is closed nobody receives from it, so the goroutine knows for
	// certain whether its result was delivered or must go to orphan.
	done := make(chan result)
	left := make(chan struct{})
	go func() {
		defer cancel()
		v, err := fn(ctx)
		select {
		case done <- result{v, err}:
		case <-left:
			if orphan != nil {
				orphan(v, err)
			}
		}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		close(left)
		var zero T
		return zero, ctx.Err()
	}
}

// isTimeout reports whether err means Redis did not answer in time, in which case a command may
// still have run on the server.
func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		(errors.As(err, &te) && te.Timeout())
}

// health is a circuit breaker around Redis. One failed or slow call does not stop a replica from
// using Redis: only OutageAfter failures in a row declare an outage. During an outage calls skip
// Redis (decisions are taken in process by the tenant's fail policy). With background set a
// probe loop pings Redis every probe interval (Gate.startProbe); without, one call per probe
// interval tries Redis. The first that succeeds ends the outage at once.
type health struct {
	after      int32         // consecutive failures that declare an outage
	probe      time.Duration // between two calls that try Redis during an outage
	background atomic.Bool   // a probe loop, not calls, tries Redis during an outage
	failures   atomic.Int32
	down       atomic.Bool
	since      atomic.Int64 // unix nanoseconds: when the outage began
	nextProbe  atomic.Int64 // unix nanoseconds
}

// allow reports whether a call at now should try Redis.
func (h *health) allow(now time.Time) bool {
	if !h.down.Load() {
		return true
	}
	if h.background.Load() {
		return false
	}
	next := h.nextProbe.Load()
	return now.UnixNano() >= next && h.nextProbe.CompareAndSwap(next, now.Add(h.probe).UnixNano())
}

// ok records a call Redis answered; it reports whether that ended an outage.
func (h *health) ok() bool {
	if h.failures.Load() != 0 {
		h.failures.Store(0)
	}
	return h.down.Load() && h.down.CompareAndSwap(true, false)
}

// fail records a failed call at now; it reports whether that began an outage.
func (h *health) fail(now time.Time) bool {
	if h.failures.Add(1) < h.after || h.down.Load() {
		return false
	}
	h.nextProbe.Store(now.Add(h.probe).UnixNano())
	if !h.down.CompareAndSwap(false, true) {
		return false
	}
	h.since.Store(now.UnixNano())
	return true
}

// errOutage stands for the Redis error while calls skip Redis.
var errOutage = errors.New("redis is failing; not tried")

// throttle lets one event through per interval; it rate-limits warnings.
type throttle struct {
	interval time.Duration
	last     atomic.Int64 // unix nanoseconds of the last event let through; 0 for none
}

// ok reports whether an event at now may pass, and records it if so.
func (t *throttle) ok(now time.Time) bool {
	last := t.last.Load()
	if last != 0 && now.UnixNano()-last < int64(t.interval) {
		return false
	}
	return t.last.CompareAndSwap(last, now.UnixNano())
}

// register registers c with reg, or returns the collector already registered under the same
// name, so that several limiters (or tests) can share a registry. A nil reg registers nothing.
// Any other registration error is a programming error and panics, as MustRegister does.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}
