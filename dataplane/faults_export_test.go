package dataplane

import "github.com/ragplane/ragplane"

// TenantConfigInvalid returns the validation error of tenant's catalog row as this worker last
// read it, while the row is invalid; nil otherwise. Tests wait on it for the worker to have seen
// a bad row instead of sleeping past the cache TTL.
func (s *Server) TenantConfigInvalid(tenant ragplane.TenantID) error {
	s.tenants.mu.Lock()
	defer s.tenants.mu.Unlock()
	return s.tenants.m[tenant].bad
}

// DropTenantCache forgets every cached tenant entry, as a freshly started worker has none.
func (s *Server) DropTenantCache() {
	s.tenants.mu.Lock()
	defer s.tenants.mu.Unlock()
	clear(s.tenants.m)
}
