// Package durability checks that a PostgreSQL server keeps what it acknowledges: a service that
// answers "stored" or ships usage records away from its spool relies on a committed transaction
// surviving a crash, which three server settings can silently turn off.
package durability

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5"
)

// QueryRower is what Check needs from a connection: *pgx.Conn, *pgxpool.Pool and pgx.Tx have it.
// Pass the pool the service commits with, so settings its connection string adds (for example
// ?synchronous_commit=off) are seen too.
type QueryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Setting is a server setting that makes acknowledged commits unsafe, with why it matters.
type Setting struct {
	// Name is the setting's name, Value what the server has, Want what crash safety needs.
	Name, Value, Want string
	// Why says what a crash costs with it.
	Why string
}

func (s Setting) String() string {
	return fmt.Sprintf("%s = %s (want %s: %s)", s.Name, s.Value, s.Want, s.Why)
}

// Error lists the unsafe settings Check found.
type Error struct {
	Settings []Setting
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Settings))
	for i, s := range e.Settings {
		parts[i] = s.String()
	}
	return "PostgreSQL may lose acknowledged commits in a crash: " + strings.Join(parts, "; ")
}

// rules are the checked settings in the order they are reported.
var rules = []struct {
	name, want, why string
	safe            func(v string) bool
}{
	{"fsync", "on", "the server does not flush its writes, so an OS crash or power loss can lose committed transactions or corrupt the database beyond recovery",
		func(v string) bool { return v == "on" }},
	// on, local, remote_write and remote_apply all wait for the commit's WAL to reach the local
	// disk; only off answers before it.
	{"synchronous_commit", "on", "a commit is acknowledged before its WAL is flushed, so a server crash loses the last acknowledged transactions",
		func(v string) bool { return v != "off" }},
	{"full_page_writes", "on", "a crash in the middle of a page write leaves a torn page that recovery cannot repair",
		func(v string) bool { return v == "on" }},
}

// Read returns the server's values of the checked settings, as the session sees them.
func Read(ctx context.Context, q QueryRower) (map[string]string, error) {
	vals := make([]string, len(rules))
	dst := make([]any, len(rules))
	names := make([]string, len(rules))
	for i, r := range rules {
		dst[i] = &vals[i]
		names[i] = fmt.Sprintf("current_setting('%s')", r.name)
	}
	if err := q.QueryRow(ctx, "select "+strings.Join(names, ", ")).Scan(dst...); err != nil {
		return nil, fmt.Errorf("durability: read server settings: %w", err)
	}
	out := make(map[string]string, len(rules))
	for i, r := range rules {
		out[r.name] = vals[i]
	}
	return out, nil
}

// Unsafe returns the settings among values (name -> value, as Read returns them) that lose
// acknowledged commits, in a fixed order; a missing setting counts as unsafe.
func Unsafe(values map[string]string) []Setting {
	var out []Setting
	for _, r := range rules {
		v, ok := values[r.name]
		if !ok {
			v = "unknown"
		}
		if !ok || !r.safe(strings.ToLower(strings.TrimSpace(v))) {
			out = append(out, Setting{Name: r.name, Value: v, Want: r.want, Why: r.why})
		}
	}
	return out
}

// Check reads the settings through q and returns an *Error naming each unsafe one, nil when the
// server is crash safe, or the error that kept it from reading them.
func Check(ctx context.Context, q QueryRower) error {
	values, err := Read(ctx, q)
	if err != nil {
		return err
	}
	if bad := Unsafe(values); len(bad) > 0 {
		return &Error{Settings: bad}
	}
	return nil
}

// AllowEnv is the development flag that lets a service start on a server Check rejects.
const AllowEnv = "RAGPLANE_ALLOW_UNDURABLE"

// Require is a service's start-up check of the server behind q (what names it in messages, e.g.
// "catalog database"): an unsafe server, or one whose settings cannot be read, is an error that
// says why and how to fix or override it, unless allow (AllowEnv) is set, in which case it is
// logged as a warning and the service starts.
func Require(ctx context.Context, q QueryRower, what string, allow bool, logger *slog.Logger) error {
	err := Check(ctx, q)
	if err == nil {
		return nil
	}
	if allow {
		logger.Warn("starting on a PostgreSQL server that may lose acknowledged writes, because "+AllowEnv+" is set (development only)",
			"server", what, "error", err)
		return nil
	}
	return fmt.Errorf("%s: %w; refusing to start: turn these settings on (they are PostgreSQL's defaults), "+
		"or set %s=1 to run anyway for development, where losing acknowledged writes does not matter", what, err, AllowEnv)
}
