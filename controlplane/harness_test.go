package controlplane_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/controlplane"
)

const adminToken = "test-admin-token-0123456789"

// testServer is a control plane running in the test process with its own catalog database and
// its own prefix for tenant databases on the test PostgreSQL.
type testServer struct {
	t      testing.TB
	base   string
	prefix string
	dbURL  string
	cancel context.CancelFunc
	done   chan error
}

// mustStart runs the production controlplane.New + Run with port 0.
func mustStart(tb testing.TB, mutate ...func(*controlplane.Config)) *testServer {
	tb.Helper()
	dbURL := catalogtest.NewDatabase(tb)
	prefix := catalogtest.RandomName("rpt") + "_"
	tb.Cleanup(func() { catalogtest.DropTenantDatabases(tb, prefix) })
	cfg := controlplane.DefaultConfig()
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.XDSAddr = "127.0.0.1:0"
	cfg.DatabaseURL = dbURL
	cfg.Provision.LocalAdminURL = catalogtest.ServerURL(tb)
	cfg.Provision.LocalPrefix = prefix
	cfg.Provision.BaseBackoff = 20 * time.Millisecond
	cfg.AdminToken = adminToken
	cfg.SecretKey = catalogtest.SecretKey
	cfg.AllowUndurable = true         // the test stack runs PostgreSQL in its fast mode
	cfg.Tokens.ExchangesPerMinute = 0 // tests exchange keys from one address, some in a loop
	for _, m := range mutate {
		m(&cfg)
	}
	return startWith(tb, cfg, prefix, dbURL)
}

func startWith(tb testing.TB, cfg controlplane.Config, prefix, dbURL string) *testServer {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	if os.Getenv("RAGPLANE_TEST_LOG") != "" {
		logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	srv, err := controlplane.New(ctx, cfg, logger)
	if err != nil {
		cancel()
		tb.Fatalf("start control plane: %v", err)
	}
	ts := &testServer{t: tb, base: "http://" + srv.Addr(), prefix: prefix, dbURL: dbURL, cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- srv.Run(ctx) }()
	tb.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) stop() {
	ts.cancel()
	select {
	case <-ts.done:
	case <-time.After(20 * time.Second):
		ts.t.Error("control plane did not stop within 20s")
	}
}

// response is a decoded answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) decode(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		tb.Fatalf("decode %s: %v", r.Body, err)
	}
}

// problem decodes a problem+json answer and checks its media type.
func (r response) problem(tb testing.TB) map[string]any {
	tb.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		tb.Fatalf("Content-Type = %q, want application/problem+json (body %s)", ct, r.Body)
	}
	var p map[string]any
	r.decode(tb, &p)
	return p
}

// do sends a request; body may be nil, a []byte/string (sent as is) or a value (sent as JSON).
// headers are name/value pairs; the admin token is sent unless an Authorization header is given.
func (ts *testServer) do(method, path string, body any, headers ...string) response {
	ts.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			ts.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, ts.base+path, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// mustStatus fails unless the answer has the status.
func mustStatus(tb testing.TB, r response, want int) {
	tb.Helper()
	if r.Status != want {
		tb.Fatalf("status = %d, want %d; body %s", r.Status, want, r.Body)
	}
}

// createTenant creates a tenant and returns it (status provisioning).
func (ts *testServer) createTenant(id, plan string) ragplane.Tenant {
	ts.t.Helper()
	r := ts.do("POST", "/v1/tenants", map[string]any{"id": id, "name": "Tenant " + id, "email": id + "@example.com", "plan": plan})
	mustStatus(ts.t, r, http.StatusAccepted)
	var t ragplane.Tenant
	r.decode(ts.t, &t)
	return t
}

// waitStatus polls until the tenant has one of the statuses.
func (ts *testServer) waitStatus(id ragplane.TenantID, timeout time.Duration, want ...ragplane.TenantStatus) ragplane.Tenant {
	ts.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := ts.do("GET", "/v1/tenants/"+string(id), nil)
		mustStatus(ts.t, r, http.StatusOK)
		var t ragplane.Tenant
		r.decode(ts.t, &t)
		for _, s := range want {
			if t.Status == s {
				return t
			}
		}
		if time.Now().After(deadline) {
			ts.t.Fatalf("tenant %s is %s (%s) after %s, want %v", id, t.Status, t.StatusReason, timeout, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mustStore opens a second handle on the server's catalog, for checks the API does not expose.
func (ts *testServer) mustStore() *catalog.Store {
	ts.t.Helper()
	return ts.mustStoreAt(ts.dbURL)
}

// mustStoreAt opens a catalog handle on the database at dbURL.
func (ts *testServer) mustStoreAt(dbURL string) *catalog.Store {
	ts.t.Helper()
	s, err := catalog.Open(context.Background(), catalog.Config{URL: dbURL, SecretKey: catalogtest.SecretKey})
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(s.Close)
	return s
}
