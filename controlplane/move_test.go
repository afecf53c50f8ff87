package controlplane_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/catalog/tenantdb"
	"github.com/ragplane/ragplane/controlplane/provision"
	"github.com/ragplane/ragplane/e2etest"
)

// tierOf is GET /v1/tenants/{id}/move.
type tierOf struct {
	Tier           string `json:"tier"`
	ConfiguredTier string `json:"configured_tier"`
	Move           *struct {
		State     string `json:"state"`
		LastError string `json:"last_error"`
	} `json:"move"`
}

// waitMoved waits until the tenant's data is in tier and no move is in progress.
func waitMoved(t *testing.T, st *e2etest.Stack, tenant, tier string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var got tierOf
	for time.Now().Before(deadline) {
		r := st.Admin("GET", "/v1/tenants/"+tenant+"/move", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET move: %d %s", r.Status, r.Body)
		}
		r.Decode(t, &got)
		if got.Tier == tier && got.Move == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("tenant %s did not move to %s: %+v (move %+v)", tenant, tier, got, got.Move)
}

// writers ingest (and delete some of) documents with Idempotency-Keys, retrying what the platform
// refuses for now (503 while the tenant moves) with the same key, and remember what was
// acknowledged.
type writers struct {
	t       testing.TB
	cl      *e2etest.Client
	mu      sync.Mutex
	acked   map[string]string // document id -> content
	deleted map[string]bool
	tag     string // in every key and content: writers started again write new documents
	// preexisting documents the tenant had before any writer (the benchmark's load).
	preexisting int
	retried     atomic.Int64
	slowest     atomic.Int64    // nanoseconds: the longest a write took, retries included
	lat         []time.Duration // every acknowledged write's latency, retries included (under mu)
	accepted    atomic.Int64
	stop        chan struct{}
	wg          sync.WaitGroup
}

// startWriters starts n writers; those of prev (stopped) are taken over, so finish checks theirs too.
func startWriters(t testing.TB, cl *e2etest.Client, tag string, n int, prev *writers) *writers {
	w := &writers{t: t, cl: cl, tag: tag, acked: map[string]string{}, deleted: map[string]bool{}, stop: make(chan struct{})}
	if prev != nil {
		w.acked, w.deleted, w.preexisting = prev.acked, prev.deleted, prev.preexisting
	}
	for i := range n {
		w.wg.Add(1)
		go w.run(i)
	}
	return w
}

// do sends until the answer is not a 503/504 (the moving tenant's retry signal).
func (w *writers) do(method, path string, body any, headers ...string) e2etest.Response {
	for {
		r := w.cl.Do(method, path, body, headers...)
		if r.Status != http.StatusServiceUnavailable && r.Status != http.StatusGatewayTimeout {
			return r
		}
		w.retried.Add(1)
		time.Sleep(20 * time.Millisecond) // the Retry-After, shortened for the test
	}
}

func (w *writers) run(i int) {
	defer w.wg.Done()
	for n := 0; ; n++ {
		select {
		case <-w.stop:
			return
		default:
		}
		content := fmt.Sprintf("Writer %d (%s) wrote note %d about the quarterly %s review of vendor contracts.", i, w.tag, n, []string{"alpha", "beta", "gamma", "delta"}[n%4])
		key := fmt.Sprintf("%s-w%d-%d", w.tag, i, n)
		start := time.Now()
		r := w.do("POST", "/v1/documents", map[string]any{"title": key, "content": content}, "Idempotency-Key", key)
		if r.Status != http.StatusCreated && r.Status != http.StatusOK {
			w.t.Errorf("writer %d: POST answered %d %s", i, r.Status, r.Body)
			return
		}
		var d struct {
			ID string `json:"id"`
		}
		r.Decode(w.t, &d)
		for took := int64(time.Since(start)); ; {
			if old := w.slowest.Load(); took <= old || w.slowest.CompareAndSwap(old, took) {
				break
			}
		}
		w.accepted.Add(1)
		w.mu.Lock()
		w.lat = append(w.lat, time.Since(start))
		w.acked[d.ID] = content
		w.mu.Unlock()
		if n%5 == 4 {
			r := w.do("DELETE", "/v1/documents/"+d.ID, nil)
			if r.Status != http.StatusNoContent && r.Status != http.StatusNotFound {
				w.t.Errorf("writer %d: DELETE answered %d %s", i, r.Status, r.Body)
				return
			}
			w.mu.Lock()
			w.deleted[d.ID] = true
			w.mu.Unlock()
		}
	}
}

// latencies returns the latencies of the writes acknowledged since the from-th.
func (w *writers) latencies(from int) []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.lat[min(from, len(w.lat)):])
}

// finish stops the writers and checks that the tenant holds every acknowledged document exactly
// once and none that was deleted.
func (w *writers) finish() {
	t := w.t
	close(w.stop)
	w.wg.Wait()
	seen := map[string]int{}
	cursor := ""
	for {
		r := w.do("GET", "/v1/documents?limit=200"+cursor, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("list documents: %d %s", r.Status, r.Body)
		}
		var page struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		r.Decode(t, &page)
		for _, d := range page.Items {
			seen[d.ID]++
		}
		if page.NextCursor == "" {
			break
		}
		cursor = "&cursor=" + page.NextCursor
	}
	want := 0
	for id := range w.acked {
		if w.deleted[id] {
			if seen[id] != 0 {
				t.Errorf("deleted document %s is back", id)
			}
			continue
		}
		want++
		if seen[id] != 1 {
			t.Errorf("acknowledged document %s is there %d times", id, seen[id])
		}
	}
	if len(seen) != want+w.preexisting {
		t.Errorf("the tenant has %d documents, want the %d acknowledged and not deleted and %d loaded before", len(seen), want, w.preexisting)
	}
	if w.accepted.Load() == 0 {
		t.Fatal("no write was accepted")
	}
}

// rowsIn counts the tenant's rows of every tenant table in a database, as its owner.
func rowsIn(t *testing.T, database, tenant string) int64 {
	t.Helper()
	conn := ownerConn(t, database)
	defer conn.Close(context.Background())
	var total int64
	for _, tb := range tenantdb.TenantTables {
		var n int64
		if err := conn.QueryRow(context.Background(), `select count(*) from `+pgx.Identifier{tb}.Sanitize()+` where tenant_id = $1`, tenant).Scan(&n); err != nil {
			t.Fatal(err)
		}
		total += n
	}
	return total
}

// pauseMove stops the first move of tenant at step until release is closed (reached is closed when
// it gets there); the step then fails with fail, as when the control plane stopped there, or goes
// on if fail is nil.
func pauseMove(t *testing.T, at string, tenant ragplane.TenantID, fail error) (reached, release chan struct{}) {
	return pauseStep(t, provision.SetMoveHook, at, tenant, fail)
}

// pauseStep is pauseMove and pauseOffload, with the hook setter of the one or the other.
func pauseStep(t *testing.T, setHook func(func(string, ragplane.TenantID) error) func(), at string, tenant ragplane.TenantID,
	fail error) (reached, release chan struct{}) {
	reached, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	t.Cleanup(setHook(func(step string, id ragplane.TenantID) error {
		if step != at || id != tenant {
			return nil
		}
		paused := false
		once.Do(func() {
			close(reached)
			<-release
			paused = true
		})
		if paused {
			return fail
		}
		return nil
	}))
	return reached, release
}

func shortGrace(t *testing.T) {
	old := provision.MoveGrace
	provision.MoveGrace = 300 * time.Millisecond
	t.Cleanup(func() { provision.MoveGrace = old })
}

// A plan change moves a tenant between tiers while four clients keep writing and deleting: every
// acknowledged write is there exactly once afterwards, deletions stay deleted, the old copy is
// removed, a neighbour in the pool is untouched, search finds what was written during the move,
// and the move is audited. Then back again.
func TestTierMoveUnderWrites(t *testing.T) {
	shortGrace(t)
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("mv_a", "free", nil) // the free plan is pooled
	st.CreateTenant("mv_n", "free", nil)
	ctx := context.Background()
	rt, err := st.Store().TenantRuntime(ctx, "mv_a")
	if err != nil {
		t.Fatal(err)
	}
	pool := strings.TrimPrefix(rt.Tenant.ProviderProjectID, provision.PooledProjectPrefix)
	if pool == rt.Tenant.ProviderProjectID {
		t.Fatalf("a free tenant is in %q, want a pool", rt.Tenant.ProviderProjectID)
	}
	n := st.Tenant("mv_n")
	r := n.Do("POST", "/v1/documents", map[string]any{"title": "neighbour", "content": "The neighbour's vendor contracts are reviewed yearly."})
	if r.Status != http.StatusCreated {
		t.Fatalf("neighbour ingest: %d %s", r.Status, r.Body)
	}
	neighbourRows := rowsIn(t, pool, "mv_n")

	a := st.Tenant("mv_a")
	w := startWriters(t, a, "first", 4, nil)
	for w.accepted.Load() < 20 {
		time.Sleep(10 * time.Millisecond)
	}
	before := w.accepted.Load()
	if r := st.Admin("PATCH", "/v1/tenants/mv_a", map[string]any{"plan": "pro"}); r.Status != http.StatusOK {
		t.Fatalf("plan change: %d %s", r.Status, r.Body)
	}
	waitMoved(t, st, "mv_a", ragplane.TierSiloed)
	during := w.accepted.Load() - before
	for w.accepted.Load() < before+during+10 { // and some after
		time.Sleep(10 * time.Millisecond)
	}
	w.finish()
	t.Logf("to siloed: %d writes accepted during the move, %d retried", during, w.retried.Load())

	rt, err = st.Store().TenantRuntime(ctx, "mv_a")
	if err != nil {
		t.Fatal(err)
	}
	if rt.Tenant.ProviderProjectID != st.Prefix+"mv_a" {
		t.Fatalf("after the move the tenant is in %q", rt.Tenant.ProviderProjectID)
	}
	if got := rowsIn(t, pool, "mv_a"); got != 0 {
		t.Errorf("the pool still holds %d rows of the moved tenant", got)
	}
	if got := rowsIn(t, pool, "mv_n"); got != neighbourRows {
		t.Errorf("the neighbour has %d rows in the pool, had %d", got, neighbourRows)
	}
	// What was written during the move is searchable in the new tier.
	r = a.Do("POST", "/v1/search", map[string]any{"query": "Writer 3 quarterly gamma review", "retrieval_mode": "keyword", "top_k": 5})
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), "Writer 3") {
		t.Fatalf("search after the move: %d %s", r.Status, r.Body)
	}
	var audit struct {
		Items []struct {
			Action string `json:"action"`
		} `json:"items"`
	}
	st.Admin("GET", "/v1/audit?target=tenant/mv_a&limit=100", nil).Decode(t, &audit)
	var actions []string
	for _, e := range audit.Items {
		actions = append(actions, e.Action)
	}
	for _, want := range []string{"tenant.move.start", "tenant.move.switch", "tenant.move.done"} {
		if !slices.Contains(actions, want) {
			t.Errorf("audit of mv_a has %v, want %s", actions, want)
		}
	}

	// And back to the pool under writes again, by the tenant's own isolation_tier this time (the
	// free plan's 100 documents are fewer than it has now).
	w = startWriters(t, a, "second", 2, w)
	for w.accepted.Load() < 10 {
		time.Sleep(10 * time.Millisecond)
	}
	if r := st.Admin("PATCH", "/v1/tenants/mv_a", map[string]any{"settings": map[string]any{"isolation_tier": "pooled"}}); r.Status != http.StatusOK {
		t.Fatalf("tier change: %d %s", r.Status, r.Body)
	}
	waitMoved(t, st, "mv_a", ragplane.TierPooled)
	w.finish()
	if catalogtest.DatabaseExists(t, st.Prefix+"mv_a") {
		t.Error("the tenant's own database was not dropped after it moved to a pool")
	}
}

// A control plane that stops in the middle of a move, after sealing the old copy and before the
// catalog names the new one, resumes the move when it starts again; the tenant's requests get 503
// meanwhile (never stale rows) and every acknowledged write is there once afterwards.
func TestTierMoveResumesAfterCrash(t *testing.T) {
	shortGrace(t)
	reached, release := pauseMove(t, "sealed", "mv_c", errors.New("the control plane stopped"))
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("mv_c", "pro", nil) // siloed
	a := st.Tenant("mv_c")
	w := startWriters(t, a, "crash", 3, nil)
	for w.accepted.Load() < 15 {
		time.Sleep(10 * time.Millisecond)
	}
	if r := st.Admin("PATCH", "/v1/tenants/mv_c", map[string]any{"settings": map[string]any{"isolation_tier": "pooled"}}); r.Status != http.StatusOK {
		t.Fatalf("tier change: %d %s", r.Status, r.Body)
	}
	<-reached
	// Sealed and not switched: the old copy refuses the tenant.
	r := a.Do("GET", "/v1/documents", nil)
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
		t.Fatalf("a sealed tenant's read answered %d (Retry-After %q) %s, want 503 with Retry-After", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	var tier tierOf
	st.Admin("GET", "/v1/tenants/mv_c/move", nil).Decode(t, &tier)
	if tier.Move == nil || tier.Move.State != "copying" || tier.Tier != ragplane.TierSiloed {
		t.Fatalf("mid-move state: %+v", tier)
	}
	stopped := make(chan struct{})
	go func() { st.StopControlPlane(); close(stopped) }()
	close(release)
	<-stopped
	st.RestartControlPlane()
	waitMoved(t, st, "mv_c", ragplane.TierPooled)
	w.finish()
	if catalogtest.DatabaseExists(t, st.Prefix+"mv_c") {
		t.Error("the old silo is still there after the resumed move")
	}
}

// A tenant deleted while it moves loses both copies: the move finishes (or is cancelled) and the
// deletion removes what the catalog names; the deletion report is written once.
func TestTierMoveThenDeleted(t *testing.T) {
	shortGrace(t)
	reached, release := pauseMove(t, "copied", "mv_d", nil)
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("mv_d", "pro", nil) // siloed
	a := st.Tenant("mv_d")
	if r := a.Do("POST", "/v1/documents", map[string]any{"title": "d", "content": "A document of a tenant about to leave."}); r.Status != http.StatusCreated {
		t.Fatalf("ingest: %d %s", r.Status, r.Body)
	}
	rt, err := st.Store().TenantRuntime(context.Background(), "mv_d")
	if err != nil {
		t.Fatal(err)
	}
	if r := st.Admin("PATCH", "/v1/tenants/mv_d", map[string]any{"plan": "free"}); r.Status != http.StatusOK {
		t.Fatalf("plan change: %d %s", r.Status, r.Body)
	}
	<-reached
	var target string
	if m, err := st.Store().GetMove(context.Background(), "mv_d"); err != nil {
		t.Fatal(err)
	} else {
		target = strings.TrimPrefix(m.ToProjectID, provision.PooledProjectPrefix)
	}
	if r := st.Admin("DELETE", "/v1/tenants/mv_d", nil); r.Status != http.StatusOK && r.Status != http.StatusAccepted {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	close(release)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var tn ragplane.Tenant
		st.Admin("GET", "/v1/tenants/mv_d", nil).Decode(t, &tn)
		_, merr := st.Store().GetMove(context.Background(), "mv_d")
		if tn.Status == ragplane.StatusDeleted && ragplane.ErrorCode(merr) == ragplane.ENOTFOUND {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tenant %s, move %v", tn.Status, merr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if catalogtest.DatabaseExists(t, rt.Tenant.ProviderProjectID) {
		t.Error("the tenant's own database survived its deletion mid-move")
	}
	if got := rowsIn(t, target, "mv_d"); got != 0 {
		t.Errorf("the pool kept %d rows of the deleted tenant", got)
	}
	if r := st.Admin("GET", "/v1/tenants/mv_d/deletion", nil); r.Status != http.StatusOK {
		t.Errorf("deletion report: %d %s", r.Status, r.Body)
	}
}
