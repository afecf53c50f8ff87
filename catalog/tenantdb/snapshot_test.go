package tenantdb_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/catalog/tenantdb"
)

// fillTenant gives tenant rows in every table of tenantdb.TenantTables, with values of every
// kind the schema holds: content, jsonb, regconfig (two text search configurations), vectors and
// a NULL one, validity times, bytea bodies.
func fillTenant(t *testing.T, pool *pgxpool.Pool, tenant string) {
	t.Helper()
	ctx := context.Background()
	db := tenantdb.Scope(pool, tenant)
	id := func(sql string, args ...any) string {
		t.Helper()
		var id string
		if err := db.QueryRow(ctx, sql+` returning id::text`, args...).Scan(&id); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return id
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	hash := func(s string) []byte { h := sha256.Sum256([]byte(tenant + s)); return h[:] }
	doc := `insert into documents (id, title, source, content_hash, metadata, bytes, chunk_count, content, text_config, status)
		values (gen_random_uuid(), $1, 'upload', $2, $3, $4, $5, $6, $7::regconfig, $8)`
	d1 := id(doc, "Airships", hash("d1"), `{"lang": "en", "tags": ["history"]}`, 33, 2, "The zeppelin flew over the lake.", "english", "ready")
	d2 := id(doc, "Les dirigeables", hash("d2"), `{}`, 21, 1, "Le dirigeable volait.", "french", "embedding")
	chunk := `insert into chunks (id, document_id, ordinal, content, tokens, embedding, title, text_config)
		values (gen_random_uuid(), $1, $2, $3, $4, $5::vector, $6, $7::regconfig)`
	c1 := id(chunk, d1, 0, "The zeppelin flew", 3, "[1,0.5,0,0,0,0,0,-0.25]", "Airships", "english")
	id(chunk, d1, 1, "over the lake.", 3, "[0,1,0,0,0,0,0,0.125]", "Airships", "english")
	id(chunk, d2, 0, "Le dirigeable volait.", 3, nil, "Les dirigeables", "french") // not embedded yet
	entity := `insert into entities (id, name, norm_name, kind, summary) values (gen_random_uuid(), $1, $2, $3, $4)`
	e1 := id(entity, "Zeppelin", "zeppelin", "aircraft", "A rigid airship.")
	e2 := id(entity, "Lake Constance", "lake constance", "place", "")
	id(`insert into relations (id, source_id, target_id, relation, fact, chunk_id, document_id, valid_at, invalid_at, expired_at)
		values (gen_random_uuid(), $1, $2, 'flew_over', 'The zeppelin flew over the lake.', $3, $4,
		'1908-07-01 10:00:00.123456+00', '1908-07-01 22:00:00+00', now())`, e1, e2, c1, d1)
	exec(`insert into text_configs (config) values ('english'), ('french')`)
	exec(`insert into idempotency_keys (key, request_hash, document_id, result) values ('idem-1', $1, $2, $3)`,
		hash("req"), d1, fmt.Sprintf(`["%s","%s"]`, d1, d2))
	exec(`insert into query_results (key, request_hash, body, created_at) values ('q-1', $1, $2, now() - interval '1 hour')`,
		hash("q"), []byte("{\"answer\":\"It flew.\",  \"citations\":[]}\x00\xff"))
}

// dump takes a snapshot of tenant in pool's database in a REPEATABLE READ transaction.
func dump(t *testing.T, pool *pgxpool.Pool, tenant string) ([]byte, tenantdb.SnapshotInfo) {
	t.Helper()
	ctx := context.Background()
	var buf bytes.Buffer
	var info tenantdb.SnapshotInfo
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		info, err = tenantdb.Dump(ctx, tx, tenant, &buf)
		return err
	})
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	return buf.Bytes(), info
}

// load loads a snapshot into pool's database and commits when Load succeeds, rolls back
// otherwise.
func load(pool *pgxpool.Pool, tenant string, snap []byte) (tenantdb.SnapshotInfo, error) {
	ctx := context.Background()
	var info tenantdb.SnapshotInfo
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		info, err = tenantdb.Load(ctx, tx, tenant, bytes.NewReader(snap))
		return err
	})
	return info, err
}

// tenantRows counts tenant's rows in pool's database, per table.
func tenantRows(t *testing.T, pool *pgxpool.Pool, tenant string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, name := range tenantdb.TenantTables {
		var n int64
		if err := pool.QueryRow(context.Background(), `select count(*) from `+pgx.Identifier{name}.Sanitize()+` where tenant_id = $1`, tenant).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[name] = n
	}
	return out
}

// checkFrames checks the snapshot's layout: a header line, then for each table frames of at most
// limit bytes up to a frame of length 0, then a trailer line. It checks that at least one table
// was cut into several frames.
func checkFrames(t *testing.T, snap []byte, limit int) {
	t.Helper()
	if !bytes.HasPrefix(snap, []byte(`{"format":"ragplane-tenant-snapshot","version":1,`)) {
		t.Fatalf("the snapshot starts with %.80q", snap)
	}
	rest := snap[bytes.IndexByte(snap, '\n')+1:]
	most := 0
	for range tenantdb.TenantTables {
		for frames := 0; ; frames++ {
			n := int(binary.BigEndian.Uint32(rest))
			rest = rest[4:]
			if n == 0 {
				break
			}
			if n > limit {
				t.Fatalf("a frame of %d bytes, more than %d", n, limit)
			}
			rest = rest[n:]
			most = max(most, frames+1)
		}
	}
	if !bytes.HasPrefix(rest, []byte(`{"rows":{`)) || bytes.IndexByte(rest, '\n') != len(rest)-1 {
		t.Fatalf("after the tables' frames: %.80q", rest)
	}
	if most < 2 {
		t.Fatal("no table was cut into several frames")
	}
}

// noRows is zero rows in each tenant table.
func noRows() map[string]int64 {
	out := map[string]int64{}
	for _, name := range tenantdb.TenantTables {
		out[name] = 0
	}
	return out
}

// A tenant's snapshot, loaded into another database, makes it hold exactly the tenant's rows of
// the source, column for column (Sync finds nothing to copy or delete), and nothing of another
// tenant of the source; the generated tsvector is computed again in the target.
func TestSnapshotRoundTrip(t *testing.T) {
	ctx := context.Background()
	src, _ := sealDB(t) // Migrate: a pool-like database with two tenants
	dst, _ := sealDB(t)
	fillTenant(t, src, "acme")
	fillTenant(t, src, "globex")
	// A document larger than a frame.
	big := strings.Repeat("airship ", 300_000)
	bigHash := sha256.Sum256([]byte(big))
	if _, err := tenantdb.Scope(src, "acme").Exec(ctx, `insert into documents (id, title, content_hash, content) values (gen_random_uuid(), 'big', $1, $2)`,
		bigHash[:], big); err != nil {
		t.Fatal(err)
	}
	// A seal is not the tenant's data: the snapshot leaves it behind, and Dump reads a sealed
	// tenant (as the offloader does once it has sealed it).
	if err := pgx.BeginFunc(ctx, src, func(tx pgx.Tx) error { return tenantdb.Seal(ctx, tx, "acme", "archive") }); err != nil {
		t.Fatal(err)
	}
	want := tenantRows(t, src, "acme")
	for name, n := range want {
		if n == 0 {
			t.Fatalf("the source has no row of acme in %s: the test does not cover it", name)
		}
	}

	snap, info := dump(t, src, "acme")
	sum := sha256.Sum256(snap)
	if info.Tenant != "acme" || info.SchemaVersion != tenantdb.LatestVersion() || !maps.Equal(info.Rows, want) ||
		info.Bytes != int64(len(snap)) || info.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("dump info %+v; want acme at version %d, rows %v, %d bytes, sha256 %x", info, tenantdb.LatestVersion(), want, len(snap), sum)
	}
	checkFrames(t, snap, 1<<20)

	loaded, err := load(dst, "acme", snap)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if !reflect.DeepEqual(loaded, info) {
		t.Fatalf("load info %+v, dump info %+v", loaded, info)
	}

	var st tenantdb.SyncStats
	err = pgx.BeginTxFunc(ctx, src, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, func(stx pgx.Tx) error {
		return pgx.BeginFunc(ctx, dst, func(dtx pgx.Tx) error {
			var err error
			st, _, err = tenantdb.Sync(ctx, stx, dtx, "acme", nil)
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if copied, deleted := st.Total(); copied != 0 || deleted != 0 || !maps.Equal(st.Rows, want) {
		t.Fatalf("sync after the load: copied %v, deleted %v, rows %v; want nothing copied or deleted and rows %v", st.Copied, st.Deleted, st.Rows, want)
	}
	if got := tenantRows(t, dst, "globex"); !maps.Equal(got, noRows()) {
		t.Fatalf("the target holds globex's rows: %v", got)
	}
	var seals, matches, unembedded int
	if err := dst.QueryRow(ctx, `select (select count(*) from ragplane_tenant_seals),
		(select count(*) from chunks where tsv @@ to_tsquery('english', 'zeppelin')),
		(select count(*) from chunks where embedding is null)`).Scan(&seals, &matches, &unembedded); err != nil {
		t.Fatal(err)
	}
	if seals != 0 || matches != 1 || unembedded != 1 {
		t.Fatalf("target: %d seals, %d chunks match 'zeppelin', %d without a vector; want 0, 1, 1", seals, matches, unembedded)
	}
	// The French chunk's tsvector is built with its own configuration in the target too.
	if err := dst.QueryRow(ctx, `select count(*) from chunks where tsv @@ to_tsquery('french', 'dirigeables')`).Scan(&matches); err != nil || matches != 1 {
		t.Fatalf("%d chunks match the French stem (%v), want 1", matches, err)
	}
}

// A snapshot cut short, altered anywhere or followed by anything is refused, and the rolled back
// target holds none of its rows.
func TestSnapshotLoadDamaged(t *testing.T) {
	src, _ := sealDB(t)
	dst, _ := sealDB(t)
	fillTenant(t, src, "acme")
	snap, _ := dump(t, src, "acme")
	trailer := bytes.LastIndex(snap, []byte(`{"rows":`)) // where the trailer starts
	if trailer < 4 || !bytes.Equal(snap[trailer-4:trailer], []byte{0, 0, 0, 0}) {
		t.Fatalf("no trailer after a table's last frame in %q", snap[max(0, trailer-8):])
	}
	flip := func(at int) func([]byte) []byte {
		return func(b []byte) []byte { b[at] ^= 0x20; return b }
	}
	tests := []struct {
		name   string
		given  func([]byte) []byte
		damage bool // the error must be ErrSnapshotDamaged
	}{
		{name: "a byte flipped in the middle", given: flip(len(snap) / 2)},
		{name: "a byte flipped in the first quarter", given: flip(len(snap) / 4)},
		{name: "a byte flipped in the last quarter", given: flip(len(snap) * 3 / 4)},
		{name: "a byte flipped in the header", given: flip(30), damage: true},
		// A letter of a document's text changes case: COPY takes it, only the checksum tells.
		{name: "a letter of a document's content changed", given: flip(bytes.Index(snap, []byte("Le dirigeable volait."))), damage: true},
		{name: "a byte flipped in the trailer's checksum", given: flip(len(snap) - 10), damage: true},
		{name: "the last byte before the trailer flipped", given: flip(trailer - 1), damage: true},
		{name: "cut in half", given: func(b []byte) []byte { return b[:len(b)/2] }, damage: true},
		{name: "without its trailer", given: func(b []byte) []byte { return b[:trailer] }, damage: true},
		{name: "without its last newline", given: func(b []byte) []byte { return b[:len(b)-1] }, damage: true},
		{name: "a byte after the trailer", given: func(b []byte) []byte { return append(b, '\n') }, damage: true},
		{name: "a second trailer", given: func(b []byte) []byte { return append(b, b[trailer:]...) }, damage: true},
		{name: "empty", given: func(b []byte) []byte { return nil }, damage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(dst, "acme", tt.given(bytes.Clone(snap)))
			if err == nil {
				t.Fatal("a damaged snapshot was loaded")
			}
			t.Log(err)
			if tt.damage && !errors.Is(err, tenantdb.ErrSnapshotDamaged) {
				t.Fatalf("got %v, want ErrSnapshotDamaged", err)
			}
			for name, n := range tenantRows(t, dst, "acme") {
				if n != 0 {
					t.Fatalf("after the rollback the target holds %d rows in %s", n, name)
				}
			}
		})
	}
	// The intact snapshot still loads into the same target.
	if _, err := load(dst, "acme", snap); err != nil {
		t.Fatalf("the intact snapshot: %v", err)
	}
}

// Load refuses a target that holds the tenant's rows already, one at another schema version, and
// a snapshot of another tenant.
func TestSnapshotLoadRefuses(t *testing.T) {
	ctx := context.Background()
	src, _ := sealDB(t)
	fillTenant(t, src, "acme")
	snap, info := dump(t, src, "acme")

	t.Run("the target holds a row of the tenant", func(t *testing.T) {
		dst, _ := sealDB(t)
		if err := insertDoc(ctx, tenantdb.Scope(dst, "acme"), 1); err != nil {
			t.Fatal(err)
		}
		_, err := load(dst, "acme", snap)
		if !errors.Is(err, tenantdb.ErrSnapshotRefused) {
			t.Fatalf("got %v, want ErrSnapshotRefused", err)
		}
		if got := tenantRows(t, dst, "acme"); got["documents"] != 1 || got["chunks"] != 0 {
			t.Fatalf("the target's rows of acme after the refusal: %v", got)
		}
	})

	t.Run("another tenant's rows do not stop it", func(t *testing.T) {
		dst, _ := sealDB(t)
		if err := insertDoc(ctx, tenantdb.Scope(dst, "globex"), 1); err != nil {
			t.Fatal(err)
		}
		if _, err := load(dst, "acme", snap); err != nil {
			t.Fatalf("load into a pool with another tenant: %v", err)
		}
	})

	t.Run("the target is at another schema version", func(t *testing.T) {
		url := catalogtest.NewDatabase(t)
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := tenantdb.MigrateTo(ctx, conn, 8, "", 8); err != nil {
			t.Fatal(err)
		}
		dst, err := pgxpool.New(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer dst.Close()
		_, err = load(dst, "acme", snap)
		if !errors.Is(err, tenantdb.ErrSnapshotRefused) {
			t.Fatalf("got %v, want ErrSnapshotRefused", err)
		}
		for _, v := range []string{fmt.Sprintf("version %d", info.SchemaVersion), "at 8"} {
			if !strings.Contains(err.Error(), v) {
				t.Fatalf("the error %q does not name %q", err, v)
			}
		}
	})

	t.Run("the snapshot is another tenant's", func(t *testing.T) {
		dst, _ := sealDB(t)
		_, err := load(dst, "globex", snap)
		if !errors.Is(err, tenantdb.ErrSnapshotRefused) {
			t.Fatalf("got %v, want ErrSnapshotRefused", err)
		}
		if got := tenantRows(t, dst, "acme"); got["documents"] != 0 {
			t.Fatalf("acme's rows were loaded: %v", got)
		}
	})
}

// A tenant with no rows (a database provisioned and never used) has a snapshot too, which loads
// as nothing.
func TestSnapshotEmptyTenant(t *testing.T) {
	src, _ := sealDB(t)
	dst, _ := sealDB(t)
	fillTenant(t, src, "globex")
	snap, info := dump(t, src, "acme")
	if !maps.Equal(info.Rows, noRows()) {
		t.Fatalf("rows of a tenant with none: %v", info.Rows)
	}
	loaded, err := load(dst, "acme", snap)
	if err != nil || !reflect.DeepEqual(loaded, info) {
		t.Fatalf("load: %+v, %v; want %+v", loaded, err, info)
	}
	if got := tenantRows(t, dst, "globex"); got["documents"] != 0 {
		t.Fatalf("the target holds globex's rows: %v", got)
	}
}

// Binary COPY carries a regconfig as its OID: a text search configuration created in each
// database separately has another OID in each, and Load refuses the snapshot rather than let the
// tenant's rows name another configuration (or none).
func TestSnapshotLoadRefusesOtherOIDs(t *testing.T) {
	ctx := context.Background()
	src, _ := sealDB(t)
	dst, _ := sealDB(t)
	for _, pool := range []*pgxpool.Pool{src, dst} {
		if _, err := pool.Exec(ctx, `create text search configuration public.airship (copy = english)`); err != nil {
			t.Fatal(err)
		}
	}
	hash := sha256.Sum256([]byte("custom"))
	if _, err := tenantdb.Scope(src, "acme").Exec(ctx, `insert into documents (id, content_hash, text_config) values (gen_random_uuid(), $1, 'airship')`, hash[:]); err != nil {
		t.Fatal(err)
	}
	var so, do uint32
	if err := src.QueryRow(ctx, `select 'airship'::regconfig::oid`).Scan(&so); err != nil {
		t.Fatal(err)
	}
	if err := dst.QueryRow(ctx, `select 'airship'::regconfig::oid`).Scan(&do); err != nil || so == do {
		t.Fatalf("the configuration's OIDs: %d in the source, %d in the target (%v); the test needs them to differ", so, do, err)
	}
	snap, _ := dump(t, src, "acme")
	if _, err := load(dst, "acme", snap); !errors.Is(err, tenantdb.ErrSnapshotRefused) {
		t.Fatalf("got %v, want ErrSnapshotRefused", err)
	}
	// Without the configuration at all, too.
	if _, err := dst.Exec(ctx, `drop text search configuration public.airship`); err != nil {
		t.Fatal(err)
	}
	if _, err := load(dst, "acme", snap); !errors.Is(err, tenantdb.ErrSnapshotRefused) {
		t.Fatalf("got %v, want ErrSnapshotRefused", err)
	}
}

// A failure of the reader (its storage, say) midway is returned as it is, not taken for damage,
// and the rolled back target holds nothing.
func TestSnapshotLoadReaderError(t *testing.T) {
	ctx := context.Background()
	src, _ := sealDB(t)
	dst, _ := sealDB(t)
	fillTenant(t, src, "acme")
	snap, _ := dump(t, src, "acme")
	boom := errors.New("the archive store went away")
	for _, at := range []int{10, len(snap) / 2, len(snap) - 10} {
		err := pgx.BeginFunc(ctx, dst, func(tx pgx.Tx) error {
			_, err := tenantdb.Load(ctx, tx, "acme", io.MultiReader(bytes.NewReader(snap[:at]), iotest.ErrReader(boom)))
			return err
		})
		if !errors.Is(err, boom) || errors.Is(err, tenantdb.ErrSnapshotDamaged) {
			t.Fatalf("a reader failing after %d bytes: got %v, want its own error", at, err)
		}
	}
	if got := tenantRows(t, dst, "acme"); !maps.Equal(got, noRows()) {
		t.Fatalf("after the rollbacks the target holds %v", got)
	}
}
