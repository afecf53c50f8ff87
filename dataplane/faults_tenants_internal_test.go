package dataplane

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/internal/clocktest"
)

// An invalid catalog row is replaced by the tenant's last good entry, warned about once per
// distinct problem with the tenant and the field, and reported by the gauge until a good row is
// read; a tenant with no good entry gets EUNAVAILABLE, never EINVALID.
func TestTenantCacheKeepsLastGoodOnInvalidRow(t *testing.T) {
	clock := clocktest.New(time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC))
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	rows := map[ragplane.TenantID]error{} // the validation error of each tenant's row; nil when good
	version := int64(1)                   // one more for each step that changes the rows
	tc := newTenants(tenantCacheConfig{TTL: time.Second, Now: clock.Now, Registerer: reg,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		Load: func(_ context.Context, id ragplane.TenantID) (*catalog.Runtime, error) {
			if err := rows[id]; err != nil {
				return &catalog.Runtime{}, err
			}
			return &catalog.Runtime{Tenant: &ragplane.Tenant{ID: id, Status: ragplane.StatusActive, ConfigVersion: version},
				DatabaseURL: "postgres://t"}, nil
		}})
	badTopK := ragplane.FieldErrorf("tenant.settings.top_k", "Must be a number.")
	badMode := ragplane.FieldErrorf("tenant.settings.retrieval_mode", "Must be one of ...")
	ctx := context.Background()
	for _, step := range []struct {
		name        string
		given       map[ragplane.TenantID]error
		advance     time.Duration
		when        ragplane.TenantID
		expectCode  string
		expectVer   int64
		expectWarns int // warnings logged so far
		expectGauge float64
	}{
		{name: "a good row is served", when: "acme", expectVer: 1},
		{name: "an invalid row keeps the last good entry", given: map[ragplane.TenantID]error{"acme": badTopK},
			advance: 2 * time.Second, when: "acme", expectVer: 1, expectWarns: 1, expectGauge: 1},
		{name: "read again, the same problem is not warned again", advance: 2 * time.Second, when: "acme",
			expectVer: 1, expectWarns: 1, expectGauge: 1},
		{name: "another problem is warned", given: map[ragplane.TenantID]error{"acme": badMode},
			advance: 2 * time.Second, when: "acme", expectVer: 1, expectWarns: 2, expectGauge: 1},
		{name: "a tenant never seen good is unavailable", given: map[ragplane.TenantID]error{"acme": badMode, "zeta": badTopK},
			when: "zeta", expectCode: ragplane.EUNAVAILABLE, expectWarns: 3, expectGauge: 1},
		{name: "a corrected row is served and the gauge cleared", given: map[ragplane.TenantID]error{"zeta": badTopK},
			advance: 2 * time.Second, when: "acme", expectVer: 5, expectWarns: 3},
	} {
		t.Run(step.name, func(t *testing.T) {
			if step.given != nil {
				rows = step.given
				version++
			}
			clock.Advance(step.advance)
			rt, err := tc.get(ctx, step.when)
			if got := ragplane.ErrorCode(err); got != step.expectCode {
				t.Fatalf("error code %q (%v), want %q", got, err, step.expectCode)
			}
			if err == nil && rt.Tenant.ConfigVersion != step.expectVer {
				t.Fatalf("config_version %d, want %d", rt.Tenant.ConfigVersion, step.expectVer)
			}
			if err != nil && !strings.Contains(ragplane.ErrorMessage(err), "tenant.settings.top_k") {
				t.Fatalf("message %q does not name the field", ragplane.ErrorMessage(err))
			}
			if got := strings.Count(logs.String(), `"level":"WARN"`); got != step.expectWarns {
				t.Fatalf("%d warnings, want %d:\n%s", got, step.expectWarns, logs.String())
			}
			if got := gaugeValues(t, reg)["acme"]; got != step.expectGauge {
				t.Fatalf("gauge for acme = %v, want %v", got, step.expectGauge)
			}
		})
	}
	// Each warning names the tenant and the field.
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec["level"] == "WARN" && (rec["tenant_id"] == nil || rec["field"] == nil) {
			t.Fatalf("warning without tenant_id or field: %s", line)
		}
	}
	if got := gaugeValues(t, reg); len(got) != 1 || got["zeta"] != 1 {
		t.Fatalf("ragplane_dataplane_tenant_config_invalid = %v, want zeta's only", got)
	}
}

// gaugeValues returns ragplane_dataplane_tenant_config_invalid by tenant.
func gaugeValues(tb testing.TB, reg *prometheus.Registry) map[string]float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "ragplane_dataplane_tenant_config_invalid" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "tenant" {
					out[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}
