// Package proxy will be Ragplane's tenant-aware proxy: JWT verification against the control
// plane's JWKS, per-tenant rate limits and concurrency caps in Redis, and routing to healthy
// data-plane workers, configured over xDS. It is not built yet (tracked as its own issue); the
// control plane already issues the tokens and publishes the keys it will verify.
package proxy
