package dataplane

import (
	"context"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
)

// runtime returns the request's tenant's catalog entry, as tenants.get does, after restoring the
// tenant if it was offloaded to an archive: its first request asks the control plane for the
// restore (catalog.Store.Wake) and waits for it, up to RAGPLANE_RESTORE_WAIT, for the
// catalog's notice that the tenant points at its new database. Past the wait the request gets 503
// with Retry-After, and its retry waits again for the same restore.
func (s *Server) runtime(ctx context.Context, tenant ragplane.TenantID) (*catalog.Runtime, error) {
	rt, err := s.tenants.get(ctx, tenant)
	if err != nil || rt.Offload == "" {
		return rt, err
	}
	return s.awaitRestore(ctx, tenant)
}

// awaitRestore asks for the tenant's restore and waits for it (see runtime).
func (s *Server) awaitRestore(ctx context.Context, tenant ragplane.TenantID) (*catalog.Runtime, error) {
	start := time.Now()
	deadline := start.Add(s.cfg.RestoreWait)
	asked := false
	for {
		// Taken before the catalog is read, so that a notice between the read and the wait is seen.
		changed := s.tenants.changed(tenant)
		if !asked {
			// Wake, not only a restore request: an offload cancelled for this request leaves the
			// tenant awake, not idle and due for the next offload.
			w, err := s.store.Wake(ctx, tenant, time.Now(), catalog.Actor{Name: "worker:request"})
			if err != nil {
				return nil, err
			}
			if w.Offload != nil {
				s.log.Info("request to an offloaded tenant: waiting for its restore", "tenant_id", tenant, "offload_state", w.Offload.State)
			}
			asked = true
		}
		left := time.Until(deadline)
		if left <= 0 {
			s.sleep.restoreTimeouts.Inc()
			return nil, ragplane.Errorf(ragplane.EUNAVAILABLE,
				"Tenant %q was offloaded to an archive while idle and is being restored; retry in a few seconds.", tenant)
		}
		// The restore's catalog change notifies; the catalog is read again at least every second
		// in case a notice was lost with the listening connection.
		timer := time.NewTimer(min(left, time.Second))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-changed:
		case <-timer.C:
		}
		timer.Stop()
		s.tenants.drop(tenant)
		rt, err := s.tenants.get(ctx, tenant)
		if err != nil {
			return nil, err
		}
		if rt.Offload == "" {
			d := time.Since(start)
			s.sleep.restoreWait.Observe(d.Seconds())
			s.log.Info("offloaded tenant restored for its request", "tenant_id", tenant, "waited_ms", d.Milliseconds())
			return rt, nil
		}
	}
}
