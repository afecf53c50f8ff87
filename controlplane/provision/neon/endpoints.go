package neon

import (
	"context"
	"net/http"
	"net/url"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/controlplane/provision"
)

// Endpoint is a project's compute endpoint, as Neon's API describes it (the fields ragplane reads).
type Endpoint struct {
	// ID has an ep- prefix.
	ID string `json:"id"`
	// Type is "read_write" or "read_only".
	Type string `json:"type"`
	// CurrentState is "init", "active" or "idle" (suspended).
	CurrentState string `json:"current_state"`
}

// ListEndpoints returns the project's compute endpoints (GET /projects/{project_id}/endpoints).
func (c *Client) ListEndpoints(ctx context.Context, projectID string) ([]Endpoint, error) {
	var out struct {
		Endpoints []Endpoint `json:"endpoints"`
	}
	err := c.do(ctx, call{op: "list endpoints", method: http.MethodGet,
		path: "/projects/" + url.PathEscape(projectID) + "/endpoints", idempotent: true}, &out)
	return out.Endpoints, err
}

// SuspendEndpoint suspends a compute endpoint (POST .../endpoints/{endpoint_id}/suspend). Neon
// starts a suspended compute again when a connection arrives.
func (c *Client) SuspendEndpoint(ctx context.Context, projectID, endpointID string) (Endpoint, error) {
	return c.endpointAction(ctx, "suspend", projectID, endpointID)
}

// StartEndpoint starts a compute endpoint (POST .../endpoints/{endpoint_id}/start).
func (c *Client) StartEndpoint(ctx context.Context, projectID, endpointID string) (Endpoint, error) {
	return c.endpointAction(ctx, "start", projectID, endpointID)
}

func (c *Client) endpointAction(ctx context.Context, action, projectID, endpointID string) (Endpoint, error) {
	var out struct {
		Endpoint   Endpoint    `json:"endpoint"`
		Operations []Operation `json:"operations"`
	}
	// Suspending or starting twice leaves the same state: safe to retry.
	err := c.do(ctx, call{op: action + " endpoint", method: http.MethodPost,
		path:       "/projects/" + url.PathEscape(projectID) + "/endpoints/" + url.PathEscape(endpointID) + "/" + action,
		idempotent: true}, &out)
	return out.Endpoint, err
}

// Suspend suspends the tenant's read-write compute endpoints (provision.Sleeper). Its next
// connection starts a compute again: Neon's scale-to-zero wakes it, no API call needed.
func (p *Provisioner) Suspend(ctx context.Context, tenant ragplane.TenantID, projectID string) error {
	return p.eachEndpoint(ctx, projectID, p.client.SuspendEndpoint)
}

// Start starts the tenant's read-write compute endpoints (provision.Sleeper).
func (p *Provisioner) Start(ctx context.Context, tenant ragplane.TenantID, projectID string) error {
	return p.eachEndpoint(ctx, projectID, p.client.StartEndpoint)
}

func (p *Provisioner) eachEndpoint(ctx context.Context, projectID string, act func(context.Context, string, string) (Endpoint, error)) error {
	eps, err := p.client.ListEndpoints(ctx, projectID)
	if err != nil {
		return err
	}
	for _, ep := range eps {
		if ep.Type != "read_write" {
			continue
		}
		if _, err := act(ctx, projectID, ep.ID); err != nil {
			return err
		}
	}
	return nil
}

// Provisioner suspends and starts idle tenants' computes.
var _ provision.Sleeper = (*Provisioner)(nil)
