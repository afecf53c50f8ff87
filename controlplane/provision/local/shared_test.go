package local_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/controlplane/provision/local"
)

// A tenant role reaches its own database and nothing else on the server: not the catalog, not
// "postgres", not "template1"; the catalog's own (unprivileged) role still connects to the
// catalog (issue 11, item 17).
func TestTenantRoleReachesOnlyItsDatabase(t *testing.T) {
	ctx := context.Background()
	server := catalogtest.ServerURL(t)
	catalogDB := catalogtest.NewDatabase(t)
	prefix := catalogtest.RandomName("rpt") + "_"

	// The catalog's role: a login role without privileges, as an operator would run it.
	catRole, catPass := prefix+"catalog", catalogtest.RandomName("pw")
	admin, err := pgx.Connect(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, fmt.Sprintf(`create role %s login password '%s'`, pgx.Identifier{catRole}.Sanitize(), catPass)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, server)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		c.Exec(ctx, fmt.Sprintf(`drop owned by %s`, pgx.Identifier{catRole}.Sanitize()))
		c.Exec(ctx, fmt.Sprintf(`drop role if exists %s`, pgx.Identifier{catRole}.Sanitize()))
	})
	catURL := withDB(t, catalogDB, "")
	catURL.User = url.UserPassword(catRole, catPass)

	p, err := local.New(ctx, local.Config{AdminURL: server, Prefix: prefix, CatalogURL: catURL.String()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(); catalogtest.DropTenantDatabases(t, prefix) })
	tenant := mustProvision(t, p, "acme")
	other := mustProvision(t, p, "other")

	tests := []struct {
		name   string
		given  string // URL
		expect bool   // connects
	}{
		{name: "tenant to its own database", given: tenant.URL, expect: true},
		{name: "tenant to the catalog", given: withDB(t, tenant.URL, catURL.Path).String()},
		{name: "tenant to postgres", given: withDB(t, tenant.URL, "/postgres").String()},
		{name: "tenant to template1", given: withDB(t, tenant.URL, "/template1").String()},
		{name: "tenant to another tenant", given: withDB(t, tenant.URL, withDB(t, other.URL, "").Path).String()},
		{name: "catalog role to the catalog", given: catURL.String(), expect: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := pgx.Connect(ctx, tt.given)
			if err == nil {
				c.Close(ctx)
			}
			var pgErr *pgconn.PgError
			switch {
			case tt.expect && err != nil:
				t.Fatalf("cannot connect: %v", err)
			case !tt.expect && err == nil:
				t.Fatal("connected")
			case !tt.expect && (!errors.As(err, &pgErr) || pgErr.Code != "42501"):
				t.Fatalf("refused with %v, want 42501 permission denied for database", err)
			}
		})
	}

	// A second start (another replica, a restart) changes nothing and keeps it so.
	p2, err := local.New(ctx, local.Config{AdminURL: server, Prefix: prefix, CatalogURL: catURL.String()})
	if err != nil {
		t.Fatal(err)
	}
	p2.Close()
	if c, err := pgx.Connect(ctx, catURL.String()); err != nil {
		t.Fatalf("catalog role after a restart: %v", err)
	} else {
		c.Close(ctx)
	}
}

// withDB is u with its path (the database) replaced, unless path is "".
func withDB(tb testing.TB, u, path string) *url.URL {
	tb.Helper()
	out, err := url.Parse(u)
	if err != nil {
		tb.Fatal(err)
	}
	if path != "" {
		out.Path = path
	}
	return out
}
