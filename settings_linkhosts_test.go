package ragplane_test

import (
	"strings"
	"testing"

	"github.com/ragplane/ragplane"
)

// answer_link_hosts: a comma-separated list of host names, empty by default, normalised to lower
// case; anything that is not a host name is refused, and a request cannot widen it.
func TestAnswerLinkHosts(t *testing.T) {
	type expect struct {
		code  string
		value any // the normalised value on success
	}
	tests := []struct {
		name   string
		given  any
		expect expect
	}{
		{name: "empty", given: "", expect: expect{value: ""}},
		{name: "one host", given: "docs.example.com", expect: expect{value: "docs.example.com"}},
		{name: "several, spaced and upper case", given: " Docs.Example.com , cdn.example.com", expect: expect{value: "docs.example.com,cdn.example.com"}},
		{name: "single label", given: "localhost", expect: expect{value: "localhost"}},
		{name: "scheme", given: "https://docs.example.com", expect: expect{code: ragplane.EINVALID}},
		{name: "port", given: "docs.example.com:8080", expect: expect{code: ragplane.EINVALID}},
		{name: "path", given: "docs.example.com/x", expect: expect{code: ragplane.EINVALID}},
		{name: "wildcard", given: "*.example.com", expect: expect{code: ragplane.EINVALID}},
		{name: "empty entry", given: "a.example,,b.example", expect: expect{code: ragplane.EINVALID}},
		{name: "hyphen edge", given: "-a.example", expect: expect{code: ragplane.EINVALID}},
		{name: "long label", given: strings.Repeat("a", 64) + ".example", expect: expect{code: ragplane.EINVALID}},
		{name: "too many", given: strings.Repeat("a.example,", 50) + "a.example", expect: expect{code: ragplane.EINVALID}},
		{name: "not a string", given: 3, expect: expect{code: ragplane.EINVALID}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := ragplane.Overrides{"answer_link_hosts": tc.given}
			err := ragplane.ValidateSettings("settings", o)
			field := ""
			if tc.expect.code != "" {
				field = "settings.answer_link_hosts"
			}
			assertErr(t, err, tc.expect.code, field)
			if tc.expect.code == "" && o["answer_link_hosts"] != tc.expect.value {
				t.Fatalf("normalised to %q, want %q", o["answer_link_hosts"], tc.expect.value)
			}
		})
	}

	t.Run("default and tenant layer", func(t *testing.T) {
		if cfg := MustResolve(t, ragplane.ConfigLayer{}, ragplane.ConfigLayer{}, nil); cfg.Settings.AnswerLinkHosts != "" {
			t.Fatalf("default = %q, want empty", cfg.Settings.AnswerLinkHosts)
		}
		tenant := ragplane.ConfigLayer{Settings: ragplane.Overrides{"answer_link_hosts": "Docs.Example.com"}}
		if cfg := MustResolve(t, ragplane.ConfigLayer{}, tenant, nil); cfg.Settings.AnswerLinkHosts != "docs.example.com" {
			t.Fatalf("tenant value = %q", cfg.Settings.AnswerLinkHosts)
		}
	})
	t.Run("not per request", func(t *testing.T) {
		_, err := ragplane.Resolve(systemLayer(), ragplane.ConfigLayer{}, ragplane.ConfigLayer{}, ragplane.Overrides{"answer_link_hosts": "attacker.example"})
		assertErr(t, err, ragplane.EINVALID, "override_config.answer_link_hosts")
	})
}
