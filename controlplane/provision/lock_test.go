package provision_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/controlplane/provision"
)

// The tenant's data lock is one session's at a time, and a step that loses it with its session
// (terminated here, as an idle-session timeout or a cut connection would) is stopped: its context
// ends, so it does not go on beside the replica that takes the lock next.
func TestTenantDataLockLostStopsTheStep(t *testing.T) {
	store, dbURL := catalogtest.MustOpen(t)
	r := provision.NewReconciler(provision.ReconcilerConfig{Store: store})
	ctx := context.Background()
	lctx, unlock, ok := r.LockTenantData(ctx, "locked_co")
	if !ok {
		t.Fatal("the free lock was not taken")
	}
	defer unlock()
	if _, _, ok := r.LockTenantData(ctx, "locked_co"); ok {
		t.Fatal("a second session took the lock held by the first")
	}
	other, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	var n int
	if err := other.QueryRow(ctx, `select count(pg_terminate_backend(pid)) from pg_locks
		where locktype = 'advisory' and granted and database = (select oid from pg_database where datname = current_database())`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("terminated %d lock holders, %v; want 1", n, err)
	}
	select {
	case <-lctx.Done():
	case <-time.After(time.Minute):
		t.Fatal("the step's context did not end after its lock's session was terminated")
	}
	lctx2, unlock2, ok := r.LockTenantData(ctx, "locked_co")
	if !ok {
		t.Fatal("the lock was not free after its session ended")
	}
	defer unlock2()
	if lctx2.Err() != nil {
		t.Fatal("a new lock's context is already done")
	}
}

// A deletion waits for the tenant's data lock held by another session (a replica finishing a move
// or offload step), saying why, and goes through once it is released.
func TestDeletionWaitsForTheTenantDataLock(t *testing.T) {
	store, _ := catalogtest.MustOpen(t)
	p, _ := mustLocal(t)
	cfg := provision.ReconcilerConfig{Store: store, PollInterval: 50 * time.Millisecond,
		Provisioners: map[ragplane.Provider]provision.Provisioner{ragplane.ProviderLocal: p}}
	runReconciler(t, cfg)
	newTenant(t, store, "locked_del")
	waitFor(t, store, "locked_del", ragplane.StatusActive)
	other := provision.NewReconciler(provision.ReconcilerConfig{Store: store})
	_, unlock, ok := other.LockTenantData(context.Background(), "locked_del")
	if !ok {
		t.Fatal("the lock was not taken")
	}
	if _, err := store.SetStatus(context.Background(), "locked_del", ragplane.StatusDeleting, "test", catalog.Actor{Name: "test"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		tn, err := store.GetTenant(context.Background(), "locked_del")
		if err != nil {
			t.Fatal(err)
		}
		if tn.Status != ragplane.StatusDeleting {
			t.Fatalf("tenant %s while another session holds its data lock, want deleting", tn.Status)
		}
		if strings.Contains(tn.StatusReason, "another control-plane session") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reason given for the wait: %q", tn.StatusReason)
		}
		time.Sleep(20 * time.Millisecond)
	}
	unlock()
	waitFor(t, store, "locked_del", ragplane.StatusDeleted)
}
