package controlplane_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/catalogtest"
)

func TestCreateWithIdempotencyKey(t *testing.T) {
	ts := mustStart(t)
	body := map[string]any{"id": "beta_inc", "name": "Beta", "email": "ops@beta.example", "plan": "pro"}

	// The same request with the same key, ten times at once: one tenant, ten identical answers.
	var wg sync.WaitGroup
	statuses := make([]int, 10)
	replays := make([]string, 10)
	for i := range statuses {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := ts.do("POST", "/v1/tenants", body, "Idempotency-Key", "create-beta-1")
			statuses[i], replays[i] = r.Status, r.Header.Get("Idempotent-Replayed")
		}(i)
	}
	wg.Wait()
	fresh := 0
	for i, s := range statuses {
		if s != http.StatusAccepted {
			t.Fatalf("request %d: status %d, want 202", i, s)
		}
		if replays[i] == "" {
			fresh++
		}
	}
	if fresh != 1 {
		t.Fatalf("%d requests created the tenant, want exactly 1", fresh)
	}

	// The same key with another body is a conflict naming the key.
	other := map[string]any{"id": "beta_inc", "name": "Beta 2", "email": "ops@beta.example", "plan": "pro"}
	r := ts.do("POST", "/v1/tenants", other, "Idempotency-Key", "create-beta-1")
	mustStatus(t, r, http.StatusConflict)
	if p := r.problem(t); p["field"] != "Idempotency-Key" {
		t.Fatalf("conflict names %v, want Idempotency-Key", p["field"])
	}

	// The same tenant with different keys (or none), at once: exactly one wins, the rest get 409.
	body2 := map[string]any{"id": "gamma_labs", "name": "Gamma", "email": "ops@gamma.example", "plan": "free"}
	for i := range statuses {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			key := fmt.Sprintf("gamma-%d", i)
			if i == 0 {
				key = ""
			}
			statuses[i] = ts.do("POST", "/v1/tenants", body2, "Idempotency-Key", key).Status
		}(i)
	}
	wg.Wait()
	won := 0
	for i, s := range statuses {
		switch s {
		case http.StatusAccepted:
			won++
		case http.StatusConflict:
		default:
			t.Fatalf("request %d: status %d, want 202 or 409", i, s)
		}
	}
	if won != 1 {
		t.Fatalf("%d concurrent creates of gamma_labs succeeded, want 1", won)
	}
	ts.waitStatus("beta_inc", 30*time.Second, ragplane.StatusActive)
	ts.waitStatus("gamma_labs", 30*time.Second, ragplane.StatusActive)
	if n := catalogtest.CountDatabases(t, ts.prefix); n != 2 {
		t.Fatalf("%d tenant databases, want 2", n)
	}
}

func TestProvisionHundredConcurrently(t *testing.T) {
	ts := mustStart(t)
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := fmt.Sprintf("bulk_%03d", i)
			r := ts.do("POST", "/v1/tenants", map[string]any{"id": id, "name": id, "email": id + "@bulk.example", "plan": "pro"})
			if r.Status != http.StatusAccepted {
				errs <- fmt.Sprintf("%s: %d %s", id, r.Status, r.Body)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		r := ts.do("GET", "/v1/tenants?status=active&limit=500", nil)
		var p struct {
			Items []ragplane.Tenant `json:"items"`
		}
		r.decode(t, &p)
		if len(p.Items) == n {
			break
		}
		r = ts.do("GET", "/v1/tenants?status=failed", nil)
		r.decode(t, &p)
		if len(p.Items) > 0 {
			t.Fatalf("tenant %s failed: %s", p.Items[0].ID, p.Items[0].StatusReason)
		}
		if time.Now().After(deadline) {
			t.Fatalf("not all %d tenants active after 3 minutes", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got := catalogtest.CountDatabases(t, ts.prefix); got != n {
		t.Fatalf("%d tenant databases, want %d", got, n)
	}
}
