package controlplane_test

import (
	"context"
	"net/http"
	"strings"
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

// A tenant marked idle in a pass but woken before the pass gets to suspending its compute keeps
// its compute running: the pass checks, right before each suspend, that the tenant is still idle.
// The first suspend of the pass (idle_a's) is answered 429 with Retry-After, which holds the pass
// long enough for the test to wake idle_b; idle_c, after idle_b, shows the pass went past it.
func TestNeonTenantWokenDuringIdlePassNotSuspended(t *testing.T) {
	neonSrv, _ := mustNeon(t, 0)
	ts := mustStart(t, func(c *controlplane.Config) {
		c.Provision.NeonAPIKey = neonSrv.APIKey
		c.Provision.NeonAPIURL = neonSrv.URL
		c.Provision.IdleAfter = 3 * time.Second
	})
	ids := []string{"idle_a", "idle_b", "idle_c"}
	projects := map[string]string{}
	for _, id := range ids {
		mustStatus(t, ts.do("POST", "/v1/tenants", map[string]any{"id": id, "name": id, "email": "ops@" + strings.ReplaceAll(id, "_", "-") + ".example",
			"plan": "pro", "provider": "neon", "region": "aws-us-east-2"}), http.StatusAccepted)
	}
	for _, id := range ids {
		tn := ts.waitStatus(ragplane.TenantID(id), 60*time.Second, ragplane.StatusActive, ragplane.StatusFailed)
		if tn.Status != ragplane.StatusActive {
			t.Fatalf("neon tenant %s failed: %s", id, tn.StatusReason)
		}
		projects[id] = tn.ProviderProjectID
	}
	store := ts.mustStore()
	ctx := context.Background()
	// One last use for all three, so that one pass marks them together.
	if _, err := store.Pool().Exec(ctx, `insert into tenant_activity (tenant_id, woke_at) select id, now() from tenants where id = any($1)
		on conflict (tenant_id) do update set woke_at = excluded.woke_at`, ids); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if since, err := store.IdleSince(ctx, ragplane.TenantID(id)); err != nil || since != nil {
			t.Fatalf("%s was marked idle before the test set its last use (provisioning took longer than the idle time): %v, %v", id, since, err)
		}
	}
	neonSrv.InjectFault(1, neontest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "2", Route: neontest.RouteSuspendEndpoint})
	suspended := func(id string) bool {
		var s bool
		if err := store.Pool().QueryRow(ctx, `select coalesce((select compute_suspended from tenant_activity
			where tenant_id = $1), false)`, id).Scan(&s); err != nil {
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
			time.Sleep(10 * time.Millisecond)
		}
	}

	// The pass has marked all three and is held on idle_a's suspend: idle_b is woken now.
	waitFor("the pass's first suspend", func() bool {
		return neonSrv.Count(neontest.RouteSuspendEndpoint, http.StatusTooManyRequests) == 1
	})
	if _, woke, err := store.WakeTenant(ctx, "idle_b", time.Now()); err != nil || !woke {
		t.Fatalf("WakeTenant(idle_b) during the pass: woke %v, %v; want it idle (marked with idle_a)", woke, err)
	}
	waitFor("idle_c's compute to be suspended", func() bool {
		return neonSrv.EndpointState(projects["idle_c"]) == "idle" && suspended("idle_c")
	})
	if neonSrv.EndpointState(projects["idle_a"]) != "idle" || !suspended("idle_a") {
		t.Fatal("idle_a's compute was not suspended")
	}
	if st := neonSrv.EndpointState(projects["idle_b"]); st == "idle" || suspended("idle_b") {
		t.Fatalf("idle_b, woken before its turn, had its compute suspended (endpoint %s)", st)
	}
	if n := neonSrv.Count(neontest.RouteSuspendEndpoint, http.StatusOK); n != 2 {
		t.Fatalf("%d suspend calls answered, want 2 (idle_a and idle_c)", n)
	}
}
