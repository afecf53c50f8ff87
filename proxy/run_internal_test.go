package proxy

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"
)

// A component that fails ends Run with its error, instead of leaving a proxy that looks alive
// but serves nothing: here the listener goes away under the HTTP server.
func TestRunEndsWhenAComponentFails(t *testing.T) {
	redisURL := os.Getenv("REDIS_URL")
	if redisURL == "" {
		if os.Getenv("RAGPLANE_REQUIRE_STACK") != "" {
			t.Fatal("REDIS_URL is not set: run `make up` (make test does it)")
		}
		t.Skip("REDIS_URL not set")
	}
	cfg := DefaultConfig()
	cfg.Addr, cfg.AdminAddr, cfg.XDSAddr, cfg.RedisURL = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:1", redisURL
	cfg.InternalKey = "a-test-internal-key-of-enough-length-0123456789"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	s.listener.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run returned nil after its listener failed")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run kept running after its listener failed")
	}
}
