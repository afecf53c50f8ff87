package dataplane_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/tenantdb"
	"github.com/ragplane/ragplane/controlplane/provision"
	"github.com/ragplane/ragplane/e2etest"
)

// A pooled tenant (isolation_tier pooled) is served by the same code as a siloed one with the
// same documents, with the same results; two pooled tenants in one pool never see each other's
// documents, chunks, graph facts or idempotency records.
func TestPooledTenants(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	pooled := map[string]any{"isolation_tier": "pooled"}
	st.CreateTenant("pooled_a", "free", pooled)
	st.CreateTenant("pooled_b", "free", pooled)
	st.CreateTenant("silo_c", "free", map[string]any{"isolation_tier": "siloed"})
	ctx := context.Background()
	urls, projects := map[string]string{}, map[string]string{}
	for _, id := range []string{"pooled_a", "pooled_b", "silo_c"} {
		rt, err := st.Store().TenantRuntime(ctx, ragplane.TenantID(id))
		if err != nil {
			t.Fatal(err)
		}
		urls[id], projects[id] = rt.DatabaseURL, rt.Tenant.ProviderProjectID
	}
	if urls["pooled_a"] != urls["pooled_b"] || !strings.HasPrefix(projects["pooled_a"], provision.PooledProjectPrefix) {
		t.Fatalf("pooled tenants are in %q and %q, want one pool", projects["pooled_a"], projects["pooled_b"])
	}
	if urls["silo_c"] == urls["pooled_a"] || strings.HasPrefix(projects["silo_c"], provision.PooledProjectPrefix) {
		t.Fatalf("the siloed tenant is in %q", projects["silo_c"])
	}

	a, b, c := st.Tenant("pooled_a"), st.Tenant("pooled_b"), st.Tenant("silo_c")
	docs := []string{policy,
		"The billing team closes the books on the fifth working day. Invoices above 10,000 EUR need two approvals from Acme Corp finance.",
		"Globex Inc. hosts its services in Frankfurt. Globex Inc. rotates every API key every ninety days."}
	ids := map[string][]string{}
	for name, cl := range map[string]*e2etest.Client{"pooled_a": a, "silo_c": c, "pooled_b": b} {
		for i, content := range docs {
			if name == "pooled_b" {
				content = "Secret of pooled_b: " + content
			}
			// The same Idempotency-Key in every tenant: each tenant's own record.
			r := cl.Do("POST", "/v1/documents", map[string]any{"title": fmt.Sprintf("doc %d", i), "content": content, "metadata": map[string]any{"n": i}},
				"Idempotency-Key", fmt.Sprintf("key-%d", i))
			mustStatus(t, r, http.StatusCreated)
			if r.Header.Get("Idempotent-Replayed") == "true" {
				t.Fatalf("%s: a first request was replayed: another tenant's idempotency record", name)
			}
			var d docResp
			r.Decode(t, &d)
			ids[name] = append(ids[name], d.ID)
		}
	}
	// A retry in the tenant that made it is replayed.
	r := a.Do("POST", "/v1/documents", map[string]any{"title": "doc 0", "content": policy, "metadata": map[string]any{"n": 0}}, "Idempotency-Key", "key-0")
	mustStatus(t, r, http.StatusOK)
	var replay docResp
	r.Decode(t, &replay)
	if r.Header.Get("Idempotent-Replayed") != "true" || replay.ID != ids["pooled_a"][0] {
		t.Fatalf("a retry in pooled_a answered %s (replayed %q), want %s", replay.ID, r.Header.Get("Idempotent-Replayed"), ids["pooled_a"][0])
	}

	for _, mode := range []string{"vector", "keyword", "hybrid", "graph"} {
		for _, filter := range []any{nil, []map[string]any{{"field": "n", "op": "eq", "value": 1}}} {
			body := map[string]any{"query": "Acme Corp administrator approvals", "retrieval_mode": mode, "top_k": 10}
			if filter != nil {
				body["filters"] = filter
			}
			var got [2]searchResp
			for i, cl := range []*e2etest.Client{a, c} {
				r := cl.Do("POST", "/v1/search", body)
				mustStatus(t, r, http.StatusOK)
				r.Decode(t, &got[i])
			}
			if len(got[0].Results) == 0 || len(got[0].Results) != len(got[1].Results) {
				t.Fatalf("%s (filter %v): %d pooled hits, %d siloed", mode, filter != nil, len(got[0].Results), len(got[1].Results))
			}
			for i, h := range got[0].Results {
				s := got[1].Results[i]
				if h.Content != s.Content || math.Abs(h.Score-s.Score) > 1e-6 {
					t.Errorf("%s (filter %v) hit %d: pooled %q %.6f, siloed %q %.6f", mode, filter != nil, i, h.Content, h.Score, s.Content, s.Score)
				}
				if strings.Contains(h.Content, "pooled_b") {
					t.Fatalf("%s: pooled_a sees pooled_b's chunk", mode)
				}
			}
		}
		// pooled_b finds its own, never pooled_a's.
		r := b.Do("POST", "/v1/search", map[string]any{"query": "Acme Corp administrator approvals", "retrieval_mode": mode, "top_k": 20})
		mustStatus(t, r, http.StatusOK)
		var sr searchResp
		r.Decode(t, &sr)
		if len(sr.Results) == 0 {
			t.Fatalf("%s: pooled_b finds nothing", mode)
		}
		for _, h := range sr.Results {
			if !slices.Contains(ids["pooled_b"], h.DocumentID) {
				t.Fatalf("%s: pooled_b sees another tenant's chunk %+v", mode, h)
			}
		}
	}
	// Documents, graph and answers are the tenant's own.
	var page struct {
		Items []docResp `json:"items"`
	}
	r = a.Do("GET", "/v1/documents", nil)
	mustStatus(t, r, http.StatusOK)
	r.Decode(t, &page)
	if len(page.Items) != len(docs) {
		t.Fatalf("pooled_a lists %d documents, want %d", len(page.Items), len(docs))
	}
	for _, id := range ids["pooled_b"] {
		mustStatus(t, a.Do("GET", "/v1/documents/"+id, nil), http.StatusNotFound)
		mustStatus(t, a.Do("DELETE", "/v1/documents/"+id, nil), http.StatusNotFound)
	}
	r = b.Do("GET", "/v1/graph/entities?q=acme", nil)
	mustStatus(t, r, http.StatusOK)
	r2 := a.Do("GET", "/v1/graph/entities?q=acme", nil)
	mustStatus(t, r2, http.StatusOK)
	if !strings.Contains(strings.ToLower(string(r2.Body)), "acme corp") {
		t.Fatalf("pooled_a's graph has no Acme Corp: %s", r2.Body)
	}
	r = a.Do("POST", "/v1/query", map[string]any{"query": "Who must use multi-factor authentication?"})
	mustStatus(t, r, http.StatusOK)
	if !strings.Contains(strings.ToLower(string(r.Body)), "multi-factor") {
		t.Fatalf("pooled_a's answer: %s", r.Body)
	}
	mustStatus(t, a.Do("DELETE", "/v1/documents/"+ids["pooled_a"][0], nil), http.StatusNoContent)
	mustStatus(t, b.Do("GET", "/v1/documents/"+ids["pooled_b"][0], nil), http.StatusOK)
	mustStatus(t, a.Do("GET", "/v1/usage?granularity=day", nil), http.StatusOK)

	// Deleting a pooled tenant deletes its rows from the pool, and nobody else's.
	if r := st.Admin("DELETE", "/v1/tenants/pooled_b", nil); r.Status != http.StatusAccepted {
		t.Fatalf("delete pooled_b: %d %s", r.Status, r.Body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var tn ragplane.Tenant
		st.Admin("GET", "/v1/tenants/pooled_b", nil).Decode(t, &tn)
		if tn.Status == ragplane.StatusDeleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pooled_b still %s", tn.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	db, err := pgxpool.New(ctx, urls["pooled_a"])
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func(tenant, table string) int {
		var n int
		if err := tenantdb.Scope(db, tenant).QueryRow(ctx, "select count(*) from "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, table := range tenantdb.TenantTables {
		if n := count("pooled_b", table); n != 0 {
			t.Errorf("pooled_b still has %d rows in %s", n, table)
		}
	}
	if count("pooled_a", "documents") != len(docs)-1 || count("pooled_a", "chunks") == 0 {
		t.Errorf("pooled_a lost rows with pooled_b's deletion")
	}
	mustStatus(t, a.Do("GET", "/v1/documents/"+ids["pooled_a"][1], nil), http.StatusOK)
}
