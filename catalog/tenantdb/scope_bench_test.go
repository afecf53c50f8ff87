package tenantdb_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/catalog/tenantdb"
)

// oldPreamble is what started every tenant statement before migrations/009_tenant_seals.sql:
// the tenant's id for the transaction, without the move lock or the seal check.
const oldPreamble = `select set_config('ragplane.tenant_id', $1, true)`

// BenchmarkScopedStatement measures what ragplane_enter (the move lock in shared mode, the seal
// lookup, then set_config) costs each tenant statement, next to the set_config alone it replaced,
// on the same pool of a pool database reached as its non-owner role (row level security applies,
// FORCEd, as in provision/local):
//
//   - statement: a QueryRow of select count(*) from documents, sent as one batch after the
//     preamble (tenantdb.Scope for ragplane_enter; the same batch built here for set_config);
//   - tx: BEGIN and the preamble as one batch, the same query, COMMIT (Scoped.Begin, and the same
//     built here);
//   - statement/paired and tx/paired: both preambles in each iteration, reporting the median of
//     each and their ratio, new/old.
//
// The database holds 20 documents of the tenant, 20 of another and 1,000 seals of tenants that
// moved out, so the seal check is an index lookup on a table that is not empty.
//
//	source .ragplane/stack.env && go test -run '^$' -bench ScopedStatement -count 6 ./catalog/tenantdb/
func BenchmarkScopedStatement(b *testing.B) {
	pool := benchPoolDB(b)
	ctx := context.Background()
	const tenant, docs = "bench_tenant", 20
	const query = `select count(*) from documents`
	scoped := tenantdb.Scope(pool, tenant)
	old := oldScope{pool: pool, tenant: tenant}
	for _, t := range []string{tenant, "bench_other"} {
		batch := &pgx.Batch{}
		for i := range docs {
			hash := sha256.Sum256(fmt.Appendf(nil, "%s/%d", t, i))
			batch.Queue(`insert into documents (id, title, content_hash) values (gen_random_uuid(), $1, $2)`, fmt.Sprintf("doc %d", i), hash[:])
		}
		if err := tenantdb.Scope(pool, t).SendBatch(ctx, batch).Close(); err != nil {
			b.Fatalf("insert %s's documents: %v", t, err)
		}
	}
	// statement runs the query once with either preamble. Both must show the tenant its own rows
	// and only them, or the figures would compare statements that do different work.
	statement := func(enter bool) error {
		var n int
		var err error
		if enter {
			err = scoped.QueryRow(ctx, query).Scan(&n)
		} else {
			n, err = old.count(ctx, query)
		}
		if err == nil && n != docs {
			err = fmt.Errorf("count = %d, want %d", n, docs)
		}
		return err
	}

	// Warm both up (plans, the function's compiled body, the pool's connections, the setup's
	// writes settling) so that the first sub-benchmark does not pay for them.
	for range 1000 {
		for _, enter := range []bool{true, false} {
			if err := statement(enter); err != nil {
				b.Fatalf("enter=%v: %v", enter, err)
			}
		}
	}

	b.Run("statement/enter", func(b *testing.B) {
		for b.Loop() {
			var n int
			if err := scoped.QueryRow(ctx, query).Scan(&n); err != nil || n != docs {
				b.Fatalf("count = %d, %v", n, err)
			}
		}
	})
	b.Run("statement/set_config", func(b *testing.B) {
		for b.Loop() {
			if n, err := old.count(ctx, query); err != nil || n != docs {
				b.Fatalf("count = %d, %v", n, err)
			}
		}
	})
	b.Run("tx/enter", func(b *testing.B) {
		for b.Loop() {
			tx, err := scoped.Begin(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if n, err := countCommit(ctx, tx, query); err != nil || n != docs {
				b.Fatalf("count = %d, %v", n, err)
			}
		}
	})
	b.Run("tx/set_config", func(b *testing.B) {
		for b.Loop() {
			tx, release, err := old.begin(ctx)
			if err != nil {
				b.Fatal(err)
			}
			n, err := countCommit(ctx, tx, query)
			release()
			if err != nil || n != docs {
				b.Fatalf("count = %d, %v", n, err)
			}
		}
	})

	// The same, each iteration running both preambles in turn (which goes first alternates):
	// on a machine whose load changes from second to second, the ratio of their medians compares
	// them under the same load, where the sub-benchmarks above run seconds apart.
	b.Run("statement/paired", func(b *testing.B) { benchPaired(b, statement) })
	b.Run("tx/paired", func(b *testing.B) {
		benchPaired(b, func(enter bool) error {
			var tx pgx.Tx
			release := func() {}
			var err error
			if enter {
				tx, err = scoped.Begin(ctx)
			} else {
				tx, release, err = old.begin(ctx)
			}
			if err != nil {
				return err
			}
			n, err := countCommit(ctx, tx, query)
			release()
			if err == nil && n != docs {
				err = fmt.Errorf("count = %d, want %d", n, docs)
			}
			return err
		})
	})
}

// benchPaired runs op with ragplane_enter (true) and with the old preamble (false) in each
// iteration, alternating which goes first, and reports the median of each, in ns, and the ratio
// of the medians, new/old. ns/op is the pair's.
func benchPaired(b *testing.B, op func(enter bool) error) {
	var enter, old []time.Duration
	for i := 0; b.Loop(); i++ {
		for j := range 2 {
			e := (i+j)%2 == 0
			start := time.Now()
			if err := op(e); err != nil {
				b.Fatal(err)
			}
			if d := time.Since(start); e {
				enter = append(enter, d)
			} else {
				old = append(old, d)
			}
		}
	}
	median := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2])
	}
	e, o := median(enter), median(old)
	b.ReportMetric(e, "enter-p50-ns")
	b.ReportMetric(o, "set_config-p50-ns")
	b.ReportMetric(e/o, "new/old")
}

// countCommit runs query, a count, in tx and commits it.
func countCommit(ctx context.Context, tx pgx.Tx, query string) (int, error) {
	var n int
	if err := tx.QueryRow(ctx, query).Scan(&n); err != nil {
		tx.Rollback(ctx)
		return 0, err
	}
	return n, tx.Commit(ctx)
}

// oldScope does what tenantdb.Scoped did with the old preamble: the same batches on an acquired
// connection, without a Gate (the benchmark's Scoped has none either).
type oldScope struct {
	pool   *pgxpool.Pool
	tenant string
}

// count runs query after the preamble as one batch, one implicit transaction, and reads its
// single number.
func (s oldScope) count(ctx context.Context, query string) (int, error) {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer c.Release()
	b := &pgx.Batch{}
	b.Queue(oldPreamble, s.tenant)
	b.Queue(query)
	br := c.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		br.Close()
		return 0, err
	}
	var n int
	err = br.QueryRow().Scan(&n)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// begin sends BEGIN and the preamble as one batch; release gives the connection back once the
// transaction has ended.
func (s oldScope) begin(ctx context.Context) (pgx.Tx, func(), error) {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(oldPreamble, s.tenant)
	br := c.SendBatch(ctx, b)
	tx := br.Tx()
	if err := br.Close(); err != nil {
		if tx != nil {
			tx.Rollback(ctx)
		}
		c.Release()
		return nil, nil, err
	}
	if tx == nil {
		c.Release()
		return nil, nil, errors.New("the batch began no transaction")
	}
	return tx, c.Release, nil
}

// benchPoolDB returns a pool on a fresh, migrated pool database (dimension 384) reached as a role
// that neither owns its tables nor bypasses row level security, with 1,000 seals of tenants that
// moved out. The database and the role are dropped when the benchmark ends. Without the local
// stack it skips, as catalogtest does for every test.
func benchPoolDB(b *testing.B) *pgxpool.Pool {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	server := catalogtest.ServerURL(b)
	role := catalogtest.RandomName("rpt_app_")
	sc, err := pgx.Connect(ctx, server)
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close(ctx)
	if _, err := sc.Exec(ctx, fmt.Sprintf(`create role %s login password 'app' nosuperuser nobypassrls`, role)); err != nil {
		b.Fatal(err)
	}
	// Registered before the database's, so it runs after the database is dropped.
	b.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), server)
		if err == nil {
			c.Exec(context.Background(), "drop role if exists "+role)
			c.Close(context.Background())
		}
	})
	dbURL := catalogtest.NewDatabase(b)
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "create extension if not exists vector"); err != nil {
		b.Fatal(err)
	}
	if _, err := tenantdb.Migrate(ctx, conn, 384); err != nil {
		b.Fatal(err)
	}
	if err := tenantdb.ForcePolicies(ctx, conn); err != nil {
		b.Fatal(err)
	}
	for _, t := range tenantdb.TenantTables {
		if _, err := conn.Exec(ctx, fmt.Sprintf("grant select, insert, update, delete on %s to %s", t, role)); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `insert into ragplane_tenant_seals (tenant_id, moved_to)
		select 'moved_' || i, 'elsewhere' from generate_series(1, 1000) i`); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "analyze"); err != nil {
		b.Fatal(err)
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		b.Fatal(err)
	}
	u.User = url.UserPassword(role, "app")
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return pool
}
