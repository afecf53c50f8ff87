package controlplane_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/catalogtest"
)

func TestTenantLifecycle(t *testing.T) {
	ts := mustStart(t)
	ctx := context.Background()

	created := ts.createTenant("acme_corp", "enterprise")
	if created.Status != ragplane.StatusProvisioning {
		t.Fatalf("new tenant status = %s, want provisioning", created.Status)
	}
	active := ts.waitStatus("acme_corp", 30*time.Second, ragplane.StatusActive, ragplane.StatusFailed)
	if active.Status != ragplane.StatusActive {
		t.Fatalf("tenant failed: %s", active.StatusReason)
	}
	if active.SchemaVersion < 2 || active.ProviderProjectID != ts.prefix+"acme_corp" {
		t.Fatalf("active tenant = %+v", active)
	}

	// The tenant's database is real, locked down, and has the tenant schema.
	store := ts.mustStore()
	tenantURL, err := store.TenantDatabaseURL(ctx, "acme_corp")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, tenantURL)
	if err != nil {
		t.Fatalf("connect as the tenant role: %v", err)
	}
	var tables int
	if err := conn.QueryRow(ctx, `select count(*) from information_schema.tables where table_schema = 'public'
		and table_name in ('documents', 'chunks', 'entities', 'relations')`).Scan(&tables); err != nil || tables != 4 {
		t.Fatalf("tenant tables = %d, %v; want 4", tables, err)
	}
	var dim int
	if err := conn.QueryRow(ctx, `select atttypmod from pg_attribute where attrelid = 'chunks'::regclass and attname = 'embedding'`).Scan(&dim); err != nil || dim != 512 {
		t.Fatalf("embedding dimension = %d, %v; want 512", dim, err)
	}
	var hnsw, gin int
	conn.QueryRow(ctx, `select count(*) from pg_indexes where indexname = 'chunks_embedding' and indexdef like '%hnsw%'`).Scan(&hnsw)
	conn.QueryRow(ctx, `select count(*) from pg_indexes where indexname = 'chunks_tsv' and indexdef like '%gin%'`).Scan(&gin)
	if hnsw != 1 || gin != 1 {
		t.Fatalf("hnsw index %d, gin index %d; want 1 and 1", hnsw, gin)
	}
	conn.Close(ctx)

	admin, err := pgx.Connect(ctx, catalogtest.ServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var publicConnect bool
	if err := admin.QueryRow(ctx, `select has_database_privilege('public', $1, 'CONNECT')`, ts.prefix+"acme_corp").Scan(&publicConnect); err != nil || publicConnect {
		t.Fatalf("PUBLIC may connect to the tenant database (%v, %v)", publicConnect, err)
	}

	// The URL is sealed at rest: the catalog row does not hold it in clear.
	cat, err := pgx.Connect(ctx, ts.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close(ctx)
	var sealed []byte
	if err := cat.QueryRow(ctx, `select database_url_sealed from tenants where id = 'acme_corp'`).Scan(&sealed); err != nil {
		t.Fatal(err)
	}
	if len(sealed) == 0 || strings.Contains(string(sealed), "postgres") || strings.Contains(string(sealed), ts.prefix) {
		t.Fatalf("database URL is not sealed: %q", sealed)
	}

	// Effective config names the layer of each value.
	r := ts.do("GET", "/v1/tenants/acme_corp/config", nil)
	mustStatus(t, r, http.StatusOK)
	var cfg struct {
		ConfigVersion int64                       `json:"config_version"`
		Settings      map[string]ragplane.Sourced `json:"settings"`
		Limits        map[string]ragplane.Sourced `json:"limits"`
	}
	r.decode(t, &cfg)
	if s := cfg.Settings["model_tier"]; s.Value != "large" || s.Source != ragplane.LayerPlan {
		t.Errorf("model_tier = %+v, want large from plan", s)
	}
	if s := cfg.Settings["chunk_size"]; s.Source != ragplane.LayerSystem {
		t.Errorf("chunk_size = %+v, want from system", s)
	}
	if s := cfg.Settings["embedding_dimension"]; s.Value != float64(512) || s.Source != ragplane.LayerTenant {
		t.Errorf("embedding_dimension = %+v, want 512 fixed on the tenant", s)
	}

	// A tenant override shows as such and bumps the config version.
	r = ts.do("PATCH", "/v1/tenants/acme_corp", map[string]any{"limits": map[string]any{"requests_per_second": 7}, "settings": map[string]any{"top_k": 12}})
	mustStatus(t, r, http.StatusOK)
	r = ts.do("GET", "/v1/tenants/acme_corp/config", nil)
	var cfg2 = cfg
	r.decode(t, &cfg2)
	if s := cfg2.Limits["requests_per_second"]; s.Value != float64(7) || s.Source != ragplane.LayerTenant {
		t.Errorf("requests_per_second = %+v, want 7 from tenant", s)
	}
	if s := cfg2.Settings["top_k"]; s.Value != float64(12) || s.Source != ragplane.LayerTenant {
		t.Errorf("top_k = %+v, want 12 from tenant", s)
	}
	if cfg2.ConfigVersion <= cfg.ConfigVersion {
		t.Errorf("config version %d did not increase from %d", cfg2.ConfigVersion, cfg.ConfigVersion)
	}
	// Null removes the override.
	r = ts.do("PATCH", "/v1/tenants/acme_corp", `{"settings": {"top_k": null}}`)
	mustStatus(t, r, http.StatusOK)
	r = ts.do("GET", "/v1/tenants/acme_corp/config", nil)
	r.decode(t, &cfg2)
	if s := cfg2.Settings["top_k"]; s.Source != ragplane.LayerPlan {
		t.Errorf("top_k after removing the override = %+v, want from plan", s)
	}

	// Suspend and resume.
	r = ts.do("POST", "/v1/tenants/acme_corp/suspend", map[string]string{"reason": "unpaid invoice"})
	mustStatus(t, r, http.StatusOK)
	var tt ragplane.Tenant
	r.decode(t, &tt)
	if tt.Status != ragplane.StatusSuspended || tt.StatusReason != "unpaid invoice" {
		t.Fatalf("after suspend: %s %q", tt.Status, tt.StatusReason)
	}
	mustStatus(t, ts.do("POST", "/v1/tenants/acme_corp/resume", nil), http.StatusOK)

	// A key, then delete: the database goes, the key is revoked, the audit trail stays.
	r = ts.do("POST", "/v1/tenants/acme_corp/keys", map[string]any{"name": "ci"})
	mustStatus(t, r, http.StatusCreated)
	var key struct {
		Key string `json:"key"`
		ID  string `json:"id"`
	}
	r.decode(t, &key)
	mustStatus(t, ts.do("DELETE", "/v1/tenants/acme_corp", nil), http.StatusAccepted)
	ts.waitStatus("acme_corp", 30*time.Second, ragplane.StatusDeleted)
	if n := catalogtest.CountDatabases(t, ts.prefix+"acme_corp"); n != 0 {
		t.Fatalf("%d tenant databases remain after delete", n)
	}
	var roles int
	admin.QueryRow(ctx, `select count(*) from pg_roles where rolname = $1`, ts.prefix+"acme_corp").Scan(&roles)
	if roles != 0 {
		t.Fatalf("tenant role remains after delete")
	}
	r = ts.do("GET", "/v1/tenants/acme_corp/keys", nil)
	var keys struct {
		Items []ragplane.APIKey `json:"items"`
	}
	r.decode(t, &keys)
	if len(keys.Items) != 1 || keys.Items[0].RevokedAt == nil {
		t.Fatalf("keys after delete = %+v, want the one key revoked", keys.Items)
	}
	r = ts.do("POST", "/v1/auth/token", nil, "Authorization", "Bearer "+key.Key)
	mustStatus(t, r, http.StatusUnauthorized)

	r = ts.do("GET", "/v1/audit?target=tenant/acme_corp", nil)
	var audit struct {
		Items []ragplane.AuditEntry `json:"items"`
	}
	r.decode(t, &audit)
	var actions []string
	for _, e := range audit.Items {
		actions = append(actions, e.Action)
	}
	got := strings.Join(actions, ",")
	for _, want := range []string{"tenant.create", "tenant.provisioned", "tenant.update", "tenant.suspend", "tenant.resume", "tenant.delete", "tenant.deleted"} {
		if !strings.Contains(got, want) {
			t.Errorf("audit log %q lacks %s", got, want)
		}
	}
	// The deleted tenant's id and email stay taken by the record; the email is free again.
	r = ts.do("POST", "/v1/tenants", map[string]any{"id": "acme_corp", "name": "Again", "email": "other@example.com", "plan": "free"})
	mustStatus(t, r, http.StatusConflict)
	r = ts.do("POST", "/v1/tenants", map[string]any{"id": "acme_corp2", "name": "Again", "email": "acme_corp@example.com", "plan": "free"})
	mustStatus(t, r, http.StatusAccepted)
}

func TestListTenantsPaginatesAndFilters(t *testing.T) {
	ts := mustStart(t)
	ids := []string{"tenant_a", "tenant_b", "tenant_c", "tenant_d", "tenant_e"}
	for _, id := range ids {
		ts.createTenant(id, "free")
	}
	for _, id := range ids {
		ts.waitStatus(ragplane.TenantID(id), 30*time.Second, ragplane.StatusActive)
	}
	mustStatus(t, ts.do("POST", "/v1/tenants/tenant_c/suspend", nil), http.StatusOK)

	var seen []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		r := ts.do("GET", "/v1/tenants?limit=2&cursor="+cursor, nil)
		mustStatus(t, r, http.StatusOK)
		var p struct {
			Items      []ragplane.Tenant `json:"items"`
			NextCursor string            `json:"next_cursor"`
		}
		r.decode(t, &p)
		if len(p.Items) > 2 {
			t.Fatalf("page of %d items with limit 2", len(p.Items))
		}
		for _, tn := range p.Items {
			seen = append(seen, string(tn.ID))
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if strings.Join(seen, ",") != strings.Join(ids, ",") {
		t.Fatalf("paged through %v, want %v", seen, ids)
	}
	r := ts.do("GET", "/v1/tenants?status=suspended", nil)
	var p struct {
		Items []ragplane.Tenant `json:"items"`
	}
	r.decode(t, &p)
	if len(p.Items) != 1 || p.Items[0].ID != "tenant_c" {
		t.Fatalf("suspended tenants = %+v, want tenant_c", p.Items)
	}
}
