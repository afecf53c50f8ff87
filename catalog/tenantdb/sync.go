package tenantdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Moving a tenant between databases (a tier move: its own database and a pool, either way). The
// mover connects to both as their owner (a superuser on the local provider, which row level
// security does not bind: every statement here names the tenant) and
//
//  1. Syncs the tenant's rows from a snapshot of the source while the tenant is served from it;
//  2. Fences the tenant in the source (Fence: its move lock, exclusively, waits for its
//     transactions in flight and holds new ones), Syncs again, which copies only what changed
//     since step 1, seals the tenant in the source (Seal) and unseals it in the target, and
//     commits, target first. The catalog then names the target (catalog.Store.SwitchMove).
//
// Every step is safe to repeat after a crash: Sync makes the target equal the source whatever it
// held, and a sealed source is still read by the mover (it does not go through ragplane_enter).

// moveLock takes the tenant's move lock exclusively for the transaction; ragplane_enter takes it
// shared (migrations/009_tenant_seals.sql).
const moveLock = `select pg_advisory_xact_lock(hashtextextended('ragplane.tenant:' || $1, 0))`

// SyncStats says what a Sync changed in the target, per table.
type SyncStats struct {
	Copied  map[string]int64 `json:"copied"`
	Deleted map[string]int64 `json:"deleted"`
	// Rows is how many rows the tenant has in the source, per table.
	Rows map[string]int64 `json:"rows"`
}

// Total is the number of rows Sync copied and deleted.
func (s SyncStats) Total() (copied, deleted int64) {
	for _, n := range s.Copied {
		copied += n
	}
	for _, n := range s.Deleted {
		deleted += n
	}
	return copied, deleted
}

// table is what Sync needs to know of a tenant table: its stored columns (not generated ones,
// which COPY FROM cannot write) and its key within a tenant.
type table struct {
	plain   string
	name    string
	columns []string // quoted
	types   []string // of the columns, as format_type gives them (vector(384))
	key     string   // quoted; the primary key's column other than tenant_id
	pk      []string // quoted; the whole primary key (with tenant_id in a pool)
}

// describe reads a table's columns and key in the database of tx.
func describe(ctx context.Context, tx pgx.Tx, name string) (table, error) {
	t := table{plain: name, name: pgx.Identifier{name}.Sanitize()}
	rows, err := tx.Query(ctx, `select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a
		where a.attrelid = $1::regclass and a.attnum > 0 and not a.attisdropped and a.attgenerated = '' order by a.attnum`, name)
	if err != nil {
		return t, err
	}
	var cols []string
	for rows.Next() {
		var c, typ string
		if err := rows.Scan(&c, &typ); err != nil {
			rows.Close()
			return t, err
		}
		cols = append(cols, c)
		t.types = append(t.types, typ)
	}
	if err := rows.Err(); err != nil {
		return t, err
	}
	rows, err = tx.Query(ctx, `select a.attname from pg_index i join pg_attribute a
		on a.attrelid = i.indrelid and a.attnum = any(i.indkey) where i.indrelid = $1::regclass and i.indisprimary
		order by array_position(i.indkey::int2[], a.attnum)`, name)
	if err != nil {
		return t, err
	}
	pk, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return t, err
	}
	var keys []string
	for _, c := range pk {
		t.pk = append(t.pk, pgx.Identifier{c}.Sanitize())
		if c != "tenant_id" {
			keys = append(keys, c)
		}
	}
	if len(keys) != 1 {
		return t, fmt.Errorf("tenantdb: table %s has no single-column key within a tenant", name)
	}
	t.key = pgx.Identifier{keys[0]}.Sanitize()
	for _, c := range cols {
		t.columns = append(t.columns, pgx.Identifier{c}.Sanitize())
	}
	return t, nil
}

// hash is the SQL expression of a row's hash: md5 of its stored columns as a row's text, with
// vectors hashed in their binary form (vector_send) rather than formatted as text, which costs
// about three times more (measured: 115 against 36 ms for 10,000 rows of dimension 384).
func (t table) hash() string {
	var plain, vectors []string
	for i, c := range t.columns {
		if strings.HasPrefix(t.types[i], "vector") {
			vectors = append(vectors, "coalesce(md5(vector_send("+c+")), '-')")
		} else {
			plain = append(plain, c)
		}
	}
	parts := append([]string{"row(" + strings.Join(plain, ", ") + ")::text"}, vectors...)
	return "md5(" + strings.Join(parts, " || ") + ")"
}

// hashes reads the tenant's rows of t as key -> hash of every stored column.
func hashes(ctx context.Context, tx pgx.Tx, t table, tenant string) (map[string]string, error) {
	rows, err := tx.Query(ctx, fmt.Sprintf(`select %s::text, %s from %s where tenant_id = $1`, t.key, t.hash(), t.name), tenant)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, h string
		if err := rows.Scan(&k, &h); err != nil {
			return nil, err
		}
		out[k] = h
	}
	return out, rows.Err()
}

// Hashes are the tenant's rows as a Sync left them in the target, per table: key -> hash of the
// row's stored columns.
type Hashes map[string]map[string]string

// Sync makes the tenant's rows in dst equal to those in src, table by table: rows are compared by
// key and by a hash of their stored columns, rows missing from src are deleted from dst (children
// first, so cascades take nothing src still has), and rows new or changed in src are upserted into
// dst (parents first) through binary COPY into a temporary table. src should be a REPEATABLE
// READ transaction (one snapshot for every table) unless the tenant is fenced; dst is committed
// by the caller. Both databases must be at the same schema version.
//
// known is what an earlier Sync returned, once its dst transaction committed (nobody else writes
// the tenant's rows in the target): dst's rows are then not read and hashed again. nil reads them.
// Sync returns the hashes dst holds after it.
func Sync(ctx context.Context, src, dst pgx.Tx, tenant string, known Hashes) (SyncStats, Hashes, error) {
	st := SyncStats{Copied: map[string]int64{}, Deleted: map[string]int64{}, Rows: map[string]int64{}}
	after := Hashes{}
	var sv, dv int
	if err := src.QueryRow(ctx, `select version from `+VersionTable).Scan(&sv); err != nil {
		return st, nil, fmt.Errorf("tenantdb: source schema version: %w", err)
	}
	if err := dst.QueryRow(ctx, `select version from `+VersionTable).Scan(&dv); err != nil {
		return st, nil, fmt.Errorf("tenantdb: target schema version: %w", err)
	}
	if sv != dv {
		return st, nil, fmt.Errorf("tenantdb: source schema version %d, target %d: upgrade both first", sv, dv)
	}
	// COPY takes no parameters: its query reads the tenant from the transaction's setting. The
	// target's statements name the tenant too, and the setting lets an owner that the FORCEd
	// policies of a pool bind (an admin role that is not a superuser) write its rows.
	for _, tx := range []pgx.Tx{src, dst} {
		if _, err := tx.Exec(ctx, `select set_config('ragplane.tenant_id', $1, true)`, tenant); err != nil {
			return st, nil, err
		}
	}
	type plan struct {
		name string
		t    table
		put  []string
		all  bool
		gone []string
	}
	plans := make([]plan, 0, len(TenantTables))
	for _, name := range TenantTables { // children first
		ts, err := describe(ctx, src, name)
		if err != nil {
			return st, nil, err
		}
		td, err := describe(ctx, dst, name)
		if err != nil {
			return st, nil, err
		}
		if !slices.Equal(ts.columns, td.columns) || !slices.Equal(ts.types, td.types) || ts.key != td.key {
			return st, nil, fmt.Errorf("tenantdb: table %s differs between source and target", name)
		}
		hs, err := hashes(ctx, src, ts, tenant)
		if err != nil {
			return st, nil, err
		}
		hd, ok := known[name]
		if !ok {
			if hd, err = hashes(ctx, dst, td, tenant); err != nil {
				return st, nil, err
			}
		}
		after[name] = hs
		p := plan{name: name, t: td}
		for k, h := range hs {
			if hd[k] != h {
				p.put = append(p.put, k)
			}
		}
		for k := range hd {
			if _, ok := hs[k]; !ok {
				p.gone = append(p.gone, k)
			}
		}
		p.all = len(p.put) == len(hs)
		st.Rows[name] = int64(len(hs))
		plans = append(plans, p)
	}
	for _, p := range plans {
		if len(p.gone) == 0 {
			continue
		}
		tag, err := dst.Exec(ctx, fmt.Sprintf(`delete from %s where tenant_id = $1 and %s::text = any($2)`, p.t.name, p.t.key), tenant, p.gone)
		if err != nil {
			return st, nil, fmt.Errorf("tenantdb: delete from %s: %w", p.t.name, err)
		}
		st.Deleted[p.name] = tag.RowsAffected()
	}
	for i := len(plans) - 1; i >= 0; i-- { // parents first
		p := plans[i]
		if len(p.put) == 0 {
			continue
		}
		n, err := upsert(ctx, src, dst, p.t, p.put, p.all)
		if err != nil {
			return st, nil, fmt.Errorf("tenantdb: copy %s: %w", p.t.name, err)
		}
		st.Copied[p.name] = n
	}
	return st, after, nil
}

// upsert copies the rows of t with the given keys (every row of the tenant when all) from src to
// dst: binary COPY out of src into a temporary table of dst, then one insert ... on conflict
// update from it.
func upsert(ctx context.Context, src, dst pgx.Tx, t table, keys []string, all bool) (int64, error) {
	cols := strings.Join(t.columns, ", ")
	filter := ""
	if !all {
		if _, err := src.Exec(ctx, `create temporary table if not exists ragplane_move_keys (k text primary key) on commit drop`); err != nil {
			return 0, err
		}
		if _, err := src.Exec(ctx, `truncate ragplane_move_keys`); err != nil {
			return 0, err
		}
		if _, err := src.CopyFrom(ctx, pgx.Identifier{"ragplane_move_keys"}, []string{"k"},
			pgx.CopyFromSlice(len(keys), func(i int) ([]any, error) { return []any{keys[i]}, nil })); err != nil {
			return 0, err
		}
		filter = fmt.Sprintf(` and %s::text in (select k from ragplane_move_keys)`, t.key)
	}
	stage := pgx.Identifier{"ragplane_move_" + t.plain}.Sanitize()
	if _, err := dst.Exec(ctx, fmt.Sprintf(`create temporary table if not exists %s on commit drop as select %s from %s with no data`, stage, cols, t.name)); err != nil {
		return 0, err
	}
	if _, err := dst.Exec(ctx, `truncate `+stage); err != nil {
		return 0, err
	}
	pr, pw := io.Pipe()
	out := make(chan error, 1)
	go func() {
		_, err := src.Conn().PgConn().CopyTo(ctx, pw, fmt.Sprintf(
			`copy (select %s from %s where tenant_id = current_setting('ragplane.tenant_id')%s) to stdout (format binary)`, cols, t.name, filter))
		pw.CloseWithError(err)
		out <- err
	}()
	_, err := dst.Conn().PgConn().CopyFrom(ctx, pr, fmt.Sprintf(`copy %s (%s) from stdin (format binary)`, stage, cols))
	pr.CloseWithError(err)
	if serr := <-out; err == nil {
		err = serr
	}
	if err != nil {
		return 0, err
	}
	var set []string
	for _, c := range t.columns {
		if !slices.Contains(t.pk, c) {
			set = append(set, c+" = excluded."+c)
		}
	}
	action := "do nothing"
	if len(set) > 0 {
		action = "do update set " + strings.Join(set, ", ")
	}
	tag, err := dst.Exec(ctx, fmt.Sprintf(`insert into %s (%s) select %s from %s on conflict (%s) %s`,
		t.name, cols, cols, stage, strings.Join(t.pk, ", "), action))
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// Fence takes the tenant's move lock in src's transaction (which must be READ COMMITTED, so its
// statements see what the transactions it waited for wrote: it is refused otherwise), waiting at
// most wait for the tenant's transactions in flight. Until the transaction ends the tenant's new
// transactions in that database wait (they queue behind the wait too).
func Fence(ctx context.Context, src pgx.Tx, tenant string, wait time.Duration) error {
	var iso string
	if err := src.QueryRow(ctx, `select current_setting('transaction_isolation')`).Scan(&iso); err != nil {
		return err
	}
	if iso != "read committed" {
		return fmt.Errorf("tenantdb: the fence needs a READ COMMITTED transaction, not %s", iso)
	}
	if _, err := src.Exec(ctx, `select set_config('lock_timeout', $1, true)`, fmt.Sprintf("%dms", wait.Milliseconds())); err != nil {
		return err
	}
	if _, err := src.Exec(ctx, moveLock, tenant); err != nil {
		return err
	}
	_, err := src.Exec(ctx, `select set_config('lock_timeout', '0', true)`)
	return err
}

// Seal marks the tenant's rows in the database of tx as moved (to movedTo), so ragplane_enter
// refuses the tenant there from the transaction's commit on.
func Seal(ctx context.Context, tx pgx.Tx, tenant, movedTo string) error {
	_, err := tx.Exec(ctx, `insert into ragplane_tenant_seals (tenant_id, moved_to) values ($1, $2)
		on conflict (tenant_id) do update set moved_to = excluded.moved_to, sealed_at = now()`, tenant, movedTo)
	return err
}

// Unseal lets the tenant into the database of tx again (a tenant moving back into a pool it left).
func Unseal(ctx context.Context, tx pgx.Tx, tenant string) error {
	_, err := tx.Exec(ctx, `delete from ragplane_tenant_seals where tenant_id = $1`, tenant)
	return err
}

// SealedTo returns where the tenant's seal in the database of q says it moved to, or "" when it
// is not sealed there.
func SealedTo(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, tenant string) (string, error) {
	var to string
	err := q.QueryRow(ctx, `select moved_to from ragplane_tenant_seals where tenant_id = $1`, tenant).Scan(&to)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return to, err
}
