package controlplane_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/ragplane/ragplane"
)

// A failed admin authentication is audited with who presented what (never the secret), the
// route and the source address, and a flood is capped: the rest is only counted (issue 11,
// item 18).
func TestFailedAdminAuthenticationIsAudited(t *testing.T) {
	ts := mustStart(t)
	const keySecret = "secretpartofakeythatmustnotleak"
	attempts := []struct {
		name   string
		given  string // Authorization header; "" sends none
		expect string // actor
		reason string
	}{
		{name: "tenant API key", given: "Bearer rpk_abcdefgh2345_" + keySecret, expect: "key:abcdefgh2345", reason: "invalid"},
		{name: "wrong token", given: "Bearer wrong-admin-token-" + keySecret, expect: "anonymous", reason: "invalid"},
		{name: "no token", expect: "anonymous", reason: "missing"},
	}
	for _, a := range attempts {
		mustStatus(t, ts.do("GET", "/v1/tenants", nil, "Authorization", a.given), http.StatusUnauthorized)
	}
	// A flood from the same source: 15 failures in all, of which 10 are audited.
	for i := len(attempts); i < 15; i++ {
		mustStatus(t, ts.do("DELETE", "/v1/tenants/acme", nil, "Authorization", "Bearer nope"), http.StatusUnauthorized)
	}
	mustStatus(t, ts.do("GET", "/v1/tenants", nil), http.StatusOK) // the admin is not audited as a failure

	r := ts.do("GET", "/v1/audit?action=admin.auth_failed&limit=100", nil)
	mustStatus(t, r, http.StatusOK)
	if strings.Contains(string(r.Body), keySecret) || strings.Contains(string(r.Body), adminToken) {
		t.Fatalf("the audit log holds a secret: %s", r.Body)
	}
	var page struct {
		Items []ragplane.AuditEntry `json:"items"`
	}
	r.decode(t, &page)
	if len(page.Items) != 10 {
		t.Fatalf("%d entries audited, want 10 (the per-source cap)", len(page.Items))
	}
	for i, a := range attempts {
		e := page.Items[len(page.Items)-1-i] // newest first
		var detail map[string]string
		if err := json.Unmarshal(e.After, &detail); err != nil {
			t.Fatal(err)
		}
		if e.Actor != a.expect || e.Target != "/v1/tenants" || e.RequestID == "" || detail["source"] != "127.0.0.1" ||
			detail["route"] != "/v1/tenants" || detail["method"] != "GET" || detail["reason"] != a.reason {
			t.Errorf("%s: entry %+v, detail %v", a.name, e, detail)
		}
	}
	if e := page.Items[0]; e.Target != "/v1/tenants/:id" || e.Actor != "anonymous" {
		t.Errorf("flood entry %+v", e)
	}
	metrics := string(ts.do("GET", "/metrics", nil).Body)
	for _, want := range []string{
		`ragplane_controlplane_admin_auth_failures_total{result="audited"} 10`,
		`ragplane_controlplane_admin_auth_failures_total{result="capped"} 5`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
