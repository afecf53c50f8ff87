package controlplane_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/controlplane"
	"github.com/ragplane/ragplane/controlplane/provision/neon/neontest"
)

// A Neon tenant unused past RAGPLANE_IDLE_AFTER is marked idle and its compute endpoint is
// suspended through Neon's API, while its status stays active (the proxy keeps serving it); once a
// request has woken it (a worker's catalog.Store.WakeTenant), the control plane starts the
// endpoint again through the API.
func TestNeonIdleTenantSuspendedAndStarted(t *testing.T) {
	neonSrv, _ := mustNeon(t, 0)
	ts := mustStart(t, func(c *controlplane.Config) {
		c.Provision.NeonAPIKey = neonSrv.APIKey
		c.Provision.NeonAPIURL = neonSrv.URL
		c.Provision.IdleAfter = time.Second
	})
	mustStatus(t, ts.do("POST", "/v1/tenants", map[string]any{"id": "nap_co", "name": "Nap Co", "email": "ops@nap.example",
		"plan": "pro", "provider": "neon", "region": "aws-us-east-2"}), http.StatusAccepted)
	tn := ts.waitStatus("nap_co", 60*time.Second, ragplane.StatusActive, ragplane.StatusFailed)
	if tn.Status != ragplane.StatusActive {
		t.Fatalf("neon tenant failed: %s", tn.StatusReason)
	}
	store := ts.mustStore()
	ctx := context.Background()
	suspended := func() bool {
		var s bool
		if err := store.Pool().QueryRow(ctx, `select coalesce((select compute_suspended from tenant_activity
			where tenant_id = 'nap_co'), false)`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	waitFor("the endpoint to be suspended", func() bool {
		return neonSrv.EndpointState(tn.ProviderProjectID) == "idle" && suspended()
	})
	since, err := store.IdleSince(ctx, "nap_co")
	if err != nil || since == nil {
		t.Fatalf("IdleSince = %v, %v; want a time", since, err)
	}
	var got ragplane.Tenant
	ts.do("GET", "/v1/tenants/nap_co", nil).decode(t, &got)
	if got.Status != ragplane.StatusActive {
		t.Fatalf("an idle tenant's status is %s, want active (it must still be served)", got.Status)
	}
	if n := neonSrv.Count(neontest.RouteSuspendEndpoint, http.StatusOK); n != 1 {
		t.Fatalf("%d suspend calls, want 1", n)
	}
	if n := neonSrv.Count(neontest.RouteStartEndpoint, 0); n != 0 {
		t.Fatalf("%d start calls before any wake, want none", n)
	}

	// A request wakes it on a worker; the control plane starts the compute.
	if _, woke, err := store.WakeTenant(ctx, "nap_co", time.Now()); err != nil || !woke {
		t.Fatalf("WakeTenant: woke %v, %v", woke, err)
	}
	waitFor("the endpoint to be started", func() bool {
		return neonSrv.Count(neontest.RouteStartEndpoint, http.StatusOK) >= 1
	})
}
