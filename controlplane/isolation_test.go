package controlplane_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ragplane/ragplane"
)

// A tenant provisioned through the control plane gets a role that connects to its own database
// and is refused ("permission denied for database") on the catalog's and on "postgres", while the
// control plane keeps working (issue 11, item 17).
func TestTenantRoleCannotReachTheCatalog(t *testing.T) {
	ts := mustStart(t)
	ts.createTenant("iso_corp", "pro")
	ts.waitStatus("iso_corp", time.Minute, ragplane.StatusActive)
	ctx := context.Background()
	tenantURL, err := ts.mustStore().TenantDatabaseURL(ctx, "iso_corp")
	if err != nil {
		t.Fatal(err)
	}
	catalogURL, err := url.Parse(ts.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	for _, db := range []string{"", catalogURL.Path, "/postgres"} {
		u, err := url.Parse(tenantURL)
		if err != nil {
			t.Fatal(err)
		}
		if db != "" {
			u.Path = db
		}
		c, err := pgx.Connect(ctx, u.String())
		if db == "" {
			if err != nil {
				t.Fatalf("tenant role to its own database: %v", err)
			}
			c.Close(ctx)
			continue
		}
		if err == nil {
			c.Close(ctx)
			t.Fatalf("tenant role connected to %s", db)
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Fatalf("tenant role to %s: %v, want 42501 permission denied for database", db, err)
		}
	}
	ts.createTenant("iso_next", "pro") // the control plane still provisions
	ts.waitStatus("iso_next", time.Minute, ragplane.StatusActive)
}
