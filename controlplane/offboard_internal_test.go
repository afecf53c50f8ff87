package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/controlplane/provision"
)

type fakeProv struct{ provision.Provisioner }

type fakePools struct{ fakeProv }

func (fakePools) UpgradePool(context.Context, string) (int, error) { return 0, nil }
func (fakePools) OwnerURL(string) (string, error)                  { return "", nil }
func (fakePools) DropDatabase(context.Context, ragplane.TenantID, string) error {
	return nil
}

type fakeSleeper struct{ fakeProv }

func (fakeSleeper) Suspend(context.Context, ragplane.TenantID, string) error { return nil }
func (fakeSleeper) Start(context.Context, ragplane.TenantID, string) error   { return nil }

type fakeBoth struct{ fakeSleeper }

func (fakeBoth) UpgradePool(context.Context, string) (int, error) { return 0, nil }
func (fakeBoth) OwnerURL(string) (string, error)                  { return "", nil }
func (fakeBoth) DropDatabase(context.Context, ragplane.TenantID, string) error {
	return nil
}

// The deletion-report wrapper keeps the optional interfaces the reconciler looks for by type
// assertion: without them pools are never upgraded, tenants never moved between tiers nor
// offloaded, and idle Neon computes never suspended.
func TestOffboardingKeepsProvisionerInterfaces(t *testing.T) {
	s := &Server{}
	for _, c := range []struct {
		name          string
		p             provision.Provisioner
		pools, sleeps bool
	}{
		{"plain", fakeProv{}, false, false},
		{"pools", fakePools{}, true, false},
		{"sleeper", fakeSleeper{}, false, true},
		{"both", fakeBoth{}, true, true},
	} {
		w := s.withOffboarding(c.p)
		_, pools := w.(provision.PoolUpgrader)
		_, moves := w.(provision.TierMover)
		_, sleeps := w.(provision.Sleeper)
		_, offloads := w.(provision.Offloader)
		if pools != c.pools || moves != c.pools || offloads != c.pools || sleeps != c.sleeps {
			t.Errorf("%s: wrapped PoolUpgrader %v Sleeper %v, want %v %v", c.name, pools, sleeps, c.pools, c.sleeps)
		}
	}
}

// fakeGroups stands in for the workers' Neo4j, which cannot run here (what DeleteGroup does on a
// real server is tested in dataplane/graph/neo4j with the neo4j build tag): it fails while down is
// set, as an unreachable Neo4j does, and otherwise removes a graph of 7 nodes and 5 relationships.
type fakeGroups struct {
	down  atomic.Bool
	calls atomic.Int64
	mu    sync.Mutex
	asked []ragplane.TenantID
}

func (f *fakeGroups) DeleteGroup(_ context.Context, tenant ragplane.TenantID) (int64, int64, error) {
	f.calls.Add(1)
	f.mu.Lock()
	f.asked = append(f.asked, tenant)
	f.mu.Unlock()
	if f.down.Load() {
		return 0, 0, ragplane.Errorf(ragplane.EUNAVAILABLE, "The graph database is unavailable; retry.")
	}
	return 7, 5, nil
}

// Deleting a tenant with Neo4j configured removes its graph there by tenant id and reports the
// counts; while Neo4j fails, the deletion is retried with the reason on the tenant and completes
// (report written, tenant deleted) only once the graph is removed.
func TestDeletionRemovesTheNeo4jGroup(t *testing.T) {
	cfg := DefaultConfig()
	cfg.AdminAddr, cfg.XDSAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.DatabaseURL = catalogtest.NewDatabase(t)
	cfg.Provision.LocalAdminURL = catalogtest.ServerURL(t)
	cfg.Provision.LocalPrefix = catalogtest.RandomName("rpt") + "_"
	cfg.Provision.BaseBackoff = 10 * time.Millisecond
	cfg.AdminToken = "test-admin-token-0123456789"
	cfg.SecretKey = catalogtest.SecretKey
	cfg.AllowUndurable = true // the test stack runs PostgreSQL in its fast mode
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := New(ctx, cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	groups := &fakeGroups{}
	groups.down.Store(true)
	s.neo4j = groups
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	admin := func(method, path string, body any) (int, []byte) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(ctx, method, "http://"+s.Addr()+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+cfg.AdminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, out
	}
	tenant := func(id string) ragplane.Tenant {
		t.Helper()
		var tn ragplane.Tenant
		if code, body := admin("GET", "/v1/tenants/"+id, nil); code != http.StatusOK || json.Unmarshal(body, &tn) != nil {
			t.Fatalf("get tenant %s: %d %s", id, code, body)
		}
		return tn
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}

	const id = "neo_del"
	if code, body := admin("POST", "/v1/tenants", map[string]any{"id": id, "name": id, "email": id + "@example.com", "plan": "pro",
		"settings": map[string]any{"embedding_model": "ragplane-hash-v1", "embedding_dimension": 384}}); code != http.StatusAccepted {
		t.Fatalf("create tenant: %d %s", code, body)
	}
	waitFor("the tenant to be active", func() bool { return tenant(id).Status == ragplane.StatusActive })
	if code, body := admin("DELETE", "/v1/tenants/"+id, nil); code != http.StatusAccepted {
		t.Fatalf("delete tenant: %d %s", code, body)
	}

	// Neo4j down: attempt after attempt fails, and the tenant stays deleting, saying why.
	waitFor("three deletion attempts", func() bool {
		if tenant(id).Status == ragplane.StatusDeleted {
			t.Fatal("the tenant was deleted while Neo4j was down")
		}
		return groups.calls.Load() >= 3
	})
	tn := tenant(id)
	if tn.Status != ragplane.StatusDeleting || !strings.Contains(tn.StatusReason, "graph database is unavailable") {
		t.Fatalf("with Neo4j down the tenant is %s (%q), want deleting with the reason", tn.Status, tn.StatusReason)
	}
	if code, body := admin("GET", "/v1/tenants/"+id+"/deletion", nil); code != http.StatusNotFound {
		t.Fatalf("deletion report while Neo4j is down: %d %s, want 404", code, body)
	}

	// Neo4j back: the next attempt completes.
	groups.down.Store(false)
	waitFor("the tenant to be deleted", func() bool { return tenant(id).Status == ragplane.StatusDeleted })
	code, body := admin("GET", "/v1/tenants/"+id+"/deletion", nil)
	var rep DeletionReport
	if code != http.StatusOK || json.Unmarshal(body, &rep) != nil {
		t.Fatalf("deletion report: %d %s", code, body)
	}
	var got *StoreReport
	for i := range rep.Stores {
		if rep.Stores[i].Store == "neo4j" {
			got = &rep.Stores[i]
		}
	}
	if got == nil || got.Action != "removed" || got.Rows["nodes"] != 7 || got.Rows["relationships"] != 5 || !strings.Contains(got.Detail, "group_id "+id) {
		t.Fatalf("neo4j in the report: %+v (report %s)", got, body)
	}
	groups.mu.Lock()
	defer groups.mu.Unlock()
	for _, asked := range groups.asked {
		if asked != id {
			t.Fatalf("DeleteGroup was asked for %q, want %q", asked, id)
		}
	}
}
