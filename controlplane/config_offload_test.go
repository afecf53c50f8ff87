package controlplane_test

import (
	"strings"
	"testing"
	"time"
)

// Offloading is off unless asked for, and refused at start without what it needs, naming the
// variable: an idle threshold (only idle tenants are offloaded) and a directory for the archives.
func TestConfigOffload(t *testing.T) {
	load := loadConfig
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
