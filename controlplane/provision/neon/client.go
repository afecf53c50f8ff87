package neon

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/ragplane/ragplane"
)

// DefaultBaseURL is Neon's API v2.
const DefaultBaseURL = "https://console.neon.tech/api/v2"

// listPageSize is the page size asked of list endpoints (Neon allows up to 400).
const listPageSize = 100

// Client calls Neon's API v2 (https://api-docs.neon.tech/reference). Every call retries 429 (waiting
// at least as long as Retry-After asks), 423 Locked, 5xx and network errors with exponential backoff
// and jitter, bounded by the context and Config.MaxElapsed; CreateProject retries only responses that
// prove nothing was created (429, 423). Errors are *ragplane.Error codes in the chain: EUNAVAILABLE
// for transient failures and exhausted retries, ENOTFOUND for 404, EUNAUTHORIZED/EFORBIDDEN for
// 401/403, ECONFLICT for 409, EINVALID for other 4xx. They never carry the API key or a
// connection URI.
type Client struct {
	base       *url.URL
	apiKey     string
	http       *http.Client
	logger     *slog.Logger
	maxElapsed time.Duration
	initial    time.Duration
	maxBackoff time.Duration
}

// NewClient returns a client for the API at cfg.BaseURL authenticated with cfg.APIKey. It uses the
// API and retry fields of cfg; zero fields get the same defaults as New.
func NewClient(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	base, _ := url.Parse(cfg.BaseURL) // validated
	return &Client{
		base:       base,
		apiKey:     cfg.APIKey,
		http:       cfg.HTTPClient,
		logger:     cfg.Logger.With("component", "neon"),
		maxElapsed: cfg.MaxElapsed,
		initial:    cfg.RetryInitialInterval,
		maxBackoff: cfg.RetryMaxInterval,
	}, nil
}

// Project is a Neon project, as listed or read.
type Project struct {
	// ID is Neon's project id, such as "misty-fog-12345678".
	ID string `json:"id"`
	// Name is the project's name; Neon does not require names to be unique.
	Name string `json:"name"`
	// RegionID is where the project lives, such as "aws-us-east-2".
	RegionID string `json:"region_id"`
	// PGVersion is the project's PostgreSQL major version.
	PGVersion int `json:"pg_version"`
	// OrgID is the organization owning the project, if any.
	OrgID string `json:"org_id,omitempty"`
	// CreatedAt is when the project was created.
	CreatedAt time.Time `json:"created_at"`
}

// OperationStatus is the status of a Neon operation.
type OperationStatus string

// Operation statuses, as documented by Neon.
const (
	OpScheduling OperationStatus = "scheduling"
	OpRunning    OperationStatus = "running"
	OpFinished   OperationStatus = "finished"
	OpFailed     OperationStatus = "failed"
	OpError      OperationStatus = "error"
	OpCancelling OperationStatus = "cancelling"
	OpCancelled  OperationStatus = "cancelled"
	OpSkipped    OperationStatus = "skipped"
)

// Done reports whether the operation will not change any more.
func (s OperationStatus) Done() bool {
	switch s {
	case OpFinished, OpFailed, OpError, OpCancelled, OpSkipped:
		return true
	}
	return false
}

// Failed reports whether the operation ended in failure.
func (s OperationStatus) Failed() bool { return s == OpFailed || s == OpError }

// Operation is an asynchronous Neon operation, such as creating a timeline or starting a compute.
type Operation struct {
	// ID is the operation's id (a UUID).
	ID string `json:"id"`
	// ProjectID is the project the operation works on.
	ProjectID string `json:"project_id"`
	// Action is what the operation does, such as "create_timeline" or "start_compute".
	Action string `json:"action"`
	// Status is where the operation is.
	Status OperationStatus `json:"status"`
}

// CreateProjectRequest is the body of POST /projects: {"project": {...}}.
type CreateProjectRequest struct {
	// Name is the project's name.
	Name string `json:"name"`
	// RegionID is the region; empty lets Neon choose its default.
	RegionID string `json:"region_id,omitempty"`
	// PGVersion is the PostgreSQL major version; 0 lets Neon choose.
	PGVersion int `json:"pg_version,omitempty"`
	// OrgID is the organization to create the project in; required with personal API keys.
	OrgID string `json:"org_id,omitempty"`
}

// CreatedProject is the part of POST /projects' answer that provisioning needs. The answer's
// connection_uris carry passwords; they are deliberately not decoded, so that they cannot be
// logged by accident. Use ConnectionURI when a URI is needed.
type CreatedProject struct {
	// Project is the new project.
	Project Project `json:"project"`
	// Operations are the operations that are bringing the project up.
	Operations []Operation `json:"operations"`
	// Roles are the project's roles (names only).
	Roles []struct {
		Name string `json:"name"`
	} `json:"roles"`
	// Databases are the project's databases.
	Databases []struct {
		Name      string `json:"name"`
		OwnerName string `json:"owner_name"`
	} `json:"databases"`
}

// CreateProject creates a project. A 5xx or network error is not retried, because the project may
// have been created anyway: the caller looks the project up by name before trying again.
func (c *Client) CreateProject(ctx context.Context, req CreateProjectRequest) (CreatedProject, error) {
	var out CreatedProject
	body := struct {
		Project CreateProjectRequest `json:"project"`
	}{req}
	err := c.do(ctx, call{op: "create project", method: http.MethodPost, path: "/projects", body: body}, &out)
	if err == nil && out.Project.ID == "" {
		err = ragplane.Errorf(ragplane.EUNAVAILABLE, "neon create project: the answer has no project id")
	}
	return out, err
}

// ListProjects returns the projects whose name or id contains search (Neon's partial match),
// following the pagination cursor to the end. orgID may be empty.
func (c *Client) ListProjects(ctx context.Context, search, orgID string) ([]Project, error) {
	var all []Project
	cursor := ""
	for {
		q := url.Values{"limit": {strconv.Itoa(listPageSize)}}
		if search != "" {
			q.Set("search", search)
		}
		if orgID != "" {
			q.Set("org_id", orgID)
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page struct {
			Projects   []Project `json:"projects"`
			Pagination *struct {
				Cursor string `json:"cursor"`
			} `json:"pagination"`
		}
		if err := c.do(ctx, call{op: "list projects", method: http.MethodGet, path: "/projects", query: q, idempotent: true}, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Projects...)
		// Neon's cursor is the last item of the page; a short page is the last one.
		if len(page.Projects) < listPageSize || page.Pagination == nil || page.Pagination.Cursor == "" || page.Pagination.Cursor == cursor {
			return all, nil
		}
		cursor = page.Pagination.Cursor
	}
}

// GetProject reads a project; ENOTFOUND if there is none with that id.
func (c *Client) GetProject(ctx context.Context, projectID string) (Project, error) {
	var out struct {
		Project Project `json:"project"`
	}
	err := c.do(ctx, call{op: "get project", method: http.MethodGet, path: "/projects/" + url.PathEscape(projectID), idempotent: true}, &out)
	return out.Project, err
}

// ListOperations returns the project's most recent operations (one page, newest first).
func (c *Client) ListOperations(ctx context.Context, projectID string) ([]Operation, error) {
	var out struct {
		Operations []Operation `json:"operations"`
	}
	q := url.Values{"limit": {strconv.Itoa(listPageSize)}}
	err := c.do(ctx, call{op: "list operations", method: http.MethodGet, path: "/projects/" + url.PathEscape(projectID) + "/operations", query: q, idempotent: true}, &out)
	return out.Operations, err
}

// GetOperation reads one operation of a project.
func (c *Client) GetOperation(ctx context.Context, projectID, operationID string) (Operation, error) {
	var out struct {
		Operation Operation `json:"operation"`
	}
	path := "/projects/" + url.PathEscape(projectID) + "/operations/" + url.PathEscape(operationID)
	err := c.do(ctx, call{op: "get operation", method: http.MethodGet, path: path, idempotent: true}, &out)
	return out.Operation, err
}

// ConnectionURI returns a connection URI for database as role on the project's default branch.
// The URI holds a password: it is a secret.
func (c *Client) ConnectionURI(ctx context.Context, projectID, database, role string) (string, error) {
	var out struct {
		URI string `json:"uri"`
	}
	q := url.Values{"database_name": {database}, "role_name": {role}}
	err := c.do(ctx, call{op: "get connection uri", method: http.MethodGet, path: "/projects/" + url.PathEscape(projectID) + "/connection_uri", query: q, idempotent: true}, &out)
	if err == nil && out.URI == "" {
		err = ragplane.Errorf(ragplane.EUNAVAILABLE, "neon get connection uri: the answer has no uri")
	}
	return out.URI, err
}

// DeleteProject deletes a project, retrying while Neon answers 423 Locked because operations are
// running on it. It returns ENOTFOUND if the project does not exist.
func (c *Client) DeleteProject(ctx context.Context, projectID string) error {
	return c.do(ctx, call{op: "delete project", method: http.MethodDelete, path: "/projects/" + url.PathEscape(projectID), idempotent: true}, nil)
}
