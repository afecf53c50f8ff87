package tenantdb_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/catalog/tenantdb"
	"github.com/ragplane/ragplane/internal/pgerr"
)

// sealDB is a migrated tenant database (as the server's superuser, which is what the mover uses)
// and a pool on it.
func sealDB(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	ctx := context.Background()
	url := catalogtest.NewDatabase(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "create extension if not exists vector"); err != nil {
		t.Fatal(err)
	}
	if _, err := tenantdb.Migrate(ctx, conn, 8); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, url
}

func insertDoc(ctx context.Context, db *tenantdb.Scoped, n int) error {
	hash := sha256.Sum256([]byte{byte(n)})
	_, err := db.Exec(ctx, `insert into documents (id, title, content_hash) values (gen_random_uuid(), 'doc', $1)`, hash[:])
	return err
}

// waitLockWaiters waits until n sessions wait for an advisory lock in the database.
func waitLockWaiters(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got int
		if err := pool.QueryRow(context.Background(), `select count(*) from pg_locks
			where locktype = 'advisory' and not granted and database = (select oid from pg_database where datname = current_database())`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions wait for the move lock, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The fence waits for the tenant's transaction in flight and holds the ones that start during it;
// once the seal commits, a held writer is refused (RPM01) and writes nothing, and so is every
// later statement. Another tenant of the same database is not held.
func TestFenceHoldsAndSealRefuses(t *testing.T) {
	ctx := context.Background()
	pool, _ := sealDB(t)
	db, other := tenantdb.Scope(pool, "acme"), tenantdb.Scope(pool, "globex")
	if err := insertDoc(ctx, db, 1); err != nil {
		t.Fatal(err)
	}
	// A transaction in flight when the mover asks for the lock.
	inflight, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hash := sha256.Sum256([]byte("in flight"))
	if _, err := inflight.Exec(ctx, `insert into documents (id, title, content_hash) values (gen_random_uuid(), 'x', $1)`, hash[:]); err != nil {
		t.Fatal(err)
	}
	fenced := make(chan pgx.Tx, 1)
	fenceErr := make(chan error, 1)
	go func() {
		tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
		if err == nil {
			err = tenantdb.Fence(ctx, tx, "acme", 20*time.Second)
		}
		fenceErr <- err
		fenced <- tx
	}()
	waitLockWaiters(t, pool, 1) // the fence waits for the transaction in flight
	if err := inflight.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-fenceErr; err != nil {
		t.Fatal(err)
	}
	fence := <-fenced
	// The fence's statements see what the transaction it waited for committed.
	var n int
	if err := fence.QueryRow(ctx, `select count(*) from documents where tenant_id = 'acme'`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("the fence sees %d of acme's documents (%v), want 2", n, err)
	}
	// Another tenant is not held.
	if err := insertDoc(ctx, other, 2); err != nil {
		t.Fatalf("another tenant of the database was held: %v", err)
	}
	held := make(chan error, 1)
	go func() { held <- insertDoc(ctx, db, 3) }()
	waitLockWaiters(t, pool, 1)
	if err := tenantdb.Seal(ctx, fence, "acme", "elsewhere"); err != nil {
		t.Fatal(err)
	}
	if err := fence.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-held; !pgerr.Moved(err) {
		t.Fatalf("a write held by the fence got %v after the seal, want RPM01", err)
	}
	if err := db.QueryRow(ctx, `select count(*) from documents`).Scan(&n); !pgerr.Moved(err) {
		t.Fatalf("a read after the seal got %v, want RPM01", err)
	}
	if err := pool.QueryRow(ctx, `select count(*) from documents where tenant_id = 'acme'`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("acme has %d documents in the sealed copy (%v), want the 2 written before the seal", n, err)
	}
	to, err := tenantdb.SealedTo(ctx, pool, "acme")
	if err != nil || to != "elsewhere" {
		t.Fatalf("SealedTo = %q, %v", to, err)
	}
	// Unsealed (the tenant moving back in), it is served again.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tenantdb.Unseal(ctx, tx, "acme"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := insertDoc(ctx, db, 4); err != nil {
		t.Fatalf("after the unseal: %v", err)
	}
}

// On a database whose default isolation is REPEATABLE READ, a writing statement outside a
// transaction is refused (its snapshot would predate a seal committed while it waited), while
// Scoped transactions, which begin READ COMMITTED, work; a read-only REPEATABLE READ transaction
// (an export) is refused while the tenant is held instead of waiting with an old snapshot.
func TestEnterNeedsReadCommitted(t *testing.T) {
	ctx := context.Background()
	pool, url := sealDB(t)
	var dbname string
	if err := pool.QueryRow(ctx, `select current_database()`).Scan(&dbname); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `alter database `+pgx.Identifier{dbname}.Sanitize()+` set default_transaction_isolation = 'repeatable read'`); err != nil {
		t.Fatal(err)
	}
	rr, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Close()
	db := tenantdb.Scope(rr, "acme")
	var pgErr *pgconn.PgError
	if err := insertDoc(ctx, db, 1); !errors.As(err, &pgErr) || pgErr.Code != "RPM02" {
		t.Fatalf("a REPEATABLE READ write got %v, want RPM02", err)
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatalf("a scoped transaction on a REPEATABLE READ database: %v", err)
	}
	hash := sha256.Sum256([]byte("rc"))
	if _, err := tx.Exec(ctx, `insert into documents (id, title, content_hash) values (gen_random_uuid(), 'x', $1)`, hash[:]); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// An export's snapshot while the tenant is held.
	fence, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		t.Fatal(err)
	}
	defer fence.Rollback(ctx)
	if err := tenantdb.Fence(ctx, fence, "acme", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	export, err := rr.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer export.Rollback(ctx)
	if _, err := export.Exec(ctx, `select ragplane_enter('acme')`); !pgerr.Moved(err) {
		t.Fatalf("an export's snapshot while the tenant is held got %v, want RPM01", err)
	}
	// And the fence itself refuses to run at another level.
	bad, err := rr.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Rollback(ctx)
	if err := tenantdb.Fence(ctx, bad, "acme", time.Second); err == nil {
		t.Fatal("a fence in a REPEATABLE READ transaction was taken")
	}
}
