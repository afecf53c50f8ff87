package controlplane_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"testing"

	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/controlplane"
	"github.com/ragplane/ragplane/internal/durability"
)

// undurableURL makes u's sessions commit without waiting for their WAL to reach disk, so the
// server is undurable for them whichever mode the test stack runs in.
func undurableURL(tb testing.TB, u string) string {
	tb.Helper()
	p, err := url.Parse(u)
	if err != nil {
		tb.Fatal(err)
	}
	q := p.Query()
	q.Set("synchronous_commit", "off")
	p.RawQuery = q.Encode()
	return p.String()
}

// The control plane refuses to start on a catalog that may lose acknowledged commits, unless
// RAGPLANE_ALLOW_UNDURABLE is set.
func TestStartRequiresDurableCatalog(t *testing.T) {
	cfg := controlplane.DefaultConfig()
	cfg.AdminAddr, cfg.XDSAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DatabaseURL = undurableURL(t, catalogtest.NewDatabase(t))
	cfg.Provision.LocalAdminURL = catalogtest.ServerURL(t)
	cfg.Provision.LocalPrefix = catalogtest.RandomName("rpt") + "_"
	cfg.AdminToken, cfg.SecretKey = adminToken, catalogtest.SecretKey
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	ctx := context.Background()

	_, err := controlplane.New(ctx, cfg, logger)
	var derr *durability.Error
	if !errors.As(err, &derr) {
		t.Fatalf("New on an undurable catalog = %v, want a *durability.Error", err)
	}

	env, err := controlplane.ConfigFromEnv(func(k string) string {
		return map[string]string{"RAGPLANE_ALLOW_UNDURABLE": "1"}[k]
	})
	if err != nil || !env.AllowUndurable {
		t.Fatalf("RAGPLANE_ALLOW_UNDURABLE=1 gives AllowUndurable %v (%v), want true", env.AllowUndurable, err)
	}
	cfg.AllowUndurable = true
	srv, err := controlplane.New(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("New with AllowUndurable = %v, want a server", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := srv.Run(rctx); err != nil {
		t.Errorf("Run = %v", err)
	}
}
