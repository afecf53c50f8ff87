package ragplane_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/ragplane/ragplane"
)

func TestTenantIDValidate(t *testing.T) {
	tests := []struct {
		name   string
		given  ragplane.TenantID
		expect string // error code; "" for valid
	}{
		{name: "snake case", given: "acme_corp"},
		{name: "three letters", given: "abc"},
		{name: "digit inside", given: "a1b"},
		{name: "ends with digit", given: "acme2"},
		{name: "exactly 40 chars", given: ragplane.TenantID("a" + strings.Repeat("b", 39))},
		{name: "empty", given: "", expect: ragplane.EINVALID},
		{name: "one char", given: "a", expect: ragplane.EINVALID},
		{name: "two chars", given: "ab", expect: ragplane.EINVALID},
		{name: "uppercase", given: "Acme", expect: ragplane.EINVALID},
		{name: "uppercase inside", given: "acMe", expect: ragplane.EINVALID},
		{name: "leading digit", given: "1acme", expect: ragplane.EINVALID},
		{name: "leading underscore", given: "_acme", expect: ragplane.EINVALID},
		{name: "trailing underscore", given: "acme_", expect: ragplane.EINVALID},
		{name: "hyphen", given: "acme-corp", expect: ragplane.EINVALID},
		{name: "space", given: "acme corp", expect: ragplane.EINVALID},
		{name: "dot", given: "acme.corp", expect: ragplane.EINVALID},
		{name: "41 chars", given: ragplane.TenantID("a" + strings.Repeat("b", 40)), expect: ragplane.EINVALID},
		{name: "very long", given: ragplane.TenantID(strings.Repeat("a", 1000)), expect: ragplane.EINVALID},
		{name: "unicode letter", given: "acmé", expect: ragplane.EINVALID},
		{name: "cyrillic lookalike", given: "аcme", expect: ragplane.EINVALID},
		{name: "trailing newline", given: "acme\n", expect: ragplane.EINVALID},
		{name: "sql injection", given: "acme;drop", expect: ragplane.EINVALID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			field := ""
			if tc.expect != "" {
				field = "id"
			}
			assertErr(t, tc.given.Validate(), tc.expect, field)
		})
	}
}

func TestValidateEmail(t *testing.T) {
	type when struct{ field string }
	tests := []struct {
		name   string
		given  string
		when   when
		expect string // error code; "" for valid
	}{
		{name: "plain", given: "ops@example.com", when: when{"email"}},
		{name: "subdomain and plus", given: "billing+ragplane@mail.example.co.uk", when: when{"billing_email"}},
		{name: "display name", given: "A <a@b.com>", when: when{"email"}, expect: ragplane.EINVALID},
		{name: "angle brackets only", given: "<a@b.com>", when: when{"email"}, expect: ragplane.EINVALID},
		{name: "quoted display name", given: `"Ops Team" <ops@example.com>`, when: when{"contact.email"}, expect: ragplane.EINVALID},
		{name: "no at", given: "ops.example.com", when: when{"email"}, expect: ragplane.EINVALID},
		{name: "no domain dot", given: "ops@localhost", when: when{"email"}, expect: ragplane.EINVALID},
		{name: "trailing dot", given: "ops@example.com.", when: when{"email"}, expect: ragplane.EINVALID},
		{name: "double dot", given: "ops@example..com", when: when{"email"}, expect: ragplane.EINVALID},
		{name: "space inside", given: "o ps@example.com", when: when{"email"}, expect: ragplane.EINVALID},
		{name: "leading space", given: " ops@example.com", when: when{"email"}, expect: ragplane.EINVALID},
		{name: "trailing space", given: "ops@example.com ", when: when{"email"}, expect: ragplane.EINVALID},
		{name: "two addresses", given: "a@b.com, c@d.com", when: when{"email"}, expect: ragplane.EINVALID},
		{name: "empty", given: "", when: when{"email"}, expect: ragplane.EINVALID},
		{name: "too long", given: strings.Repeat("a", 64) + "@" + strings.Repeat("b", 200) + ".com", when: when{"email"}, expect: ragplane.EINVALID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			field := ""
			if tc.expect != "" {
				field = tc.when.field
			}
			assertErr(t, ragplane.ValidateEmail(tc.when.field, tc.given), tc.expect, field)
		})
	}
}

func TestValidateName(t *testing.T) {
	tests := []struct {
		name   string
		given  string
		expect string // error code; "" for valid
	}{
		{name: "plain", given: "Acme Corp"},
		{name: "unicode", given: "Café Zürich GmbH"},
		{name: "one char", given: "A"},
		{name: "surrounding spaces", given: "  Acme  "},
		{name: "exactly 200", given: strings.Repeat("a", 200)},
		{name: "empty", given: "", expect: ragplane.EINVALID},
		{name: "only spaces", given: "   ", expect: ragplane.EINVALID},
		{name: "201 chars", given: strings.Repeat("a", 201), expect: ragplane.EINVALID},
		{name: "NUL", given: "Acme\x00Corp", expect: ragplane.EINVALID},
		{name: "newline inside", given: "Acme\nCorp", expect: ragplane.EINVALID},
		{name: "tab inside", given: "Acme\tCorp", expect: ragplane.EINVALID},
		{name: "escape", given: "Acme\x1b[31m", expect: ragplane.EINVALID},
		{name: "DEL", given: "Acme\x7f", expect: ragplane.EINVALID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			field := ""
			if tc.expect != "" {
				field = "name"
			}
			assertErr(t, ragplane.ValidateName("name", tc.given), tc.expect, field)
		})
	}
}

func TestValidateRegion(t *testing.T) {
	tests := []struct {
		name   string
		given  string
		expect string // error code; "" for valid
	}{
		{name: "aws", given: "aws-us-east-2"},
		{name: "local", given: "local"},
		{name: "starts with digit", given: "1region"},
		{name: "two chars", given: "eu"},
		{name: "empty", given: "", expect: ragplane.EINVALID},
		{name: "one char", given: "a", expect: ragplane.EINVALID},
		{name: "uppercase", given: "AWS-US-EAST-2", expect: ragplane.EINVALID},
		{name: "underscore", given: "aws_us_east_2", expect: ragplane.EINVALID},
		{name: "leading hyphen", given: "-aws", expect: ragplane.EINVALID},
		{name: "space", given: "aws us", expect: ragplane.EINVALID},
		{name: "path", given: "aws/../x", expect: ragplane.EINVALID},
		{name: "too long", given: strings.Repeat("a", 42), expect: ragplane.EINVALID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			field := ""
			if tc.expect != "" {
				field = "region"
			}
			assertErr(t, ragplane.ValidateRegion("region", tc.given), tc.expect, field)
		})
	}
}

func TestTenantStatusCanTransition(t *testing.T) {
	all := []ragplane.TenantStatus{
		ragplane.StatusProvisioning, ragplane.StatusActive, ragplane.StatusSuspended,
		ragplane.StatusDeleting, ragplane.StatusDeleted, ragplane.StatusFailed,
	}
	// allowed is the whole transition graph: every pair not listed must be refused.
	allowed := map[[2]ragplane.TenantStatus]bool{
		{ragplane.StatusProvisioning, ragplane.StatusActive}:   true,
		{ragplane.StatusProvisioning, ragplane.StatusFailed}:   true,
		{ragplane.StatusProvisioning, ragplane.StatusDeleting}: true,
		{ragplane.StatusActive, ragplane.StatusSuspended}:      true,
		{ragplane.StatusActive, ragplane.StatusDeleting}:       true,
		{ragplane.StatusSuspended, ragplane.StatusActive}:      true,
		{ragplane.StatusSuspended, ragplane.StatusDeleting}:    true,
		{ragplane.StatusFailed, ragplane.StatusDeleting}:       true,
		{ragplane.StatusDeleting, ragplane.StatusDeleted}:      true,
	}
	type given struct{ from ragplane.TenantStatus }
	type when struct{ to ragplane.TenantStatus }
	type tcase struct {
		name   string
		given  given
		when   when
		expect bool
	}
	var tests []tcase
	for _, from := range append(all, "bogus") {
		for _, to := range append(all, "bogus") {
			tests = append(tests, tcase{
				name:   fmt.Sprintf("%s to %s", from, to),
				given:  given{from},
				when:   when{to},
				expect: allowed[[2]ragplane.TenantStatus{from, to}],
			})
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.given.from.CanTransition(tc.when.to); got != tc.expect {
				t.Fatalf("%s.CanTransition(%s) = %v, want %v", tc.given.from, tc.when.to, got, tc.expect)
			}
		})
	}

	// The lifecycle invariants the table encodes, stated directly.
	for _, to := range all {
		if ragplane.StatusDeleted.CanTransition(to) {
			t.Errorf("deleted is terminal but may go to %s", to)
		}
		if to != ragplane.StatusDeleting && ragplane.StatusFailed.CanTransition(to) {
			t.Errorf("failed may only go to deleting but may go to %s", to)
		}
	}
}

func TestTenantStatusValid(t *testing.T) {
	tests := []struct {
		name   string
		given  ragplane.TenantStatus
		expect bool
	}{
		{name: "provisioning", given: ragplane.StatusProvisioning, expect: true},
		{name: "active", given: ragplane.StatusActive, expect: true},
		{name: "suspended", given: ragplane.StatusSuspended, expect: true},
		{name: "deleting", given: ragplane.StatusDeleting, expect: true},
		{name: "deleted", given: ragplane.StatusDeleted, expect: true},
		{name: "failed", given: ragplane.StatusFailed, expect: true},
		{name: "empty", given: "", expect: false},
		{name: "uppercase", given: "ACTIVE", expect: false},
		{name: "unknown", given: "paused", expect: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.given.Valid(); got != tc.expect {
				t.Fatalf("Valid() = %v, want %v", got, tc.expect)
			}
		})
	}
}

func TestPlanValidate(t *testing.T) {
	type expect struct {
		code     string
		field    string
		limits   ragplane.Overrides // normalised limits on success
		settings ragplane.Overrides // normalised settings on success
	}
	tests := []struct {
		name   string
		given  ragplane.Plan
		expect expect
	}{
		{
			name:  "name only",
			given: ragplane.Plan{Name: "free"},
		},
		{
			name: "normalises limits and settings in place",
			given: ragplane.Plan{
				Name:     "pro-2024_eu",
				Limits:   ragplane.Overrides{"max_top_k": float64(50), "requests_per_second": int64(20), "max_model_tier": "large"},
				Settings: ragplane.Overrides{"top_k": 10, "temperature": 1, "chunk_size": float64(512)},
			},
			expect: expect{
				limits:   ragplane.Overrides{"max_top_k": int64(50), "requests_per_second": float64(20), "max_model_tier": "large"},
				settings: ragplane.Overrides{"top_k": int64(10), "temperature": float64(1), "chunk_size": int64(512)},
			},
		},
		{name: "empty name", given: ragplane.Plan{}, expect: expect{code: ragplane.EINVALID, field: "name"}},
		{name: "one char name", given: ragplane.Plan{Name: "p"}, expect: expect{code: ragplane.EINVALID, field: "name"}},
		{name: "uppercase name", given: ragplane.Plan{Name: "Pro"}, expect: expect{code: ragplane.EINVALID, field: "name"}},
		{name: "leading digit", given: ragplane.Plan{Name: "1pro"}, expect: expect{code: ragplane.EINVALID, field: "name"}},
		{name: "space in name", given: ragplane.Plan{Name: "pro plan"}, expect: expect{code: ragplane.EINVALID, field: "name"}},
		{name: "41 char name", given: ragplane.Plan{Name: "p" + strings.Repeat("x", 40)}, expect: expect{code: ragplane.EINVALID, field: "name"}},
		{
			name:   "bad limit",
			given:  ragplane.Plan{Name: "pro", Limits: ragplane.Overrides{"max_top_k": int64(1000)}},
			expect: expect{code: ragplane.EINVALID, field: "limits.max_top_k"},
		},
		{
			name:   "setting key in limits",
			given:  ragplane.Plan{Name: "pro", Limits: ragplane.Overrides{"top_k": int64(5)}},
			expect: expect{code: ragplane.EINVALID, field: "limits.top_k"},
		},
		{
			name:   "bad setting",
			given:  ragplane.Plan{Name: "pro", Settings: ragplane.Overrides{"retrieval_mode": "semantic"}},
			expect: expect{code: ragplane.EINVALID, field: "settings.retrieval_mode"},
		},
		{
			name:   "unknown setting",
			given:  ragplane.Plan{Name: "pro", Settings: ragplane.Overrides{"colour": "blue"}},
			expect: expect{code: ragplane.EINVALID, field: "settings.colour"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.given
			assertErr(t, p.Validate(), tc.expect.code, tc.expect.field)
			if tc.expect.code != "" {
				return
			}
			if tc.expect.limits != nil && !reflect.DeepEqual(p.Limits, tc.expect.limits) {
				t.Errorf("limits = %#v, want %#v", p.Limits, tc.expect.limits)
			}
			if tc.expect.settings != nil && !reflect.DeepEqual(p.Settings, tc.expect.settings) {
				t.Errorf("settings = %#v, want %#v", p.Settings, tc.expect.settings)
			}
		})
	}
}
