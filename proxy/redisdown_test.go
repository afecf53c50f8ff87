package proxy_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ragplane/ragplane/e2etest"
	"github.com/ragplane/ragplane/proxy"
)

// With Redis away every tenant is still served, within this proxy's share of its limits (one
// replica of two here), unless its own policy says otherwise; /readyz stays 200 but says degraded
// and names Redis, ragplane_proxy_redis_up is 0, and all of it clears once Redis answers again.
func TestRedisDownServesEachTenantWithinItsPolicy(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{})
	st.CreateTenant("acme_corp", "enterprise", nil)
	st.CreateTenant("beta_inc", "enterprise", nil)
	// acme keeps the default (local_share): burst 10 over 2 replicas is 5 here, and no refill
	// during the test. beta's cap fails closed.
	mustStatus(t, st.Admin("PATCH", "/v1/tenants/acme_corp", map[string]any{"limits": map[string]any{"requests_per_second": 0.01, "burst": 10}}), http.StatusOK)
	mustStatus(t, st.Admin("PATCH", "/v1/tenants/beta_inc", map[string]any{"limits": map[string]any{"concurrency_fail_policy": "fail_closed"}}), http.StatusOK)
	bad := st.Admin("PATCH", "/v1/tenants/beta_inc", map[string]any{"limits": map[string]any{"rate_limit_fail_policy": "sometimes"}})
	if bad.Status != http.StatusUnprocessableEntity || !strings.Contains(string(bad.Body), `"field":"limits.rate_limit_fail_policy"`) {
		t.Fatalf("a bad fail policy: %d %s, want 422 naming limits.rate_limit_fail_policy", bad.Status, bad.Body)
	}
	redis := e2etest.NewCuttable(t, strings.Split(e2etestRedis(t), "/")[2])
	pr := st.StartProxyWithAdmin(t, func(c *proxy.Config) { c.RedisURL = "redis://" + redis.Addr() + "/0"; c.Replicas = 2 })
	st.WaitPolicies(t, "acme_corp", "beta_inc")
	acme, beta := st.Token("acme_corp"), st.Token("beta_inc")
	mustStatus(t, readyz(t, pr.AdminURL), http.StatusOK)

	redis.Cut()
	var codes []int
	for range 7 {
		codes = append(codes, sendRaw(pr.URL, acme, "GET", "/v1/documents", nil))
	}
	if want := []int{200, 200, 200, 200, 200, 429, 429}; !slices.Equal(codes, want) {
		t.Fatalf("acme_corp with Redis away: %v, want %v (this replica's share of a burst of 10)", codes, want)
	}
	if s := sendRaw(pr.URL, beta, "GET", "/v1/documents", nil); s != http.StatusServiceUnavailable {
		t.Fatalf("beta_inc (concurrency_fail_policy fail_closed) with Redis away: %d, want 503", s)
	}

	var rd struct {
		Status       string `json:"status"`
		Reason       string `json:"reason"`
		Dependencies []struct {
			Name, Status, Since, Error string
		} `json:"dependencies"`
	}
	r := readyz(t, pr.AdminURL)
	mustStatus(t, r, http.StatusOK)
	r.Decode(t, &rd)
	if rd.Status != "degraded" || !strings.Contains(rd.Reason, "Redis") || len(rd.Dependencies) != 1 ||
		rd.Dependencies[0].Name != "redis" || rd.Dependencies[0].Status != "down" || rd.Dependencies[0].Since == "" {
		t.Fatalf("/readyz with Redis away: %s", r.Body)
	}
	pub := readyz(t, pr.URL)
	mustStatus(t, pub, http.StatusOK)
	if !strings.Contains(string(pub.Body), `"degraded"`) || strings.Contains(string(pub.Body), redis.Addr()) {
		t.Fatalf("tenant listener /readyz with Redis away: %s", pub.Body)
	}
	if m := string(e2etest.Send(t, "GET", pr.AdminURL+"/metrics", nil).Body); !strings.Contains(m, "ragplane_proxy_redis_up 0") ||
		!strings.Contains(m, `ragplane_proxy_redis_fallback_decisions_total{limit="concurrency",policy="fail_closed"} 1`) {
		t.Fatalf("metrics with Redis away do not show it:\n%s", grepLines(m, "redis"))
	}

	redis.Restore()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var back struct {
			Status string `json:"status"`
		}
		readyz(t, pr.AdminURL).Decode(t, &back)
		if back.Status == "ready" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %q 10s after Redis came back", back.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := sendRaw(pr.URL, beta, "GET", "/v1/documents", nil); s != http.StatusOK {
		t.Fatalf("beta_inc after Redis came back: %d", s)
	}
}

func readyz(t *testing.T, base string) e2etest.Response {
	t.Helper()
	return e2etest.Send(t, "GET", base+"/readyz", nil)
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
