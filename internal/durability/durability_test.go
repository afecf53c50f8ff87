package durability_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/internal/durability"
)

func TestUnsafe(t *testing.T) {
	durable := map[string]string{"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for name, val := range durable {
			m[name] = val
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name   string
		given  map[string]string
		expect []string
	}{
		{name: "defaults are durable", given: durable},
		{name: "synchronous_commit local still flushes locally", given: with("synchronous_commit", "local")},
		{name: "synchronous_commit remote_write", given: with("synchronous_commit", "remote_write")},
		{name: "synchronous_commit remote_apply", given: with("synchronous_commit", "remote_apply")},
		{name: "fsync off", given: with("fsync", "off"), expect: []string{"fsync"}},
		{name: "synchronous_commit off", given: with("synchronous_commit", "off"), expect: []string{"synchronous_commit"}},
		{name: "full_page_writes off", given: with("full_page_writes", "off"), expect: []string{"full_page_writes"}},
		{name: "a missing setting is unsafe", given: with("fsync", ""), expect: []string{"fsync"}},
		{name: "the fast test stack: all three, in order",
			given:  map[string]string{"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"},
			expect: []string{"fsync", "synchronous_commit", "full_page_writes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, s := range durability.Unsafe(tt.given) {
				got = append(got, s.Name)
				if s.Why == "" || s.Want != "on" {
					t.Errorf("%s: want a reason and want=on, got %+v", s.Name, s)
				}
			}
			if !slices.Equal(got, tt.expect) {
				t.Errorf("unsafe %v, want %v", got, tt.expect)
			}
		})
	}
}

// rowFunc is a QueryRower whose row scans with fn.
type rowFunc func(dst ...any) error

func (f rowFunc) QueryRow(context.Context, string, ...any) pgx.Row { return f }
func (f rowFunc) Scan(dst ...any) error                            { return f(dst...) }

func TestCheckReadError(t *testing.T) {
	boom := errors.New("connection refused")
	err := durability.Check(context.Background(), rowFunc(func(...any) error { return boom }))
	var derr *durability.Error
	if !errors.Is(err, boom) || errors.As(err, &derr) {
		t.Fatalf("Check = %v, want the read error, not a verdict", err)
	}
}

// connect opens a session on the test server with extra startup parameters.
func connect(t *testing.T, params map[string]string) *pgx.Conn {
	t.Helper()
	u, err := url.Parse(catalogtest.ServerURL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// serverOff lists the server-wide settings (from pg_settings' boot/config values, not the
// session's) that are off, in Check's order.
func serverOff(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	var off []string
	for _, name := range []string{"fsync", "full_page_writes"} {
		var v string
		if err := conn.QueryRow(context.Background(), "select setting from pg_settings where name = $1", name).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v == "off" {
			off = append(off, name)
		}
	}
	return off
}

func names(err error) []string {
	var derr *durability.Error
	if !errors.As(err, &derr) {
		return nil
	}
	var out []string
	for _, s := range derr.Settings {
		out = append(out, s.Name)
	}
	return out
}

// Against the real server, whichever mode the stack runs in: fsync and full_page_writes are
// server-wide (reported exactly when the server has them off, as in RAGPLANE_STACK_FAST=1), and
// synchronous_commit is per session, so a connection string can turn it off (or on) by itself.
func TestCheckServer(t *testing.T) {
	ctx := context.Background()
	t.Run("session with synchronous_commit off", func(t *testing.T) {
		conn := connect(t, map[string]string{"synchronous_commit": "off"})
		off := serverOff(t, conn)
		var want []string
		for _, name := range []string{"fsync", "synchronous_commit", "full_page_writes"} {
			if name == "synchronous_commit" || slices.Contains(off, name) {
				want = append(want, name)
			}
		}
		got := names(durability.Check(ctx, conn))
		if !slices.Equal(got, want) {
			t.Errorf("Check reports %v, want %v (server has %v off)", got, want, off)
		}
	})
	t.Run("session with synchronous_commit on", func(t *testing.T) {
		conn := connect(t, map[string]string{"synchronous_commit": "on"})
		off := serverOff(t, conn)
		err := durability.Check(ctx, conn)
		if got := names(err); !slices.Equal(got, off) {
			t.Errorf("Check reports %v, want the server's %v", got, off)
		}
		if len(off) == 0 && err != nil {
			t.Errorf("Check on a durable server = %v, want nil", err)
		}
		t.Logf("test server: %v off", off)
	})
}

func TestRequire(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, map[string]string{"synchronous_commit": "off"}) // unsafe in either mode
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))

	err := durability.Require(ctx, conn, "catalog database", false, logger)
	var derr *durability.Error
	if !errors.As(err, &derr) {
		t.Fatalf("Require without the flag = %v, want a *durability.Error", err)
	}
	if !strings.Contains(err.Error(), durability.AllowEnv) {
		t.Errorf("the refusal does not name %s: %v", durability.AllowEnv, err)
	}
	if err := durability.Require(ctx, conn, "catalog database", true, logger); err != nil {
		t.Fatalf("Require with the flag = %v, want nil", err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "synchronous_commit") {
		t.Errorf("Require with the flag logged %q, want a warning naming the setting", logs.String())
	}
}
