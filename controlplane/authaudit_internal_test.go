package controlplane

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The audit caps: authAuditPerSource per source and authAuditTotal in all per window, renewed
// when the window ends.
func TestAuthAuditCaps(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	a := newAuthAuditor(nil, nil, prometheus.NewRegistry())
	a.now = func() time.Time { return now }
	allowed := func(src string, n int) int {
		got := 0
		for range n {
			if a.allow(src) {
				got++
			}
		}
		return got
	}
	if got := allowed("10.0.0.1", 25); got != authAuditPerSource {
		t.Fatalf("one source: %d allowed, want %d", got, authAuditPerSource)
	}
	total := authAuditPerSource
	for i := 2; i < 100; i++ {
		total += allowed(fmt.Sprintf("10.0.0.%d", i), 1)
	}
	if total != authAuditTotal || len(a.perSource) > authAuditTotal {
		t.Fatalf("%d allowed in all (%d sources tracked), want %d", total, len(a.perSource), authAuditTotal)
	}
	now = now.Add(authAuditWindow)
	if got := allowed("10.0.0.1", 1); got != 1 {
		t.Fatal("the caps are not renewed after a window")
	}
}
