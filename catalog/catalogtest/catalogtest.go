// Package catalogtest gives tests a fresh catalog database on the real PostgreSQL of the local
// stack (DATABASE_URL, written by `make up`). Without DATABASE_URL a test is skipped, except under
// `make test` (RAGPLANE_REQUIRE_STACK=1), where a missing server fails it.
package catalogtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane/catalog"
)

// SecretKey is the encryption key tests use for the catalog.
const SecretKey = "test-secret-key-0123456789abcdef-0123456789"

// ServerURL returns the superuser URL of the test PostgreSQL, or skips (fails under make test).
func ServerURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("DATABASE_URL")
	if u == "" {
		if os.Getenv("RAGPLANE_REQUIRE_STACK") != "" {
			tb.Fatal("DATABASE_URL is not set: run `make up` (make test does it)")
		}
		tb.Skip("DATABASE_URL not set; run `make up` and `source .ragplane/stack.env`")
	}
	return u
}

// RandomName returns prefix followed by random hex, a safe identifier.
func RandomName(prefix string) string {
	b := make([]byte, 5)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// NewDatabase creates an empty database on the test server and drops it when the test ends.
// It returns the database's URL.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	server := ServerURL(tb)
	name := RandomName("rpt_")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		tb.Fatalf("connect to test server: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fmt.Sprintf("create database %s", pgx.Identifier{name}.Sanitize())); err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, server)
		if err != nil {
			tb.Logf("drop test database: %v", err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, fmt.Sprintf("drop database if exists %s with (force)", pgx.Identifier{name}.Sanitize())); err != nil {
			tb.Logf("drop test database: %v", err)
		}
	})
	u, err := url.Parse(server)
	if err != nil {
		tb.Fatalf("parse DATABASE_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// MustOpen opens a catalog on a fresh database, closed when the test ends.
func MustOpen(tb testing.TB) (*catalog.Store, string) {
	tb.Helper()
	dbURL := NewDatabase(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := catalog.Open(ctx, catalog.Config{URL: dbURL, SecretKey: SecretKey})
	if err != nil {
		tb.Fatalf("open catalog: %v", err)
	}
	tb.Cleanup(s.Close)
	return s, dbURL
}

// DropTenantDatabases drops every database and role on the test server whose name starts with
// prefix, for cleaning up after provisioning tests.
func DropTenantDatabases(tb testing.TB, prefix string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, ServerURL(tb))
	if err != nil {
		tb.Logf("cleanup: %v", err)
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `select datname from pg_database where starts_with(datname, $1)`, prefix)
	if err != nil {
		tb.Logf("cleanup: %v", err)
		return
	}
	dbs, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, d := range dbs {
		conn.Exec(ctx, fmt.Sprintf("drop database if exists %s with (force)", pgx.Identifier{d}.Sanitize()))
	}
	rows, err = conn.Query(ctx, `select rolname from pg_roles where starts_with(rolname, $1)`, prefix)
	if err != nil {
		return
	}
	roles, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, r := range roles {
		conn.Exec(ctx, fmt.Sprintf("drop role if exists %s", pgx.Identifier{r}.Sanitize()))
	}
}

// CountDatabases counts databases on the test server whose name starts with prefix.
func CountDatabases(tb testing.TB, prefix string) int {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, ServerURL(tb))
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `select count(*) from pg_database where starts_with(datname, $1)`, prefix).Scan(&n); err != nil {
		tb.Fatalf("count databases: %v", err)
	}
	return n
}

// DatabaseExists reports whether the test server has a database named name.
func DatabaseExists(tb testing.TB, name string) bool {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, ServerURL(tb))
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var ok bool
	if err := conn.QueryRow(ctx, `select exists (select 1 from pg_database where datname = $1)`, name).Scan(&ok); err != nil {
		tb.Fatalf("look up database: %v", err)
	}
	return ok
}
