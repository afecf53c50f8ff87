package controlplane_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/e2etest"
)

// startProcess runs `ragplane controlplane` as its own process on addr.
func startProcess(tb testing.TB, env []string, addr string) *e2etest.Process {
	tb.Helper()
	env = append(env, "RAGPLANE_ADMIN_ADDR="+addr, "RAGPLANE_XDS_ADDR="+e2etest.FreeAddr(tb))
	return e2etest.StartProcess(tb, "controlplane", addr, env...)
}

// TestKilledMidProvisioningResumes kills the control plane (SIGKILL) after it created a tenant's
// database but before it finished provisioning, restarts it, and checks that the tenant becomes
// active with exactly one database.
func TestKilledMidProvisioningResumes(t *testing.T) {
	dbURL := catalogtest.NewDatabase(t)
	prefix := catalogtest.RandomName("rpt") + "_"
	t.Cleanup(func() { catalogtest.DropTenantDatabases(t, prefix) })
	env := []string{
		"DATABASE_URL=" + dbURL,
		"RAGPLANE_LOCAL_ADMIN_URL=" + catalogtest.ServerURL(t),
		"RAGPLANE_LOCAL_PREFIX=" + prefix,
		"RAGPLANE_ADMIN_TOKEN=" + adminToken,
		"RAGPLANE_SECRET_KEY=" + catalogtest.SecretKey,
		"RAGPLANE_PROVISION_BACKOFF=50ms",
	}
	addr := e2etest.FreeAddr(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, catalogtest.ServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)

	// The window between CREATE DATABASE and the end of migration is short; if a kill misses it,
	// try again with another tenant.
	var victim ragplane.TenantID
	for try := 0; try < 5 && victim == ""; try++ {
		p := startProcess(t, env, addr)
		ts := &testServer{t: t, base: "http://" + addr}
		id := ragplane.TenantID(fmt.Sprintf("crash_%d", try))
		ts.createTenant(string(id), "pro")
		deadline := time.Now().Add(20 * time.Second)
		for {
			var exists bool
			if err := admin.QueryRow(ctx, `select exists(select 1 from pg_database where datname = $1)`, prefix+string(id)).Scan(&exists); err != nil {
				t.Fatal(err)
			}
			if exists {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("tenant database never appeared")
			}
		}
		p.Kill()
		cat, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		var status string
		cat.QueryRow(ctx, `select status from tenants where id = $1`, id).Scan(&status)
		cat.Close(ctx)
		if status == string(ragplane.StatusProvisioning) {
			victim = id
			t.Logf("killed mid-provisioning on try %d", try+1)
		}
	}
	if victim == "" {
		t.Fatal("could not kill the control plane inside the provisioning window in 5 tries")
	}

	startProcess(t, env, addr)
	ts := &testServer{t: t, base: "http://" + addr}
	tn := ts.waitStatus(victim, 30*time.Second, ragplane.StatusActive, ragplane.StatusFailed)
	if tn.Status != ragplane.StatusActive {
		t.Fatalf("resumed tenant is %s: %s", tn.Status, tn.StatusReason)
	}
	if n := catalogtest.CountDatabases(t, prefix+string(victim)); n != 1 {
		t.Fatalf("%d databases for %s after resume, want exactly 1", n, victim)
	}
	// The interrupted attempt is on record as such.
	r := ts.do("GET", "/v1/tenants/"+string(victim)+"/operations", nil)
	var ops struct {
		Items []struct {
			State string `json:"state"`
			Error string `json:"error"`
		} `json:"items"`
	}
	r.decode(t, &ops)
	if len(ops.Items) < 2 || ops.Items[0].State != "failed" || ops.Items[len(ops.Items)-1].State != "succeeded" {
		t.Fatalf("operations after resume = %+v, want an interrupted one then a success", ops.Items)
	}
	// And the resumed tenant's database really works with the credentials stored for it.
	store := ts.mustStoreAt(dbURL)
	u, err := store.TenantDatabaseURL(ctx, victim)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("tenant credentials after resume: %v", err)
	}
	c.Close(ctx)
}
