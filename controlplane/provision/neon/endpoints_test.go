package neon_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/controlplane/provision/neon"
	"github.com/ragplane/ragplane/controlplane/provision/neon/neontest"
)

// An idle tenant's compute is suspended and started through Neon's endpoint API: the project's
// endpoints are listed and its read_write endpoint suspended (current_state idle), then started
// (active), each with the documented routes and answers; an unknown project is ENOTFOUND.
func TestSuspendAndStartCompute(t *testing.T) {
	t.Parallel()
	s := neontest.NewServer(neontest.Config{})
	t.Cleanup(s.Close)
	cfg := MustConfig(t, s)
	c, err := neon.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := neon.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tenant := ragplane.TenantID("sleepy")
	id := MustCreateProject(t, c, neon.ProjectName(tenant))
	if got := s.EndpointState(id); got != "active" {
		t.Fatalf("a new project's endpoint is %q, want active", got)
	}

	if err := p.Suspend(ctx, tenant, id); err != nil {
		t.Fatalf("Suspend: %v", err)
	}
	if got := s.EndpointState(id); got != "idle" {
		t.Fatalf("after Suspend the endpoint is %q, want idle", got)
	}
	eps, err := c.ListEndpoints(ctx, id)
	if err != nil || len(eps) != 1 || eps[0].Type != "read_write" || eps[0].CurrentState != "idle" {
		t.Fatalf("ListEndpoints = %+v, %v; want one read_write endpoint, idle", eps, err)
	}
	if n := s.Count(neontest.RouteSuspendEndpoint, http.StatusOK); n != 1 {
		t.Fatalf("%d suspend calls answered 200, want 1", n)
	}

	if err := p.Start(ctx, tenant, id); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if got := s.EndpointState(id); got != "active" {
		t.Fatalf("after Start the endpoint is %q, want active", got)
	}
	if n := s.Count(neontest.RouteStartEndpoint, http.StatusOK); n != 1 {
		t.Fatalf("%d start calls answered 200, want 1", n)
	}

	if err := p.Suspend(ctx, tenant, "misty-fog-00000000"); ragplane.ErrorCode(err) != ragplane.ENOTFOUND {
		t.Fatalf("Suspend of an unknown project: %v, want ENOTFOUND", err)
	}
}
