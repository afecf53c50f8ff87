package xdsapi_test

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/internal/xdsapi"
)

func mustPolicy(tb testing.TB, revoked []string) ragplane.TenantPolicy {
	tb.Helper()
	return ragplane.TenantPolicy{TenantID: "acme_corp", Status: ragplane.StatusActive, Plan: "pro", ConfigVersion: 7,
		Limits:         ragplane.Limits{QueriesPerHour: 100, RequestsPerSecond: 2.5, Burst: 5, MaxConcurrentRequests: 3, MaxRequestBytes: 1 << 20},
		RevokedAPIKeys: revoked}
}

// The revoked API keys of a policy survive the trip through the xDS Struct, in order; a policy
// without any carries no field at all.
func TestPolicyRevokedAPIKeys(t *testing.T) {
	for _, tt := range []struct {
		name   string
		given  []string
		expect []string
	}{
		{name: "none", given: nil, expect: nil},
		{name: "one", given: []string{"0b5c2f5e-1111-4c1e-9a3b-1f4c5d6e7f80"}, expect: []string{"0b5c2f5e-1111-4c1e-9a3b-1f4c5d6e7f80"}},
		{name: "newest first", given: []string{"k2", "k1", "k3"}, expect: []string{"k2", "k1", "k3"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := xdsapi.EncodePolicy(mustPolicy(t, tt.given))
			if _, ok := st.Fields["revoked_api_keys"]; ok != (len(tt.given) > 0) {
				t.Fatalf("revoked_api_keys present %v with %d keys", ok, len(tt.given))
			}
			got, err := xdsapi.DecodePolicy(st)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.RevokedAPIKeys, tt.expect) || got.ConfigVersion != 7 || got.TenantID != "acme_corp" {
				t.Fatalf("decoded %+v, want revoked %v", got, tt.expect)
			}
		})
	}
}

// A revoked-key list that is not a list of non-empty strings makes the policy invalid (NACKed),
// rather than silently accepting tokens of keys it failed to read.
func TestPolicyRevokedAPIKeysMalformed(t *testing.T) {
	for _, tt := range []struct {
		name  string
		given *structpb.Value
	}{
		{name: "string", given: structpb.NewStringValue("k1")},
		{name: "number in list", given: structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewNumberValue(1)}})},
		{name: "empty string in list", given: structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewStringValue("")}})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := xdsapi.EncodePolicy(mustPolicy(t, nil))
			st.Fields["revoked_api_keys"] = tt.given
			if _, err := xdsapi.DecodePolicy(st); err == nil {
				t.Fatal("decoded a malformed revoked_api_keys")
			}
		})
	}
}

// A tenant's fail policies reach the proxy as the control plane resolved them; a policy that
// names none (an older control plane) decodes as empty, the proxy's default; an unknown value
// makes the policy invalid (NACKed) rather than silently enforcing something else.
func TestPolicyFailPolicies(t *testing.T) {
	for _, tt := range []struct {
		name               string
		rate, concurrency  string
		expectErr          bool
		expectRate, expect string
	}{
		{name: "absent", rate: "", concurrency: "", expectRate: "", expect: ""},
		{name: "set", rate: ragplane.FailClosed, concurrency: ragplane.FailOpen, expectRate: ragplane.FailClosed, expect: ragplane.FailOpen},
		{name: "local share", rate: ragplane.FailLocalShare, concurrency: ragplane.FailLocalShare, expectRate: ragplane.FailLocalShare, expect: ragplane.FailLocalShare},
		{name: "unknown", rate: "fail_sometimes", concurrency: ragplane.FailOpen, expectErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := mustPolicy(t, nil)
			p.Limits.RateLimitFailPolicy, p.Limits.ConcurrencyFailPolicy = tt.rate, tt.concurrency
			st := xdsapi.EncodePolicy(p)
			if _, ok := st.Fields["limits"].GetStructValue().Fields["rate_limit_fail_policy"]; ok != (tt.rate != "") {
				t.Fatalf("rate_limit_fail_policy present %v for %q", ok, tt.rate)
			}
			got, err := xdsapi.DecodePolicy(st)
			if tt.expectErr {
				if err == nil {
					t.Fatalf("decoded an unknown fail policy: %+v", got.Limits)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Limits.RateLimitFailPolicy != tt.expectRate || got.Limits.ConcurrencyFailPolicy != tt.expect {
				t.Fatalf("decoded %q/%q, want %q/%q", got.Limits.RateLimitFailPolicy, got.Limits.ConcurrencyFailPolicy, tt.expectRate, tt.expect)
			}
		})
	}
	st := xdsapi.EncodePolicy(mustPolicy(t, nil))
	st.Fields["limits"].GetStructValue().Fields["concurrency_fail_policy"] = structpb.NewNumberValue(1)
	if _, err := xdsapi.DecodePolicy(st); err == nil {
		t.Fatal("decoded a fail policy that is a number")
	}
}
