// Package ratelimit enforces a tenant's request rates and concurrency cap in Redis, so that every
// proxy replica shares one budget per tenant.
//
// A [Gate] decides a request in one Redis round trip: one Lua script applies two GCRA (generic
// cell rate algorithm) limits, requests_per_second with its burst and queries_per_hour, and takes
// a concurrency slot, a lease in a sorted set that expires unless its holder renews it (so the
// slots of a crashed proxy come back by themselves). It is all or nothing: a request that one
// limit refuses consumes none of the others. Slots given back are removed off the request path,
// in batches, or on the way of the tenant's next admission; one loop per Gate renews every lease it
// holds. [Limiter] (rates only) and [Concurrency] (slots only) are the same machinery.
//
// Every Redis call is bounded by a timeout. Redis is considered away only after several failures
// in a row, never after one slow reply; while it is away, requests do not call it, a probe pings it
// in the background and the first answer ends the outage ([Gate.Redis] reports it). Meanwhile each
// tenant's rate limits and cap follow its fail policies (ragplane.Limits.RateLimitFailPolicy and
// ConcurrencyFailPolicy): this replica's share of each limit, enforced in process (the default),
// not enforced (fail open), or requests refused with EUNAVAILABLE (fail closed).
//
// Keys carry the tenant id as a hash tag, so a tenant's keys stay in one Redis Cluster slot, and
// never the limit's value, so a changed limit carries over what the tenant has used:
//
//	ragplane:rl:{acme_corp}:rps     GCRA state of requests_per_second: "<TAT µs> <interval µs>"
//	ragplane:rl:{acme_corp}:qph     GCRA state of queries_per_hour
//	ragplane:cc:{acme_corp}:leases  sorted set of leases, score = expiry in ms of Redis TIME
//
// All keys expire on their own once idle.
package ratelimit
