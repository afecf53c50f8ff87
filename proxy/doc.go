// Package proxy is Ragplane's tenant-aware proxy, in front of the data-plane workers. For each
// request it:
//
//  1. verifies the bearer JWT (EdDSA) against the keys the control plane pushes over xDS; a
//     verified token is remembered (TokenCacheSize) as long as it is unexpired and its key is still
//     pushed, so a client's repeated token costs a hash, not a signature check;
//  2. looks up the tenant's policy (status and limits), also pushed over xDS, and refuses
//     deleted, suspended or not-ready tenants and bodies over max_request_bytes;
//  3. admits the request with one Redis call (ratelimit.Gate: requests_per_second with its
//     burst, queries_per_hour and a concurrency slot, all or nothing), shared by every replica;
//     while Redis is away rates fall back to this replica's share and concurrency fails closed;
//  4. forwards it to the least-loaded healthy worker with a signed tenant context
//     (internal/tenantctx) that the workers trust instead of the token, retrying on another
//     worker when the first cannot be reached (nothing was sent) or, for a request safe to
//     repeat (idempotent method or Idempotency-Key, its body buffered up to max_request_bytes),
//     fails without answering, and ejecting workers that keep failing;
//  5. writes one access log line ("request": tenant_id, request_id, trace_id, method, path
//     without query, status, duration_ms, bytes; RAGPLANE_ACCESS_LOG=false turns it off).
//
// The configuration arrives on one incremental (delta) ADS stream (proxy/xdsclient, resource
// types and codecs in internal/xdsapi): each response is applied in place, so an update costs
// what it changes, and the last good state is served while the control plane is away. Errors
// are problem+json (internal/problem). The tenant listener (Addr) forwards /v1/ only and answers
// /healthz and /readyz itself, with a status and a reason only; /metrics (Prometheus, every
// tenant's id and traffic) and /readyz with its detail (stale or rejected resources, workers) are
// on the admin listener (AdminAddr) alone. /readyz is 200 once every type has synced and a worker
// is registered. Probes and scrapes are not access-logged. Spans are created only when tracing
// exports them (internal/tracing).
package proxy
