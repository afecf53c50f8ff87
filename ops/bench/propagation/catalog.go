package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// server is the local stack's PostgreSQL, reached with a role that may create databases and roles
// (DATABASE_URL of .ragplane/stack.env).
type server struct{ url string }

// dbURL is the server's URL pointing at database name.
func (s server) dbURL(name string) (string, error) {
	u, err := url.Parse(s.url)
	if err != nil {
		return "", fmt.Errorf("DATABASE_URL cannot be parsed")
	}
	u.Path = "/" + name
	return u.String(), nil
}

func (s server) exec(ctx context.Context, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// createDB makes a fresh, empty catalog database; the control plane migrates it when it starts.
func (s server) createDB(ctx context.Context, name string) error {
	if err := s.exec(ctx, "drop database if exists "+pgx.Identifier{name}.Sanitize()+" with (force)"); err != nil {
		return err
	}
	return s.exec(ctx, "create database "+pgx.Identifier{name}.Sanitize())
}

// dropAll drops the catalog database and every tenant database and role named with prefix (the
// control plane's RAGPLANE_LOCAL_PREFIX, unique to this run). It runs on cleanup paths, so it
// uses a context of its own.
func (s server) dropAll(catalogDB, prefix string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.url)
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	like := strings.NewReplacer(`\`, `\\`, `_`, `\_`, `%`, `\%`).Replace(prefix) + "%"
	var dbs, roles []string
	rows, _ := conn.Query(ctx, `select datname from pg_database where datname like $1`, like)
	if dbs, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return err
	}
	rows, _ = conn.Query(ctx, `select rolname from pg_roles where rolname like $1`, like)
	if roles, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return err
	}
	var firstErr error
	for _, db := range append(dbs, catalogDB) {
		if _, err := conn.Exec(ctx, "drop database if exists "+pgx.Identifier{db}.Sanitize()+" with (force)"); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for _, r := range roles {
		if _, err := conn.Exec(ctx, "drop role if exists "+pgx.Identifier{r}.Sanitize()); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// insertBulk adds active tenants bulk_<from>..bulk_<to> in one statement, as DESIGN allows for the
// benchmark. They have no database (nothing serves their data) but are ordinary rows for the
// control plane and the proxy: the catalog's trigger announces each one as if the admin API had
// written it.
func insertBulk(ctx context.Context, conn *pgx.Conn, from, to int) error {
	_, err := conn.Exec(ctx, `insert into tenants (id, name, email, plan, region, status, provider)
		select format('bulk_%s', lpad(g::text, 7, '0')), format('Bulk tenant %s', g),
		       format('bulk%s@bench.example', g), (array['free', 'pro', 'enterprise'])[1 + g % 3],
		       'local', 'active', 'local'
		from generate_series($1::int, $2::int) g`, from, to)
	return err
}
