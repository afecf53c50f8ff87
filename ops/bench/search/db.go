package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/ragplane/ragplane/catalog/tenantdb"
)

// tenantDB is a fresh, migrated tenant database made for the run on the local stack's server.
type tenantDB struct {
	admin string // the superuser URL it was made from
	name  string
	url   string
	Pool  *pgxpool.Pool
}

// dbSeq numbers the databases of one run; the process id and the start time make names unique
// across runs.
var dbSeq int

// benchTenant is the tenant whose rows the benchmark's databases hold.
const benchTenant = "bench"

// newTenantDB creates a database named for the run and what it is for, installs pgvector,
// migrates it with tenantdb.Migrate at dim, and opens a pool of conns connections with pgvector's
// types registered (as the worker's pools are).
func newTenantDB(ctx context.Context, adminURL, purpose string, dim, conns int) (*tenantDB, error) {
	dbSeq++
	name := fmt.Sprintf("ragplane_benchsearch_%d_%d_%s_%d", os.Getpid(), time.Now().Unix(), purpose, dbSeq)
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redact(adminURL), err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if _, err := admin.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize()+" template template0"); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	t := &tenantDB{admin: adminURL, name: name}
	u, err := url.Parse(adminURL)
	if err != nil {
		t.drop()
		return nil, err
	}
	u.Path = "/" + name
	t.url = u.String()
	conn, err := pgx.Connect(ctx, t.url)
	if err != nil {
		t.drop()
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "create extension if not exists vector"); err != nil {
		t.drop()
		return nil, fmt.Errorf("create extension: %w", err)
	}
	if _, err := tenantdb.MigrateSilo(ctx, conn, dim, benchTenant); err != nil {
		t.drop()
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(t.url)
	if err != nil {
		t.drop()
		return nil, err
	}
	cfg.MaxConns = int32(conns)
	cfg.MinConns = int32(conns)
	cfg.AfterConnect = pgxvec.RegisterTypes
	// The benchmark connects as the admin role, which row level security does not confine; the
	// session's tenant fills the rows' tenant_id (COPY included) as a worker's transaction does.
	cfg.ConnConfig.RuntimeParams["ragplane.tenant_id"] = benchTenant
	if t.Pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		t.drop()
		return nil, err
	}
	return t, nil
}

// drop closes the pool and drops the database (forcing out any connection left).
func (t *tenantDB) drop() error {
	if t.Pool != nil {
		t.Pool.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, t.admin)
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, "drop database if exists "+pgx.Identifier{t.name}.Sanitize()+" with (force)")
	return err
}

// redact hides the password of a connection URL in messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
