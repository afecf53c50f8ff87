package main

import (
	"strings"
	"testing"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/controlplane/provision"
	"github.com/ragplane/ragplane/e2etest"
)

// `tenants tier --wait` that times out while the move is still in progress exits 6, as every
// --wait that times out does (the root help's exit codes), naming the tier it is moving to.
func TestCLITenantsTierWaitTimesOut(t *testing.T) {
	// Set before the control plane starts and restored after it stops (cleanups run last first).
	t.Cleanup(provision.SetMoveHook(func(step string, tenant ragplane.TenantID) error {
		if step == "copied" && tenant == "cli_tier" {
			return ragplane.Errorf(ragplane.EUNAVAILABLE, "move held by the test")
		}
		return nil
	}))
	st := e2etest.Start(t, e2etest.Options{})
	admin := env{"RAGPLANE_ADMIN_URL": st.AdminURL, "RAGPLANE_ADMIN_TOKEN": e2etest.AdminToken}
	st.CreateTenant("cli_tier", "pro", nil)
	MustRunCLI(t, admin, "tenants", "update", "cli_tier", "--plan", "free")
	out, err := runCLI(t, admin, "tenants", "tier", "cli_tier", "--wait", "300ms")
	if exitCode(err) != exitUnavailable || !strings.Contains(err.Error(), "still moving to the pooled tier") {
		t.Fatalf("tier --wait of a move held in progress: %v (exit %d), output %q; want exit %d naming the pooled tier",
			err, exitCode(err), out, exitUnavailable)
	}
}
