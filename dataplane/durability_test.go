package dataplane_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/dataplane"
	"github.com/ragplane/ragplane/internal/durability"
)

// A worker refuses to start on a catalog that may lose acknowledged commits (its usage records
// would be deleted from the spool and then lost), unless RAGPLANE_ALLOW_UNDURABLE is set.
func TestStartRequiresDurableCatalog(t *testing.T) {
	_, catalogURL := catalogtest.MustOpen(t)
	// synchronous_commit is per session: off in the URL makes the server undurable for this
	// worker whichever mode the test stack runs in.
	u, err := url.Parse(catalogURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("synchronous_commit", "off")
	u.RawQuery = q.Encode()

	cfg := dataplane.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DatabaseURL = u.String()
	cfg.InternalKey = strings.Repeat("k", 32)
	cfg.SecretKey = catalogtest.SecretKey
	cfg.UsageDir = t.TempDir()
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	ctx := context.Background()

	_, err = dataplane.New(ctx, cfg, logger)
	var derr *durability.Error
	if !errors.As(err, &derr) {
		t.Fatalf("New on an undurable catalog = %v, want a *durability.Error", err)
	}

	env, err := dataplane.ConfigFromEnv(func(k string) string {
		return map[string]string{"RAGPLANE_ALLOW_UNDURABLE": "1"}[k]
	})
	if err != nil || !env.AllowUndurable {
		t.Fatalf("RAGPLANE_ALLOW_UNDURABLE=1 gives AllowUndurable %v (%v), want true", env.AllowUndurable, err)
	}
	cfg.AllowUndurable = true
	w, err := dataplane.New(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("New with AllowUndurable = %v, want a worker", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := w.Run(rctx); err != nil {
		t.Errorf("Run = %v", err)
	}
}
