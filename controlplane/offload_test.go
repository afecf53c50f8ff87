package controlplane_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/catalog/tenantdb"
	"github.com/ragplane/ragplane/controlplane"
	"github.com/ragplane/ragplane/controlplane/provision"
	"github.com/ragplane/ragplane/e2etest"
)

// activityOf is GET /v1/tenants/{id}/activity.
type activityOf struct {
	State   string           `json:"state"`
	Offload *catalog.Offload `json:"offload"`
}

func activityNow(t testing.TB, st *e2etest.Stack, tenant string) activityOf {
	t.Helper()
	r := st.Admin("GET", "/v1/tenants/"+tenant+"/activity", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET activity: %d %s", r.Status, r.Body)
	}
	var a activityOf
	r.Decode(t, &a)
	return a
}

// waitOffloaded waits until the tenant is offloaded with its database dropped, and returns its offload.
func waitOffloaded(t testing.TB, st *e2etest.Stack, tenant string) *catalog.Offload {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute) // the first offload of a tenant loaded in bulk waits for its background embedding
	for {
		a := activityNow(t, st, tenant)
		if a.State == catalog.OffloadOffloaded && a.Offload.Dropped {
			return a.Offload
		}
		if time.Now().After(deadline) {
			t.Fatalf("tenant %s was not offloaded: %+v %+v", tenant, a, a.Offload)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// offloadStack is a stack whose control plane marks tenants idle after a second and offloads
// siloed ones half a second later, to dir.
func offloadStack(t *testing.T, dir string) *e2etest.Stack {
	return e2etest.Start(t, e2etest.Options{ControlPlane: offloadConfig(dir)})
}

func offloadConfig(dir string) func(*controlplane.Config) {
	return func(c *controlplane.Config) {
		c.Provision.IdleAfter = time.Second
		c.Provision.OffloadAfter = 500 * time.Millisecond
		c.Provision.OffloadDir = dir
	}
}

func auditActions(t *testing.T, st *e2etest.Stack, tenant string) []string {
	t.Helper()
	rows, err := st.Store().Pool().Query(context.Background(), `select action from audit_log where target = $1 order by id`, "tenant/"+tenant)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func archiveFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// An idle siloed tenant is offloaded (issue 13, item 3): its rows go to an archive, its database
// is dropped; its next request restores it and is served the same results, with the same
// document ids and its idempotency records; deleting it once offloaded again removes the archive
// and reports it.
func TestIdleTenantOffloadedAndRestoredOnRequest(t *testing.T) {
	dir := t.TempDir()
	st := offloadStack(t, dir)
	st.CreateTenant("offl_co", "pro", nil) // siloed
	ids := seed(t, st, "offl_co")
	c := st.Tenant("offl_co")
	first := c.Do("POST", "/v1/documents", map[string]any{"title": "kept", "content": "Idempotent writes survive an offload."},
		"Idempotency-Key", "offload-key-1")
	if first.Status != http.StatusCreated {
		t.Fatalf("ingest: %d %s", first.Status, first.Body)
	}
	before := map[string]hits{"keyword": search(t, st, "offl_co", "keyword"), "hybrid": search(t, st, "offl_co", "hybrid")}
	rt, err := st.Store().TenantRuntime(context.Background(), "offl_co")
	if err != nil {
		t.Fatal(err)
	}
	db := rt.Tenant.ProviderProjectID

	o := waitOffloaded(t, st, "offl_co")
	if catalogtest.DatabaseExists(t, db) {
		t.Fatalf("database %s still exists with the tenant offloaded", db)
	}
	fi, err := os.Stat(filepath.Join(dir, o.Archive))
	if err != nil || fi.Size() != o.Bytes || o.Bytes == 0 {
		t.Fatalf("archive %s: %v, size %v, recorded %d bytes", o.Archive, err, fi, o.Bytes)
	}
	if o.Rows["documents"] != 4 || o.Rows["chunks"] < 4 || o.Rows["idempotency_keys"] != 1 {
		t.Fatalf("archive rows %v, want the 4 documents, their chunks and the idempotency record", o.Rows)
	}

	// The next request restores the tenant and is served as before it slept.
	for _, mode := range []string{"keyword", "hybrid"} {
		after := search(t, st, "offl_co", mode)
		if len(after.Results) == 0 || len(after.Results) != len(before[mode].Results) {
			t.Fatalf("%s search after the restore: %d results, before %d", mode, len(after.Results), len(before[mode].Results))
		}
		for i := range after.Results {
			a, b := after.Results[i], before[mode].Results[i]
			if a.DocumentID != b.DocumentID || a.ChunkID != b.ChunkID || a.Score != b.Score {
				t.Fatalf("%s result %d after the restore %+v, before %+v", mode, i, a, b)
			}
		}
	}
	if !catalogtest.DatabaseExists(t, db) && activityNow(t, st, "offl_co").State == "awake" {
		t.Fatalf("tenant awake but its database %s does not exist", db)
	}
	if _, err := os.Stat(filepath.Join(dir, o.Archive)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the restored archive %s is still in the store: %v", o.Archive, err)
	}
	// Its idempotency record came back: the retry of the acknowledged write is a replay.
	replay := c.Do("POST", "/v1/documents", map[string]any{"title": "kept", "content": "Idempotent writes survive an offload."},
		"Idempotency-Key", "offload-key-1")
	var firstDoc, replayed struct {
		ID string `json:"id"`
	}
	first.Decode(t, &firstDoc)
	replay.Decode(t, &replayed)
	if replay.Status != http.StatusOK || replayed.ID != firstDoc.ID || firstDoc.ID == "" {
		t.Fatalf("replay after the restore: %d %s, want 200 with the first answer's document %s", replay.Status, replay.Body, firstDoc.ID)
	}
	var list struct {
		Documents []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	r := c.Do("GET", "/v1/documents", nil)
	r.Decode(t, &list)
	var got []string
	for _, d := range list.Documents {
		got = append(got, d.ID)
	}
	for _, id := range ids {
		if !slices.Contains(got, id) {
			t.Fatalf("document %s missing after the restore: %v", id, got)
		}
	}
	if len(got) != 4 {
		t.Fatalf("%d documents after the restore, want 4: %v", len(got), got)
	}
	resp, err := http.Get(st.WorkerURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(m), "ragplane_dataplane_tenant_restore_wait_seconds_count ") ||
		strings.Contains(string(m), "ragplane_dataplane_tenant_restore_wait_seconds_count 0") {
		t.Errorf("restore wait not observed:\n%s", grepLines(string(m), "restore"))
	}
	acts := auditActions(t, st, "offl_co")
	if !slices.Contains(acts, "tenant.offload") || !slices.Contains(acts, "tenant.offload.restore") {
		t.Fatalf("audit %v, want tenant.offload and tenant.offload.restore", acts)
	}

	// Unused again, it is offloaded again; deleted then, its archive goes and is reported.
	o = waitOffloaded(t, st, "offl_co")
	if r := st.Admin("DELETE", "/v1/tenants/offl_co", nil); r.Status != http.StatusOK && r.Status != http.StatusAccepted {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	var rep controlplane.DeletionReport
	deadline := time.Now().Add(time.Minute)
	for {
		r := st.Admin("GET", "/v1/tenants/offl_co/deletion", nil)
		if r.Status == http.StatusOK {
			r.Decode(t, &rep)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no deletion report: %d %s", r.Status, r.Body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var archived, database *controlplane.StoreReport
	for i := range rep.Stores {
		switch rep.Stores[i].Store {
		case "offload_archive":
			archived = &rep.Stores[i]
		case "tenant_database":
			database = &rep.Stores[i]
		}
	}
	if archived == nil || archived.Action != "removed" || !strings.Contains(archived.Detail, o.Archive) {
		t.Fatalf("deletion report's archive entry %+v, want %s removed", archived, o.Archive)
	}
	if database == nil || database.Rows["documents"] != 4 {
		t.Fatalf("deletion report's database entry %+v, want the 4 documents counted from the archive", database)
	}
	if files := archiveFiles(t, dir); len(files) != 0 {
		t.Fatalf("offload store after the deletion: %v", files)
	}
	if catalogtest.DatabaseExists(t, db) {
		t.Fatalf("database %s exists after the deletion", db)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// pauseOffload stops tenant's offload or restore at step until release is closed (reached is
// closed when it gets there) the first time; the step then fails with fail (a crash there), or
// goes on when fail is nil.
func pauseOffload(t *testing.T, at string, tenant ragplane.TenantID, fail error) (reached, release chan struct{}) {
	return pauseStep(t, provision.SetOffloadHook, at, tenant, fail)
}

// A request to a tenant whose offload has sealed its database but not finished waits, and cancels
// the offload: the database is unsealed and kept, the archive written meanwhile removed, and the
// request served.
func TestOffloadCancelledByRequest(t *testing.T) {
	reached, release := pauseOffload(t, "sealed", "offl_wake", nil)
	dir := t.TempDir()
	st := offloadStack(t, dir)
	st.CreateTenant("offl_wake", "pro", nil)
	seed(t, st, "offl_wake")
	want := search(t, st, "offl_wake", "keyword")
	<-reached // sealed: the tenant's database refuses it from now on
	served := make(chan hits, 1)
	go func() { served <- search(t, st, "offl_wake", "keyword") }()
	deadline := time.Now().Add(time.Minute)
	for {
		a := activityNow(t, st, "offl_wake")
		if a.State == "restoring" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the request did not ask for the tenant back: %+v", a)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	got := <-served
	if len(got.Results) != len(want.Results) || got.Results[0].ChunkID != want.Results[0].ChunkID {
		t.Fatalf("search while the offload was cancelled: %+v, want %+v", got, want)
	}
	if a := activityNow(t, st, "offl_wake"); a.Offload != nil && a.Offload.State == catalog.OffloadOffloaded {
		t.Fatalf("offload went on after the request: %+v", a.Offload)
	}
	if !slices.Contains(auditActions(t, st, "offl_wake"), "tenant.offload.cancel") {
		t.Fatalf("audit %v, want tenant.offload.cancel", auditActions(t, st, "offl_wake"))
	}
	if slices.Contains(auditActions(t, st, "offl_wake"), "tenant.offload") {
		t.Fatalf("audit %v: the cancelled offload was recorded as done", auditActions(t, st, "offl_wake"))
	}
}

// Offloads and restores resume after a crash at any step: one stopped after its archive was
// recorded drops the database on the next attempt; a restore stopped after the archive was loaded
// loads it again into a new database, and the tenant holds every row once.
func TestOffloadAndRestoreResumeAfterCrash(t *testing.T) {
	crash := errors.New("control plane stopped")
	archived, releaseArchived := pauseOffload(t, "archived", "offl_crash", crash)
	dir := t.TempDir()
	st := offloadStack(t, dir)
	st.CreateTenant("offl_crash", "pro", nil)
	seed(t, st, "offl_crash")
	want := search(t, st, "offl_crash", "keyword")
	rt, err := st.Store().TenantRuntime(context.Background(), "offl_crash")
	if err != nil {
		t.Fatal(err)
	}
	<-archived
	if a := activityNow(t, st, "offl_crash"); a.State != catalog.OffloadOffloaded || a.Offload.Dropped {
		t.Fatalf("at the crash: %+v %+v, want offloaded, not dropped", a, a.Offload)
	}
	loaded, releaseLoaded := pauseOffload(t, "loaded", "offl_crash", crash)
	close(releaseArchived)
	waitOffloaded(t, st, "offl_crash")
	if catalogtest.DatabaseExists(t, rt.Tenant.ProviderProjectID) {
		t.Fatal("the database survived the resumed offload")
	}
	served := make(chan hits, 1)
	go func() { served <- search(t, st, "offl_crash", "keyword") }()
	<-loaded
	close(releaseLoaded)
	got := <-served
	if len(got.Results) != len(want.Results) || got.Results[0].ChunkID != want.Results[0].ChunkID {
		t.Fatalf("search after the resumed restore: %+v, want %+v", got, want)
	}
	if n := rowsIn(t, rt.Tenant.ProviderProjectID, "offl_crash"); n == 0 {
		t.Fatal("no rows in the restored database")
	}
	var list struct {
		Documents []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	st.Tenant("offl_crash").Do("GET", "/v1/documents", nil).Decode(t, &list)
	if len(list.Documents) != len(archiveDocs) {
		t.Fatalf("%d documents after the resumed restore, want %d", len(list.Documents), len(archiveDocs))
	}
}

// ownerConn connects to a tenant's database as the server's superuser; the caller closes it (an
// open session keeps offloads away).
func ownerConn(t *testing.T, database string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(catalogtest.ServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = database
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// A tenant whose database a restore could not rebuild (here: being re-embedded, a second vector
// column) is not offloaded: the offload is cancelled before the seal and the database stays.
func TestOffloadSkipsTenantBeingReembedded(t *testing.T) {
	st := offloadStack(t, t.TempDir())
	st.CreateTenant("offl_reembed", "pro", nil)
	seed(t, st, "offl_reembed")
	rt, err := st.Store().TenantRuntime(context.Background(), "offl_reembed")
	if err != nil {
		t.Fatal(err)
	}
	db := rt.Tenant.ProviderProjectID
	conn := ownerConn(t, db)
	if _, err := conn.Exec(context.Background(), `alter table chunks add column embedding_next vector(16)`); err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background()) // a session of its own would keep the offload away on its own account
	store := st.Store()              // one: each call opens the catalog anew
	deadline := time.Now().Add(time.Minute)
	for {
		var reason string
		err := store.Pool().QueryRow(context.Background(), `select after->>'reason' from audit_log
			where target = 'tenant/offl_reembed' and action = 'tenant.offload.cancel' order by id desc limit 1`).Scan(&reason)
		if err == nil && strings.Contains(reason, "re-embedded") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no offload cancelled for the re-embedding (last reason %q, %v); activity %+v", reason, err, activityNow(t, st, "offl_reembed"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !catalogtest.DatabaseExists(t, db) {
		t.Fatal("the database of a tenant being re-embedded was dropped")
	}
	if slices.Contains(auditActions(t, st, "offl_reembed"), "tenant.offload") {
		t.Fatal("a tenant being re-embedded was offloaded")
	}
}

// An offload a control plane without an offload store finds under way (a replica that could
// offload sealed the database, then stopped) is cancelled and the database unsealed: the tenant
// is served again, not refused as moved forever.
func TestOffloadCancelledWithoutStoreUnseals(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("offl_nostore", "pro", nil)
	seed(t, st, "offl_nostore")
	rt, err := st.Store().TenantRuntime(context.Background(), "offl_nostore")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store := st.Store() // one: each call opens the catalog anew
	conn := ownerConn(t, rt.Tenant.ProviderProjectID)
	defer conn.Close(ctx)
	if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return tenantdb.Seal(ctx, tx, "offl_nostore", "offload") }); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Pool().Exec(ctx, `insert into tenant_offloads (tenant_id, project_id) values ($1, $2)`,
		"offl_nostore", rt.Tenant.ProviderProjectID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := store.GetOffload(ctx, "offl_nostore")
		if ragplane.ErrorCode(err) == ragplane.ENOTFOUND {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the offload was not cancelled: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if to, err := tenantdb.SealedTo(ctx, conn, "offl_nostore"); err != nil || to != "" {
		t.Fatalf("after the cancel the database is sealed to %q (%v)", to, err)
	}
	if h := search(t, st, "offl_nostore", "keyword"); len(h.Results) == 0 {
		t.Fatal("no results from the unsealed tenant")
	}
}
