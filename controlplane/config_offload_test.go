package controlplane_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ragplane/ragplane/controlplane"
)

// Offloading is off unless asked for, and refused at start without what it needs, naming the
// variable: an idle threshold (only idle tenants are offloaded) and a directory for the archives.
func TestConfigOffload(t *testing.T) {
	base := map[string]string{
		"DATABASE_URL":         "postgres://u@127.0.0.1:5432/catalog",
		"RAGPLANE_ADMIN_TOKEN": "test-admin-token-0123456789",
		"RAGPLANE_SECRET_KEY":  "0123456789abcdef0123456789abcdef",
	}
	load := func(t *testing.T, extra map[string]string) (controlplane.Config, error) {
		t.Helper()
		cfg, err := controlplane.ConfigFromEnv(func(k string) string {
			if v, ok := extra[k]; ok {
				return v
			}
			return base[k]
		})
		if err != nil {
			t.Fatal(err)
		}
		return cfg, cfg.Validate()
	}
	if cfg, err := load(t, nil); err != nil || cfg.Provision.OffloadAfter != 0 {
		t.Fatalf("default: offload after %s, %v; want never, valid", cfg.Provision.OffloadAfter, err)
	}
	cfg, err := load(t, map[string]string{"RAGPLANE_OFFLOAD_AFTER": "24h", "RAGPLANE_OFFLOAD_DIR": "/var/lib/ragplane/offload"})
	if err != nil || cfg.Provision.OffloadAfter != 24*time.Hour || cfg.Provision.OffloadDir != "/var/lib/ragplane/offload" {
		t.Fatalf("offload config %s %q, %v", cfg.Provision.OffloadAfter, cfg.Provision.OffloadDir, err)
	}
	for _, c := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no directory", map[string]string{"RAGPLANE_OFFLOAD_AFTER": "24h"}, "RAGPLANE_OFFLOAD_DIR: required"},
		{"never idle", map[string]string{"RAGPLANE_OFFLOAD_AFTER": "24h", "RAGPLANE_OFFLOAD_DIR": "/x", "RAGPLANE_IDLE_AFTER": "0"}, "RAGPLANE_OFFLOAD_AFTER: needs RAGPLANE_IDLE_AFTER"},
		{"negative", map[string]string{"RAGPLANE_OFFLOAD_AFTER": "-1h", "RAGPLANE_OFFLOAD_DIR": "/x"}, "RAGPLANE_OFFLOAD_AFTER: want a duration"},
	} {
		if _, err := load(t, c.env); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}
