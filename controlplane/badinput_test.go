package controlplane_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane/catalog/catalogtest"
)

// TestBadInput sends every kind of bad request and checks the status, the problem+json body and
// the field it names, then checks that nothing was created anywhere.
func TestBadInput(t *testing.T) {
	ts := mustStart(t)
	ts.createTenant("existing", "pro")
	ts.waitStatus("existing", 30*time.Second, "active")

	valid := func(over map[string]any) map[string]any {
		m := map[string]any{"id": "newco", "name": "New Co", "email": "ops@newco.example", "plan": "pro"}
		for k, v := range over {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	tests := []struct {
		name   string
		method string
		path   string
		given  any
		header []string
		expect int
		field  string
	}{
		{name: "no admin token", method: "GET", path: "/v1/tenants", header: []string{"Authorization", ""}, expect: 401},
		{name: "wrong admin token", method: "GET", path: "/v1/tenants", header: []string{"Authorization", "Bearer wrong-token-0123456789"}, expect: 401},
		{name: "basic auth instead of bearer", method: "GET", path: "/v1/tenants", header: []string{"Authorization", "Basic " + adminToken}, expect: 401},
		{name: "token prefix only", method: "GET", path: "/v1/tenants", header: []string{"Authorization", "Bearer " + adminToken[:10]}, expect: 401},
		{name: "oversized authorization", method: "GET", path: "/v1/tenants", header: []string{"Authorization", "Bearer " + strings.Repeat("a", 10000)}, expect: 401},
		{name: "not json", method: "POST", path: "/v1/tenants", given: "{not json", expect: 400},
		{name: "empty body", method: "POST", path: "/v1/tenants", given: "", expect: 400},
		{name: "json array", method: "POST", path: "/v1/tenants", given: "[]", expect: 400},
		{name: "trailing data", method: "POST", path: "/v1/tenants", given: `{"id":"newco"} {}`, expect: 400},
		{name: "unknown field", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"tenant_db": "x"}), expect: 400, field: "tenant_db"},
		{name: "wrong content type", method: "POST", path: "/v1/tenants", given: "id=newco", header: []string{"Content-Type", "application/x-www-form-urlencoded"}, expect: 400},
		{name: "bad slug uppercase", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"id": "NewCo"}), expect: 422, field: "id"},
		{name: "bad slug sql", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"id": "x'; drop table tenants;--"}), expect: 422, field: "id"},
		{name: "bad slug too short", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"id": "ab"}), expect: 422, field: "id"},
		{name: "missing id", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"id": nil}), expect: 422, field: "id"},
		{name: "id wrong type", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"id": 42}), expect: 422, field: "id"},
		{name: "bad email", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"email": "not-an-email"}), expect: 422, field: "email"},
		{name: "email with display name", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"email": "Ops <ops@newco.example>"}), expect: 422, field: "email"},
		{name: "empty name", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"name": "  "}), expect: 422, field: "name"},
		{name: "unknown plan", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"plan": "platinum"}), expect: 422, field: "plan"},
		{name: "unknown provider", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"provider": "aws"}), expect: 422, field: "provider"},
		{name: "unconfigured provider", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"provider": "neon"}), expect: 422, field: "provider"},
		{name: "bad region", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"region": "../etc"}), expect: 422, field: "region"},
		{name: "negative limit", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"limits": map[string]any{"queries_per_hour": -5}}), expect: 422, field: "limits.queries_per_hour"},
		{name: "absurd limit", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"limits": map[string]any{"max_concurrent_requests": 1e12}}), expect: 422, field: "limits.max_concurrent_requests"},
		{name: "fractional int limit", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"limits": map[string]any{"burst": 2.5}}), expect: 422, field: "limits.burst"},
		{name: "unknown limit", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"limits": map[string]any{"gpus": 4}}), expect: 422, field: "limits.gpus"},
		{name: "string limit", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"limits": map[string]any{"burst": "lots"}}), expect: 422, field: "limits.burst"},
		{name: "bad retrieval mode", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"settings": map[string]any{"retrieval_mode": "psychic"}}), expect: 422, field: "settings.retrieval_mode"},
		{name: "overlap over size", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"settings": map[string]any{"chunk_size": 100, "chunk_overlap": 200}}), expect: 422, field: "settings.chunk_overlap"},
		{name: "dimension too large", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"settings": map[string]any{"embedding_dimension": 100000}}), expect: 422, field: "settings.embedding_dimension"},
		{name: "duplicate id", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"id": "existing"}), expect: 409},
		{name: "duplicate email", method: "POST", path: "/v1/tenants", given: valid(map[string]any{"email": "EXISTING@example.com"}), expect: 409, field: "email"},
		{name: "body over 1 MiB", method: "POST", path: "/v1/tenants", given: `{"id":"newco","name":"` + strings.Repeat("x", 1<<20+10) + `"}`, expect: 413},
		{name: "idempotency key too long", method: "POST", path: "/v1/tenants", given: valid(nil), header: []string{"Idempotency-Key", strings.Repeat("k", 300)}, expect: 422, field: "Idempotency-Key"},
		{name: "patch fixed setting", method: "PATCH", path: "/v1/tenants/existing", given: map[string]any{"settings": map[string]any{"embedding_dimension": 768}}, expect: 422, field: "settings.embedding_dimension"},
		{name: "patch unknown plan", method: "PATCH", path: "/v1/tenants/existing", given: map[string]any{"plan": "gold"}, expect: 422, field: "plan"},
		{name: "patch negative limit", method: "PATCH", path: "/v1/tenants/existing", given: map[string]any{"limits": map[string]any{"max_documents": -1}}, expect: 422, field: "limits.max_documents"},
		{name: "patch unknown field", method: "PATCH", path: "/v1/tenants/existing", given: map[string]any{"status": "active"}, expect: 400, field: "status"},
		{name: "patch missing tenant", method: "PATCH", path: "/v1/tenants/nobody", given: map[string]any{"name": "x"}, expect: 404},
		{name: "get malformed id", method: "GET", path: "/v1/tenants/..%2f..%2fetc", expect: 404},
		{name: "get missing tenant", method: "GET", path: "/v1/tenants/nobody", expect: 404},
		{name: "resume active tenant is fine", method: "POST", path: "/v1/tenants/existing/resume", expect: 200},
		{name: "list bad status", method: "GET", path: "/v1/tenants?status=sleeping", expect: 422, field: "status"},
		{name: "list bad limit", method: "GET", path: "/v1/tenants?limit=100000", expect: 422, field: "limit"},
		{name: "list bad cursor", method: "GET", path: "/v1/tenants?cursor=Robert%27%20OR%201%3D1", expect: 422, field: "cursor"},
		{name: "key unknown role", method: "POST", path: "/v1/tenants/existing/keys", given: map[string]any{"name": "k", "roles": []string{"root"}}, expect: 422, field: "roles[0]"},
		{name: "key past expiry", method: "POST", path: "/v1/tenants/existing/keys", given: map[string]any{"name": "k", "expires_at": "2001-01-01T00:00:00Z"}, expect: 422, field: "expires_at"},
		{name: "revoke key of nobody", method: "DELETE", path: "/v1/tenants/existing/keys/00000000-0000-0000-0000-000000000000", expect: 404},
		{name: "revoke malformed key id", method: "DELETE", path: "/v1/tenants/existing/keys/abc", expect: 404},
		{name: "plan bad name", method: "PUT", path: "/v1/plans/Gold!", given: map[string]any{"limits": map[string]any{}}, expect: 422, field: "name"},
		{name: "plan absurd limit", method: "PUT", path: "/v1/plans/gold", given: map[string]any{"limits": map[string]any{"burst": -1}}, expect: 422, field: "limits.burst"},
		{name: "defaults bad setting", method: "PUT", path: "/v1/config/defaults", given: map[string]any{"settings": map[string]any{"top_k": 0}}, expect: 422, field: "settings.top_k"},
		{name: "token without key", method: "POST", path: "/v1/auth/token", header: []string{"Authorization", ""}, expect: 401},
		{name: "token with admin token", method: "POST", path: "/v1/auth/token", expect: 401},
		{name: "token with garbage key", method: "POST", path: "/v1/auth/token", header: []string{"Authorization", "Bearer rpk_aaaaaaaaaaaa_bbbb"}, expect: 401},
		{name: "unknown route", method: "GET", path: "/v1/nothing", expect: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(tt.method, tt.path, tt.given, tt.header...)
			mustStatus(t, r, tt.expect)
			if tt.expect < 400 {
				return
			}
			p := r.problem(t)
			if int(p["status"].(float64)) != tt.expect || p["detail"] == "" || p["code"] == "" {
				t.Fatalf("problem body %s", r.Body)
			}
			if tt.field != "" && p["field"] != tt.field {
				t.Fatalf("field = %v, want %s (body %s)", p["field"], tt.field, r.Body)
			}
			// The request id is random and may spell anything; everything else must not leak.
			delete(p, "request_id")
			body := strings.ToLower(fmt.Sprint(p))
			for _, leak := range []string{"select ", "insert ", "goroutine", ".go:", "pgx", adminToken, "sqlstate"} {
				if strings.Contains(body, strings.ToLower(leak)) {
					t.Fatalf("response leaks %q: %s", leak, r.Body)
				}
			}
			if r.Status == 401 && r.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}

	// Nothing was half-created: one tenant in the catalog, one tenant database on the server,
	// no plan "gold", the defaults untouched.
	ctx := context.Background()
	cat, err := pgx.Connect(ctx, ts.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close(ctx)
	var tenants, plans, keys int
	cat.QueryRow(ctx, `select count(*) from tenants`).Scan(&tenants)
	cat.QueryRow(ctx, `select count(*) from plans where name = 'gold'`).Scan(&plans)
	cat.QueryRow(ctx, `select count(*) from api_keys`).Scan(&keys)
	if tenants != 1 || plans != 0 || keys != 0 {
		t.Fatalf("after bad input: %d tenants, %d gold plans, %d keys; want 1, 0, 0", tenants, plans, keys)
	}
	if n := catalogtest.CountDatabases(t, ts.prefix); n != 1 {
		t.Fatalf("%d tenant databases on the server, want 1", n)
	}
	r := ts.do("GET", "/v1/config/defaults", nil)
	if !strings.Contains(string(r.Body), `"overrides":{"settings":{},"limits":{}}`) {
		t.Fatalf("defaults changed by a rejected request: %s", r.Body)
	}
}

// A body without Content-Length (chunked) is cut off at the limit too.
func TestChunkedBodyOverLimit(t *testing.T) {
	ts := mustStart(t)
	body := io.MultiReader(strings.NewReader(`{"id":"chunky","name":"`), strings.NewReader(strings.Repeat("x", 2<<20)), strings.NewReader(`"}`))
	req, err := http.NewRequest("POST", ts.base+"/v1/tenants", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if req.ContentLength != 0 || len(req.TransferEncoding) > 0 && req.TransferEncoding[0] != "chunked" {
		t.Fatalf("request was not sent chunked")
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked body over the limit: status %d, want 413", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("Content-Type %q", ct)
	}
}
