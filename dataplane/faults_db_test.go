package dataplane_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/dataplane"
	"github.com/ragplane/ragplane/e2etest"
)

// mustUnavailable checks that r is a retryable 503: problem+json with code unavailable and a
// Retry-After in seconds, that names no SQL, host or connection string.
func mustUnavailable(tb testing.TB, r e2etest.Response) {
	tb.Helper()
	if r.Status != http.StatusServiceUnavailable {
		tb.Fatalf("status %d, want 503: %s", r.Status, r.Body)
	}
	if ra := r.Header.Get("Retry-After"); ra == "" || strings.Trim(ra, "0123456789") != "" {
		tb.Fatalf("Retry-After = %q, want seconds", ra)
	}
	p := r.Problem(tb)
	if p["code"] != ragplane.EUNAVAILABLE {
		tb.Fatalf("code = %v, want %s: %s", p["code"], ragplane.EUNAVAILABLE, r.Body)
	}
	body := strings.ToLower(string(r.Body))
	for _, leak := range []string{"select", "postgres://", "sqlstate", "127.0.0.1", "user=", "database="} {
		if strings.Contains(body, leak) {
			tb.Fatalf("the response leaks %q: %s", leak, r.Body)
		}
	}
}

// databaseURL returns the superuser URL of database name on the stack's server.
func databaseURL(tb testing.TB, name string) string {
	tb.Helper()
	u, err := url.Parse(catalogtest.ServerURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// waitFor polls cond until it holds, failing after 30 s. It waits for an event, not a duration.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A tenant database connection lost under a request (its backend terminated) and a tenant
// database that refuses connections answer 503 with Retry-After, never 500; once the database is
// back, the pool's fresh connections serve again.
func TestLostDatabaseConnectionIs503(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{Worker: func(c *dataplane.Config) { c.DB.PerTenant = 2 }})
	st.CreateTenant("conn_lost", "pro", nil)
	c := st.Tenant("conn_lost")
	mustStatus(t, c.Do("POST", "/v1/documents", map[string]any{"title": "Access policy", "content": policy}), http.StatusCreated)
	search := map[string]any{"query": "multi-factor authentication", "retrieval_mode": "keyword"}
	mustStatus(t, c.Do("POST", "/v1/search", search), http.StatusOK)

	ctx := context.Background()
	dbName := st.Prefix + "conn_lost"
	admin, err := pgx.Connect(ctx, catalogtest.ServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	terminate := func(except uint32) {
		t.Helper()
		if _, err := admin.Exec(ctx, `select pg_terminate_backend(pid) from pg_stat_activity
			where datname = $1 and pid <> $2`, dbName, except); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("connection terminated under a request", func(t *testing.T) {
		// Hold the tables the search reads, so that it waits on a connection the test then cuts.
		locker, err := pgx.Connect(ctx, databaseURL(t, dbName))
		if err != nil {
			t.Fatal(err)
		}
		defer locker.Close(ctx)
		tx, err := locker.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `lock table documents, chunks in access exclusive mode`); err != nil {
			t.Fatal(err)
		}
		got := make(chan e2etest.Response, 1)
		go func() { got <- c.Do("POST", "/v1/search", search) }()
		lockerPID := locker.PgConn().PID()
		waitFor(t, "the search to wait on the lock", func() bool {
			var n int
			if err := admin.QueryRow(ctx, `select count(*) from pg_stat_activity
				where datname = $1 and pid <> $2 and wait_event_type = 'Lock'`, dbName, lockerPID).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n > 0
		})
		terminate(lockerPID) // the waiting search's backend and the pool's idle ones
		r := <-got
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		mustUnavailable(t, r)

		// The pool discards broken connections: a retry may meet one more, then a fresh one serves.
		for i := 0; ; i++ {
			r := c.Do("POST", "/v1/search", search)
			if r.Status == http.StatusOK {
				break
			}
			mustUnavailable(t, r)
			if i == 3 {
				t.Fatalf("still 503 after %d retries", i+1)
			}
		}
	})

	t.Run("database refuses connections", func(t *testing.T) {
		allow := func(on bool) {
			t.Helper()
			stmt := `alter database ` + pgx.Identifier{dbName}.Sanitize() + ` with allow_connections ` + map[bool]string{true: "true", false: "false"}[on]
			if _, err := admin.Exec(ctx, stmt); err != nil {
				t.Fatal(err)
			}
		}
		allow(false)
		t.Cleanup(func() { allow(true) })
		terminate(0)
		for _, req := range []struct{ method, path string }{
			{"POST", "/v1/search"}, {"GET", "/v1/documents"}, {"POST", "/v1/search"},
		} {
			var body any
			if req.method == "POST" {
				body = search
			}
			mustUnavailable(t, c.Do(req.method, req.path, body))
		}
		allow(true)
		mustStatus(t, c.Do("POST", "/v1/search", search), http.StatusOK)
	})
}
