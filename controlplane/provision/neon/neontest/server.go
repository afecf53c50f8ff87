// Package neontest is an in-memory Neon API v2 for tests. It follows the request and response
// shapes Neon documents (https://api-docs.neon.tech/reference) for the calls ragplane makes: create,
// list, get and delete projects, read operations and connection URIs. It checks the bearer key,
// validates bodies, runs each new project's operations for a configurable time, answers 423 Locked
// to a DELETE while they run, and lets a test inject 429s (with Retry-After) and other faults.
//
// A project's database is whatever Config.NewDatabase makes: tests plug in a function that
// creates a real database on a local PostgreSQL, so that what is provisioned really is migrated.
// The server runs in the test's process; another process (a control plane under test) reaches it
// at Server.URL.
package neontest

import (
	"cmp"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	mathrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Routes, as counted by Server.Count and logged in Server.Requests.
const (
	RouteListProjects   = "GET /projects"
	RouteCreateProject  = "POST /projects"
	RouteGetProject     = "GET /projects/{project_id}"
	RouteDeleteProject  = "DELETE /projects/{project_id}"
	RouteListOperations = "GET /projects/{project_id}/operations"
	RouteGetOperation   = "GET /projects/{project_id}/operations/{operation_id}"
	RouteConnectionURI  = "GET /projects/{project_id}/connection_uri"
)

// basePath is where the API lives on the server, as on console.neon.tech.
const basePath = "/api/v2"

// DefaultRegions returns the region ids the server accepts unless Config.Regions says otherwise:
// Neon's AWS and Azure regions, "aws-us-east-2" first.
func DefaultRegions() []string {
	return []string{
		"aws-us-east-2", "aws-us-east-1", "aws-us-west-2", "aws-eu-central-1", "aws-eu-west-2",
		"aws-ap-southeast-1", "aws-ap-southeast-2", "aws-sa-east-1", "azure-eastus2", "azure-westus3",
		"azure-gwc",
	}
}

// Project database and role, as Neon names them by default.
const (
	DatabaseName = "neondb"
	RoleName     = "neondb_owner"
)

// Config configures a Server. Zero fields get the defaults named.
type Config struct {
	// APIKey is the bearer token the server requires (default "neontest-api-key").
	APIKey string
	// OperationDuration is how long each operation of a new project runs; a project's two
	// operations (create_timeline, then start_compute) run one after the other. Zero finishes
	// them at once.
	OperationDuration time.Duration
	// Regions are the accepted region ids (default DefaultRegions()); the first is used when a
	// create request names none.
	Regions []string
	// NewDatabase makes the database behind a new project and returns its connection URI. It is
	// called while the project is created; an error answers 500 and creates nothing. Nil makes up a
	// URI that nothing listens on.
	NewDatabase func(projectID string) (uri string, err error)
	// DropDatabase removes a project's database when the project is deleted; an error answers
	// 500 and keeps the project. Nil does nothing.
	DropDatabase func(projectID string) error
}

// Project is a project held by the server.
type Project struct {
	ID        string
	Name      string
	RegionID  string
	OrgID     string
	PGVersion int
	CreatedAt time.Time
}

// Operation is an operation of a project, with its status at the time it was read.
type Operation struct {
	ID        string
	ProjectID string
	Action    string
	Status    string
}

// Request is one request the server answered.
type Request struct {
	// Time is when the request arrived.
	Time time.Time
	// Route is one of the Route constants, or "METHOD path" for an unknown path.
	Route string
	// Status is the answer's HTTP status.
	Status int
	// RetryAfter is the answer's Retry-After header, if any.
	RetryAfter string
}

// Fault is an error answer to inject.
type Fault struct {
	// Status is the answer's status, such as 429, 423 or 503.
	Status int
	// RetryAfter is the Retry-After header's value, if any: delay-seconds or an HTTP-date.
	RetryAfter string
	// Route limits the fault to one route (a Route constant); empty means any request.
	Route string
}

// Server is a fake Neon API. It is safe for concurrent use.
type Server struct {
	// URL is the API's base URL, to be used as neon.Config.BaseURL.
	URL string
	// APIKey is the bearer token the server requires.
	APIKey string

	cfg Config
	ts  *httptest.Server
	mux *http.ServeMux

	mu       sync.Mutex
	projects map[string]*project // by id; reserved ids map to nil while being created
	order    []string            // ids in creation order
	faults   []*pendingFault
	failOps  int
	created  int
	deleted  int
	requests []Request
}

type project struct {
	Project
	branchID   string
	endpointID string
	host       string
	uri        string
	ops        []*operation
	suspended  bool // the compute endpoint was suspended through the API
}

type operation struct {
	id, action  string
	created     time.Time
	start, end  time.Time
	fail        bool
	branchID    string
	endpointID  string
	projectID   string
	failuresCnt int
}

type pendingFault struct {
	Fault
	left int
}

// NewServer starts a server. Close it when done.
func NewServer(cfg Config) *Server {
	cfg.APIKey = cmp.Or(cfg.APIKey, "neontest-api-key")
	if len(cfg.Regions) == 0 {
		cfg.Regions = DefaultRegions()
	}
	s := &Server{APIKey: cfg.APIKey, cfg: cfg, mux: http.NewServeMux(), projects: map[string]*project{}}
	for route, h := range map[string]http.HandlerFunc{
		RouteListProjects:    s.listProjects,
		RouteCreateProject:   s.createProject,
		RouteGetProject:      s.getProject,
		RouteDeleteProject:   s.deleteProject,
		RouteListOperations:  s.listOperations,
		RouteGetOperation:    s.getOperation,
		RouteConnectionURI:   s.connectionURI,
		RouteListEndpoints:   s.listEndpoints,
		RouteSuspendEndpoint: s.suspendEndpoint,
		RouteStartEndpoint:   s.startEndpoint,
	} {
		method, path, _ := strings.Cut(route, " ")
		s.mux.Handle(method+" "+basePath+path, h)
	}
	s.ts = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.ts.URL + basePath
	return s
}

// Close shuts the server down.
func (s *Server) Close() { s.ts.Close() }

// InjectFault answers the next n requests matching f.Route (after authentication) with f.
func (s *Server) InjectFault(n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &pendingFault{Fault: f, left: n})
}

// FailOperations makes the last operation of each of the next n created projects end "failed".
func (s *Server) FailOperations(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failOps += n
}

// Projects returns the projects that exist, oldest first.
func (s *Server) Projects() []Project {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Project
	for _, id := range s.order {
		out = append(out, s.projects[id].Project)
	}
	return out
}

// Operations returns a project's operations, oldest first, with their current status.
func (s *Server) Operations(projectID string) []Operation {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projects[projectID]
	if p == nil {
		return nil
	}
	now := time.Now()
	var out []Operation
	for _, op := range p.ops {
		out = append(out, Operation{ID: op.id, ProjectID: projectID, Action: op.action, Status: op.status(now)})
	}
	return out
}

// ProjectsCreated is how many projects were created.
func (s *Server) ProjectsCreated() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.created
}

// ProjectsDeleted is how many projects were deleted.
func (s *Server) ProjectsDeleted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleted
}

// Requests returns the requests answered so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Count is how many requests to route were answered with status; status 0 counts them all.
func (s *Server) Count(route string, status int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r.Route == route && (status == 0 || r.Status == status) {
			n++
		}
	}
	return n
}

// serve authenticates, applies injected faults and logs every request around the API's routes.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	arrived := time.Now()
	route := r.Method + " " + r.URL.Path
	if _, pattern := s.mux.Handler(r); pattern != "" {
		method, path, _ := strings.Cut(pattern, " ")
		route = method + " " + strings.TrimPrefix(path, basePath)
	}
	defer func() {
		s.mu.Lock()
		s.requests = append(s.requests, Request{Time: arrived, Route: route, Status: rec.status, RetryAfter: rec.Header().Get("Retry-After")})
		s.mu.Unlock()
	}()

	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+s.APIKey)) != 1 {
		writeError(rec, http.StatusUnauthorized, "authentication required")
		return
	}
	if f, ok := s.takeFault(route); ok {
		if f.RetryAfter != "" {
			rec.Header().Set("Retry-After", f.RetryAfter)
		}
		writeError(rec, f.Status, strings.ToLower(http.StatusText(f.Status)))
		return
	}
	s.mux.ServeHTTP(rec, r)
}

func (s *Server) takeFault(route string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Route == "" || f.Route == route {
			f.left--
			if f.left <= 0 {
				s.faults = slices.Delete(s.faults, i, i+1)
			}
			return f.Fault, true
		}
	}
	return Fault{}, false
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers with Neon's error body: {"code", "message"}.
func writeError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]any{"request_id": newUUID(), "code": "", "message": message})
}

// regionHost turns "aws-us-east-2" into "us-east-2.aws.neon.tech".
func regionHost(region string) string {
	platform, rest, _ := strings.Cut(region, "-")
	return rest + "." + platform + ".neon.tech"
}

func passwordOf(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.User == nil {
		return ""
	}
	pw, _ := u.User.Password()
	return pw
}

var (
	adjectives = []string{"misty", "quiet", "bold", "young", "red", "cool", "snowy", "wild", "dawn", "late", "small", "round"}
	nouns      = []string{"fog", "river", "hill", "leaf", "wave", "dream", "sun", "moon", "pond", "frost", "bird", "stone"}
)

// randomName is an adjective-noun pair, as in Neon's ids ("misty-fog").
func randomName() string {
	return adjectives[mathrand.IntN(len(adjectives))] + "-" + nouns[mathrand.IntN(len(nouns))]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
