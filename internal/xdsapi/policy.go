package xdsapi

import (
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ragplane/ragplane"
)

// EncodePolicy renders a tenant policy as the Struct of TypeTenantPolicy: the field names are
// ragplane.TenantPolicy's JSON tags (so the Struct reads like the policy's JSON to any xDS
// tool), numbers are doubles. Every limit is far below 2^53, so integers survive exactly. It is
// built field by field rather than through encoding/json: the control plane encodes every
// tenant at start and the proxy decodes every one, so this is on the path of a cold proxy.
func EncodePolicy(p ragplane.TenantPolicy) *structpb.Struct {
	l := p.Limits
	num := structpb.NewNumberValue
	limits := &structpb.Struct{Fields: map[string]*structpb.Value{
		"queries_per_hour":        num(float64(l.QueriesPerHour)),
		"requests_per_second":     num(l.RequestsPerSecond),
		"burst":                   num(float64(l.Burst)),
		"max_concurrent_requests": num(float64(l.MaxConcurrentRequests)),
		"max_tokens_per_query":    num(float64(l.MaxTokensPerQuery)),
		"max_documents":           num(float64(l.MaxDocuments)),
		"max_storage_mb":          num(float64(l.MaxStorageMB)),
		"max_top_k":               num(float64(l.MaxTopK)),
		"max_model_tier":          structpb.NewStringValue(l.MaxModelTier),
		"max_request_bytes":       num(float64(l.MaxRequestBytes)),
		"monthly_tokens":          num(float64(l.MonthlyTokens)),
	}}
	// Empty (not resolved through the cascade) is left out: the proxy then applies its default.
	for key, v := range map[string]string{"rate_limit_fail_policy": l.RateLimitFailPolicy, "concurrency_fail_policy": l.ConcurrencyFailPolicy} {
		if v != "" {
			limits.Fields[key] = structpb.NewStringValue(v)
		}
	}
	st := &structpb.Struct{Fields: map[string]*structpb.Value{
		"tenant_id":      structpb.NewStringValue(string(p.TenantID)),
		"status":         structpb.NewStringValue(string(p.Status)),
		"plan":           structpb.NewStringValue(p.Plan),
		"limits":         structpb.NewStructValue(limits),
		"config_version": num(float64(p.ConfigVersion)),
	}}
	// Like the JSON tag's omitempty: most tenants have revoked no key within a token's lifetime.
	if len(p.RevokedAPIKeys) > 0 {
		keys := make([]*structpb.Value, len(p.RevokedAPIKeys))
		for i, k := range p.RevokedAPIKeys {
			keys[i] = structpb.NewStringValue(k)
		}
		st.Fields["revoked_api_keys"] = structpb.NewListValue(&structpb.ListValue{Values: keys})
	}
	return st
}

// DecodePolicyAny unpacks and decodes one TypeTenantPolicy resource (see DecodePolicy).
func DecodePolicyAny(res *anypb.Any) (ragplane.TenantPolicy, error) {
	var st structpb.Struct
	if err := res.UnmarshalTo(&st); err != nil {
		return ragplane.TenantPolicy{}, fmt.Errorf("tenant policy: %w", err)
	}
	return DecodePolicy(&st)
}

// DecodePolicy reads a policy written by EncodePolicy and checks that it is usable: a valid
// tenant id, a known status, and rates and caps a proxy can enforce. Fields it does not know are
// ignored (a newer control plane may add some); a known field of the wrong kind, or a fraction
// where an integer belongs, is an error.
func DecodePolicy(st *structpb.Struct) (ragplane.TenantPolicy, error) {
	var p ragplane.TenantPolicy
	d := decoder{}
	f := st.GetFields()
	p.TenantID = ragplane.TenantID(d.str(f, "tenant_id"))
	p.Status = ragplane.TenantStatus(d.str(f, "status"))
	p.Plan = d.str(f, "plan")
	p.ConfigVersion = int64(d.integer(f, "config_version"))
	p.RevokedAPIKeys = d.strings(f, "revoked_api_keys")
	if v, ok := f["limits"]; ok {
		ls, isStruct := v.GetKind().(*structpb.Value_StructValue)
		if !isStruct {
			d.fail("limits", "an object")
		} else {
			lf := ls.StructValue.GetFields()
			l := &p.Limits
			l.QueriesPerHour = d.integer(lf, "queries_per_hour")
			l.RequestsPerSecond = d.number(lf, "requests_per_second")
			l.Burst = d.integer(lf, "burst")
			l.MaxConcurrentRequests = d.integer(lf, "max_concurrent_requests")
			l.MaxTokensPerQuery = d.integer(lf, "max_tokens_per_query")
			l.MaxDocuments = d.integer(lf, "max_documents")
			l.MaxStorageMB = d.integer(lf, "max_storage_mb")
			l.MaxTopK = d.integer(lf, "max_top_k")
			l.MaxModelTier = d.str(lf, "max_model_tier")
			l.MaxRequestBytes = d.integer(lf, "max_request_bytes")
			l.MonthlyTokens = d.integer(lf, "monthly_tokens")
			l.RateLimitFailPolicy = d.enum(lf, "rate_limit_fail_policy", ragplane.FailPolicies)
			l.ConcurrencyFailPolicy = d.enum(lf, "concurrency_fail_policy", ragplane.FailPolicies)
		}
	}
	if d.err != nil {
		return p, fmt.Errorf("tenant policy %q: %w", p.TenantID, d.err)
	}
	if err := p.TenantID.Validate(); err != nil {
		return p, fmt.Errorf("tenant policy: bad tenant id %q", p.TenantID)
	}
	if !p.Status.Valid() {
		return p, fmt.Errorf("tenant policy %s: unknown status %q", p.TenantID, p.Status)
	}
	l := p.Limits
	if !(l.RequestsPerSecond > 0) || l.Burst < 1 || l.QueriesPerHour < 1 || l.MaxConcurrentRequests < 1 || l.MaxRequestBytes < 1 {
		return p, fmt.Errorf("tenant policy %s: limits out of range", p.TenantID)
	}
	return p, nil
}

// decoder reads typed fields and keeps the first error, so DecodePolicy reads straight through.
type decoder struct{ err error }

func (d *decoder) fail(key, want string) {
	if d.err == nil {
		d.err = fmt.Errorf("%s is not %s", key, want)
	}
}

func (d *decoder) str(f map[string]*structpb.Value, key string) string {
	v, ok := f[key]
	if !ok {
		return ""
	}
	s, ok := v.GetKind().(*structpb.Value_StringValue)
	if !ok {
		d.fail(key, "a string")
		return ""
	}
	return s.StringValue
}

// enum reads a string that is one of values; absent is "".
func (d *decoder) enum(f map[string]*structpb.Value, key string, values []string) string {
	s := d.str(f, key)
	if _, ok := f[key]; ok && !slices.Contains(values, s) {
		d.fail(key, fmt.Sprintf("one of %v", values))
		return ""
	}
	return s
}

// strings reads a list of non-empty strings; absent is nil.
func (d *decoder) strings(f map[string]*structpb.Value, key string) []string {
	v, ok := f[key]
	if !ok {
		return nil
	}
	l, ok := v.GetKind().(*structpb.Value_ListValue)
	if !ok {
		d.fail(key, "a list")
		return nil
	}
	out := make([]string, 0, len(l.ListValue.GetValues()))
	for _, e := range l.ListValue.GetValues() {
		s, ok := e.GetKind().(*structpb.Value_StringValue)
		if !ok || s.StringValue == "" {
			d.fail(key, "a list of non-empty strings")
			return nil
		}
		out = append(out, s.StringValue)
	}
	return out
}

func (d *decoder) number(f map[string]*structpb.Value, key string) float64 {
	v, ok := f[key]
	if !ok {
		return 0
	}
	n, ok := v.GetKind().(*structpb.Value_NumberValue)
	if !ok || math.IsNaN(n.NumberValue) || math.IsInf(n.NumberValue, 0) {
		d.fail(key, "a number")
		return 0
	}
	return n.NumberValue
}

// integer reads a number that must be a whole value within ±2^53 (exact in a double).
func (d *decoder) integer(f map[string]*structpb.Value, key string) int {
	n := d.number(f, key)
	if n != math.Trunc(n) || math.Abs(n) > 1<<53 {
		d.fail(key, "an integer")
		return 0
	}
	return int(n)
}
