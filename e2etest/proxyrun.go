package e2etest

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/ragplane/ragplane/proxy"
)

// Proxy is a proxy running in the test process.
type Proxy struct {
	// URL is the tenant listener.
	URL string
	// AdminURL is the admin listener: /metrics, and /readyz and /healthz with their detail.
	AdminURL string
}

// RunProxy starts a proxy subscribed to the stack's control plane, both listeners on free
// loopback ports, and returns at once, ready or not; it stops when the test ends.
func (s *Stack) RunProxy(tb testing.TB, log *slog.Logger, mutate ...func(*proxy.Config)) Proxy {
	tb.Helper()
	cfg := proxy.DefaultConfig()
	cfg.Addr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.XDSAddr = s.XDSAddr
	cfg.InternalKey = InternalKey
	cfg.ControlPlaneURL = s.AdminURL
	cfg.RedisURL = os.Getenv("REDIS_URL")
	if cfg.RedisURL == "" {
		if os.Getenv("RAGPLANE_REQUIRE_STACK") != "" {
			tb.Fatal("REDIS_URL is not set: run `make up` (make test does it)")
		}
		tb.Skip("REDIS_URL not set")
	}
	cfg.NodeID = "test-proxy-" + time.Now().Format("150405.000000000")
	cfg.RedisPrefix = s.Prefix // one namespace per test stack, shared by its proxies
	cfg.Leeway = time.Second
	for _, m := range mutate {
		m(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := proxy.New(ctx, cfg, log)
	if err != nil {
		cancel()
		tb.Fatalf("start proxy: %v", err)
	}
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	tb.Cleanup(func() { cancel(); <-done })
	return Proxy{URL: "http://" + p.Addr(), AdminURL: "http://" + p.AdminAddr()}
}

// StartProxyWithAdmin is StartProxy that also returns the proxy's admin listener.
func (s *Stack) StartProxyWithAdmin(tb testing.TB, mutate ...func(*proxy.Config)) Proxy {
	tb.Helper()
	p := s.RunProxy(tb, logger(), mutate...)
	WaitReady(tb, p.URL)
	s.WaitPolicies(tb)
	return p
}
