// Package neon provisions a Neon project per tenant through Neon's API v2: the strongest isolation
// Neon offers, since each tenant gets its own compute, storage and roles. The project is named after
// the tenant, so a control plane that crashed between creating a project and recording its id finds
// the project again instead of creating a second one.
package neon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/tenantdb"
	"github.com/ragplane/ragplane/controlplane/provision"
	"github.com/ragplane/ragplane/internal/pgerr"
)

// Config configures a Provisioner (and a Client). Zero fields get the defaults named.
type Config struct {
	// APIKey authenticates with Neon's API. It is a secret: never logged, never in an error.
	APIKey string
	// BaseURL is Neon's API (default DefaultBaseURL).
	BaseURL string
	// OrgID is the Neon organization new projects belong to; required with a personal API key,
	// inferred by Neon from an organization API key.
	OrgID string
	// PGVersion is the PostgreSQL major version of new projects (default 17).
	PGVersion int
	// DatabaseName and RoleName are the database and role whose connection URI Provision returns
	// (defaults "neondb" and "neondb_owner", the ones Neon creates with a project).
	DatabaseName string
	RoleName     string
	// PollInterval is how often running operations are polled (default 1s).
	PollInterval time.Duration
	// OperationTimeout bounds the wait for a project's operations (default 10m).
	OperationTimeout time.Duration
	// MaxElapsed bounds the retries of one API call, and of connecting to a new database
	// (default 2m).
	MaxElapsed time.Duration
	// RetryInitialInterval and RetryMaxInterval shape the exponential backoff, with jitter, between
	// retries (defaults 500ms and 30s). A longer Retry-After from Neon wins.
	RetryInitialInterval time.Duration
	RetryMaxInterval     time.Duration
	// HTTPClient makes the API calls (default: a client with a 30s timeout).
	HTTPClient *http.Client
	// Logger receives logs; nil discards them.
	Logger *slog.Logger
}

// withDefaults returns cfg with zero fields set to their defaults.
func (cfg Config) withDefaults() Config {
	cfg.BaseURL = cmp.Or(cfg.BaseURL, DefaultBaseURL)
	cfg.PGVersion = cmp.Or(cfg.PGVersion, 17)
	cfg.DatabaseName = cmp.Or(cfg.DatabaseName, "neondb")
	cfg.RoleName = cmp.Or(cfg.RoleName, "neondb_owner")
	cfg.PollInterval = cmp.Or(cfg.PollInterval, time.Second)
	cfg.OperationTimeout = cmp.Or(cfg.OperationTimeout, 10*time.Minute)
	cfg.MaxElapsed = cmp.Or(cfg.MaxElapsed, 2*time.Minute)
	cfg.RetryInitialInterval = cmp.Or(cfg.RetryInitialInterval, 500*time.Millisecond)
	cfg.RetryMaxInterval = cmp.Or(cfg.RetryMaxInterval, max(30*time.Second, cfg.RetryInitialInterval))
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// validate checks a config that has its defaults.
func (cfg Config) validate() error {
	if cfg.APIKey == "" {
		return ragplane.FieldErrorf("neon.api_key", "A Neon API key is required.")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return ragplane.FieldErrorf("neon.base_url", "The Neon API URL must be an http(s) URL.")
	}
	if cfg.PGVersion < 14 {
		return ragplane.FieldErrorf("neon.pg_version", "The PostgreSQL version must be 14 or later.")
	}
	if cfg.PollInterval < 0 || cfg.OperationTimeout < 0 || cfg.MaxElapsed < 0 ||
		cfg.RetryInitialInterval < 0 || cfg.RetryMaxInterval < cfg.RetryInitialInterval {
		return ragplane.FieldErrorf("neon", "Neon durations must not be negative, and the maximum retry interval must not be below the initial one.")
	}
	return nil
}

// Provisioner gives each tenant a Neon project. It implements provision.Provisioner.
type Provisioner struct {
	client *Client
	cfg    Config
	logger *slog.Logger
}

// New returns a Provisioner. It returns EINVALID if cfg has no API key or a bad value.
func New(cfg Config) (*Provisioner, error) {
	client, err := NewClient(cfg)
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Provisioner{client: client, cfg: cfg, logger: cfg.Logger.With("component", "neon")}, nil
}

// ProjectName is the name of a tenant's Neon project, by which an interrupted attempt's project
// is found again.
func ProjectName(tenant ragplane.TenantID) string { return "ragplane-" + string(tenant) }

// Provision finds or creates the tenant's project, records its id, waits for the project's
// operations, and migrates the tenant schema in its database. In order: a recorded req.ProjectID
// that still exists is used; else the oldest project named ProjectName(req.TenantID); else a new
// project in req.Region. record is called once per call, with the id as soon as it is known (also
// when it is req.ProjectID), before waiting for anything. It returns EINVALID for a bad request (or
// a region Neon refuses) and EUNAVAILABLE for failures worth retrying; record's error is returned
// wrapped.
func (p *Provisioner) Provision(ctx context.Context, req provision.Request, record func(projectID string) error) (provision.Database, error) {
	if err := req.TenantID.Validate(); err != nil {
		return provision.Database{}, err
	}
	if req.Pooled {
		// A shared Neon project for pools is not built yet: pooled tenants need the local provider.
		return provision.Database{}, ragplane.FieldErrorf("isolation_tier", "The pooled tier is not available on Neon; use the local provider or the siloed tier.")
	}
	// tenantdb.Migrate checks this too, but only after a project has been paid for.
	if req.EmbeddingDimension < 1 || req.EmbeddingDimension > 2000 {
		return provision.Database{}, ragplane.FieldErrorf("embedding_dimension", "The embedding dimension must be between 1 and 2000.")
	}
	logger := p.logger.With("tenant_id", req.TenantID)

	projectID, opIDs, err := p.ensureProject(ctx, req, logger)
	if err != nil {
		return provision.Database{}, err
	}
	// Record before any slow wait, so that a crash from here on resumes with this project.
	if err := record(projectID); err != nil {
		return provision.Database{}, fmt.Errorf("neon: record project %s: %w", projectID, err)
	}
	if err := p.waitOperations(ctx, projectID, opIDs); err != nil {
		return provision.Database{}, err
	}
	uri, err := p.client.ConnectionURI(ctx, projectID, p.cfg.DatabaseName, p.cfg.RoleName)
	if err != nil {
		return provision.Database{}, err
	}
	version, err := p.migrate(ctx, projectID, uri, req.EmbeddingDimension, string(req.TenantID))
	if err != nil {
		return provision.Database{}, err
	}
	logger.InfoContext(ctx, "neon project ready", "project_id", projectID, "schema_version", version)
	return provision.Database{ProjectID: projectID, URL: uri, SchemaVersion: version}, nil
}

// ensureProject returns the tenant's project id and, for a project it has just created, the ids of
// the operations bringing it up (nil otherwise: the project's running operations are looked up).
func (p *Provisioner) ensureProject(ctx context.Context, req provision.Request, logger *slog.Logger) (string, []string, error) {
	if req.ProjectID != "" {
		_, err := p.client.GetProject(ctx, req.ProjectID)
		if err == nil {
			return req.ProjectID, nil, nil
		} else if ragplane.ErrorCode(err) != ragplane.ENOTFOUND {
			return "", nil, err
		}
		logger.WarnContext(ctx, "recorded neon project is gone; finding or creating another", "project_id", req.ProjectID)
	}

	name := ProjectName(req.TenantID)
	type result struct {
		id    string
		opIDs []string
	}
	// The client retries what is safe to retry. A create that failed without saying whether it
	// took effect (5xx, network) may have created the project all the same, so it is retried here,
	// where each attempt looks the project up first.
	res, err := backoff.Retry(ctx, func() (result, error) {
		projects, err := p.findProjects(ctx, name)
		if err != nil {
			return result{}, backoff.Permanent(err)
		}
		if len(projects) > 0 {
			if len(projects) > 1 {
				logger.WarnContext(ctx, "several neon projects carry the tenant's name; using the oldest", "count", len(projects))
			}
			logger.InfoContext(ctx, "reusing neon project", "project_id", projects[0].ID)
			return result{id: projects[0].ID}, nil
		}
		created, err := p.client.CreateProject(ctx, CreateProjectRequest{
			Name: name, RegionID: req.Region, PGVersion: p.cfg.PGVersion, OrgID: p.cfg.OrgID,
		})
		var ce *codedError
		if errors.As(err, &ce) && ce.ambiguous {
			logger.WarnContext(ctx, "neon create project failed without an answer; looking it up before trying again")
			return result{}, err
		} else if err != nil {
			return result{}, backoff.Permanent(err)
		}
		logger.InfoContext(ctx, "neon project created", "project_id", created.Project.ID, "region", created.Project.RegionID)
		var ids []string
		for _, op := range created.Operations {
			ids = append(ids, op.ID)
		}
		return result{id: created.Project.ID, opIDs: ids}, nil
	}, backoff.WithBackOff(p.client.newBackOff()), backoff.WithMaxElapsedTime(p.cfg.MaxElapsed))
	if err != nil {
		return "", nil, interrupted("find or create project", err)
	}
	return res.id, res.opIDs, nil
}

// findProjects returns the projects named exactly name, oldest first. Neon's search also matches
// other names containing name, and ids.
func (p *Provisioner) findProjects(ctx context.Context, name string) ([]Project, error) {
	projects, err := p.client.ListProjects(ctx, name, p.cfg.OrgID)
	if err != nil {
		return nil, err
	}
	projects = slices.DeleteFunc(projects, func(pr Project) bool { return pr.Name != name })
	slices.SortFunc(projects, func(a, b Project) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return projects, nil
}

// waitOperations waits until the operations opIDs of the project are done; with opIDs nil, those
// of its recent operations that are still running. A failed operation is an EUNAVAILABLE error:
// the project stays recorded and the next attempt resumes with it. Operations that failed before
// this call (opIDs nil) are history and are not waited on.
func (p *Provisioner) waitOperations(ctx context.Context, projectID string, opIDs []string) error {
	if opIDs == nil {
		ops, err := p.client.ListOperations(ctx, projectID)
		if err != nil {
			return err
		}
		for _, op := range ops {
			if !op.Status.Done() {
				opIDs = append(opIDs, op.ID)
			}
		}
	}
	errRunning := errors.New("operations running")
	pending := opIDs
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		var still []string
		for _, id := range pending {
			op, err := p.client.GetOperation(ctx, projectID, id)
			if err != nil {
				return struct{}{}, backoff.Permanent(err)
			}
			if op.Status.Failed() {
				return struct{}{}, backoff.Permanent(ragplane.Errorf(ragplane.EUNAVAILABLE,
					"neon operation %s (%s) of project %s ended %s", op.ID, op.Action, projectID, op.Status))
			} else if !op.Status.Done() {
				still = append(still, id)
			}
		}
		if pending = still; len(pending) > 0 {
			return struct{}{}, errRunning
		}
		return struct{}{}, nil
	}, backoff.WithBackOff(backoff.NewConstantBackOff(p.cfg.PollInterval)), backoff.WithMaxElapsedTime(p.cfg.OperationTimeout))
	if errors.Is(err, errRunning) {
		return ragplane.Errorf(ragplane.EUNAVAILABLE, "neon: %d operations of project %s still running after %s", len(pending), projectID, p.cfg.OperationTimeout)
	}
	return interrupted("wait for operations", err)
}

// migrate connects to the tenant database and brings it to the latest tenant schema.
func (p *Provisioner) migrate(ctx context.Context, projectID, uri string, dimension int, tenant string) (int, error) {
	ccfg, err := pgx.ParseConfig(uri)
	if err != nil {
		// The parse error would quote the URI.
		return 0, ragplane.Errorf(ragplane.EUNAVAILABLE, "neon: the connection URI of project %s cannot be parsed", projectID)
	}
	// A new project's compute may still be starting, or its host not yet resolvable.
	conn, err := backoff.Retry(ctx, func() (*pgx.Conn, error) {
		conn, err := pgx.ConnectConfig(ctx, ccfg)
		if strings.HasPrefix(pgerr.Code(err), "28") {
			return nil, backoff.Permanent(err) // authentication failed: waiting will not help
		}
		return conn, err
	}, backoff.WithBackOff(p.client.newBackOff()), backoff.WithMaxElapsedTime(p.cfg.MaxElapsed))
	if err != nil {
		return 0, newCodedError(ragplane.EUNAVAILABLE, err, "neon: cannot connect to the database of project %s", projectID)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	version, err := tenantdb.MigrateSilo(ctx, conn, dimension, tenant)
	if err != nil {
		return 0, fmt.Errorf("neon: migrate the database of project %s: %w", projectID, err)
	}
	return version, nil
}

// Deprovision deletes the tenant's project. With projectID empty it deletes every project named
// after the tenant, if any. A project already gone is success. Neon answers 423 Locked while the
// project's operations run; the client retries those within Config.MaxElapsed.
func (p *Provisioner) Deprovision(ctx context.Context, tenant ragplane.TenantID, projectID string) error {
	logger := p.logger.With("tenant_id", tenant)
	ids := []string{projectID}
	if projectID == "" {
		if err := tenant.Validate(); err != nil {
			return err
		}
		projects, err := p.findProjects(ctx, ProjectName(tenant))
		if err != nil {
			return err
		}
		ids = ids[:0]
		for _, pr := range projects {
			ids = append(ids, pr.ID)
		}
	}
	for _, id := range ids {
		err := p.client.DeleteProject(ctx, id)
		if err != nil && ragplane.ErrorCode(err) != ragplane.ENOTFOUND {
			return err
		}
		logger.InfoContext(ctx, "neon project deleted", "project_id", id, "existed", err == nil)
	}
	return nil
}

// interrupted gives an error without a code (a context's, returned by backoff.Retry when the
// context ends between attempts) the code EUNAVAILABLE.
func interrupted(what string, err error) error {
	var rerr *ragplane.Error
	if err == nil || errors.As(err, &rerr) {
		return err
	}
	return newCodedError(ragplane.EUNAVAILABLE, err, "neon %s: interrupted", what)
}
