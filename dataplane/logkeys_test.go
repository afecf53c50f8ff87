package dataplane

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/ragplane/ragplane/catalog/catalogtest"
)

// keyRecorder is a slog handler that keeps, for every line, the keys it carries: those of the
// logger (With) and those of the call.
type keyRecorder struct {
	attrs []string
	mu    *sync.Mutex
	lines *[][]string
}

func (h keyRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h keyRecorder) WithGroup(string) slog.Handler            { return h }
func (h keyRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	for _, a := range as {
		h.attrs = append(h.attrs[:len(h.attrs):len(h.attrs)], a.Key)
	}
	return h
}
func (h keyRecorder) Handle(_ context.Context, r slog.Record) error {
	keys := append([]string(nil), h.attrs...)
	r.Attrs(func(a slog.Attr) bool { keys = append(keys, a.Key); return true })
	h.mu.Lock()
	*h.lines = append(*h.lines, keys)
	h.mu.Unlock()
	return nil
}

// The worker's components each name themselves once: no line carries two component keys.
func TestLogKeysOncePerLine(t *testing.T) {
	_, url := catalogtest.MustOpen(t)
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.DatabaseURL = url
	cfg.InternalKey = strings.Repeat("k", 32)
	cfg.SecretKey = catalogtest.SecretKey
	cfg.UsageDir = t.TempDir()
	cfg.AllowUndurable = true // the test stack runs PostgreSQL in its fast mode
	var lines [][]string
	s, err := New(context.Background(), cfg, slog.New(keyRecorder{mu: &sync.Mutex{}, lines: &lines}))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer s.close()
	s.log.Info("probe", "error", "x")
	s.spool.log.Info("probe", "error", "x")
	for _, keys := range lines {
		seen := map[string]bool{}
		for _, k := range keys {
			if seen[k] {
				t.Errorf("a line carries %q twice: %v", k, keys)
			}
			seen[k] = true
		}
	}
	if len(lines) < 2 {
		t.Fatalf("recorded %d lines, want at least 2", len(lines))
	}
}
