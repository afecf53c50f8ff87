package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// admin calls the control plane's admin API.
type admin struct {
	base  string
	token string
	hc    *http.Client
}

// call sends body as JSON with bearer and decodes a response of status want into out.
func (a *admin) call(ctx context.Context, method, path, bearer string, body, out any, want int) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// benchLimits are the limits of the benchmark's own tenants: rate limits and the concurrency cap
// far above what the probe sends, so the only thing that refuses a probe is max_request_bytes.
func benchLimits(maxRequestBytes int) map[string]any {
	return map[string]any{
		"requests_per_second": 100000, "burst": 100000, "queries_per_hour": 100000000,
		"max_concurrent_requests": 10000, "max_request_bytes": maxRequestBytes,
	}
}

// createTenant creates a tenant through the admin API (provisioned like any other, a database of
// its own on the local PostgreSQL), waits for it to be active, and returns an API key for it.
func (a *admin) createTenant(ctx context.Context, id string, timeout time.Duration) (apiKey string, err error) {
	body := map[string]any{"id": id, "name": "Bench " + id, "email": id + "@bench.example",
		"plan": "enterprise", "limits": benchLimits(relaxedBytes)}
	if err := a.call(ctx, http.MethodPost, "/v1/tenants", a.token, body, nil, http.StatusAccepted); err != nil {
		return "", err
	}
	deadline := time.Now().Add(timeout)
	for {
		var t struct {
			Status       string `json:"status"`
			StatusReason string `json:"status_reason"`
		}
		if err := a.call(ctx, http.MethodGet, "/v1/tenants/"+id, a.token, nil, &t, http.StatusOK); err != nil {
			return "", err
		}
		if t.Status == "active" {
			break
		}
		if t.Status == "failed" {
			return "", fmt.Errorf("tenant %s failed to provision: %s", id, t.StatusReason)
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("tenant %s not active after %s (status %s)", id, timeout, t.Status)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return "", err
		}
	}
	var k struct {
		Key string `json:"key"`
	}
	if err := a.call(ctx, http.MethodPost, "/v1/tenants/"+id+"/keys", a.token, map[string]any{"name": "bench"}, &k, http.StatusCreated); err != nil {
		return "", err
	}
	return k.Key, nil
}

// mintToken exchanges an API key for a tenant JWT (POST /v1/auth/token), valid for an hour.
func (a *admin) mintToken(ctx context.Context, apiKey string) (string, error) {
	var t struct {
		AccessToken string `json:"access_token"`
	}
	body := map[string]any{"user": "bench@bench.example", "expires_in": 3600}
	if err := a.call(ctx, http.MethodPost, "/v1/auth/token", apiKey, body, &t, http.StatusOK); err != nil {
		return "", err
	}
	return t.AccessToken, nil
}

// setMaxRequestBytes is the change being measured: one PATCH of one tenant's limits.
func (a *admin) setMaxRequestBytes(ctx context.Context, id string, n int) error {
	return a.call(ctx, http.MethodPatch, "/v1/tenants/"+id, a.token, map[string]any{"limits": map[string]any{"max_request_bytes": n}}, nil, http.StatusOK)
}

// backend is the worker the proxy forwards to: it answers 200 to anything. It registers with each
// control plane the way dataplane workers do (PUT /v1/workers/{id} with the worker token, renewed
// as a heartbeat, DELETE at the end).
type backend struct {
	addr string
	srv  *http.Server
}

func startBackend() (*backend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &backend{addr: ln.Addr().String(), srv: srv}, nil
}

func (b *backend) close() { _ = b.srv.Close() }

// workerToken is the bearer a worker registers with: HMAC-SHA256 of a fixed label under the
// internal key (internal/tenantctx.WorkerToken; copied so that the benchmark can register with a
// control plane built from another revision).
func workerToken(internalKey string) string {
	m := hmac.New(sha256.New, []byte(internalKey))
	m.Write([]byte("ragplane worker registration v1"))
	return hex.EncodeToString(m.Sum(nil))
}

// register keeps the backend registered with the control plane at a until the returned stop is
// called; the first registration must succeed.
func (b *backend) register(ctx context.Context, a *admin, internalKey, id string) (stop func(), err error) {
	tok := workerToken(internalKey)
	put := func(ctx context.Context) error {
		return a.call(ctx, http.MethodPut, "/v1/workers/"+id, tok, map[string]string{"addr": b.addr}, nil, http.StatusOK)
	}
	if err := put(ctx); err != nil {
		return nil, fmt.Errorf("register the backend as a worker: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = put(ctx)
			}
		}
	}()
	return func() {
		cancel()
		<-done
		_ = a.call(context.Background(), http.MethodDelete, "/v1/workers/"+id, tok, nil, nil, http.StatusNoContent)
	}, nil
}

// Body sizes of the probe: a request of probeBytes passes under relaxedBytes and is refused with
// 413 under restrictedBytes (the smallest max_request_bytes the catalog accepts).
const (
	probeBytes      = 4096
	relaxedBytes    = 1 << 20
	restrictedBytes = 1024
)

// prober sends the probe request to a proxy with a tenant's token.
type prober struct {
	hc   *http.Client
	url  string
	body []byte
}

func newProber(proxyAddr string) *prober {
	body := []byte(`{"query":"` + strings.Repeat("x", probeBytes-len(`{"query":""}`)) + `"}`)
	return &prober{
		hc: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second, DisableCompression: true,
		}},
		url:  "http://" + proxyAddr + "/v1/search",
		body: body,
	}
}

// status is the proxy's answer to the probe, or 0 if there was none (not listening yet).
func (p *prober) status(ctx context.Context, token string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(p.body))
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.hc.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// readyz is the status of the proxy's /readyz, or 0.
func (p *prober) readyz(ctx context.Context) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(p.url, "/v1/search")+"/readyz", nil)
	if err != nil {
		return 0
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func (p *prober) close() { p.hc.CloseIdleConnections() }

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
