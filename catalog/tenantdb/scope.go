package tenantdb

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// setTenant makes the tenant's rows, and only them, visible to the rest of the transaction (see
// migrations/008_tenant_rows.sql): ragplane_enter sets ragplane.tenant_id with set_config(...,
// true), so the setting ends with the transaction and a pooled connection never carries one
// tenant's id to the next statement it runs for another. It also holds the tenant's move lock in
// shared mode and fails with SQLSTATE RPM01 once the tenant's rows have moved to another
// database (migrations/009_tenant_seals.sql).
const setTenant = `select ragplane_enter($1)`

// ErrNoTenant is returned by a Scoped with no tenant: it never runs a statement unscoped.
var ErrNoTenant = errors.New("tenantdb: no tenant for the tenant database")

// Scoped is one tenant's view of a database that holds its rows: its own (siloed) or a pool
// shared with other tenants. Every statement runs with the tenant set for its transaction, so row
// level security shows and accepts that tenant's rows only; the callers' SQL never names the
// tenant, and is the same in both tiers.
//
// A statement outside a transaction is sent as a batch of two, the tenant's set_config and the
// statement, in one round trip: PostgreSQL runs a batch (up to its Sync) as one implicit
// transaction. Begin sends the transaction's BEGIN and the tenant's set_config as one batch too.
//
// Its connections must have pgvector's types registered (pgvector-go/pgx RegisterTypes in
// AfterConnect) where the callers read or write vectors.
type Scoped struct {
	pool   *pgxpool.Pool
	tenant string
	gate   Gate
}

// Gate bounds how a Scoped waits for a connection. In a pool database every tenant shares one
// pgx pool: without a bound, one busy tenant holding every connection would stall the others
// until their requests' deadlines.
type Gate struct {
	// Wait bounds the wait for a connection (and for a slot of Slots); zero leaves only the
	// caller's context to bound it.
	Wait time.Duration
	// Slots, when not nil, caps the tenant's connections in use at once at its capacity: a slot is
	// taken before a connection is acquired and given back when it is released. Share one channel
	// among all the Scoped of a tenant.
	Slots chan struct{}
	// Busy is returned when Wait elapses first (ErrBusy if nil).
	Busy error
}

// ErrBusy is returned when a Gate's Wait elapses before a connection is free.
var ErrBusy = errors.New("tenantdb: no connection free in time")

// Scope returns tenant's view of the database behind pool.
func Scope(pool *pgxpool.Pool, tenant string) *Scoped { return &Scoped{pool: pool, tenant: tenant} }

// ScopeWith returns tenant's view of the database behind pool, waiting for connections as gate
// says.
func ScopeWith(pool *pgxpool.Pool, tenant string, gate Gate) *Scoped {
	return &Scoped{pool: pool, tenant: tenant, gate: gate}
}

// acquire takes a slot of the gate, if any, and a connection, within the gate's wait. release
// gives both back; it may be called more than once.
func (s *Scoped) acquire(ctx context.Context) (*pgxpool.Conn, func(), error) {
	wctx := ctx
	if s.gate.Wait > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, s.gate.Wait)
		defer cancel()
	}
	busy := func(err error) error {
		if ctx.Err() == nil && wctx.Err() != nil {
			if s.gate.Busy != nil {
				return s.gate.Busy
			}
			return ErrBusy
		}
		return err
	}
	free := func() {}
	if s.gate.Slots != nil {
		select {
		case s.gate.Slots <- struct{}{}:
			free = func() { <-s.gate.Slots }
		case <-wctx.Done():
			return nil, nil, busy(wctx.Err())
		}
	}
	c, err := s.pool.Acquire(wctx)
	if err != nil {
		free()
		return nil, nil, busy(err)
	}
	var once sync.Once
	return c, func() {
		once.Do(func() {
			c.Release()
			free()
		})
	}, nil
}

// Tenant returns the tenant the view is scoped to.
func (s *Scoped) Tenant() string { return s.tenant }

// Begin starts a transaction scoped to the tenant.
func (s *Scoped) Begin(ctx context.Context) (pgx.Tx, error) {
	if s.tenant == "" {
		return nil, ErrNoTenant
	}
	c, release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	b.Queue(setTenant, s.tenant)
	br := c.SendBatch(ctx, b)
	tx := br.Tx()
	if err := br.Close(); err != nil {
		if tx != nil {
			tx.Rollback(context.WithoutCancel(ctx))
		}
		release()
		return nil, err
	}
	if tx == nil {
		release()
		return nil, errors.New("tenantdb: the batch began no transaction")
	}
	return &scopedTx{Tx: tx, release: release}, nil
}

// scopedTx is a transaction on an acquired connection, released when the transaction ends, as
// pgxpool's Tx does.
type scopedTx struct {
	pgx.Tx
	release func()
}

func (tx *scopedTx) Commit(ctx context.Context) error {
	err := tx.Tx.Commit(ctx)
	tx.release()
	return err
}

func (tx *scopedTx) Rollback(ctx context.Context) error {
	err := tx.Tx.Rollback(ctx)
	tx.release()
	return err
}

// send sends the tenant's set_config followed by b's statements and reads the set_config's result.
func (s *Scoped) send(ctx context.Context, queue func(b *pgx.Batch)) (pgx.BatchResults, error) {
	if s.tenant == "" {
		return nil, ErrNoTenant
	}
	c, release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	b := &pgx.Batch{}
	b.Queue(setTenant, s.tenant)
	queue(b)
	br := &connBatch{BatchResults: c.SendBatch(ctx, b), release: release}
	if _, err := br.Exec(); err != nil {
		br.Close()
		return nil, err
	}
	return br, nil
}

// Exec runs a statement scoped to the tenant.
func (s *Scoped) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	br, err := s.send(ctx, func(b *pgx.Batch) { b.Queue(sql, args...) })
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

// Query runs a query scoped to the tenant. The connection is held until the rows are closed (or
// read to the end), like pgxpool's.
func (s *Scoped) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	br, err := s.send(ctx, func(b *pgx.Batch) { b.Queue(sql, args...) })
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		rows.Close()
		br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

// QueryRow runs a query scoped to the tenant and reads its first row, like pgx's.
func (s *Scoped) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := s.Query(ctx, sql, args...)
	return &scopedRow{rows: rows, err: err}
}

// SendBatch sends b scoped to the tenant, in one implicit transaction. Its queued queries'
// callbacks run as usual.
func (s *Scoped) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	br, err := s.send(ctx, func(nb *pgx.Batch) { nb.QueuedQueries = append(nb.QueuedQueries, b.QueuedQueries...) })
	if err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	return br
}

// connBatch is a batch's results on an acquired connection, released when they are closed, as
// pgxpool's SendBatch does.
type connBatch struct {
	pgx.BatchResults
	release func()
}

func (br *connBatch) Close() error {
	err := br.BatchResults.Close()
	br.release()
	return err
}

// batchRows are a batch's rows that close the batch, releasing its connection, when closed.
type batchRows struct {
	pgx.Rows
	br     pgx.BatchResults
	closed bool
	err    error
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *batchRows) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.Rows.Close()
	r.err = r.br.Close() // the implicit transaction's end: a failed commit shows here
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

type scopedRow struct {
	rows pgx.Rows
	err  error
}

func (r *scopedRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}
