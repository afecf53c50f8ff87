package tenantdb_test

import (
	"context"
	"testing"
)

// A database whose vector column was swapped (a re-embedding adds embedding_next, drops embedding
// and renames the new one: it becomes the last column) loads into a new database, whose columns
// are in the migrations' order: columns are matched by name and type, and every vector arrives.
func TestSnapshotLoadsColumnsByName(t *testing.T) {
	ctx := context.Background()
	src, _ := sealDB(t)
	for _, stmt := range []string{
		`alter table chunks add column embedding_next vector(8)`,
		`alter table chunks drop column embedding`,
		`alter table chunks rename column embedding_next to embedding`,
	} {
		if _, err := src.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	fillTenant(t, src, "acme")
	snap, info := dump(t, src, "acme")
	dst, _ := sealDB(t)
	got, err := load(dst, "acme", snap)
	if err != nil {
		t.Fatalf("load into a database with the migrations' column order: %v", err)
	}
	if got.Rows["chunks"] != info.Rows["chunks"] || got.Rows["chunks"] == 0 {
		t.Fatalf("loaded %v, dumped %v", got.Rows, info.Rows)
	}
	var want, have string
	if err := src.QueryRow(ctx, `select string_agg(coalesce(embedding::text, 'null'), ';' order by content) from chunks where tenant_id = 'acme'`).Scan(&want); err != nil {
		t.Fatal(err)
	}
	if err := dst.QueryRow(ctx, `select string_agg(coalesce(embedding::text, 'null'), ';' order by content) from chunks where tenant_id = 'acme'`).Scan(&have); err != nil {
		t.Fatal(err)
	}
	if have != want {
		t.Fatalf("vectors after the load %q, before %q", have, want)
	}
}
