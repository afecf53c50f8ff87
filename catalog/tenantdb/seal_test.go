package tenantdb_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
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

// Sync copies a tenant's rows and nothing of another tenant's; a second Sync from the hashes the
// first returned copies only what changed (a new vector, a new document) and deletes what went
// (a deleted document and, first, its chunks), leaving the target equal to the source.
func TestSyncCopiesWhatChanged(t *testing.T) {
	ctx := context.Background()
	srcPool, _ := sealDB(t)
	dstPool, _ := sealDB(t)
	acme, globex := tenantdb.Scope(srcPool, "acme"), tenantdb.Scope(srcPool, "globex")
	vec := func(x float32) string { return fmt.Sprintf("[%g,1,0,0,0,0,0,0]", x) }
	addDoc := func(db *tenantdb.Scoped, name string, chunks ...float32) string {
		t.Helper()
		var id string
		hash := sha256.Sum256([]byte(db.Tenant() + name))
		if err := db.QueryRow(ctx, `insert into documents (id, title, content_hash) values (gen_random_uuid(), $1, $2) returning id::text`, name, hash[:]).Scan(&id); err != nil {
			t.Fatal(err)
		}
		for i, x := range chunks {
			if _, err := db.Exec(ctx, `insert into chunks (id, document_id, ordinal, content, tokens, embedding)
				values (gen_random_uuid(), $1, $2, $3, 3, $4::vector)`, id, i, fmt.Sprintf("%s chunk %d", name, i), vec(x)); err != nil {
				t.Fatal(err)
			}
		}
		return id
	}
	addDoc(acme, "d1", 1, 2)
	d2 := addDoc(acme, "d2", 3)
	addDoc(globex, "g1", 9)
	var known tenantdb.Hashes
	sync := func() tenantdb.SyncStats {
		t.Helper()
		var st tenantdb.SyncStats
		err := pgx.BeginTxFunc(ctx, srcPool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, func(stx pgx.Tx) error {
			return pgx.BeginFunc(ctx, dstPool, func(dtx pgx.Tx) error {
				var err error
				st, known, err = tenantdb.Sync(ctx, stx, dtx, "acme", known)
				return err
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := sync()
	if st.Copied["documents"] != 2 || st.Copied["chunks"] != 3 || len(st.Deleted) != 0 {
		t.Fatalf("first sync: %+v", st)
	}
	// Changes: a chunk's vector, a deleted document, a new one.
	if _, err := acme.Exec(ctx, `update chunks set embedding = $1::vector where ordinal = 0 and content like 'd1 %'`, vec(5)); err != nil {
		t.Fatal(err)
	}
	if _, err := acme.Exec(ctx, `delete from documents where id = $1`, d2); err != nil {
		t.Fatal(err)
	}
	addDoc(acme, "d3", 4)
	st = sync()
	want := tenantdb.SyncStats{Copied: map[string]int64{"chunks": 2, "documents": 1}, Deleted: map[string]int64{"chunks": 1, "documents": 1}}
	if !maps.Equal(st.Copied, want.Copied) || !maps.Equal(st.Deleted, want.Deleted) {
		t.Fatalf("second sync: copied %v deleted %v, want %v and %v", st.Copied, st.Deleted, want.Copied, want.Deleted)
	}
	rowsOf := func(pool *pgxpool.Pool) []string {
		t.Helper()
		rows, err := pool.Query(ctx, `select c.id::text || ' ' || d.id::text || ' ' || c.content || ' ' || c.embedding::text || ' ' || c.tenant_id
			from chunks c join documents d on d.id = c.document_id order by c.id`)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	var acmeRows []string
	for _, r := range rowsOf(srcPool) {
		if strings.HasSuffix(r, " acme") {
			acmeRows = append(acmeRows, r)
		}
	}
	if got := rowsOf(dstPool); !slices.Equal(got, acmeRows) {
		t.Fatalf("target rows:\n%v\nwant acme's source rows:\n%v", got, acmeRows)
	}
	if st := sync(); len(st.Copied)+len(st.Deleted) != 0 {
		t.Fatalf("a sync with nothing changed copied %v and deleted %v", st.Copied, st.Deleted)
	}
}
