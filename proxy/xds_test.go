package proxy_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/controlplane/xds"
	"github.com/ragplane/ragplane/e2etest"
	"github.com/ragplane/ragplane/proxy"
)

// TestRejectedPolicyIsLoud pushes a tenant policy the proxy cannot enforce (a zero request
// rate) from the real xDS server to the real proxy: the proxy rejects that one resource, keeps
// serving its previous version, and says so in ragplane_proxy_xds_stale and
// ragplane_proxy_xds_rejected_resources and in /readyz's body, which stays 200 (degraded) since
// the proxy still serves every tenant. A valid version clears it.
func TestRejectedPolicyIsLoud(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	limits := ragplane.Limits{QueriesPerHour: 1000, RequestsPerSecond: 5, Burst: 10, MaxConcurrentRequests: 5,
		MaxTokensPerQuery: 2048, MaxDocuments: 1000, MaxStorageMB: 100, MaxTopK: 20, MaxModelTier: "standard",
		MaxRequestBytes: 10 << 20, MonthlyTokens: 1_000_000}
	good := ragplane.TenantPolicy{TenantID: "acme", Status: ragplane.StatusActive, Plan: "pro", Limits: limits, ConfigVersion: 1}
	in := xds.Input{Issuer: "ragplane", Audience: "ragplane-api",
		Policies: []ragplane.TenantPolicy{good, {TenantID: "globex", Status: ragplane.StatusActive, Plan: "pro", Limits: limits, ConfigVersion: 1}},
		Workers:  []ragplane.Worker{{ID: "w1", Addr: "127.0.0.1:1"}},
		Keys:     []xds.JWK{{Kty: "OKP", Crv: "Ed25519", X: "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE", Kid: "k1", Alg: "EdDSA", Use: "sig"}}}
	srv := xds.New(xds.Config{})
	if err := srv.Update(in); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ctx, lis)

	cfg := proxy.DefaultConfig()
	cfg.Addr, cfg.XDSAddr, cfg.InternalKey, cfg.RedisURL = "127.0.0.1:0", lis.Addr().String(), e2etest.InternalKey, e2etestRedis(t)
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.NodeID = "nack-proxy"
	p, err := proxy.New(ctx, cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	go p.Run(ctx)
	// The detail (rejected tenant ids) and the metrics are on the admin listener only.
	base, admin := "http://"+p.Addr(), "http://"+p.AdminAddr()

	readyz := func() (int, map[string]any) {
		resp, err := http.Get(admin + "/readyz")
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	metric := func(series string) string {
		resp, err := http.Get(admin + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, series+" ") {
				return strings.TrimPrefix(line, series+" ")
			}
		}
		return ""
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for: %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	stale := `ragplane_proxy_xds_stale{type="Struct"}`
	rejected := `ragplane_proxy_xds_rejected_resources{type="Struct"}`

	eventually("ready", func() bool { code, body := readyz(); return code == http.StatusOK && body["status"] == "ready" })
	if got := metric(stale); got != "0" {
		t.Errorf("%s = %q before the bad update, want 0", stale, got)
	}

	bad := good
	bad.Limits.RequestsPerSecond = 0
	if err := srv.UpdateTenants([]ragplane.TenantPolicy{bad}, nil); err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	eventually("readyz degraded", func() bool {
		var code int
		code, body = readyz()
		return code == http.StatusOK && body["status"] == "degraded"
	})
	b, _ := json.Marshal(body)
	if !strings.Contains(string(b), `"acme":"tenant policy acme: limits out of range"`) || !strings.Contains(string(b), "NACK") {
		t.Errorf("readyz body does not say what is stale and why: %s", b)
	}
	if r := e2etest.Send(t, "GET", base+"/readyz", nil); r.Status != http.StatusOK || strings.Contains(string(r.Body), "acme") {
		t.Errorf("the tenant listener's /readyz answers %d %s, want 200 naming no tenant", r.Status, r.Body)
	}
	if got := metric(stale); got != "1" {
		t.Errorf("%s = %q after the bad update, want 1", stale, got)
	}
	if got := metric(rejected); got != "1" {
		t.Errorf("%s = %q after the bad update, want 1", rejected, got)
	}
	eventually("control plane sees the NACK", func() bool {
		for _, ps := range srv.Proxies() {
			if strings.Contains(ps.Types[xds.TypeTenantPolicy].NackError, "limits out of range") {
				return true
			}
		}
		return false
	})

	fixed := good
	fixed.ConfigVersion = 2
	if err := srv.UpdateTenants([]ragplane.TenantPolicy{fixed}, nil); err != nil {
		t.Fatal(err)
	}
	eventually("ready again", func() bool { code, body := readyz(); return code == http.StatusOK && body["status"] == "ready" })
	if got := metric(rejected); got != "0" {
		t.Errorf("%s = %q after the fix, want 0", rejected, got)
	}
}
