package dataplane

import (
	"context"

	"github.com/ragplane/ragplane"
)

// TenantConfigVersion returns the config_version of tenant as this worker serves it now: from its
// tenant cache, read again from the catalog once the entry has expired, as a request would, but
// without being metered. Tests wait on it for a change to reach the worker instead of sleeping
// past the cache TTL.
func (s *Server) TenantConfigVersion(ctx context.Context, tenant ragplane.TenantID) (int64, error) {
	rt, err := s.tenants.get(ctx, tenant)
	if err != nil {
		return 0, err
	}
	return rt.Tenant.ConfigVersion, nil
}
