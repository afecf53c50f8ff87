package tenantdb_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane/catalog/tenantdb"
)

// DeferIndexes drops every secondary index of the tenant tables (the HNSW and GIN ones among
// them) and its rebuild makes the very same ones again; primary keys stay throughout.
func TestDeferIndexesRebuildsTheSameIndexes(t *testing.T) {
	pool, _ := sealDB(t)
	ctx := context.Background()
	defs := func(q interface {
		Query(context.Context, string, ...any) (pgx.Rows, error)
	}) []string {
		t.Helper()
		rows, err := q.Query(ctx, `select indexdef from pg_indexes where tablename = any($1) order by indexname`, tenantdb.TenantTables)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := defs(pool)
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	rebuild, err := tenantdb.DeferIndexes(ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"USING hnsw", "USING gin"} {
		if !slices.ContainsFunc(before, func(d string) bool { return strings.Contains(d, kind) }) {
			t.Fatalf("no index %s to defer in %v", kind, before)
		}
	}
	during := defs(tx)
	if len(during) == 0 || len(during) >= len(before) {
		t.Fatalf("indexes while deferred: %d of %d", len(during), len(before))
	}
	for _, d := range during {
		if !strings.Contains(d, "UNIQUE") {
			t.Fatalf("a secondary index survived: %s", d)
		}
	}
	if err := rebuild(); err != nil {
		t.Fatal(err)
	}
	if after := defs(tx); !slices.Equal(after, before) {
		t.Fatalf("indexes after the rebuild:\n%v\nbefore:\n%v", after, before)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}
