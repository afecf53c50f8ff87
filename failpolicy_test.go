package ragplane_test

import (
	"testing"

	"github.com/ragplane/ragplane"
)

// What a proxy does with a tenant's shared limits while Redis is away resolves through the
// cascade like any limit: the per-replica share by default, a plan or tenant may choose another
// policy per kind of limit, and a value that is not a policy is rejected naming the key.
func TestFailPolicyCascade(t *testing.T) {
	tests := []struct {
		name                    string
		plan, tenant            ragplane.Overrides
		expectRate, expectConc  string
		expectRateSrc, expectCS ragplane.Layer
	}{
		{name: "default: local share", expectRate: ragplane.FailLocalShare, expectConc: ragplane.FailLocalShare,
			expectRateSrc: ragplane.LayerSystem, expectCS: ragplane.LayerSystem},
		{name: "plan fails closed", plan: ragplane.Overrides{"concurrency_fail_policy": "fail_closed"},
			expectRate: ragplane.FailLocalShare, expectConc: ragplane.FailClosed, expectRateSrc: ragplane.LayerSystem, expectCS: ragplane.LayerPlan},
		{name: "tenant over plan", plan: ragplane.Overrides{"rate_limit_fail_policy": "fail_closed"},
			tenant:     ragplane.Overrides{"rate_limit_fail_policy": "fail_open", "concurrency_fail_policy": "fail_open"},
			expectRate: ragplane.FailOpen, expectConc: ragplane.FailOpen, expectRateSrc: ragplane.LayerTenant, expectCS: ragplane.LayerTenant},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for layer, o := range map[string]ragplane.Overrides{"plan.limits": tc.plan, "tenant.limits": tc.tenant} {
				assertErr(t, ragplane.ValidateLimits(layer, o), "", "")
			}
			cfg, err := ragplane.Resolve(systemLayer(), ragplane.ConfigLayer{Limits: tc.plan}, ragplane.ConfigLayer{Limits: tc.tenant}, nil)
			assertErr(t, err, "", "")
			if cfg.Limits.RateLimitFailPolicy != tc.expectRate || cfg.Limits.ConcurrencyFailPolicy != tc.expectConc {
				t.Fatalf("policies %q/%q, want %q/%q", cfg.Limits.RateLimitFailPolicy, cfg.Limits.ConcurrencyFailPolicy, tc.expectRate, tc.expectConc)
			}
			if s := cfg.LimitSources["rate_limit_fail_policy"].Source; s != tc.expectRateSrc {
				t.Errorf("rate_limit_fail_policy from %s, want %s", s, tc.expectRateSrc)
			}
			if s := cfg.LimitSources["concurrency_fail_policy"].Source; s != tc.expectCS {
				t.Errorf("concurrency_fail_policy from %s, want %s", s, tc.expectCS)
			}
		})
	}
	for _, bad := range []ragplane.Overrides{
		{"rate_limit_fail_policy": "open"},
		{"rate_limit_fail_policy": ""},
		{"rate_limit_fail_policy": 1},
	} {
		assertErr(t, ragplane.ValidateLimits("limits", bad), ragplane.EINVALID, "limits.rate_limit_fail_policy")
	}
	assertErr(t, ragplane.ValidateLimits("tenant.limits", ragplane.Overrides{"concurrency_fail_policy": "FAIL_CLOSED"}),
		ragplane.EINVALID, "tenant.limits.concurrency_fail_policy")
}
