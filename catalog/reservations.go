package catalog

import (
	"context"
	"time"

	"github.com/ragplane/ragplane"
)

// ReserveTokens admits a request of tenant against its monthly token quota and holds estimate
// tokens for it, in one round trip (the reserve_tokens function of migration 004). The tenant's
// count is its shipped usage since since (the month's start) plus every reservation that has not
// lapsed; the request is admitted while that count is below limit, so concurrent requests on any
// number of workers pass the limit by at most one reservation. id names the reservation and must
// be the id of the usage event that will record the request: the shipper deletes the reservation
// when it stores that event (RecordUsage). A reservation nobody settles lapses after ttl. It
// returns the count before this request and whether the request was admitted. The commit does not
// wait for the WAL flush (see migration 004): a reservation lost in a crash of the catalog only
// loosens the bound for the queries then running.
func (s *Store) ReserveTokens(ctx context.Context, tenant ragplane.TenantID, id string, estimate, limit int64, since time.Time, ttl time.Duration) (counted int64, admitted bool, err error) {
	err = s.pool.QueryRow(ctx, `select counted, admitted from reserve_tokens($1, $2, $3, $4, $5, $6)`,
		id, tenant, max(estimate, 0), limit, since.UTC().Truncate(24*time.Hour), ttl).Scan(&counted, &admitted)
	return counted, admitted, pgError(err, "Token reservation")
}

// SettleTokens replaces reservation id's estimate by the tokens the request used, held for ttl
// until the shipper stores the request's usage event and deletes it; zero tokens release the
// reservation. Settling a reservation that is gone (shipped, or lapsed) does nothing. Like
// ReserveTokens, its commit does not wait for the WAL flush: reservations are soft state.
func (s *Store) SettleTokens(ctx context.Context, id string, tokens int64, ttl time.Duration) error {
	_, err := s.pool.Exec(ctx, `select settle_tokens($1, $2, $3)`, id, max(tokens, 0), ttl)
	return pgError(err, "Token reservation")
}

// TokensCounted is the count ReserveTokens compares with the quota, without reserving: the tokens
// a tenant used since from (shipped usage) plus its reservations that have not lapsed.
func (s *Store) TokensCounted(ctx context.Context, tenant ragplane.TenantID, from time.Time) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `select coalesce((select sum(metric_value) from tenant_usage
			where tenant_id = $1 and granularity = 'day' and period_start >= $2
			and metric_name in ('prompt_tokens', 'completion_tokens', 'embedding_tokens')), 0)::bigint
		+ coalesce((select sum(tokens) from token_reservations where tenant_id = $1 and expires_at > now()), 0)::bigint`,
		tenant, from.UTC().Truncate(24*time.Hour)).Scan(&n)
	return n, pgError(err, "Usage")
}
