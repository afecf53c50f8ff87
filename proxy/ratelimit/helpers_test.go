package ratelimit_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/ragplane/ragplane"
)

// MustRedis returns a client of the local stack's Redis (REDIS_URL), closed when the test ends.
// Without REDIS_URL the test is skipped, except under `make test` (RAGPLANE_REQUIRE_STACK=1).
func MustRedis(tb testing.TB) *redis.Client {
	tb.Helper()
	u := os.Getenv("REDIS_URL")
	if u == "" {
		if os.Getenv("RAGPLANE_REQUIRE_STACK") != "" {
			tb.Fatal("REDIS_URL is not set: run `make up` (make test does it)")
		}
		tb.Skip("REDIS_URL not set; run `make up` and `source .ragplane/stack.env`")
	}
	opt, err := redis.ParseURL(u)
	if err != nil {
		tb.Fatalf("parse REDIS_URL: %v", err)
	}
	rdb := redis.NewClient(opt)
	tb.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		tb.Fatalf("ping Redis at REDIS_URL: %v", err)
	}
	return rdb
}

// MustPrefix returns a random key prefix and deletes every key under it when the test ends, so
// that parallel tests never share state.
func MustPrefix(tb testing.TB, rdb *redis.Client) string {
	tb.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	prefix := "rpt:" + hex.EncodeToString(b) + ":"
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, pattern := range []string{prefix + "*"} {
			iter := rdb.Scan(ctx, 0, pattern, 100).Iterator()
			for iter.Next(ctx) {
				rdb.Del(ctx, iter.Val())
			}
			if err := iter.Err(); err != nil {
				tb.Errorf("clean up %s: %v", pattern, err)
			}
		}
	})
	return prefix
}

// DeadRedis returns a client of an address nothing listens on.
func DeadRedis(tb testing.TB) *redis.Client {
	tb.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	tb.Cleanup(func() { rdb.Close() })
	return rdb
}

// HungRedis returns a client of a server that accepts connections and reads, but never answers:
// a Redis that hangs. The client keeps go-redis's defaults (3 s read timeout, context deadlines
// ignored on the socket), so only the package's own bound can end a call early.
func HungRedis(tb testing.TB) *redis.Client {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go io.Copy(io.Discard, c)
		}
	}()
	rdb := redis.NewClient(&redis.Options{Addr: ln.Addr().String(), MaxRetries: -1})
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		rdb.Close()
	})
	return rdb
}

// CounterValue returns the value of counter name with the given label pairs in g, 0 if absent.
func CounterValue(tb testing.TB, g prometheus.Gatherer, name string, labelPairs ...string) float64 {
	tb.Helper()
	families, err := g.Gather()
	if err != nil {
		tb.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for i := 0; i+1 < len(labelPairs); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labelPairs[i] && lp.GetValue() == labelPairs[i+1] {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// AssertCode fails the test unless err carries the ragplane error code want.
func AssertCode(tb testing.TB, err error, want string) {
	tb.Helper()
	if got := ragplane.ErrorCode(err); got != want {
		tb.Fatalf("error code = %q, want %q (error: %v)", got, want, err)
	}
}

// Eventually polls cond every 10 ms until it holds or timeout passes.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not true after %v", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// isCode reports whether err carries code; for goroutines, which must not call Fatal.
func isCode(err error, code string) bool {
	var e *ragplane.Error
	return errors.As(err, &e) && e.Code == code
}

// forwarder is a TCP forwarder to the real Redis that tests can cut (as a Redis restart or a
// network partition would) or slow down (one reply at a time).
type forwarder struct {
	ln    net.Listener
	delay atomic.Int64 // added to the next reply from Redis

	mu    sync.Mutex
	up    bool
	conns []net.Conn
}

// mustForwarder starts a forwarder to real's address, closed when the test ends, and returns it
// with options for a client of it (no retries: a test decides what happens on a failure).
func mustForwarder(tb testing.TB, real *redis.Client) (*forwarder, *redis.Options) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	f := &forwarder{ln: ln, up: true}
	go f.accept(real.Options().Addr)
	tb.Cleanup(func() {
		f.setUp(false)
		ln.Close()
	})
	opt := *real.Options()
	opt.Addr = ln.Addr().String()
	opt.MaxRetries = -1
	return f, &opt
}

func (f *forwarder) accept(target string) {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		if !f.up {
			f.mu.Unlock()
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", target)
		if err != nil {
			f.mu.Unlock()
			c.Close()
			continue
		}
		f.conns = append(f.conns, c, s)
		f.mu.Unlock()
		go func() { io.Copy(s, c); s.Close() }()
		go func() {
			defer c.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := s.Read(buf)
				if err != nil {
					return
				}
				time.Sleep(time.Duration(f.delay.Swap(0)))
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
		}()
	}
}

// setUp cuts (false) or restores (true) the way: cutting closes every open connection and
// refuses new ones.
func (f *forwarder) setUp(up bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.up = up
	if !up {
		for _, c := range f.conns {
			c.Close()
		}
		f.conns = nil
	}
}

// MustSwitchableRedis returns a client that reaches the real Redis through a forwarder, and a
// function that cuts (false) or restores (true) the way.
func MustSwitchableRedis(tb testing.TB, real *redis.Client) (*redis.Client, func(up bool)) {
	tb.Helper()
	f, opt := mustForwarder(tb, real)
	rdb := redis.NewClient(opt)
	tb.Cleanup(func() { rdb.Close() })
	return rdb, f.setUp
}

// MustDelayedRedis returns a client (with context deadlines on its sockets, as the proxy's) that
// reaches the real Redis through a forwarder; slowNext(d) delays the next reply from Redis by d.
func MustDelayedRedis(tb testing.TB, real *redis.Client) (*redis.Client, func(time.Duration)) {
	tb.Helper()
	f, opt := mustForwarder(tb, real)
	opt.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opt)
	tb.Cleanup(func() { rdb.Close() })
	return rdb, func(d time.Duration) { f.delay.Store(int64(d)) }
}
