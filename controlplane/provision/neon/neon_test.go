package neon_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/catalog/tenantdb"
	"github.com/ragplane/ragplane/controlplane/provision"
	"github.com/ragplane/ragplane/controlplane/provision/neon"
	"github.com/ragplane/ragplane/controlplane/provision/neon/neontest"
)

var _ provision.Provisioner = (*neon.Provisioner)(nil)

const dimension = 8

// fault is a fault injected n times.
type fault struct {
	n int
	neontest.Fault
	// retryAfterDateIn, when set, makes Retry-After the HTTP-date that far from injection.
	retryAfterDateIn time.Duration
}

// MustInjectFaults injects faults into s.
func MustInjectFaults(tb testing.TB, s *neontest.Server, faults []fault) {
	tb.Helper()
	for _, f := range faults {
		if f.retryAfterDateIn > 0 {
			f.RetryAfter = time.Now().Add(f.retryAfterDateIn).UTC().Format(http.TimeFormat)
		}
		s.InjectFault(f.n, f.Fault)
	}
}

func TestProvision(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		given  time.Duration // how long each operation of a new project runs
		faults []fault
		// expect checks what is particular to the case; each case also checks that exactly one
		// project exists, that it was recorded, and that its database was migrated.
		expect func(t *testing.T, s *neontest.Server, elapsed time.Duration)
	}{
		{
			name:  "operations running when the id is recorded",
			given: 300 * time.Millisecond,
		},
		{
			name:  "slow operations are polled until finished",
			given: 500 * time.Millisecond,
			expect: func(t *testing.T, s *neontest.Server, elapsed time.Duration) {
				if elapsed < time.Second {
					t.Errorf("Provision returned after %s, before both 500ms operations finished", elapsed)
				}
				if n := s.Count(neontest.RouteGetOperation, http.StatusOK); n < 4 {
					t.Errorf("polled operations %d times, want several", n)
				}
			},
		},
		{
			name:   "429 with Retry-After in seconds",
			faults: []fault{{n: 1, Fault: neontest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "1"}}},
			expect: expectRetryAfterHonoured,
		},
		{
			name:   "429 with Retry-After as an HTTP-date",
			faults: []fault{{n: 1, Fault: neontest.Fault{Status: http.StatusTooManyRequests}, retryAfterDateIn: 2 * time.Second}},
			expect: expectRetryAfterHonoured,
		},
		{
			name:   "server errors are retried",
			faults: []fault{{n: 3, Fault: neontest.Fault{Status: http.StatusServiceUnavailable}}},
		},
		{
			name:   "a create without an answer is not blindly repeated",
			faults: []fault{{n: 1, Fault: neontest.Fault{Status: http.StatusBadGateway, Route: neontest.RouteCreateProject}}},
			expect: func(t *testing.T, s *neontest.Server, _ time.Duration) {
				// list, create (502), list again, create.
				if n := s.Count(neontest.RouteListProjects, http.StatusOK); n != 2 {
					t.Errorf("listed projects %d times, want 2 (once before each create)", n)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, pg := MustServer(t, neontest.Config{OperationDuration: tt.given})
			p := MustProvisioner(t, s, nil)
			MustInjectFaults(t, s, tt.faults)
			tenant := ragplane.TenantID("acme_corp")
			var recorded []string
			var opsAtRecord []neontest.Operation
			record := func(id string) error {
				recorded = append(recorded, id)
				opsAtRecord = s.Operations(id)
				return nil
			}

			start := time.Now()
			db, err := p.Provision(context.Background(), provision.Request{
				TenantID: tenant, Region: "aws-eu-central-1", EmbeddingDimension: dimension,
			}, record)
			elapsed := time.Since(start)
			if err != nil {
				t.Fatalf("Provision: %v", err)
			}

			projects := s.Projects()
			if len(projects) != 1 || s.ProjectsCreated() != 1 {
				t.Fatalf("projects = %+v (created %d), want exactly one", projects, s.ProjectsCreated())
			}
			if projects[0].Name != "ragplane-acme_corp" || projects[0].RegionID != "aws-eu-central-1" || projects[0].PGVersion != 17 {
				t.Errorf("project = %+v, want ragplane-acme_corp in aws-eu-central-1 on PostgreSQL 17", projects[0])
			}
			if !slices.Equal(recorded, []string{projects[0].ID}) || db.ProjectID != projects[0].ID {
				t.Errorf("recorded %v, returned %q; want [%s] and %[3]s", recorded, db.ProjectID, projects[0].ID)
			}
			if tt.given >= 300*time.Millisecond && allFinished(opsAtRecord) {
				t.Errorf("operations when recording = %+v, want the id recorded before they finish", opsAtRecord)
			}
			if !allFinished(s.Operations(db.ProjectID)) {
				t.Errorf("Provision returned with operations %+v", s.Operations(db.ProjectID))
			}
			if db.SchemaVersion != tenantdb.LatestVersion() {
				t.Errorf("schema version = %d, want %d", db.SchemaVersion, tenantdb.LatestVersion())
			}
			MustHaveTables(t, db.URL, "documents", "chunks", "entities", "relations")
			if tt.expect != nil {
				tt.expect(t, s, elapsed)
			}

			if err := p.Deprovision(context.Background(), tenant, db.ProjectID); err != nil {
				t.Fatalf("Deprovision: %v", err)
			}
			if len(s.Projects()) != 0 {
				t.Errorf("projects after Deprovision = %+v, want none", s.Projects())
			}
			if exists, err := pg.Exists(db.ProjectID); err != nil || exists {
				t.Errorf("database exists after Deprovision = %v (%v), want false", exists, err)
			}
		})
	}
}

// expectRetryAfterHonoured checks that the request after the first 429 waited as long as its
// Retry-After asked.
func expectRetryAfterHonoured(t *testing.T, s *neontest.Server, _ time.Duration) {
	t.Helper()
	reqs := s.Requests()
	i := slices.IndexFunc(reqs, func(r neontest.Request) bool { return r.Status == http.StatusTooManyRequests })
	if i < 0 || i+1 >= len(reqs) {
		t.Fatalf("requests = %+v, want a 429 followed by a retry", reqs)
	}
	limited, next := reqs[i], reqs[i+1]
	notBefore := limited.Time
	if secs, err := strconv.Atoi(limited.RetryAfter); err == nil {
		notBefore = notBefore.Add(time.Duration(secs) * time.Second)
	} else if date, err := http.ParseTime(limited.RetryAfter); err == nil {
		notBefore = date
	} else {
		t.Fatalf("the 429 had Retry-After %q", limited.RetryAfter)
	}
	if next.Time.Before(notBefore) {
		t.Errorf("retried %s after the 429 with Retry-After %q, %s too early",
			next.Time.Sub(limited.Time), limited.RetryAfter, notBefore.Sub(next.Time))
	}
}

func TestProvision_Resume(t *testing.T) {
	t.Parallel()
	tenant := ragplane.TenantID("globex")
	req := provision.Request{TenantID: tenant, Region: "aws-us-east-2", EmbeddingDimension: dimension}
	tests := []struct {
		name string
		// when interrupts a first Provision; it returns the ProjectID the caller holds afterwards.
		when func(t *testing.T, p *neon.Provisioner) string
	}{
		{
			name: "crash before the id was recorded",
			when: func(t *testing.T, p *neon.Provisioner) string {
				_, err := p.Provision(context.Background(), req, func(string) error {
					return errors.New("catalog down")
				})
				if err == nil {
					t.Fatal("Provision succeeded though record failed")
				}
				return ""
			},
		},
		{
			name: "cancelled while operations run",
			when: func(t *testing.T, p *neon.Provisioner) string {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				var id string
				_, err := p.Provision(ctx, req, func(projectID string) error {
					id = projectID
					cancel()
					return nil
				})
				if code := ragplane.ErrorCode(err); code != ragplane.EUNAVAILABLE || !errors.Is(err, context.Canceled) {
					t.Fatalf("Provision cancelled: %v (code %q), want EUNAVAILABLE wrapping context.Canceled", err, code)
				}
				return id
			},
		},
		{
			name: "provisioned before, with the recorded id",
			when: func(t *testing.T, p *neon.Provisioner) string {
				db, err := p.Provision(context.Background(), req, func(string) error { return nil })
				if err != nil {
					t.Fatalf("first Provision: %v", err)
				}
				return db.ProjectID
			},
		},
		{
			name: "provisioned before, id lost",
			when: func(t *testing.T, p *neon.Provisioner) string {
				if _, err := p.Provision(context.Background(), req, func(string) error { return nil }); err != nil {
					t.Fatalf("first Provision: %v", err)
				}
				return ""
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := MustServer(t, neontest.Config{OperationDuration: 200 * time.Millisecond})
			p := MustProvisioner(t, s, nil)
			held := tt.when(t, p)

			again := req
			again.ProjectID = held
			var recorded []string
			db, err := p.Provision(context.Background(), again, func(id string) error {
				recorded = append(recorded, id)
				return nil
			})
			if err != nil {
				t.Fatalf("resumed Provision: %v", err)
			}
			projects := s.Projects()
			if len(projects) != 1 || s.ProjectsCreated() != 1 {
				t.Fatalf("projects = %+v (created %d), want exactly one", projects, s.ProjectsCreated())
			}
			if db.ProjectID != projects[0].ID || !slices.Equal(recorded, []string{projects[0].ID}) {
				t.Errorf("returned %q, recorded %v; want %s", db.ProjectID, recorded, projects[0].ID)
			}
			if held != "" && db.ProjectID != held {
				t.Errorf("returned %q, want the recorded %q", db.ProjectID, held)
			}
			MustHaveTables(t, db.URL, "documents", "chunks", "entities", "relations")
		})
	}
}

func TestProvision_Errors(t *testing.T) {
	t.Parallel()
	const secretPassword = "pw-must-not-leak-0123"
	unreachable := func(string) (string, error) {
		return "postgresql://neondb_owner:" + secretPassword + "@127.0.0.1:1/neondb?sslmode=disable", nil
	}
	tests := []struct {
		name       string
		given      neontest.Config
		faults     []fault
		failOps    int    // projects whose last operation fails
		apiKey     string // overrides the server's key
		req        provision.Request
		expectCode string
		// expectProjects is how many projects exist afterwards.
		expectProjects int
	}{
		{
			name:       "unknown region",
			req:        provision.Request{Region: "mars-north-1"},
			expectCode: ragplane.EINVALID,
		},
		{
			name:       "pooled tier",
			req:        provision.Request{Pooled: true},
			expectCode: ragplane.EINVALID,
		},
		{
			name:       "bad embedding dimension",
			req:        provision.Request{EmbeddingDimension: 99999},
			expectCode: ragplane.EINVALID,
		},
		{
			name:       "bad tenant id",
			req:        provision.Request{TenantID: "Not A Slug"},
			expectCode: ragplane.EINVALID,
		},
		{
			name:       "wrong API key",
			apiKey:     "wrong-key-must-not-leak",
			expectCode: ragplane.EUNAUTHORIZED,
		},
		{
			name:       "server errors past MaxElapsed",
			faults:     []fault{{n: 1000, Fault: neontest.Fault{Status: http.StatusServiceUnavailable}}},
			expectCode: ragplane.EUNAVAILABLE,
		},
		{
			name:       "rate limited longer than MaxElapsed",
			faults:     []fault{{n: 1000, Fault: neontest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "30"}}},
			expectCode: ragplane.EUNAVAILABLE,
		},
		{
			name:           "a failed operation",
			given:          neontest.Config{OperationDuration: 20 * time.Millisecond},
			failOps:        1,
			expectCode:     ragplane.EUNAVAILABLE,
			expectProjects: 1,
		},
		{
			name:           "database unreachable",
			given:          neontest.Config{NewDatabase: unreachable},
			expectCode:     ragplane.EUNAVAILABLE,
			expectProjects: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// No PostgreSQL needed: none of these gets as far as migrating.
			s := neontest.NewServer(tt.given)
			t.Cleanup(s.Close)
			s.FailOperations(tt.failOps)
			MustInjectFaults(t, s, tt.faults)
			key := cmp.Or(tt.apiKey, s.APIKey)
			p := MustProvisioner(t, s, func(cfg *neon.Config) {
				cfg.APIKey = key
				cfg.MaxElapsed = 300 * time.Millisecond
			})
			req := tt.req
			req.TenantID = cmp.Or(req.TenantID, "initech")
			req.Region = cmp.Or(req.Region, "aws-us-east-2")
			if req.EmbeddingDimension == 0 {
				req.EmbeddingDimension = dimension
			}

			_, err := p.Provision(context.Background(), req, func(string) error { return nil })
			t.Logf("Provision: %v", err)
			if code := ragplane.ErrorCode(err); code != tt.expectCode {
				t.Fatalf("Provision: %v (code %q), want code %q", err, code, tt.expectCode)
			}
			for _, secret := range []string{key, s.APIKey, secretPassword} {
				if strings.Contains(err.Error(), secret) || strings.Contains(ragplane.ErrorMessage(err), secret) {
					t.Errorf("error %q contains a secret", err)
				}
			}
			if n := len(s.Projects()); n != tt.expectProjects {
				t.Errorf("%d projects exist, want %d", n, tt.expectProjects)
			}
		})
	}
}

func TestDeprovision(t *testing.T) {
	t.Parallel()
	tenant := ragplane.TenantID("umbrella")
	tests := []struct {
		name  string
		given time.Duration // operation duration
		// when creates projects through the API and returns the id passed to Deprovision.
		when           func(t *testing.T, c *neon.Client) string
		maxElapsed     time.Duration
		expectCode     string
		expectProjects int
		expect         func(t *testing.T, s *neontest.Server)
	}{
		{
			name:  "423 while operations run, then deleted",
			given: 300 * time.Millisecond,
			when: func(t *testing.T, c *neon.Client) string {
				return MustCreateProject(t, c, neon.ProjectName(tenant))
			},
			expect: func(t *testing.T, s *neontest.Server) {
				if s.Count(neontest.RouteDeleteProject, http.StatusLocked) == 0 || s.ProjectsDeleted() != 1 {
					t.Errorf("DELETE answered 423 %d times, deleted %d; want 423s, then one deletion",
						s.Count(neontest.RouteDeleteProject, http.StatusLocked), s.ProjectsDeleted())
				}
			},
		},
		{
			name:           "locked past MaxElapsed",
			given:          10 * time.Second,
			maxElapsed:     200 * time.Millisecond,
			when:           func(t *testing.T, c *neon.Client) string { return MustCreateProject(t, c, neon.ProjectName(tenant)) },
			expectCode:     ragplane.EUNAVAILABLE,
			expectProjects: 1,
		},
		{
			name: "project already gone",
			when: func(t *testing.T, c *neon.Client) string { return "misty-fog-00000000" },
			expect: func(t *testing.T, s *neontest.Server) {
				if s.Count(neontest.RouteDeleteProject, http.StatusNotFound) != 1 {
					t.Errorf("want one DELETE answered 404")
				}
			},
		},
		{
			name: "no id recorded: found by name among similar names on later pages",
			when: func(t *testing.T, c *neon.Client) string {
				for i := range 120 {
					MustCreateProject(t, c, fmt.Sprintf("%s_%d", neon.ProjectName(tenant), i))
				}
				MustCreateProject(t, c, neon.ProjectName(tenant))
				return ""
			},
			expectProjects: 120,
			expect: func(t *testing.T, s *neontest.Server) {
				for _, p := range s.Projects() {
					if p.Name == neon.ProjectName(tenant) {
						t.Errorf("project %s named after the tenant still exists", p.ID)
					}
				}
				if s.Count(neontest.RouteListProjects, http.StatusOK) < 2 {
					t.Errorf("listed one page only; want the pagination followed")
				}
			},
		},
		{
			name: "no id recorded, no project",
			when: func(t *testing.T, c *neon.Client) string { return "" },
			expect: func(t *testing.T, s *neontest.Server) {
				if n := s.Count(neontest.RouteDeleteProject, 0); n != 0 {
					t.Errorf("%d DELETE requests, want none", n)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := neontest.NewServer(neontest.Config{OperationDuration: tt.given})
			t.Cleanup(s.Close)
			cfg := MustConfig(t, s)
			if tt.maxElapsed > 0 {
				cfg.MaxElapsed = tt.maxElapsed
			}
			c, err := neon.NewClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			p, err := neon.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			id := tt.when(t, c)

			err = p.Deprovision(context.Background(), tenant, id)
			if code := ragplane.ErrorCode(err); code != tt.expectCode {
				t.Fatalf("Deprovision: %v (code %q), want code %q", err, code, tt.expectCode)
			}
			if n := len(s.Projects()); n != tt.expectProjects {
				t.Errorf("%d projects left, want %d", n, tt.expectProjects)
			}
			if tt.expect != nil {
				tt.expect(t, s)
			}
		})
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		given      neon.Config
		expectCode string
	}{
		{name: "API key only", given: neon.Config{APIKey: "k"}},
		{name: "no API key", given: neon.Config{}, expectCode: ragplane.EINVALID},
		{name: "bad base URL", given: neon.Config{APIKey: "k", BaseURL: "console.neon.tech"}, expectCode: ragplane.EINVALID},
		{name: "old PostgreSQL", given: neon.Config{APIKey: "k", PGVersion: 9}, expectCode: ragplane.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := neon.New(tt.given)
			if code := ragplane.ErrorCode(err); code != tt.expectCode {
				t.Errorf("New: %v (code %q), want code %q", err, code, tt.expectCode)
			}
		})
	}
}

// MustServer starts a fake Neon whose projects are real databases on the local stack's PostgreSQL.
func MustServer(tb testing.TB, cfg neontest.Config) (*neontest.Server, *neontest.Postgres) {
	tb.Helper()
	pg := &neontest.Postgres{AdminURL: catalogtest.ServerURL(tb), Prefix: catalogtest.RandomName("neon_") + "_"}
	cfg.NewDatabase, cfg.DropDatabase = pg.NewDatabase, pg.DropDatabase
	s := neontest.NewServer(cfg)
	tb.Cleanup(func() {
		s.Close()
		if err := pg.DropAll(); err != nil {
			tb.Logf("drop test databases: %v", err)
		}
	})
	return s, pg
}

// MustConfig returns a Config for s with millisecond-scale retries and polling, logging to the
// test; when the test ends it fails if the log holds the API key.
func MustConfig(tb testing.TB, s *neontest.Server) neon.Config {
	tb.Helper()
	logs := &syncBuffer{}
	tb.Cleanup(func() {
		if strings.Contains(logs.String(), s.APIKey) {
			tb.Errorf("the logs contain the API key")
		}
		if testing.Verbose() && logs.String() != "" {
			tb.Log(logs.String())
		}
	})
	return neon.Config{
		APIKey:               s.APIKey,
		BaseURL:              s.URL,
		PollInterval:         10 * time.Millisecond,
		OperationTimeout:     10 * time.Second,
		MaxElapsed:           5 * time.Second,
		RetryInitialInterval: 5 * time.Millisecond,
		RetryMaxInterval:     50 * time.Millisecond,
		Logger:               slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// MustProvisioner returns a Provisioner for s, after edit changes its config.
func MustProvisioner(tb testing.TB, s *neontest.Server, edit func(*neon.Config)) *neon.Provisioner {
	tb.Helper()
	cfg := MustConfig(tb, s)
	if edit != nil {
		edit(&cfg)
	}
	p, err := neon.New(cfg)
	if err != nil {
		tb.Fatalf("neon.New: %v", err)
	}
	return p
}

// MustCreateProject creates a project named name and returns its id.
func MustCreateProject(tb testing.TB, c *neon.Client, name string) string {
	tb.Helper()
	created, err := c.CreateProject(context.Background(), neon.CreateProjectRequest{Name: name, RegionID: "aws-us-east-2", PGVersion: 17})
	if err != nil {
		tb.Fatalf("create project: %v", err)
	}
	return created.Project.ID
}

// MustHaveTables fails unless the database at url has the tables in its public schema.
func MustHaveTables(tb testing.TB, url string, tables ...string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatalf("connect to the tenant database: %v", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "select table_name from information_schema.tables where table_schema = 'public'")
	if err != nil {
		tb.Fatalf("list tables: %v", err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatalf("list tables: %v", err)
	}
	for _, table := range tables {
		if !slices.Contains(have, table) {
			tb.Errorf("table %s missing; have %v", table, have)
		}
	}
}

func allFinished(ops []neontest.Operation) bool {
	for _, op := range ops {
		if op.Status != string(neon.OpFinished) {
			return false
		}
	}
	return len(ops) > 0
}

// syncBuffer is a bytes.Buffer safe for concurrent writes by a logger.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
