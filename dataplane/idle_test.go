package dataplane_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/ragplane/ragplane/controlplane"
	"github.com/ragplane/ragplane/e2etest"
)

// An idle tenant wakes on request (issue 13, item 3): a tenant unused for the control plane's
// idle threshold is marked idle and the worker closes its pool on the catalog's notice (long
// before the worker's own pool idle timeout); the next request is served, wakes it (the
// catalog marks it awake) and is counted. It sleeps and wakes twice, so the second sleep
// follows a pool the test saw open.
func TestIdleTenantWakesOnRequest(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{ControlPlane: func(c *controlplane.Config) {
		c.Provision.IdleAfter = time.Second
	}})
	st.CreateTenant("sleepy_co", "pro", nil)
	store := st.Store()
	c := st.Tenant("sleepy_co")
	metrics := func() string {
		resp, err := http.Get(st.WorkerURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	// activity reads the tenant's idle_since and woke_at (zero when null).
	activity := func() (idleSince, wokeAt time.Time) {
		var is, wa *time.Time
		err := store.Pool().QueryRow(context.Background(),
			`select idle_since, woke_at from tenant_activity where tenant_id = 'sleepy_co'`).Scan(&is, &wa)
		if err != nil && err.Error() != "no rows in result set" {
			t.Fatal(err)
		}
		if is != nil {
			idleSince = *is
		}
		if wa != nil {
			wokeAt = *wa
		}
		return idleSince, wokeAt
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second) // the worker's own pool timeout is 1m
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	var lastWake time.Time
	for round := 1; round <= 2; round++ {
		// Unused past the threshold: the reconciler marks it idle after its last use.
		var idle time.Time
		waitFor("the tenant to be marked idle", func() bool {
			idle, _ = activity()
			return !idle.IsZero() && idle.After(lastWake)
		})
		// The worker closes its pool at the notice.
		waitFor("the worker to close the tenant's pool", func() bool {
			m := metrics()
			return metricValue(m, "ragplane_dataplane_db_pools_open") == 0 &&
				metricValue(m, "ragplane_dataplane_tenants_slept_total") >= float64(round)
		})
		// The next request is served and wakes it.
		mustStatus(t, c.Do("GET", "/v1/documents", nil), http.StatusOK)
		m := metrics()
		if got := metricValue(m, "ragplane_dataplane_tenant_wakes_total"); got != float64(round) {
			t.Fatalf("round %d: wakes_total = %v, want %d", round, got, round)
		}
		if got := metricValue(m, "ragplane_dataplane_tenant_wake_seconds_count"); got != float64(round) {
			t.Fatalf("round %d: wake_seconds_count = %v, want %d", round, got, round)
		}
		if got := metricValue(m, "ragplane_dataplane_db_pools_open"); got != 1 {
			t.Fatalf("round %d: pools open after the wake = %v, want 1", round, got)
		}
		// Marked awake: woke after it went idle, and idle again (if at all) only after waking.
		nowIdle, woke := activity()
		if !woke.After(idle) {
			t.Fatalf("round %d: woke_at %v is not after idle_since %v", round, woke, idle)
		}
		if !nowIdle.IsZero() && !nowIdle.After(woke) {
			t.Fatalf("round %d: still idle since %v after waking at %v", round, nowIdle, woke)
		}
		lastWake = woke
	}
}
