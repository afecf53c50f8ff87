package catalog

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
)

// RegisterWorker records a worker (or renews it) with a lease of ttl.
func (s *Store) RegisterWorker(ctx context.Context, w ragplane.Worker, ttl time.Duration) error {
	if w.ID == "" || len(w.ID) > 100 {
		return ragplane.FieldErrorf("id", "A worker id is 1-100 characters.")
	}
	if _, _, err := net.SplitHostPort(w.Addr); err != nil {
		return ragplane.FieldErrorf("addr", "A worker address is host:port.")
	}
	_, err := s.pool.Exec(ctx, `insert into workers (id, addr, lease_expires_at) values ($1, $2, now() + $3::interval)
		on conflict (id) do update set addr = $2, heartbeat_at = now(), lease_expires_at = now() + $3::interval`,
		w.ID, w.Addr, fmt.Sprintf("%d milliseconds", ttl.Milliseconds()))
	return pgError(err, "Worker")
}

// HeartbeatWorker renews a worker's lease; ENOTFOUND if it was expired and removed (the worker
// then registers again).
func (s *Store) HeartbeatWorker(ctx context.Context, id string, ttl time.Duration) error {
	tag, err := s.pool.Exec(ctx, `update workers set heartbeat_at = now(), lease_expires_at = now() + $2::interval where id = $1`,
		id, fmt.Sprintf("%d milliseconds", ttl.Milliseconds()))
	if err != nil {
		return pgError(err, "Worker")
	}
	if tag.RowsAffected() == 0 {
		return ragplane.Errorf(ragplane.ENOTFOUND, "Worker %q is not registered.", id)
	}
	return nil
}

// RemoveWorker deletes a worker (on clean shutdown).
func (s *Store) RemoveWorker(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `delete from workers where id = $1`, id)
	return pgError(err, "Worker")
}

// ExpireWorkers removes workers whose lease ran out and reports how many went.
func (s *Store) ExpireWorkers(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `delete from workers where lease_expires_at < now()`)
	if err != nil {
		return 0, pgError(err, "Workers")
	}
	return tag.RowsAffected(), nil
}

// LiveWorkers returns the workers whose lease has not run out, by id.
func (s *Store) LiveWorkers(ctx context.Context) ([]ragplane.Worker, error) {
	rows, err := s.pool.Query(ctx, `select id, addr from workers where lease_expires_at >= now() order by id`)
	if err != nil {
		return nil, pgError(err, "Workers")
	}
	ws, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ragplane.Worker])
	return ws, pgError(err, "Workers")
}

// TenantPolicies returns the policy of every tenant that is not deleted, with effective limits.
func (s *Store) TenantPolicies(ctx context.Context) ([]ragplane.TenantPolicy, error) {
	var out []ragplane.TenantPolicy
	err := s.readPolicies(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = tenantPolicies(ctx, tx, `status <> 'deleted' order by id`)
		return err
	})
	return out, err
}
