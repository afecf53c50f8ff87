package dataplane_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/e2etest"
)

func usageCounts(t *testing.T, st *e2etest.Stack, tenant string) (events, rolled int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, st.CatalogURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	conn.QueryRow(ctx, `select count(*) from usage_events where tenant_id = $1`, tenant).Scan(&events)
	conn.QueryRow(ctx, `select coalesce(sum(metric_value), 0)::int from tenant_usage
		where tenant_id = $1 and metric_name = 'requests' and granularity = 'hour'`, tenant).Scan(&rolled)
	return events, rolled
}

func waitUsage(t *testing.T, st *e2etest.Stack, tenant string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		events, rolled := usageCounts(t, st, tenant)
		if events == want && rolled == want {
			return
		}
		if events > want || rolled > want || time.Now().After(deadline) {
			t.Fatalf("%d usage events and %d in the rollup, want exactly %d of each", events, rolled, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitWorkerConfig waits until the stack's worker serves tenant with the configuration the
// admin API reports now (its config_version or a later one). The worker reads tenants from the
// catalog through a short cache, not over xDS; this waits for that cache, not for a time.
func waitWorkerConfig(t *testing.T, st *e2etest.Stack, tenant string) {
	t.Helper()
	var want ragplane.Tenant
	r := st.Admin("GET", "/v1/tenants/"+tenant, nil)
	mustStatus(t, r, http.StatusOK)
	r.Decode(t, &want)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := st.Worker.TenantConfigVersion(context.Background(), ragplane.TenantID(tenant))
		if err == nil && got >= want.ConfigVersion {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker serves %s at config_version %d (%v), want %d", tenant, got, err, want.ConfigVersion)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metricValue returns the value of an unlabelled metric in a Prometheus text exposition, or -1
// if it is missing.
func metricValue(exposition, name string) float64 {
	for _, line := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return -1
			}
			return f
		}
	}
	return -1
}

// N requests make exactly N usage records and matching rollups, including a request answered
// by a worker killed with SIGKILL right after, and a retried ingestion with the same key.
func TestUsageMetering(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("acme_corp", "pro", nil)
	c := st.Tenant("acme_corp")
	mustStatus(t, c.Do("POST", "/v1/documents", map[string]any{"content": "Backups are encrypted with AES-256."}, "Idempotency-Key", "u-1"), http.StatusCreated)
	mustStatus(t, c.Do("POST", "/v1/documents", map[string]any{"content": "Backups are encrypted with AES-256."}, "Idempotency-Key", "u-1"), http.StatusOK)
	mustStatus(t, c.Do("POST", "/v1/search", map[string]any{"query": "backups"}), http.StatusOK)
	mustStatus(t, c.Do("POST", "/v1/query", map[string]any{"query": "Are backups encrypted?"}), http.StatusOK)
	mustStatus(t, c.Do("POST", "/v1/search", map[string]any{"query": ""}), http.StatusUnprocessableEntity)
	waitUsage(t, st, "acme_corp", 5)

	// A worker process that answers and is killed at once: its record was on disk before the
	// answer left, and the next worker on the same spool ships it.
	dir := t.TempDir()
	addr := e2etest.FreeAddr(t)
	env := append(st.WorkerEnv(addr), "RAGPLANE_USAGE_DIR="+dir)
	w := e2etest.StartProcess(t, "dataplane", addr, env...)
	remote := st.Tenant("acme_corp")
	remote.Base = "http://" + addr
	mustStatus(t, remote.Do("POST", "/v1/search", map[string]any{"query": "backups"}), http.StatusOK)
	w.Kill()
	if events, _ := usageCounts(t, st, "acme_corp"); events != 5 {
		t.Logf("the killed worker shipped before it died (%d events); the test still checks the total", events)
	}
	e2etest.StartProcess(t, "dataplane", addr, env...)
	waitUsage(t, st, "acme_corp", 6)

	// The operator sees the same through the admin API.
	r := st.Admin("GET", "/v1/tenants/acme_corp/usage?granularity=day", nil)
	mustStatus(t, r, http.StatusOK)
	var u struct {
		Items []struct {
			Metric string  `json:"metric"`
			Value  float64 `json:"value"`
		} `json:"items"`
	}
	r.Decode(t, &u)
	found := false
	for _, p := range u.Items {
		if p.Metric == "requests" && p.Value == 6 {
			found = true
		}
	}
	if !found {
		t.Fatalf("daily usage %+v lacks requests = 6", u.Items)
	}
	// The compliance seed's metrics, field for field: 4 queries (3 answered, 1 refused as bad
	// input, which is the client's error, not a failure) of 6 requests; the same for the operator
	// and, through a tenant token, for the tenant itself; another tenant's id is 404.
	for _, r := range []e2etest.Response{st.Admin("GET", "/v1/metrics/acme_corp", nil), c.Do("GET", "/v1/metrics/acme_corp?hours=48", nil)} {
		mustStatus(t, r, http.StatusOK)
		var shape map[string]any
		r.Decode(t, &shape)
		costs, _ := shape["costs"].(map[string]any)
		if len(shape) != 6 || len(costs) != 4 || shape["tenant_id"] != "acme_corp" || shape["total_queries"] != float64(4) ||
			shape["successful_queries"] != float64(4) || shape["avg_latency_ms"] == nil || costs["total_requests"] != float64(6) ||
			costs["success_rate"] != float64(1) || costs["estimated_llm_cost"] == nil || costs["total_tokens"].(float64) <= 0 {
			t.Fatalf("metrics %s, want the seed's shape with 4 of 4 queries and 6 requests", r.Body)
		}
	}
	st.CreateTenant("globex", "pro", nil)
	mustStatus(t, st.Tenant("globex").Do("GET", "/v1/metrics/acme_corp", nil), http.StatusNotFound)
	waitUsage(t, st, "acme_corp", 7) // the tenant's own metrics read is a request too
	r = st.Admin("GET", "/v1/usage/export?month="+time.Now().UTC().Format("2006-01")+"&tenant=acme_corp", nil)
	mustStatus(t, r, http.StatusOK)
	lines := strings.Split(strings.TrimSpace(string(r.Body)), "\n")
	if len(lines) != 8 || !strings.HasPrefix(lines[0], "id,tenant_id,") {
		t.Fatalf("export has %d lines: %s", len(lines), r.Body)
	}
	again := st.Admin("GET", "/v1/usage/export?month="+time.Now().UTC().Format("2006-01")+"&tenant=acme_corp", nil)
	if string(again.Body) != string(r.Body) {
		t.Fatal("two exports of the same month differ")
	}
	mustStatus(t, st.Admin("GET", "/v1/usage/export?month=november", nil), http.StatusUnprocessableEntity)
	mustStatus(t, st.Admin("GET", "/v1/tenants/acme_corp/usage?granularity=week", nil), http.StatusUnprocessableEntity)
	// The tenant sees its own usage, and only its own.
	st.CreateTenant("beta_inc", "pro", nil)
	r = c.Do("GET", "/v1/usage?granularity=day", nil)
	mustStatus(t, r, http.StatusOK)
	if !strings.Contains(string(r.Body), `"tenant_id":"acme_corp"`) || !strings.Contains(string(r.Body), `"requests"`) {
		t.Fatalf("tenant usage: %s", r.Body)
	}
	r = st.Tenant("beta_inc").Do("GET", "/v1/usage?granularity=day", nil)
	mustStatus(t, r, http.StatusOK)
	if strings.Contains(string(r.Body), `"requests"`) {
		t.Fatalf("beta_inc sees usage it did not make: %s", r.Body)
	}
	mustStatus(t, st.Admin("GET", "/v1/tenants/acme_corp/usage?from=yesterday", nil), http.StatusUnprocessableEntity)
}

// A tenant that used up its monthly tokens gets 429 naming the quota on queries.
func TestMonthlyTokenQuota(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("small_co", "free", nil)
	mustStatus(t, st.Admin("PATCH", "/v1/tenants/small_co", map[string]any{"limits": map[string]any{"monthly_tokens": 5}}), http.StatusOK)
	waitWorkerConfig(t, st, "small_co")
	c := st.Tenant("small_co")
	mustStatus(t, c.Do("POST", "/v1/documents", map[string]any{"content": "Backups are encrypted with AES-256 every night."}), http.StatusCreated)
	waitUsage(t, st, "small_co", 1) // the ingestion's embedding tokens are now counted
	// The worker has not counted this tenant's tokens yet, so its first query reads the count
	// that now holds the ingestion's embedding tokens: more than the quota of 5.
	r := c.Do("POST", "/v1/query", map[string]any{"query": "Are backups encrypted?"})
	mustStatus(t, r, http.StatusTooManyRequests)
	if p := r.Problem(t); p["field"] != "monthly_tokens" {
		t.Fatalf("429 for %v", p["field"])
	}
	// Raising the quota lets queries through again, once the worker has the change.
	mustStatus(t, st.Admin("PATCH", "/v1/tenants/small_co", map[string]any{"limits": map[string]any{"monthly_tokens": 1000000}}), http.StatusOK)
	waitWorkerConfig(t, st, "small_co")
	mustStatus(t, c.Do("POST", "/v1/query", map[string]any{"query": "Are backups encrypted?"}), http.StatusOK)
}

// Usage recorded while the catalog is unreachable is shipped, once, when it comes back; the
// requests themselves keep being served from the worker's caches.
func TestUsageSurvivesCatalogOutage(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("acme_corp", "pro", nil)
	u, err := url.Parse(st.CatalogURL)
	if err != nil {
		t.Fatal(err)
	}
	link := e2etest.NewCuttable(t, u.Host) // the worker's way to the catalog
	u.Host = link.Addr()
	addr := e2etest.FreeAddr(t)
	env := append(st.WorkerEnv(addr), "DATABASE_URL="+u.String(), "RAGPLANE_TENANT_CACHE_TTL=1m", "RAGPLANE_USAGE_DIR="+t.TempDir())
	e2etest.StartProcess(t, "dataplane", addr, env...)
	c := st.Tenant("acme_corp")
	c.Base = "http://" + addr
	mustStatus(t, c.Do("POST", "/v1/search", map[string]any{"query": "warm the cache"}), http.StatusOK)
	waitUsage(t, st, "acme_corp", 1)
	link.Cut()
	for i := 0; i < 3; i++ {
		mustStatus(t, c.Do("POST", "/v1/search", map[string]any{"query": "during the outage"}), http.StatusOK)
	}
	// Two shipping rounds fail: the worker's own failure counter says so.
	var m e2etest.Response
	deadline := time.Now().Add(10 * time.Second)
	for {
		m = e2etest.Send(t, "GET", c.Base+"/metrics", nil)
		if metricValue(string(m.Body), "ragplane_dataplane_usage_ship_failures_total") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than two failed shipping rounds during the outage:\n%s", m.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if events, _ := usageCounts(t, st, "acme_corp"); events != 1 {
		t.Fatalf("%d events in the catalog during the outage, want 1", events)
	}
	if metricValue(string(m.Body), "ragplane_dataplane_usage_spool_lag_seconds") <= 0 {
		t.Fatalf("the outage does not show as spool lag")
	}
	link.Restore()
	waitUsage(t, st, "acme_corp", 4)
}
