// Package ratelimit enforces a tenant's request rate and concurrency caps in Redis, so that every
// proxy replica shares one budget per tenant.
//
// A [Limiter] applies two GCRA (generic cell rate algorithm) limits to each request, through
// github.com/go-redis/redis_rate: requests_per_second with its burst, and queries_per_hour. A
// [Concurrency] caps the requests a tenant has in flight with leases in a Redis sorted set that
// expire unless their holder renews them, so the slots of a crashed proxy come back by themselves.
//
// Every Redis call is bounded by a timeout, whatever the client's own options. When Redis is away,
// rate limits fall back to this replica's share of the limits (fail open, the default), while
// concurrency caps refuse requests with EUNAVAILABLE (fail closed, the default).
//
// Keys carry the tenant id as a hash tag, so a tenant's keys stay in one Redis Cluster slot:
//
//	rate:ragplane:rl:{acme_corp}:rps:5/1000/10  GCRA state of requests_per_second (redis_rate adds "rate:")
//	rate:ragplane:rl:{acme_corp}:qph:1000       GCRA state of queries_per_hour
//	ragplane:cc:{acme_corp}:leases      sorted set of leases, score = expiry in ms of Redis TIME
//
// All keys expire on their own once idle.
package ratelimit
