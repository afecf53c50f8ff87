package provision_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/catalog/tenantdb"
	"github.com/ragplane/ragplane/controlplane/provision"
	"github.com/ragplane/ragplane/controlplane/provision/local"
)

// fakeProvisioner lets a test change what a real provisioner does; nil fields pass through.
type fakeProvisioner struct {
	real           provision.Provisioner
	afterProvision func(provision.Database, error) (provision.Database, error)
	deprovisions   atomic.Int32
}

func (f *fakeProvisioner) Provision(ctx context.Context, req provision.Request, record func(string) error) (provision.Database, error) {
	db, err := f.real.Provision(ctx, req, record)
	if f.afterProvision != nil {
		return f.afterProvision(db, err)
	}
	return db, err
}

func (f *fakeProvisioner) Deprovision(ctx context.Context, id ragplane.TenantID, projectID string) error {
	f.deprovisions.Add(1)
	return f.real.Deprovision(ctx, id, projectID)
}

func mustLocal(t *testing.T) (*local.Provisioner, string) {
	t.Helper()
	return mustLocalTB(t)
}

func mustLocalTB(t testing.TB) (*local.Provisioner, string) {
	t.Helper()
	prefix := catalogtest.RandomName("rpt") + "_"
	p, err := local.New(context.Background(), local.Config{AdminURL: catalogtest.ServerURL(t), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(); catalogtest.DropTenantDatabases(t, prefix) })
	return p, prefix
}

func runReconciler(t *testing.T, cfg provision.ReconcilerConfig) *provision.Reconciler {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := provision.NewReconciler(cfg)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return r
}

func waitFor(t *testing.T, store *catalog.Store, id ragplane.TenantID, want ragplane.TenantStatus) *ragplane.Tenant {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		tn, err := store.GetTenant(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if tn.Status == want {
			return tn
		}
		if time.Now().After(deadline) {
			t.Fatalf("tenant %s is %s (%s), want %s", id, tn.Status, tn.StatusReason, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newTenant records a siloed tenant (plan pro: the free plan's tenants are pooled).
func newTenant(t *testing.T, store *catalog.Store, id ragplane.TenantID) {
	t.Helper()
	_, _, err := store.CreateTenant(context.Background(), catalog.NewTenant{ID: id, Name: string(id), Email: string(id) + "@x.example",
		Plan: "pro", Region: "local", Provider: ragplane.ProviderLocal}, nil, catalog.Actor{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
}

// A tenant whose provisioning keeps failing is retried MaxAttempts times, then marked failed with
// the reason, and what the attempts created is removed.
func TestReconcilerGivesUpAndCleansUp(t *testing.T) {
	store, _ := catalogtest.MustOpen(t)
	lp, prefix := mustLocal(t)
	fake := &fakeProvisioner{real: lp, afterProvision: func(db provision.Database, err error) (provision.Database, error) {
		return db, ragplane.Errorf(ragplane.EUNAVAILABLE, "the disk is on fire")
	}}
	runReconciler(t, provision.ReconcilerConfig{Store: store, MaxAttempts: 3, BaseBackoff: 10 * time.Millisecond,
		PollInterval: 50 * time.Millisecond, Provisioners: map[ragplane.Provider]provision.Provisioner{ragplane.ProviderLocal: fake}})
	newTenant(t, store, "doomed")
	tn := waitFor(t, store, "doomed", ragplane.StatusFailed)
	if tn.StatusReason != "the disk is on fire" || tn.ProvisionAttempts != 4 { // 3 provisions + 1 cleanup
		t.Fatalf("failed tenant = reason %q attempts %d", tn.StatusReason, tn.ProvisionAttempts)
	}
	if n := catalogtest.CountDatabases(t, prefix); n != 0 {
		t.Fatalf("%d databases left after giving up, want 0", n)
	}
	ops, err := store.ListOperations(context.Background(), "doomed")
	if err != nil {
		t.Fatal(err)
	}
	kinds := ""
	for _, op := range ops {
		kinds += op.Kind + ":" + op.State + " "
	}
	if want := "provision:failed provision:failed provision:failed cleanup:succeeded "; kinds != want {
		t.Fatalf("operations = %q, want %q", kinds, want)
	}
	if _, err := store.TenantDatabaseURL(context.Background(), "doomed"); ragplane.ErrorCode(err) != ragplane.ENOTFOUND {
		t.Fatalf("a failed tenant still has a database URL (%v)", err)
	}
}

// A transient failure is retried and then succeeds, leaving one database.
func TestReconcilerRetriesTransientFailures(t *testing.T) {
	store, _ := catalogtest.MustOpen(t)
	lp, prefix := mustLocal(t)
	var calls atomic.Int32
	fake := &fakeProvisioner{real: lp, afterProvision: func(db provision.Database, err error) (provision.Database, error) {
		if calls.Add(1) < 3 {
			return db, errors.New("connection reset by peer")
		}
		return db, err
	}}
	runReconciler(t, provision.ReconcilerConfig{Store: store, MaxAttempts: 5, BaseBackoff: 10 * time.Millisecond,
		PollInterval: 50 * time.Millisecond, Provisioners: map[ragplane.Provider]provision.Provisioner{ragplane.ProviderLocal: fake}})
	newTenant(t, store, "flaky")
	tn := waitFor(t, store, "flaky", ragplane.StatusActive)
	if tn.ProvisionAttempts != 3 {
		t.Fatalf("attempts = %d, want 3", tn.ProvisionAttempts)
	}
	if n := catalogtest.CountDatabases(t, prefix); n != 1 {
		t.Fatalf("%d databases, want 1", n)
	}
	if fake.deprovisions.Load() != 0 {
		t.Fatal("a tenant that recovered was cleaned up")
	}
}

// Two reconcilers on one catalog: exactly one leads at a time, and the other takes over when the
// leader stops.
func TestReconcilerSingleLeader(t *testing.T) {
	store, _ := catalogtest.MustOpen(t)
	lp, _ := mustLocal(t)
	cfg := provision.ReconcilerConfig{Store: store, PollInterval: 50 * time.Millisecond,
		Provisioners: map[ragplane.Provider]provision.Provisioner{ragplane.ProviderLocal: lp}}
	ctx1, stop1 := context.WithCancel(context.Background())
	r1 := provision.NewReconciler(cfg)
	done1 := make(chan struct{})
	go func() { r1.Run(ctx1); close(done1) }()
	defer func() { stop1(); <-done1 }()
	r2 := runReconciler(t, cfg)

	deadline := time.Now().Add(10 * time.Second)
	for !(r1.IsLeader() || r2.IsLeader()) {
		if time.Now().After(deadline) {
			t.Fatal("no leader elected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The follower campaigns twice more while the leader holds the lock (so at least one whole
	// campaign began after the leader was seen), and stays a follower.
	leader, follower := r1, r2
	if r2.IsLeader() {
		leader, follower = r2, r1
	}
	for lost := follower.LostCampaigns(); follower.LostCampaigns() < lost+2; {
		if time.Now().After(deadline) {
			t.Fatal("the follower stopped campaigning")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if follower.IsLeader() || !leader.IsLeader() {
		t.Fatalf("after the follower campaigned: leader %v, follower %v; want exactly the first leader", leader.IsLeader(), follower.IsLeader())
	}
	if r1.IsLeader() {
		stop1()
		<-done1
		for !r2.IsLeader() {
			if time.Now().After(deadline) {
				t.Fatal("the follower did not take over")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	newTenant(t, store, "after_failover")
	waitFor(t, store, "after_failover", ragplane.StatusActive)
}

// A tenant whose database is at an older schema version is migrated to the latest when a
// reconciler takes the lead, and its catalog row records it: existing chunks get their
// document's title, searchable at weight A, and the text-search configuration table.
func TestReconcilerUpgradesTenantSchemas(t *testing.T) {
	store, _ := catalogtest.MustOpen(t)
	lp, _ := mustLocal(t)
	ctx := context.Background()
	const old = 4
	var tenantURL string
	fake := &fakeProvisioner{real: lp, afterProvision: func(db provision.Database, err error) (provision.Database, error) {
		if err != nil {
			return db, err
		}
		// The database as an older release left it: version 4, with a document and a chunk.
		conn, err := pgx.Connect(ctx, db.URL)
		if err != nil {
			return db, err
		}
		defer conn.Close(ctx)
		if db.SchemaVersion, err = tenantdb.MigrateTo(ctx, conn, 512, "veteran", old); err != nil {
			return db, err
		}
		_, err = conn.Exec(ctx, `insert into documents (id, title, content_hash) values ('00000000-0000-0000-0000-000000000001', 'Zanzibar handbook', '\x01');
			insert into chunks (id, document_id, ordinal, content, tokens, embedding)
			values ('00000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-000000000001', 0, 'Spices grow on the islands.', 6, array_fill(0.1, array[512])::vector)`)
		tenantURL = db.URL
		return db, err
	}}
	rctx, stop := context.WithCancel(ctx)
	first := provision.NewReconciler(provision.ReconcilerConfig{Store: store, PollInterval: 50 * time.Millisecond,
		Provisioners: map[ragplane.Provider]provision.Provisioner{ragplane.ProviderLocal: fake}})
	done := make(chan struct{})
	go func() { defer close(done); first.Run(rctx) }()
	newTenant(t, store, "veteran")
	if tn := waitFor(t, store, "veteran", ragplane.StatusActive); tn.SchemaVersion != old {
		t.Fatalf("schema version %d after provisioning, want %d", tn.SchemaVersion, old)
	}
	stop()
	<-done

	// A new release's reconciler takes the lead and upgrades it.
	runReconciler(t, provision.ReconcilerConfig{Store: store, PollInterval: 50 * time.Millisecond,
		Provisioners: map[ragplane.Provider]provision.Provisioner{ragplane.ProviderLocal: lp}})
	deadline := time.Now().Add(30 * time.Second)
	for {
		tn, err := store.GetTenant(ctx, "veteran")
		if err != nil {
			t.Fatal(err)
		}
		if tn.SchemaVersion == tenantdb.LatestVersion() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("schema version %d, want %d", tn.SchemaVersion, tenantdb.LatestVersion())
		}
		time.Sleep(20 * time.Millisecond)
	}
	conn, err := pgx.Connect(ctx, tenantURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// The old rows are the tenant's (008 gave them its id): visible to it, as the worker sets it.
	if _, err := conn.Exec(ctx, `select set_config('ragplane.tenant_id', 'veteran', false)`); err != nil {
		t.Fatal(err)
	}
	var owners []string
	if rows, err := conn.Query(ctx, `select distinct tenant_id from documents union select tenant_id from chunks`); err != nil {
		t.Fatal(err)
	} else if owners, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil || len(owners) != 1 || owners[0] != "veteran" {
		t.Fatalf("tenant ids of the old rows: %v, %v; want [veteran]", owners, err)
	}
	var title, cfg string
	var titleMatch bool
	if err := conn.QueryRow(ctx, `select title, text_config::text, tsv @@ 'zanzibar:A'::tsquery from chunks`).Scan(&title, &cfg, &titleMatch); err != nil {
		t.Fatal(err)
	}
	if title != "Zanzibar handbook" || cfg != "english" || !titleMatch {
		t.Errorf("chunk after upgrade: title %q, config %q, title searchable at A %v", title, cfg, titleMatch)
	}
}
