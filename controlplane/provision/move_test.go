package provision_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/controlplane/provision"
)

// One mover per tenant: while another session holds the tenant's move lock (a replica still
// finishing a step after it lost the leadership), a mover leaves the move alone; once it is
// released the move goes through.
func TestMoveLeavesATenantAnotherMoverHolds(t *testing.T) {
	old := provision.MoveGrace
	provision.MoveGrace = 0
	t.Cleanup(func() { provision.MoveGrace = old })
	store, dbURL := catalogtest.MustOpen(t)
	p, _ := mustLocal(t)
	cfg := provision.ReconcilerConfig{Store: store, PollInterval: 50 * time.Millisecond,
		Provisioners: map[ragplane.Provider]provision.Provisioner{ragplane.ProviderLocal: p}}
	// Provision the tenant with a running reconciler, then stop it: the test drives the move.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); provision.NewReconciler(cfg).Run(ctx) }()
	newTenant(t, store, "mover_a")
	waitFor(t, store, "mover_a", ragplane.StatusActive)
	cancel()
	wg.Wait()

	plan := "free" // pooled
	if _, err := store.UpdateTenant(context.Background(), "mover_a", catalog.TenantPatch{Plan: &plan}, catalog.Actor{Name: "test"}); err != nil {
		t.Fatal(err)
	}
	other, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())
	if _, err := other.Exec(context.Background(), `select pg_advisory_lock(hashtextextended('ragplane.move:' || $1, 0))`, "mover_a"); err != nil {
		t.Fatal(err)
	}
	r := provision.NewReconciler(cfg)
	if err := r.MoveOnce(context.Background(), "mover_a"); err != nil {
		t.Fatal(err)
	}
	m, err := store.GetMove(context.Background(), "mover_a")
	if err != nil {
		t.Fatal(err)
	}
	if m.State != catalog.MoveCopying || m.ToProjectID != "" || m.Attempts != 0 {
		t.Fatalf("a mover worked on a move another holds: %+v", m)
	}
	if _, err := other.Exec(context.Background(), `select pg_advisory_unlock(hashtextextended('ragplane.move:' || $1, 0))`, "mover_a"); err != nil {
		t.Fatal(err)
	}
	if err := r.MoveOnce(context.Background(), "mover_a"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.GetMove(context.Background(), "mover_a"); ragplane.ErrorCode(err) != ragplane.ENOTFOUND {
		t.Fatalf("after the lock was released the move is still there: %v", err)
	}
	tn, err := store.GetTenant(context.Background(), "mover_a")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tn.ProviderProjectID, provision.PooledProjectPrefix) {
		t.Fatalf("the tenant is in %q after its move to the pooled tier", tn.ProviderProjectID)
	}
}
