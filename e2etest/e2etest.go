// Package e2etest runs Ragplane's services in the test process against the real local stack: a
// control plane on a fresh catalog database, and data-plane workers beside it. Clients sign the
// tenant context the way the proxy does. Tests of several packages share it. It imports every
// service, so it lives outside internal/, which holds only plumbing the services themselves import.
package e2etest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/controlplane"
	"github.com/ragplane/ragplane/dataplane"
	"github.com/ragplane/ragplane/internal/tenantctx"
)

// AdminToken and InternalKey are the test stack's secrets.
const (
	AdminToken  = "e2e-admin-token-0123456789"
	InternalKey = "e2e-internal-key-0123456789abcdef-0123"
)

// Stack is a control plane and its workers.
type Stack struct {
	t          testing.TB
	AdminURL   string
	WorkerURL  string
	CatalogURL string
	Prefix     string
	Codec      *tenantctx.Codec
	Worker     *dataplane.Server
	XDSAddr    string
	cp         *cpRun
}

// Options tune the stack; zero values get defaults.
type Options struct {
	// Worker changes the worker's config before it starts.
	Worker func(*dataplane.Config)
	// ControlPlane changes the control plane's config before it starts.
	ControlPlane func(*controlplane.Config)
}

func logger() *slog.Logger {
	if os.Getenv("RAGPLANE_TEST_LOG") != "" {
		return slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

// Start runs a control plane and one worker, stopped when the test ends.
func Start(tb testing.TB, opts Options) *Stack {
	tb.Helper()
	dbURL := catalogtest.NewDatabase(tb)
	prefix := catalogtest.RandomName("rpt") + "_"
	tb.Cleanup(func() { catalogtest.DropTenantDatabases(tb, prefix) })
	ctx, cancel := context.WithCancel(context.Background())
	cfg := controlplane.DefaultConfig()
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.XDSAddr = "127.0.0.1:0"
	cfg.DatabaseURL = dbURL
	cfg.AdminToken = AdminToken
	cfg.SecretKey = catalogtest.SecretKey
	cfg.Provision.LocalAdminURL = catalogtest.ServerURL(tb)
	cfg.Provision.LocalPrefix = prefix
	cfg.Provision.BaseBackoff = 20 * time.Millisecond
	cfg.InternalKey = InternalKey
	cfg.WorkerLeaseTTL = 2 * time.Second
	// The test stack runs PostgreSQL in its fast, undurable mode (make test: RAGPLANE_STACK_FAST=1).
	cfg.AllowUndurable = true
	// Every test client exchanges keys from 127.0.0.1, some in a loop: no per-address limit unless
	// a test sets one.
	cfg.Tokens.ExchangesPerMinute = 0
	if opts.ControlPlane != nil {
		opts.ControlPlane(&cfg)
	}
	cp, err := controlplane.New(ctx, cfg, logger())
	if err != nil {
		cancel()
		tb.Fatalf("start control plane: %v", err)
	}
	cpCtx, cpCancel := context.WithCancel(ctx)
	cpDone := make(chan struct{})
	go func() { cp.Run(cpCtx); close(cpDone) }()

	wcfg := dataplane.DefaultConfig()
	wcfg.Addr = "127.0.0.1:0"
	wcfg.DatabaseURL = dbURL
	wcfg.InternalKey = InternalKey
	wcfg.SecretKey = catalogtest.SecretKey
	wcfg.TenantCacheTTL = 200 * time.Millisecond
	wcfg.ControlPlaneURL = "http://" + cp.Addr()
	wcfg.HeartbeatInterval = 500 * time.Millisecond
	wcfg.UsageDir = tb.TempDir()
	wcfg.AllowUndurable = true // as cfg's
	if opts.Worker != nil {
		opts.Worker(&wcfg)
	}
	w, err := dataplane.New(ctx, wcfg, logger())
	if err != nil {
		cancel()
		<-cpDone
		tb.Fatalf("start worker: %v", err)
	}
	wDone := make(chan struct{})
	go func() { w.Run(ctx); close(wDone) }()
	codec, _ := tenantctx.New(InternalKey)
	s := &Stack{t: tb, AdminURL: "http://" + cp.Addr(), WorkerURL: "http://" + w.Addr(), CatalogURL: dbURL,
		Prefix: prefix, Codec: codec, Worker: w, XDSAddr: cp.XDSAddr()}
	cfg.AdminAddr, cfg.XDSAddr = cp.Addr(), cp.XDSAddr() // a restart comes back on the same ports
	s.cp = &cpRun{cfg: cfg, cancel: cpCancel, done: cpDone}
	tb.Cleanup(func() { cancel(); <-wDone; s.cp.stop() })
	return s
}

// cpRun is the running control plane, so a test can stop and restart it.
type cpRun struct {
	cfg    controlplane.Config
	cancel context.CancelFunc
	done   chan struct{}
}

func (c *cpRun) stop() {
	if c.cancel != nil {
		c.cancel()
		<-c.done
		c.cancel = nil
	}
}

// StopControlPlane stops the control plane (admin API and xDS); workers and proxies stay up.
func (s *Stack) StopControlPlane() { s.cp.stop() }

// RestartControlPlane starts it again on the same addresses.
func (s *Stack) RestartControlPlane() {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var cp *controlplane.Server
	var err error
	for i := 0; i < 50; i++ { // the old listeners may take a moment to go
		if cp, err = controlplane.New(ctx, s.cp.cfg, logger()); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		cancel()
		s.t.Fatalf("restart control plane: %v", err)
	}
	done := make(chan struct{})
	go func() { cp.Run(ctx); close(done) }()
	s.cp.cancel, s.cp.done = cancel, done
}

// Response is a decoded HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Decode decodes the JSON body into v.
func (r Response) Decode(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		tb.Fatalf("decode %q: %v", r.Body, err)
	}
}

// Problem decodes a problem+json body, failing if the media type is not problem+json.
func (r Response) Problem(tb testing.TB) map[string]any {
	tb.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		tb.Fatalf("Content-Type = %q, want application/problem+json (status %d, body %s)", ct, r.Status, r.Body)
	}
	var p map[string]any
	r.Decode(tb, &p)
	return p
}

// Send sends a request. body may be nil, []byte, string or a value sent as JSON; headers are
// name/value pairs.
func Send(tb testing.TB, method, url string, body any, headers ...string) Response {
	tb.Helper()
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
			tb.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// Admin calls the admin API with the admin token.
func (s *Stack) Admin(method, path string, body any) Response {
	s.t.Helper()
	return Send(s.t, method, s.AdminURL+path, body, "Authorization", "Bearer "+AdminToken)
}

// CreateTenant creates a tenant through the admin API and waits until it is active.
//
// Unless settings name an embedding_model, the tenant embeds with the hashing embedder
// (ragplane-hash-v1, 384 dimensions), not the system default (use-lite-512): the default model's
// forward pass runs about ten times slower under the race detector, and most tests are about
// something else. Tests of the default model name it (and the use package has its golden tests).
func (s *Stack) CreateTenant(id, plan string, settings map[string]any) {
	s.t.Helper()
	body := map[string]any{"id": id, "name": id, "email": id + "@example.com", "plan": plan}
	if _, ok := settings["embedding_model"]; !ok {
		withFast := map[string]any{"embedding_model": "ragplane-hash-v1", "embedding_dimension": 384}
		for k, v := range settings {
			withFast[k] = v
		}
		settings = withFast
	}
	body["settings"] = settings
	if r := s.Admin("POST", "/v1/tenants", body); r.Status != http.StatusAccepted {
		s.t.Fatalf("create tenant %s: %d %s", id, r.Status, r.Body)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var t ragplane.Tenant
		s.Admin("GET", "/v1/tenants/"+id, nil).Decode(s.t, &t)
		if t.Status == ragplane.StatusActive {
			return
		}
		if t.Status == ragplane.StatusFailed || time.Now().After(deadline) {
			s.t.Fatalf("tenant %s is %s: %s", id, t.Status, t.StatusReason)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Store opens the catalog for checks the API does not expose.
func (s *Stack) Store() *catalog.Store {
	s.t.Helper()
	st, err := catalog.Open(context.Background(), catalog.Config{URL: s.CatalogURL, SecretKey: catalogtest.SecretKey})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(st.Close)
	return st
}

// Client calls a worker as one tenant, signing the context like the proxy.
type Client struct {
	s     *Stack
	Base  string
	ID    ragplane.Identity
	Codec *tenantctx.Codec
}

// Tenant returns a client for tenant with the reader and writer roles.
func (s *Stack) Tenant(tenant string) *Client {
	return &Client{s: s, Base: s.WorkerURL, Codec: s.Codec,
		ID: ragplane.Identity{TenantID: ragplane.TenantID(tenant), Subject: "user@" + tenant, Roles: []string{"reader", "writer"}}}
}

// Do sends a signed request; extra headers are name/value pairs.
func (c *Client) Do(method, path string, body any, headers ...string) Response {
	c.s.t.Helper()
	u, err := url.Parse(path)
	if err != nil {
		c.s.t.Fatal(err)
	}
	p := u.Path // the worker verifies the decoded path, as the proxy signs it
	sig := c.Codec.Sign(tenantctx.Context{Identity: c.ID, RequestID: ragplane.NewRequestID(), IssuedAt: time.Now()}, method, p)
	return Send(c.s.t, method, c.Base+path, body, append([]string{tenantctx.Header, sig}, headers...)...)
}

const secretKey = catalogtest.SecretKey
