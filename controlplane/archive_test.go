package controlplane_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/archive"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/controlplane"
	"github.com/ragplane/ragplane/e2etest"
)

var archiveDocs = []string{
	"Acme Corp requires two administrators to approve every production deployment. Acme Corp acquired Initech in 2021.",
	"The billing team closes the books on the fifth working day. Invoices above 10,000 EUR need two approvals from Acme Corp finance.",
	"Globex Inc. hosts its services in Frankfurt. Globex Inc. rotates every API key every ninety days.",
}

// seed writes archiveDocs into tenant through the worker and returns their ids.
func seed(t *testing.T, st *e2etest.Stack, tenant string) []string {
	t.Helper()
	var ids []string
	for i, content := range archiveDocs {
		r := st.Tenant(tenant).Do("POST", "/v1/documents", map[string]any{"title": fmt.Sprintf("doc %d", i), "content": content,
			"metadata": map[string]any{"n": i, "team": "ops"}})
		if r.Status != http.StatusCreated {
			t.Fatalf("create document in %s: %d %s", tenant, r.Status, r.Body)
		}
		var d struct {
			ID string `json:"id"`
		}
		r.Decode(t, &d)
		ids = append(ids, d.ID)
	}
	return ids
}

type hits struct {
	Results []ragplane.SearchHit `json:"results"`
}

func search(t *testing.T, st *e2etest.Stack, tenant, mode string) hits {
	t.Helper()
	r := st.Tenant(tenant).Do("POST", "/v1/search", map[string]any{"query": "Acme Corp approvals", "retrieval_mode": mode, "top_k": 10})
	if r.Status != http.StatusOK {
		t.Fatalf("search %s %s: %d %s", tenant, mode, r.Status, r.Body)
	}
	var h hits
	r.Decode(t, &h)
	return h
}

// export returns the archive of tenant.
func export(t *testing.T, st *e2etest.Stack, tenant string) []byte {
	t.Helper()
	r := st.Admin("POST", "/v1/tenants/"+tenant+"/export", nil)
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), archive.MediaType) {
		t.Fatalf("export %s: %d %s %s", tenant, r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	return r.Body
}

// records splits an archive into its records.
func records(t *testing.T, a []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSuffix(a, []byte("\n")), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("archive line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func documentCount(t *testing.T, st *e2etest.Stack, tenant string) int {
	t.Helper()
	r := st.Tenant(tenant).Do("GET", "/v1/documents", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("list documents of %s: %d %s", tenant, r.Status, r.Body)
	}
	var page struct {
		Items []json.RawMessage `json:"items"`
	}
	r.Decode(t, &page)
	return len(page.Items)
}

// Export then restore into a new tenant, siloed and pooled, yields the same search results in
// every retrieval mode: the same chunks with the same scores, under document ids mapped by
// archive.MapID. The archive carries every record type with its counts and checksum.
func TestExportRestoreGivesTheSameSearchResults(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("arc_src", "pro", nil)
	srcIDs := seed(t, st, "arc_src")
	a := export(t, st, "arc_src")

	recs := records(t, a)
	if recs[0]["type"] != "manifest" || recs[0]["format"] != archive.Format || recs[0]["embedding_model"] != "ragplane-hash-v1" ||
		recs[0]["embedding_dimension"] != float64(384) {
		t.Fatalf("manifest = %v", recs[0])
	}
	byType := map[string]int{}
	for _, r := range recs {
		byType[r["type"].(string)]++
	}
	last := recs[len(recs)-1]
	counts, _ := last["counts"].(map[string]any)
	if last["type"] != "end" || len(last["sha256"].(string)) != 64 || counts["documents"] != float64(3) ||
		counts["chunks"] != float64(byType["chunk"]) || byType["chunk"] < 3 || byType["relation"] == 0 || byType["entity"] == 0 {
		t.Fatalf("end record %v for records %v", last, byType)
	}
	for _, r := range recs {
		if r["type"] == "relation" {
			if _, ok := r["valid_at"]; !ok {
				t.Fatalf("a relation without its validity times: %v", r)
			}
		}
		if r["type"] == "chunk" {
			if emb, ok := r["embedding"].([]any); !ok || len(emb) != 384 {
				t.Fatalf("a chunk without its embedding: %v", r)
			}
		}
	}

	st.CreateTenant("arc_silo", "pro", nil)
	st.CreateTenant("arc_pool", "free", map[string]any{"isolation_tier": "pooled"})
	for _, dst := range []string{"arc_silo", "arc_pool"} {
		r := st.Admin("POST", "/v1/tenants/"+dst+"/restore", a)
		if r.Status != http.StatusOK {
			t.Fatalf("restore into %s: %d %s", dst, r.Status, r.Body)
		}
		var res struct {
			Source   string         `json:"source_tenant_id"`
			Restored archive.Counts `json:"restored"`
		}
		r.Decode(t, &res)
		if res.Source != "arc_src" || res.Restored.Documents != 3 || res.Restored.Chunks != byType["chunk"] ||
			res.Restored.Relations != byType["relation"] || res.Restored.Usage != 0 {
			t.Fatalf("restore into %s = %s", dst, r.Body)
		}
		for _, mode := range []string{"keyword", "vector", "hybrid", "graph"} {
			want, got := search(t, st, "arc_src", mode), search(t, st, dst, mode)
			if len(want.Results) == 0 || len(got.Results) != len(want.Results) {
				t.Fatalf("%s in %s: %d hits, want %d", mode, dst, len(got.Results), len(want.Results))
			}
			for i, w := range want.Results {
				g := got.Results[i]
				mapped := archive.MapID(ragplane.TenantID(dst), uuid.MustParse(w.DocumentID)).String()
				if g.DocumentID != mapped || g.Snippet != w.Snippet || math.Abs(g.Score-w.Score) > 1e-6 {
					t.Errorf("%s in %s hit %d: %s %q %.6f, want %s %q %.6f", mode, dst, i, g.DocumentID, g.Snippet, g.Score, mapped, w.Snippet, w.Score)
				}
			}
		}
		// The restored document keeps its metadata and text.
		r = st.Tenant(dst).Do("GET", "/v1/documents/"+archive.MapID(ragplane.TenantID(dst), uuid.MustParse(srcIDs[0])).String(), nil)
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"team":"ops"`) {
			t.Fatalf("restored document in %s: %d %s", dst, r.Status, r.Body)
		}
	}
	// Restore is into a new tenant only.
	if r := st.Admin("POST", "/v1/tenants/arc_silo/restore", a); r.Status != http.StatusConflict {
		t.Fatalf("a second restore: %d %s, want 409", r.Status, r.Body)
	}
}

// A bad archive is refused with 422 problem+json naming the problem, and nothing is written.
func TestRestoreRefusesBadArchives(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("bad_src", "pro", nil)
	seed(t, st, "bad_src")
	a := export(t, st, "bad_src")
	st.CreateTenant("bad_dst", "pro", nil)
	st.CreateTenant("bad_dim", "pro", map[string]any{"embedding_model": "ragplane-hash-v1", "embedding_dimension": 256})

	lines := bytes.Split(bytes.TrimSuffix(a, []byte("\n")), []byte("\n"))
	join := func(ls [][]byte) []byte { return append(bytes.Join(ls, []byte("\n")), '\n') }
	corrupt := bytes.Replace(a, []byte("Frankfurt"), []byte("Frankfurd"), 1)
	if bytes.Equal(corrupt, a) {
		t.Fatal("the archive lacks the document text to corrupt")
	}
	var m map[string]any
	json.Unmarshal(lines[0], &m)
	m["version"] = 99
	v99, _ := json.Marshal(m)
	wrongVersion := join(append([][]byte{v99}, lines[1:]...))
	for _, c := range []struct {
		name, tenant string
		body         []byte
		want         string
	}{
		{"checksum", "bad_dst", corrupt, "checksum mismatch"},
		{"cut short", "bad_dst", join(lines[:len(lines)-1]), "without its end record"},
		{"version", "bad_dst", wrongVersion, "version 99"},
		{"not json", "bad_dst", []byte("PK\x03\x04 not an archive\n"), "not a JSON record"},
		{"empty", "bad_dst", nil, "empty"},
		{"embedding dimension", "bad_dim", a, "embedding_dimension"},
	} {
		r := st.Admin("POST", "/v1/tenants/"+c.tenant+"/restore", c.body)
		if r.Status != http.StatusUnprocessableEntity {
			t.Fatalf("%s: %d %s, want 422", c.name, r.Status, r.Body)
		}
		p := r.Problem(t)
		if !strings.Contains(fmt.Sprint(p["detail"]), c.want) && !strings.Contains(fmt.Sprint(p), c.want) {
			t.Errorf("%s: problem %v does not name %q", c.name, p, c.want)
		}
		if n := documentCount(t, st, c.tenant); n != 0 {
			t.Fatalf("%s: %d documents written by a refused restore", c.name, n)
		}
	}
	// The good archive still restores into the tenant the bad ones left untouched.
	if r := st.Admin("POST", "/v1/tenants/bad_dst/restore", a); r.Status != http.StatusOK {
		t.Fatalf("restore after refusals: %d %s", r.Status, r.Body)
	}
}

// Deleting a tenant records what was removed where: its database rows by table (siloed and
// pooled), its graph, its Redis keys (gone, another tenant's kept), the stores that expire or
// are not configured, and what the catalog keeps for billing.
func TestDeletionReportListsEveryStore(t *testing.T) {
	redisURL := os.Getenv("REDIS_URL")
	if redisURL == "" {
		t.Fatal("REDIS_URL is not set (source .ragplane/stack.env)")
	}
	prefix := catalogtest.RandomName("rpdel") + ":"
	st := e2etest.Start(t, e2etest.Options{ControlPlane: func(c *controlplane.Config) { c.RedisURL, c.RedisPrefix = redisURL, prefix }})
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()

	for _, c := range []struct{ tenant, tier string }{{"del_silo", "siloed"}, {"del_pool", "pooled"}} {
		st.CreateTenant(c.tenant, "free", map[string]any{"isolation_tier": c.tier})
		seed(t, st, c.tenant)
		// The keys proxy/ratelimit keeps for a tenant, and another tenant's.
		keys := []string{prefix + "rl:{" + c.tenant + "}:rps", prefix + "rl:{" + c.tenant + "}:qph", prefix + "cc:{" + c.tenant + "}:leases"}
		other := prefix + "rl:{" + c.tenant + "_other}:rps"
		for _, k := range append(keys, other) {
			if err := rdb.Set(ctx, k, "1", time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if r := st.Admin("GET", "/v1/tenants/"+c.tenant+"/deletion", nil); r.Status != http.StatusNotFound {
			t.Fatalf("deletion report of a live tenant: %d %s", r.Status, r.Body)
		}
		if r := st.Admin("DELETE", "/v1/tenants/"+c.tenant, nil); r.Status != http.StatusAccepted {
			t.Fatalf("delete %s: %d %s", c.tenant, r.Status, r.Body)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			var tn ragplane.Tenant
			st.Admin("GET", "/v1/tenants/"+c.tenant, nil).Decode(t, &tn)
			if tn.Status == ragplane.StatusDeleted {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s is still %s: %s", c.tenant, tn.Status, tn.StatusReason)
			}
			time.Sleep(20 * time.Millisecond)
		}
		r := st.Admin("GET", "/v1/tenants/"+c.tenant+"/deletion", nil)
		if r.Status != http.StatusOK {
			t.Fatalf("deletion report of %s: %d %s", c.tenant, r.Status, r.Body)
		}
		var rep controlplane.DeletionReport
		r.Decode(t, &rep)
		stores := map[string]controlplane.StoreReport{}
		for _, s := range rep.Stores {
			stores[s.Store] = s
		}
		for _, name := range []string{"tenant_database", "graph", "neo4j", "redis", "worker_cache", "catalog"} {
			if _, ok := stores[name]; !ok {
				t.Errorf("%s: the report lacks store %s: %s", c.tenant, name, r.Body)
			}
		}
		if rep.Tier != c.tier || stores["tenant_database"].Rows["documents"] != 3 || stores["tenant_database"].Rows["chunks"] < 3 ||
			stores["graph"].Rows["entities"] == 0 || stores["catalog"].Action != "kept" || stores["redis"].Action != "removed" ||
			// This control plane has no NEO4J_URI (offboard_internal_test.go removes a group).
			stores["neo4j"].Action != "not_configured" || !strings.Contains(stores["neo4j"].Detail, "NEO4J_URI") {
			t.Errorf("%s: report %s", c.tenant, r.Body)
		}
		if len(stores["redis"].Keys) != len(keys) {
			t.Errorf("%s: redis keys reported %v, want %v", c.tenant, stores["redis"].Keys, keys)
		}
		if n, err := rdb.Exists(ctx, keys...).Result(); err != nil || n != 0 {
			t.Errorf("%s: %d of its Redis keys remain (%v)", c.tenant, n, err)
		}
		if n, err := rdb.Exists(ctx, other).Result(); err != nil || n != 1 {
			t.Errorf("%s: another tenant's key was removed (%v)", c.tenant, err)
		}
		rdb.Del(ctx, other)
	}
}
