package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// client talks to the admin API as an operator and to the tenant API as the tenant's users do:
// an API key exchanged for a short-lived token, requests through the proxy.
type client struct {
	http       *http.Client
	adminURL   string
	apiURL     string
	adminToken string

	mu       sync.Mutex
	key      string
	token    string
	tokenExp time.Time
}

// apiError is a response that was not 2xx.
type apiError struct {
	Status int
	Body   string
}

func (e *apiError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Body) }

// do sends a JSON request and decodes a JSON answer into out (when not nil). 429 and 503 are
// retried after their Retry-After (at most 10 times); other failures are returned.
func (c *client) do(ctx context.Context, method, u, bearer string, body, out any, headers ...string) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(payload))
		if err != nil {
			return err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return err
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && attempt < 10 {
			wait := time.Duration(attempt+1) * 200 * time.Millisecond
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			continue
		}
		if resp.StatusCode/100 != 2 {
			return &apiError{Status: resp.StatusCode, Body: string(data)}
		}
		if out != nil {
			return json.Unmarshal(data, out)
		}
		return nil
	}
}

func (c *client) admin(ctx context.Context, method, path string, body, out any) error {
	return c.do(ctx, method, c.adminURL+path, c.adminToken, body, out)
}

// tenantStatus is the part of a tenant record the run reads.
type tenantStatus struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	StatusReason string `json:"status_reason"`
}

// createTenant creates the tenant and waits until it is active.
func (c *client) createTenant(ctx context.Context, id, plan string, settings, limits map[string]any) error {
	body := map[string]any{"id": id, "name": "Retrieval evaluation " + id, "email": id + "@ragplane.invalid", "plan": plan}
	if len(settings) > 0 {
		body["settings"] = settings
	}
	if len(limits) > 0 {
		body["limits"] = limits
	}
	var t tenantStatus
	if err := c.admin(ctx, "POST", "/v1/tenants", body, &t); err != nil {
		return fmt.Errorf("create tenant: %w", err)
	}
	return c.waitTenant(ctx, id, 2*time.Minute, "active")
}

// waitTenant polls the tenant until its status is want (or failed).
func (c *client) waitTenant(ctx context.Context, id string, timeout time.Duration, want string) error {
	deadline := time.Now().Add(timeout)
	for {
		var t tenantStatus
		if err := c.admin(ctx, "GET", "/v1/tenants/"+url.PathEscape(id), nil, &t); err != nil {
			return err
		}
		switch {
		case t.Status == want:
			return nil
		case t.Status == "failed":
			return fmt.Errorf("tenant %s failed: %s", id, t.StatusReason)
		case time.Now().After(deadline):
			return fmt.Errorf("tenant %s is still %s after %s", id, t.Status, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// deleteTenant deletes the tenant (its database is dropped) and waits for it.
func (c *client) deleteTenant(ctx context.Context, id string) error {
	if err := c.admin(ctx, "DELETE", "/v1/tenants/"+url.PathEscape(id), nil, nil); err != nil {
		return err
	}
	return c.waitTenant(ctx, id, time.Minute, "deleted")
}

// createKey makes the tenant an API key; tokens are then exchanged for it.
func (c *client) createKey(ctx context.Context, tenant string) error {
	var k struct {
		Key string `json:"key"`
	}
	if err := c.admin(ctx, "POST", "/v1/tenants/"+url.PathEscape(tenant)+"/keys", map[string]any{"name": "eval"}, &k); err != nil {
		return fmt.Errorf("create API key: %w", err)
	}
	c.mu.Lock()
	c.key = k.Key
	c.mu.Unlock()
	return nil
}

// bearer returns a tenant token, exchanging the API key for a new one when the last is within a
// minute of expiring.
func (c *client) bearer(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && time.Until(c.tokenExp) > time.Minute {
		return c.token, nil
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := c.do(ctx, "POST", c.adminURL+"/v1/auth/token", c.key, map[string]any{"user": "eval@ragplane.invalid"}, &tok); err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	c.token, c.tokenExp = tok.AccessToken, time.Now().Add(time.Duration(tok.ExpiresIn)*time.Second)
	return c.token, nil
}

// tenant sends a tenant API request through the proxy.
func (c *client) tenant(ctx context.Context, method, path string, body, out any, headers ...string) error {
	tok, err := c.bearer(ctx)
	if err != nil {
		return err
	}
	return c.do(ctx, method, c.apiURL+path, tok, body, out, headers...)
}

// waitTenantAPI waits until the proxy knows the new tenant (its policy arrives over xDS).
func (c *client) waitTenantAPI(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.tenant(ctx, "GET", "/v1/documents?limit=1", nil, nil)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// newDocument is one document of POST /v1/documents/batch.
type newDocument struct {
	Title    string         `json:"title"`
	Content  string         `json:"content"`
	Metadata map[string]any `json:"metadata"`
}

// ingested is what the batch route answers for one document.
type ingested struct {
	ID         string `json:"id"`
	ChunkCount int    `json:"chunk_count"`
	Duplicate  bool   `json:"duplicate"`
}

// ingestBatch writes docs in one request; the Idempotency-Key makes a retried batch count once.
func (c *client) ingestBatch(ctx context.Context, docs []newDocument, idemKey string) ([]ingested, error) {
	var out struct {
		Documents []ingested `json:"documents"`
	}
	if err := c.tenant(ctx, "POST", "/v1/documents/batch", map[string]any{"documents": docs}, &out, "Idempotency-Key", idemKey); err != nil {
		return nil, err
	}
	if len(out.Documents) != len(docs) {
		return nil, fmt.Errorf("batch of %d documents answered %d", len(docs), len(out.Documents))
	}
	return out.Documents, nil
}

// searchHit is the part of a search result the run reads.
type searchHit struct {
	DocumentID string  `json:"document_id"`
	ChunkID    string  `json:"chunk_id"`
	Score      float64 `json:"score"`
}

// searchResponse is POST /v1/search's answer.
type searchResponse struct {
	Results       []searchHit `json:"results"`
	RetrievalMode string      `json:"retrieval_mode"`
	GraphFallback bool        `json:"graph_fallback"`
}

func (c *client) search(ctx context.Context, query, mode string, topK int, override map[string]any) (searchResponse, error) {
	var out searchResponse
	body := map[string]any{"query": query, "retrieval_mode": mode, "top_k": topK}
	if len(override) > 0 {
		body["override_config"] = override
	}
	err := c.tenant(ctx, "POST", "/v1/search", body, &out)
	return out, err
}

// embedding counts the tenant's documents still being embedded in the background.
func (c *client) embedding(ctx context.Context) (int, error) {
	n, cursor := 0, ""
	for {
		var page struct {
			Items []struct {
				Status string `json:"status"`
			} `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		path := "/v1/documents?limit=200"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		if err := c.tenant(ctx, "GET", path, nil, &page); err != nil {
			return 0, err
		}
		for _, d := range page.Items {
			if d.Status == "embedding" {
				n++
			}
		}
		if page.NextCursor == "" {
			return n, nil
		}
		cursor = page.NextCursor
	}
}
