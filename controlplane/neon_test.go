package controlplane_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/controlplane"
	"github.com/ragplane/ragplane/controlplane/provision/neon/neontest"
	"github.com/ragplane/ragplane/e2etest"
)

// mustNeon runs the in-repo Neon API with a real database behind each project.
func mustNeon(t *testing.T, opDuration time.Duration) (*neontest.Server, *neontest.Postgres) {
	t.Helper()
	pg := &neontest.Postgres{AdminURL: catalogtest.ServerURL(t), Prefix: catalogtest.RandomName("neon") + "_"}
	srv := neontest.NewServer(neontest.Config{OperationDuration: opDuration, NewDatabase: pg.NewDatabase, DropDatabase: pg.DropDatabase})
	t.Cleanup(func() { srv.Close(); pg.DropAll() })
	return srv, pg
}

// The Neon flow through the control plane's API: a project per tenant in the tenant's region,
// 429 and 423 along the way, and the project deleted with the tenant.
func TestNeonTenantLifecycle(t *testing.T) {
	neonSrv, _ := mustNeon(t, 150*time.Millisecond)
	ts := mustStart(t, func(c *controlplane.Config) {
		c.Provision.NeonAPIKey = neonSrv.APIKey
		c.Provision.NeonAPIURL = neonSrv.URL
	})
	neonSrv.InjectFault(2, neontest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "1"})
	r := ts.do("POST", "/v1/tenants", map[string]any{"id": "cloud_co", "name": "Cloud Co", "email": "ops@cloud.example",
		"plan": "pro", "provider": "neon", "region": "aws-us-east-2"})
	mustStatus(t, r, http.StatusAccepted)
	tn := ts.waitStatus("cloud_co", 60*time.Second, ragplane.StatusActive, ragplane.StatusFailed)
	if tn.Status != ragplane.StatusActive {
		t.Fatalf("neon tenant failed: %s", tn.StatusReason)
	}
	projects := neonSrv.Projects()
	if len(projects) != 1 || projects[0].RegionID != "aws-us-east-2" || projects[0].ID != tn.ProviderProjectID {
		t.Fatalf("projects = %+v, want one in aws-us-east-2 with id %s", projects, tn.ProviderProjectID)
	}
	throttled := 0
	for _, req := range neonSrv.Requests() {
		if req.Status == http.StatusTooManyRequests {
			throttled++
		}
	}
	if throttled != 2 {
		t.Fatalf("%d answers were 429, want the 2 injected (and retried past)", throttled)
	}
	// An unknown region can never succeed: the tenant fails at once, nothing is left on Neon.
	r = ts.do("POST", "/v1/tenants", map[string]any{"id": "moon_co", "name": "Moon", "email": "ops@moon.example",
		"plan": "pro", "provider": "neon", "region": "moon-base-1"})
	mustStatus(t, r, http.StatusAccepted)
	failed := ts.waitStatus("moon_co", 30*time.Second, ragplane.StatusFailed, ragplane.StatusActive)
	if failed.Status != ragplane.StatusFailed || failed.StatusReason == "" {
		t.Fatalf("tenant in an unknown region: %s %q", failed.Status, failed.StatusReason)
	}
	// Delete while Neon answers 423 Locked at first.
	neonSrv.InjectFault(2, neontest.Fault{Status: http.StatusLocked, Route: neontest.RouteDeleteProject})
	mustStatus(t, ts.do("DELETE", "/v1/tenants/cloud_co", nil), http.StatusAccepted)
	ts.waitStatus("cloud_co", 60*time.Second, ragplane.StatusDeleted)
	if n := len(neonSrv.Projects()); n != 0 {
		t.Fatalf("%d Neon projects left after delete", n)
	}
	if neonSrv.Count(neontest.RouteDeleteProject, http.StatusLocked) != 2 {
		t.Fatalf("the 423 answers were not met")
	}
}

// The control plane process killed while Neon's operations are still running resumes on restart
// and finishes with exactly one project.
func TestNeonKilledMidProvisioningResumes(t *testing.T) {
	neonSrv, _ := mustNeon(t, 2*time.Second)
	dbURL := catalogtest.NewDatabase(t)
	env := []string{
		"DATABASE_URL=" + dbURL,
		"RAGPLANE_LOCAL_ADMIN_URL=" + catalogtest.ServerURL(t),
		"RAGPLANE_ADMIN_TOKEN=" + adminToken,
		"RAGPLANE_SECRET_KEY=" + catalogtest.SecretKey,
		"NEON_API_KEY=" + neonSrv.APIKey,
		"RAGPLANE_NEON_API_URL=" + neonSrv.URL,
		"RAGPLANE_PROVIDER=neon",
		"RAGPLANE_REGION=aws-us-east-2",
	}
	addr := e2etest.FreeAddr(t)
	p := startProcess(t, env, addr)
	ts := &testServer{t: t, base: "http://" + addr}
	ts.createTenant("slow_cloud", "pro")
	deadline := time.Now().Add(20 * time.Second)
	for neonSrv.ProjectsCreated() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no Neon project was created")
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.Kill()
	startProcess(t, env, addr)
	tn := ts.waitStatus("slow_cloud", 60*time.Second, ragplane.StatusActive, ragplane.StatusFailed)
	if tn.Status != ragplane.StatusActive {
		t.Fatalf("resumed tenant %s: %s", tn.Status, tn.StatusReason)
	}
	if n := neonSrv.ProjectsCreated(); n != 1 {
		t.Fatalf("%d Neon projects created, want exactly 1", n)
	}
}
