package neontest

import (
	"net/http"
	"time"
)

// Compute endpoint routes (https://api-docs.neon.tech/reference: listProjectEndpoints,
// suspendProjectEndpoint, startProjectEndpoint).
const (
	RouteListEndpoints   = "GET /projects/{project_id}/endpoints"
	RouteSuspendEndpoint = "POST /projects/{project_id}/endpoints/{endpoint_id}/suspend"
	RouteStartEndpoint   = "POST /projects/{project_id}/endpoints/{endpoint_id}/start"
)

// EndpointState returns the current_state of a project's compute endpoint: "active" unless it was
// suspended ("idle"), "" for an unknown project.
func (s *Server) EndpointState(projectID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projects[projectID]
	if p == nil {
		return ""
	}
	return p.endpointState()
}

func (p *project) endpointState() string {
	if p.suspended {
		return "idle"
	}
	return "active"
}

func (p *project) endpointJSON() map[string]any {
	return map[string]any{
		"id": p.endpointID, "host": p.host, "project_id": p.ID, "branch_id": p.branchID, "region_id": p.RegionID,
		"type": "read_write", "current_state": p.endpointState(), "autoscaling_limit_min_cu": 0.25,
		"autoscaling_limit_max_cu": 0.25, "suspend_timeout_seconds": 0, "pooler_enabled": false,
		"pooler_mode": "transaction", "disabled": false, "passwordless_access": true,
		"proxy_host": regionHost(p.RegionID), "creation_source": "console", "provisioner": "k8s-neonvm",
		"settings":   map[string]any{"pg_settings": map[string]any{}},
		"created_at": p.CreatedAt, "updated_at": p.CreatedAt,
	}
}

// listEndpoints handles GET /projects/{project_id}/endpoints: {"endpoints": [...]}.
func (s *Server) listEndpoints(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projects[r.PathValue("project_id")]
	if p == nil {
		writeError(w, http.StatusNotFound, "project not found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"endpoints": []any{p.endpointJSON()}})
}

func (s *Server) suspendEndpoint(w http.ResponseWriter, r *http.Request) { s.setEndpoint(w, r, true) }
func (s *Server) startEndpoint(w http.ResponseWriter, r *http.Request)   { s.setEndpoint(w, r, false) }

// setEndpoint suspends or starts an endpoint and answers {"endpoint": {...}, "operations": [...]}
// with the suspend_compute or start_compute operation, finished.
func (s *Server) setEndpoint(w http.ResponseWriter, r *http.Request, suspend bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projects[r.PathValue("project_id")]
	if p == nil || r.PathValue("endpoint_id") != p.endpointID {
		writeError(w, http.StatusNotFound, "endpoint not found")
		return
	}
	p.suspended = suspend
	action := "start_compute"
	if suspend {
		action = "suspend_compute"
	}
	now := time.Now()
	op := &operation{id: newUUID(), action: action, created: now, start: now, end: now,
		projectID: p.ID, branchID: p.branchID, endpointID: p.endpointID}
	writeJSON(w, http.StatusOK, map[string]any{"endpoint": p.endpointJSON(), "operations": []any{op.json(now.Add(time.Millisecond))}})
}
