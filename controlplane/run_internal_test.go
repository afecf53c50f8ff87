package controlplane

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ragplane/ragplane/catalog/catalogtest"
)

// TestRunEndsWhenAComponentFails checks that Run returns a failing component's error without
// waiting for ctx, and that it has stopped everything else by then.
func TestRunEndsWhenAComponentFails(t *testing.T) {
	tests := []struct {
		name  string
		given func(s *Server) // breaks a component before Run
	}{
		{name: "admin API", given: func(s *Server) { s.listener.Close() }},
		{name: "xDS server", given: func(s *Server) { s.xdsListener.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ctx := mustNew(t)
			tt.given(s)
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatalf("Run = nil after the %s failed, want its error", tt.name)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("Run did not end after the %s failed", tt.name)
			}
		})
	}
}

// mustNew builds a control plane on a fresh catalog with port 0 addresses; its ctx ends with the test.
func mustNew(t *testing.T) (*Server, context.Context) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.AdminAddr, cfg.XDSAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DatabaseURL = catalogtest.NewDatabase(t)
	cfg.Provision.LocalAdminURL = catalogtest.ServerURL(t)
	cfg.Provision.LocalPrefix = catalogtest.RandomName("rpt") + "_"
	cfg.AdminToken = "test-admin-token-0123456789"
	cfg.SecretKey = catalogtest.SecretKey
	cfg.AllowUndurable = true // the test stack runs PostgreSQL in its fast mode
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := New(ctx, cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s, ctx
}
