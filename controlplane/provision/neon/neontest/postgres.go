package neontest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres puts a real database on a PostgreSQL server behind each project: plug its NewDatabase
// and DropDatabase into Config, and call DropAll when the test ends. The URIs it returns connect
// as AdminURL's role, so that migrations may create extensions.
type Postgres struct {
	// AdminURL connects as a role that may create and drop databases.
	AdminURL string
	// Prefix starts database names (default "neon_"): a project's database is Prefix followed by
	// the project id with "-" turned into "_".
	Prefix string

	mu    sync.Mutex
	names []string
}

// DatabaseName is the database behind a project.
func (p *Postgres) DatabaseName(projectID string) string {
	return cmp.Or(p.Prefix, "neon_") + strings.ReplaceAll(projectID, "-", "_")
}

// NewDatabase creates the project's database and returns its URL.
func (p *Postgres) NewDatabase(projectID string) (string, error) {
	u, err := url.Parse(p.AdminURL)
	if err != nil {
		return "", errors.New("neontest: the admin URL cannot be parsed")
	}
	name := p.DatabaseName(projectID)
	if err := p.exec("create database " + pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	p.mu.Lock()
	p.names = append(p.names, name)
	p.mu.Unlock()
	u.Path = "/" + name
	return u.String(), nil
}

// DropDatabase drops the project's database, if it exists.
func (p *Postgres) DropDatabase(projectID string) error {
	name := p.DatabaseName(projectID)
	if err := p.exec("drop database if exists " + pgx.Identifier{name}.Sanitize() + " with (force)"); err != nil {
		return err
	}
	p.mu.Lock()
	p.names = slices.DeleteFunc(p.names, func(n string) bool { return n == name })
	p.mu.Unlock()
	return nil
}

// DropAll drops every database NewDatabase created that is still there.
func (p *Postgres) DropAll() error {
	p.mu.Lock()
	names := slices.Clone(p.names)
	p.names = nil
	p.mu.Unlock()
	var errs []error
	for _, name := range names {
		errs = append(errs, p.exec("drop database if exists "+pgx.Identifier{name}.Sanitize()+" with (force)"))
	}
	return errors.Join(errs...)
}

// Exists reports whether the project's database exists.
func (p *Postgres) Exists(projectID string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.AdminURL)
	if err != nil {
		return false, fmt.Errorf("neontest: connect: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	err = conn.QueryRow(ctx, "select exists (select from pg_database where datname = $1)", p.DatabaseName(projectID)).Scan(&exists)
	return exists, err
}

func (p *Postgres) exec(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.AdminURL)
	if err != nil {
		return fmt.Errorf("neontest: connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("neontest: %s: %w", sql, err)
	}
	return nil
}
