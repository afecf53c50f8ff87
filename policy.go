package ragplane

// TenantPolicy is what a proxy enforces for a tenant: whether it may be served, and its limits.
// The control plane pushes one per tenant over xDS; ConfigVersion orders them.
type TenantPolicy struct {
	TenantID      TenantID     `json:"tenant_id"`
	Status        TenantStatus `json:"status"`
	Plan          string       `json:"plan"`
	Limits        Limits       `json:"limits"`
	ConfigVersion int64        `json:"config_version"`
	// RevokedAPIKeys are the ids of the tenant's API keys revoked recently enough that tokens they
	// minted may still be alive (see catalog.RevokedKeyWindow), newest revocation first. A proxy
	// refuses a token whose "akid" claim is one of them.
	RevokedAPIKeys []string `json:"revoked_api_keys,omitempty"`
}

// Worker is a registered data-plane worker.
type Worker struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}
