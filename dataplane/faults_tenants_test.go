package dataplane_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/e2etest"
)

// A tenant row that fails validation in the catalog does not take the tenant down: a worker that
// has served it keeps its last good configuration; a worker without one answers 503 (the
// platform's fault) saying the configuration is invalid, never 422; a corrected row is served
// again.
func TestInvalidTenantRowKeepsLastGoodConfig(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("bad_row", "pro", map[string]any{"top_k": 3})
	c := st.Tenant("bad_row")
	mustStatus(t, c.Do("POST", "/v1/documents", map[string]any{"title": "Access policy", "content": policy}), http.StatusCreated)
	search := map[string]any{"query": "multi-factor authentication", "retrieval_mode": "keyword"}
	var before struct {
		ConfigVersion int64 `json:"config_version"`
	}
	r := c.Do("POST", "/v1/search", search)
	mustStatus(t, r, http.StatusOK)
	r.Decode(t, &before)

	ctx := context.Background()
	cat, err := pgx.Connect(ctx, st.CatalogURL)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close(ctx)
	var good []byte
	if err := cat.QueryRow(ctx, `select settings from tenants where id = $1`, "bad_row").Scan(&good); err != nil {
		t.Fatal(err)
	}
	if _, err := cat.Exec(ctx, `update tenants set settings = settings || '{"top_k": "many"}' where id = $1`, "bad_row"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the worker to read the invalid row", func() bool {
		_, _ = st.Worker.TenantConfigVersion(ctx, "bad_row") // reads the catalog once the entry expires
		return st.Worker.TenantConfigInvalid("bad_row") != nil
	})
	if f := ragplane.ErrorField(st.Worker.TenantConfigInvalid("bad_row")); !strings.Contains(f, "top_k") {
		t.Fatalf("invalid field %q, want top_k", f)
	}

	// The worker that served the tenant keeps serving it with the last good configuration.
	for i := 0; i < 3; i++ {
		r := c.Do("POST", "/v1/search", search)
		mustStatus(t, r, http.StatusOK)
		var got struct {
			Results       []ragplane.SearchHit `json:"results"`
			ConfigVersion int64                `json:"config_version"`
		}
		r.Decode(t, &got)
		if got.ConfigVersion != before.ConfigVersion || len(got.Results) == 0 {
			t.Fatalf("served config_version %d with %d results, want %d with results", got.ConfigVersion, len(got.Results), before.ConfigVersion)
		}
	}

	// Without a last good configuration (as a fresh worker starts): 503, not 422.
	st.Worker.DropTenantCache()
	for _, req := range []struct{ method, path string }{{"POST", "/v1/search"}, {"GET", "/v1/documents"}} {
		var body any
		if req.method == "POST" {
			body = search
		}
		r := c.Do(req.method, req.path, body)
		mustUnavailable(t, r)
		if d, _ := r.Problem(t)["detail"].(string); !strings.Contains(d, "configuration is invalid") {
			t.Fatalf("detail %q does not say the configuration is invalid", d)
		}
	}

	// The operator corrects the row: the tenant is served from it again.
	if _, err := cat.Exec(ctx, `update tenants set settings = $2 where id = $1`, "bad_row", good); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the worker to read the corrected row", func() bool {
		_, err := st.Worker.TenantConfigVersion(ctx, "bad_row")
		return err == nil && st.Worker.TenantConfigInvalid("bad_row") == nil
	})
	mustStatus(t, c.Do("POST", "/v1/search", search), http.StatusOK)
}
