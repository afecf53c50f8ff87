package provision

// LostCampaigns reports how many times this reconciler tried to lead and found the leader lock
// held by another replica. Tests wait on it instead of sleeping for a follower to have tried.
func (r *Reconciler) LostCampaigns() int64 { return r.lost.Load() }
