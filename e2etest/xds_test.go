package e2etest

import (
	"net/http"
	"testing"
	"time"

	"github.com/ragplane/ragplane"
)

func TestVersionAtLeast(t *testing.T) {
	tests := []struct {
		name      string
		got, want string
		expect    bool
	}{
		{name: "same", got: "m1x.7", want: "m1x.7", expect: true},
		{name: "later", got: "m1x.12", want: "m1x.7", expect: true},
		{name: "earlier", got: "m1x.6", want: "m1x.7", expect: false},
		{name: "another control plane", got: "m2y.90", want: "m1x.7", expect: false},
		{name: "nothing ACKed", got: "", want: "m1x.7", expect: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := versionAtLeast(tc.got, tc.want); got != tc.expect {
				t.Fatalf("versionAtLeast(%q, %q) = %v", tc.got, tc.want, got)
			}
		})
	}
}

// WaitPolicies returns once the proxy enforces a change, a deletion included.
func TestWaitPolicies(t *testing.T) {
	st := Start(t, Options{})
	st.CreateTenant("acme_corp", "pro", nil)
	px := st.StartProxy(t)
	tok := st.Token("acme_corp")
	get := func() int {
		return Send(t, "GET", px+"/v1/documents", nil, "Authorization", "Bearer "+tok).Status
	}
	if s := get(); s != http.StatusOK {
		t.Fatalf("before the change: %d", s)
	}
	if r := st.Admin("POST", "/v1/tenants/acme_corp/suspend", nil); r.Status != http.StatusOK {
		t.Fatalf("suspend: %d %s", r.Status, r.Body)
	}
	st.WaitPolicies(t, "acme_corp")
	if s := get(); s != http.StatusForbidden {
		t.Fatalf("suspended: %d", s)
	}
	if r := st.Admin("DELETE", "/v1/tenants/acme_corp", nil); r.Status != http.StatusAccepted {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var tn ragplane.Tenant
		st.Admin("GET", "/v1/tenants/acme_corp", nil).Decode(t, &tn)
		if tn.Status == ragplane.StatusDeleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tenant still %s", tn.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	st.WaitPolicies(t, "acme_corp") // the policy is gone
	if s := get(); s != http.StatusUnauthorized {
		t.Fatalf("deleted: %d", s)
	}
}
