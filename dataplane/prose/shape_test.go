package prose_test

import (
	"testing"

	"github.com/ragplane/ragplane/dataplane/prose"
)

func TestIsSentence(t *testing.T) {
	tests := []struct {
		name   string
		given  string
		expect bool
	}{
		{"sentence", "Access reviews happen quarterly.", true},
		{"question", "Is it free?", true},
		{"closing quote", `He said "we ship."`, true},
		{"two words", "It works.", true},
		{"list item written as a clause", "Audit logs are kept for one year", true},
		{"names around an auxiliary", "The station is connected to the St-Michel – Notre-Dame RER station on RER lines B and C", true},
		{"short code with a full stop", "await copilot.query(...)", false},
		{"sentence with inline code", "The handler returns {\"skipped\": true} when the service is not initialised.", true},
		{"title with a capitalised auxiliary", "What Is Love And Why Does It Hurt", false},
		{"heading", "Access reviews", false},
		{"one-word heading", "Description", false},
		{"one word with a full stop", "Description.", false},
		{"exclamation of one word", "Yes!", false},
		{"markdown heading", "# Shipping", false},
		{"markdown heading with a full stop", "## The refund policy is simple.", false},
		{"title-case line", "Refund Policy For Enterprise Customers In The European Union", false},
		{"list fragment", "First item", false},
		{"long fragment without a verb", "Tenant context propagation via OpenTelemetry baggage and ContextVar", false},
		{"short lead-in", "The steps are:", false},
		{"lead-in that says something", "The district is located in Beaver County and includes the following areas:", true},
		{"label-value record", "Plan: Pro; Price: 10 EUR; Limit: 5 requests per second", false},
		{"table row", "| Pro | 10 EUR | 5 requests per second |", false},
		{"box drawing", "┌──────────────┐", false},
		{"code", "for i := 0; i < len(xs); i++ { total += xs[i] }", false},
		{"call", "result uses sort.Strings(names) before the names are printed", false},
		{"blank", "  ", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := prose.IsSentence(tt.given); got != tt.expect {
				t.Errorf("IsSentence(%q) = %v, want %v", tt.given, got, tt.expect)
			}
		})
	}
}
