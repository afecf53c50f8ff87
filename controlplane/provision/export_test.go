package provision

import (
	"context"

	"github.com/ragplane/ragplane"
)

// LostCampaigns reports how many times this reconciler tried to lead and found the leader lock
// held by another replica. Tests wait on it instead of sleeping for a follower to have tried.
func (r *Reconciler) LostCampaigns() int64 { return r.lost.Load() }

// MoveOnce runs one step of the tenant's move as the reconciler's dispatch would (its per-tenant
// lock included), synchronously.
func (r *Reconciler) MoveOnce(ctx context.Context, id ragplane.TenantID) error {
	m, err := r.cfg.Store.GetMove(ctx, id)
	if err != nil {
		return err
	}
	r.move(ctx, m)
	return nil
}

// LockTenantData takes the tenant's data lock as a move, an offload or a deletion does.
func (r *Reconciler) LockTenantData(ctx context.Context, id ragplane.TenantID) (context.Context, func(), bool) {
	return r.lockTenantData(ctx, id, r.log)
}
