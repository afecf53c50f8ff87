package tenantctx_test

import (
	"strings"
	"testing"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/internal/tenantctx"
)

const key = "internal-key-0123456789abcdef-0123456789"

func mustCodec(tb testing.TB, k string) *tenantctx.Codec {
	tb.Helper()
	c, err := tenantctx.New(k)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func TestSignVerify(t *testing.T) {
	c := mustCodec(t, key)
	now := time.Now()
	ctx := tenantctx.Context{Identity: ragplane.Identity{TenantID: "acme_corp", Subject: "alice", Roles: []string{"reader"}},
		RequestID: "req-1", IssuedAt: now}
	good := c.Sign(ctx, "POST", "/v1/search")
	got, err := c.Verify(good, "POST", "/v1/search", now, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got.Identity.TenantID != "acme_corp" || got.Identity.Subject != "alice" || got.RequestID != "req-1" || got.Identity.Roles[0] != "reader" {
		t.Fatalf("verified %+v", got)
	}
	other := mustCodec(t, strings.Repeat("x", 40))
	parts := strings.Split(good, ".")
	tests := []struct {
		name         string
		given        string
		method, path string
		now          time.Time
	}{
		{name: "empty", given: "", method: "POST", path: "/v1/search", now: now},
		{name: "garbage", given: "not-a-context", method: "POST", path: "/v1/search", now: now},
		{name: "other key", given: other.Sign(ctx, "POST", "/v1/search"), method: "POST", path: "/v1/search", now: now},
		{name: "other path", given: good, method: "POST", path: "/v1/documents", now: now},
		{name: "other method", given: good, method: "DELETE", path: "/v1/search", now: now},
		{name: "too old", given: good, method: "POST", path: "/v1/search", now: now.Add(time.Minute)},
		{name: "from the future", given: good, method: "POST", path: "/v1/search", now: now.Add(-time.Minute)},
		{name: "payload swapped", given: parts[0] + "." + strings.Split(c.Sign(tenantctx.Context{Identity: ragplane.Identity{TenantID: "beta_inc"}, IssuedAt: now}, "POST", "/v1/search"), ".")[1] + "." + parts[2], method: "POST", path: "/v1/search", now: now},
		{name: "tampered payload", given: parts[0] + "." + parts[1] + "x." + parts[2], method: "POST", path: "/v1/search", now: now},
		{name: "no signature", given: parts[0] + "." + parts[1] + ".", method: "POST", path: "/v1/search", now: now},
		{name: "bad tenant", given: c.Sign(tenantctx.Context{Identity: ragplane.Identity{TenantID: "../x"}, IssuedAt: now}, "POST", "/v1/search"), method: "POST", path: "/v1/search", now: now},
		{name: "huge", given: strings.Repeat("v1.", 5000), method: "POST", path: "/v1/search", now: now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Verify(tt.given, tt.method, tt.path, tt.now, 30*time.Second); ragplane.ErrorCode(err) != ragplane.EUNAUTHORIZED {
				t.Fatalf("err = %v, want EUNAUTHORIZED", err)
			}
		})
	}
}

func TestShortKeyRejected(t *testing.T) {
	if _, err := tenantctx.New("short"); err == nil {
		t.Fatal("a short key was accepted")
	}
}

// TestQueriesLeft: the proxy's admission decision travels signed; absent, it is nil.
func TestQueriesLeft(t *testing.T) {
	c := mustCodec(t, key)
	now := time.Now()
	left := 41
	ctx := tenantctx.Context{Identity: ragplane.Identity{TenantID: "acme_corp"}, IssuedAt: now, QueriesLeft: &left}
	got, err := c.Verify(c.Sign(ctx, "GET", "/v1/me"), "GET", "/v1/me", now, 30*time.Second)
	if err != nil || got.QueriesLeft == nil || *got.QueriesLeft != 41 {
		t.Fatalf("verified %+v, %v; want 41 queries left", got, err)
	}
	ctx.QueriesLeft = nil
	got, err = c.Verify(c.Sign(ctx, "GET", "/v1/me"), "GET", "/v1/me", now, 30*time.Second)
	if err != nil || got.QueriesLeft != nil {
		t.Fatalf("verified %+v, %v; want no queries left known", got, err)
	}
}

func TestSignVerifyClient(t *testing.T) {
	c := mustCodec(t, key)
	now := time.Now()
	good := c.SignClient("203.0.113.7", "POST", "/v1/auth/token", now)
	if addr, ok := c.VerifyClient(good, "POST", "/v1/auth/token", now, 30*time.Second); !ok || addr != "203.0.113.7" {
		t.Fatalf("verified %q %v", addr, ok)
	}
	parts := strings.Split(good, ".")
	other := mustCodec(t, strings.Repeat("x", 40))
	tests := []struct {
		name         string
		given        string
		method, path string
		now          time.Time
	}{
		{name: "empty", given: "", method: "POST", path: "/v1/auth/token", now: now},
		{name: "other key", given: other.SignClient("203.0.113.7", "POST", "/v1/auth/token", now), method: "POST", path: "/v1/auth/token", now: now},
		{name: "other path", given: good, method: "POST", path: "/v1/keys", now: now},
		{name: "other method", given: good, method: "GET", path: "/v1/auth/token", now: now},
		{name: "too old", given: good, method: "POST", path: "/v1/auth/token", now: now.Add(time.Minute)},
		{name: "address swapped", given: parts[0] + "." + strings.Split(c.SignClient("10.0.0.1", "POST", "/v1/auth/token", now), ".")[1] + "." + parts[2] + "." + parts[3], method: "POST", path: "/v1/auth/token", now: now},
		{name: "a tenant context", given: c.Sign(tenantctx.Context{Identity: ragplane.Identity{TenantID: "acme_corp"}, IssuedAt: now}, "POST", "/v1/auth/token"), method: "POST", path: "/v1/auth/token", now: now},
		{name: "huge", given: strings.Repeat("c1.", 500), method: "POST", path: "/v1/auth/token", now: now},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if addr, ok := c.VerifyClient(tt.given, tt.method, tt.path, tt.now, 30*time.Second); ok {
				t.Fatalf("verified %q, want refused", addr)
			}
		})
	}
}
