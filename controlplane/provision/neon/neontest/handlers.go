package neontest

import (
	"encoding/json"
	"fmt"
	mathrand "math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// createProject handles POST /projects {"project": {"name", "region_id", "pg_version", "org_id"}}.
func (s *Server) createProject(w http.ResponseWriter, r *http.Request) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusBadRequest, "request body must be application/json")
		return
	}
	var body struct {
		Project *struct {
			Name      *string `json:"name"`
			RegionID  *string `json:"region_id"`
			PGVersion *int    `json:"pg_version"`
			OrgID     *string `json:"org_id"`
		} `json:"project"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	// Strict: a misspelt field is a client bug that real Neon would silently ignore.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "invalid request body: "+err.Error())
		return
	} else if body.Project == nil {
		writeError(w, http.StatusBadRequest, "project is required")
		return
	}
	in := body.Project
	region := s.cfg.Regions[0]
	if in.RegionID != nil {
		region = *in.RegionID
	}
	if !slices.Contains(s.cfg.Regions, region) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("region %q is not supported", region))
		return
	}
	pgVersion := 17
	if in.PGVersion != nil {
		pgVersion = *in.PGVersion
	}
	if pgVersion < 14 || pgVersion > 18 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("pg_version %d is not supported", pgVersion))
		return
	}
	if in.Name != nil && (*in.Name == "" || len(*in.Name) > 256) {
		writeError(w, http.StatusBadRequest, "name must be 1 to 256 characters")
		return
	}

	id := s.reserveID()
	p := &project{Project: Project{ID: id, Name: id, RegionID: region, PGVersion: pgVersion}}
	if in.Name != nil {
		p.Name = *in.Name
	}
	if in.OrgID != nil {
		p.OrgID = *in.OrgID
	}
	p.branchID = "br-" + randomName() + "-" + randomHex(4)
	p.endpointID = "ep-" + randomName() + "-" + randomHex(4)
	p.host = p.endpointID + "." + regionHost(region)
	uri := "postgresql://" + RoleName + ":npg_" + randomHex(8) + "@" + p.host + "/" + DatabaseName + "?sslmode=require&channel_binding=require"
	if s.cfg.NewDatabase != nil {
		var err error
		if uri, err = s.cfg.NewDatabase(id); err != nil {
			s.release(id)
			writeError(w, http.StatusInternalServerError, "internal error")
			return
		}
	}
	p.uri = uri

	now := time.Now().UTC()
	p.CreatedAt = now
	d := s.cfg.OperationDuration
	s.mu.Lock()
	fail := s.failOps > 0
	if fail {
		s.failOps--
	}
	for i, action := range []string{"create_timeline", "start_compute"} {
		p.ops = append(p.ops, &operation{
			id: newUUID(), action: action, created: now, projectID: id, branchID: p.branchID, endpointID: p.endpointID,
			start: now.Add(time.Duration(i) * d), end: now.Add(time.Duration(i+1) * d),
			fail: fail && i == 1,
		})
	}
	s.projects[id] = p
	s.order = append(s.order, id)
	s.created++
	answer := map[string]any{
		"project": p.json(),
		"connection_uris": []any{map[string]any{
			"connection_uri": p.uri,
			"connection_parameters": map[string]any{
				"database": DatabaseName, "role": RoleName, "password": passwordOf(p.uri),
				"host": p.host, "pooler_host": strings.Replace(p.host, p.endpointID, p.endpointID+"-pooler", 1),
			},
		}},
		"roles": []any{map[string]any{
			"branch_id": p.branchID, "name": RoleName, "password": passwordOf(p.uri), "protected": false,
			"created_at": now, "updated_at": now,
		}},
		"databases": []any{map[string]any{
			"id": mathrand.IntN(1e7), "branch_id": p.branchID, "name": DatabaseName, "owner_name": RoleName,
			"created_at": now, "updated_at": now,
		}},
		"operations": p.opsJSON(now),
		"branch": map[string]any{
			"id": p.branchID, "project_id": id, "name": "main", "current_state": "init", "default": true,
			"created_at": now, "updated_at": now,
		},
		"endpoints": []any{map[string]any{
			"id": p.endpointID, "host": p.host, "project_id": id, "branch_id": p.branchID, "region_id": region,
			"type": "read_write", "current_state": "init", "pending_state": "active",
			"created_at": now, "updated_at": now,
		}},
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, answer)
}

// listProjects handles GET /projects?search=&limit=&cursor=&org_id=. search matches part of a
// name or id; cursor is the last id of the previous page.
func (s *Server) listProjects(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 10
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 400 {
			writeError(w, http.StatusBadRequest, "limit must be between 1 and 400")
			return
		}
		limit = n
	}
	search := strings.ToLower(q.Get("search"))
	org := q.Get("org_id")
	cursor := q.Get("cursor")

	s.mu.Lock()
	defer s.mu.Unlock()
	start := 0
	if cursor != "" {
		i := slices.Index(s.order, cursor)
		if i < 0 {
			writeError(w, http.StatusBadRequest, "invalid cursor")
			return
		}
		start = i + 1
	}
	page := []any{}
	last := ""
	for _, id := range s.order[start:] {
		p := s.projects[id]
		if search != "" && !strings.Contains(strings.ToLower(p.Name), search) && !strings.Contains(p.ID, search) {
			continue
		}
		if org != "" && p.OrgID != org {
			continue
		}
		if len(page) == limit {
			break
		}
		page = append(page, p.json())
		last = id
	}
	answer := map[string]any{"projects": page, "applications": map[string]any{}, "integrations": map[string]any{}}
	if last != "" {
		answer["pagination"] = map[string]any{"cursor": last}
	}
	writeJSON(w, http.StatusOK, answer)
}

func (s *Server) getProject(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projects[r.PathValue("project_id")]
	if p == nil {
		writeError(w, http.StatusNotFound, "project not found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"project": p.json()})
}

// deleteProject handles DELETE /projects/{project_id}: 423 while the project's operations run.
func (s *Server) deleteProject(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("project_id")
	s.mu.Lock()
	p := s.projects[id]
	if p == nil {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "project not found")
		return
	}
	now := time.Now()
	for _, op := range p.ops {
		if op.end.After(now) {
			s.mu.Unlock()
			writeError(w, http.StatusLocked, "project already has running operations, scheduling of new ones is prohibited")
			return
		}
	}
	// Take the project out while its database is dropped, so that a concurrent DELETE answers 404.
	delete(s.projects, id)
	s.order = slices.DeleteFunc(s.order, func(o string) bool { return o == id })
	s.mu.Unlock()

	if s.cfg.DropDatabase != nil {
		if err := s.cfg.DropDatabase(id); err != nil {
			s.mu.Lock()
			s.projects[id] = p
			s.order = append(s.order, id)
			slices.SortStableFunc(s.order, func(a, b string) int {
				return s.projects[a].CreatedAt.Compare(s.projects[b].CreatedAt)
			})
			s.mu.Unlock()
			writeError(w, http.StatusInternalServerError, "internal error")
			return
		}
	}
	s.mu.Lock()
	s.deleted++
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"project": p.json()})
}

// listOperations handles GET /projects/{project_id}/operations: newest first.
func (s *Server) listOperations(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projects[r.PathValue("project_id")]
	if p == nil {
		writeError(w, http.StatusNotFound, "project not found")
		return
	}
	ops := p.opsJSON(time.Now())
	slices.Reverse(ops)
	answer := map[string]any{"operations": ops}
	if len(p.ops) > 0 {
		answer["pagination"] = map[string]any{"cursor": p.ops[0].created.Format(time.RFC3339Nano)}
	}
	writeJSON(w, http.StatusOK, answer)
}

func (s *Server) getOperation(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projects[r.PathValue("project_id")]
	if p == nil {
		writeError(w, http.StatusNotFound, "project not found")
		return
	}
	for _, op := range p.ops {
		if op.id == r.PathValue("operation_id") {
			writeJSON(w, http.StatusOK, map[string]any{"operation": op.json(time.Now())})
			return
		}
	}
	writeError(w, http.StatusNotFound, "operation not found")
}

// connectionURI handles GET /projects/{project_id}/connection_uri?database_name=&role_name=.
func (s *Server) connectionURI(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	db, role := q.Get("database_name"), q.Get("role_name")
	if db == "" || role == "" {
		writeError(w, http.StatusBadRequest, "database_name and role_name are required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projects[r.PathValue("project_id")]
	if p == nil {
		writeError(w, http.StatusNotFound, "project not found")
		return
	}
	if db != DatabaseName || role != RoleName {
		writeError(w, http.StatusNotFound, "database or role not found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"uri": p.uri})
}

// reserveID returns a new project id, held until the project is stored or released.
func (s *Server) reserveID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		id := fmt.Sprintf("%s-%08d", randomName(), mathrand.IntN(1e8))
		if _, taken := s.projects[id]; !taken {
			s.projects[id] = nil
			return id
		}
	}
}

func (s *Server) release(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.projects, id)
}

func (p *project) json() map[string]any {
	m := map[string]any{
		"id": p.ID, "platform_id": strings.SplitN(p.RegionID, "-", 2)[0], "region_id": p.RegionID,
		"name": p.Name, "provisioner": "k8s-neonvm", "pg_version": p.PGVersion,
		"proxy_host": regionHost(p.RegionID), "store_passwords": true, "creation_source": "console",
		"history_retention_seconds": 86400, "owner_id": "neontest-owner",
		"created_at": p.CreatedAt, "updated_at": p.CreatedAt,
	}
	if p.OrgID != "" {
		m["org_id"] = p.OrgID
	}
	return m
}

func (p *project) opsJSON(now time.Time) []any {
	out := []any{}
	for _, op := range p.ops {
		out = append(out, op.json(now))
	}
	return out
}

// status is "scheduling" before the operation starts, "running" until it ends, then "finished"
// (or "failed").
func (op *operation) status(now time.Time) string {
	switch {
	case now.Before(op.start):
		return "scheduling"
	case now.Before(op.end):
		return "running"
	case op.fail:
		return "failed"
	}
	return "finished"
}

func (op *operation) json(now time.Time) map[string]any {
	status := op.status(now)
	updated := op.created
	switch {
	case now.After(op.end):
		updated = op.end
	case now.After(op.start):
		updated = now
	}
	m := map[string]any{
		"id": op.id, "project_id": op.projectID, "branch_id": op.branchID, "action": op.action,
		"status": status, "failures_count": op.failuresCnt, "created_at": op.created, "updated_at": updated,
		"total_duration_ms": updated.Sub(op.created).Milliseconds(),
	}
	if op.action == "start_compute" {
		m["endpoint_id"] = op.endpointID
	}
	if status == "failed" {
		m["error"] = "operation failed"
	}
	return m
}
