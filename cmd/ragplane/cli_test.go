package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/controlplane"
)

const testAdminToken = "cli-test-admin-token-0123456789"

// MustStartControlPlane runs the production controlplane.New + Run in-process on port 0, with its
// own catalog database and tenant database prefix, and returns the admin API's base URL.
func MustStartControlPlane(tb testing.TB) string {
	tb.Helper()
	prefix := catalogtest.RandomName("rpcli") + "_"
	tb.Cleanup(func() { catalogtest.DropTenantDatabases(tb, prefix) })
	cfg := controlplane.DefaultConfig()
	cfg.AdminAddr = "127.0.0.1:0"
	cfg.XDSAddr = "127.0.0.1:0"
	cfg.DatabaseURL = catalogtest.NewDatabase(tb)
	cfg.AdminToken = testAdminToken
	cfg.SecretKey = catalogtest.SecretKey
	cfg.Provision.LocalAdminURL = catalogtest.ServerURL(tb)
	cfg.Provision.LocalPrefix = prefix
	cfg.Provision.BaseBackoff = 20 * time.Millisecond
	cfg.AllowUndurable = true // the test stack runs PostgreSQL in its fast mode

	ctx, cancel := context.WithCancel(context.Background())
	srv, err := controlplane.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		tb.Fatalf("start control plane: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	// Registered after DropTenantDatabases, so it runs first: the server stops before its
	// databases are dropped.
	tb.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			tb.Error("control plane did not stop within 20s")
		}
	})
	base := "http://" + srv.Addr()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("control plane not ready after 20s (last: %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// env is the CLI's environment.
type env map[string]string

func (e env) getenv(k string) string { return e[k] }

// with returns a copy of e with k set to v.
func (e env) with(k, v string) env {
	out := env{}
	for key, val := range e {
		out[key] = val
	}
	out[k] = v
	return out
}

// runCLI runs the operator CLI with args and returns what it printed on stdout.
func runCLI(tb testing.TB, e env, args ...string) (string, error) {
	tb.Helper()
	return runCLIErr(tb, e, io.Discard, args...) // cobra's own usage output is discarded
}

// runCLIErr runs the operator CLI with its stderr (cobra's ErrOrStderr) going to stderr.
func runCLIErr(tb testing.TB, e env, stderr io.Writer, args ...string) (string, error) {
	tb.Helper()
	cmd := newRootCommand(slog.New(slog.DiscardHandler), e.getenv)
	cmd.SetArgs(args)
	cmd.SetErr(stderr)
	return captureStdout(tb, func() error { return cmd.ExecuteContext(context.Background()) })
}

// MustRunCLI runs the CLI and fails the test if the command fails.
func MustRunCLI(tb testing.TB, e env, args ...string) string {
	tb.Helper()
	out, err := runCLI(tb, e, args...)
	if err != nil {
		tb.Fatalf("ragplane %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// captureStdout runs fn with os.Stdout redirected to a pipe and returns what fn wrote. The CLI
// prints with fmt to os.Stdout, so tests that use this must not run in parallel.
func captureStdout(tb testing.TB, fn func() error) (string, error) {
	tb.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	orig := os.Stdout
	os.Stdout = w
	defer func() { os.Stdout = orig }()
	out := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(r)
		r.Close()
		out <- string(b)
	}()
	ferr := fn()
	w.Close()
	os.Stdout = orig
	return <-out, ferr
}

// mustAPIError fails unless err is an admin API error with the status and code.
func mustAPIError(tb testing.TB, err error, status int, code string) {
	tb.Helper()
	var ae *apiError
	if !errors.As(err, &ae) {
		tb.Fatalf("error = %v (%T), want an admin API error %d", err, err, status)
	}
	if ae.Status != status || ae.Code != code {
		tb.Fatalf("error = %d %s, want %d %s (%v)", ae.Status, ae.Code, status, code, err)
	}
}

// row returns the table row whose first column is id, split into columns.
func row(tb testing.TB, table, id string) []string {
	tb.Helper()
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == id {
			return f
		}
	}
	tb.Fatalf("no row for %s in:\n%s", id, table)
	return nil
}

func TestCLI(t *testing.T) {
	base := MustStartControlPlane(t)
	admin := env{"RAGPLANE_ADMIN_URL": base, "RAGPLANE_ADMIN_TOKEN": testAdminToken}
	const id = "cli_acme"

	t.Run("tenants create --wait", func(t *testing.T) {
		var stderr strings.Builder
		out, err := runCLIErr(t, admin, &stderr, "tenants", "create", "--id", id, "--name", "Acme Corp", "--email", "ops@acme.example.com",
			"--plan", "pro", "--wait", "30s")
		if err != nil {
			t.Fatal(err)
		}
		if r := row(t, out, id); !strings.Contains(strings.Join(r, " "), "active") || !strings.HasPrefix(out, "ID") {
			t.Fatalf("create printed:\n%s", out)
		}
		// It says what it waits for, and the statuses it sees, on stderr (stdout stays the table).
		for _, want := range []string{"waiting up to 30s for tenant " + id + " to be active or failed", "tenant " + id + " is active"} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
			}
		}
		if strings.Contains(out, "waiting") {
			t.Errorf("the wait went to stdout:\n%s", out)
		}
	})

	t.Run("tenants list", func(t *testing.T) {
		out := MustRunCLI(t, admin, "tenants", "list")
		r := row(t, out, id)
		if !strings.Contains(strings.Join(r, " "), "active") || !strings.Contains(strings.Join(r, " "), "pro") {
			t.Fatalf("list row %v", r)
		}
		out = MustRunCLI(t, admin, "tenants", "list", "--status", "suspended")
		if strings.Contains(out, id) {
			t.Fatalf("--status suspended lists the active tenant:\n%s", out)
		}
	})

	t.Run("tenants get --json", func(t *testing.T) {
		out := MustRunCLI(t, admin, "--json", "tenants", "get", id)
		var got ragplane.Tenant
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if got.ID != id || got.Status != ragplane.StatusActive || got.Plan != "pro" || got.Email != "ops@acme.example.com" {
			t.Fatalf("tenant %+v", got)
		}
	})

	t.Run("tenants config", func(t *testing.T) {
		out := MustRunCLI(t, admin, "tenants", "config", id)
		if !strings.Contains(out, "tenant "+id+", plan pro") {
			t.Fatalf("config header missing:\n%s", out)
		}
		if r := row(t, out, "setting"); len(r) < 4 {
			t.Fatalf("config rows:\n%s", out)
		}
		sources := map[string]string{}
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) >= 4 && (f[0] == "setting" || f[0] == "limit") {
				sources[f[1]] = f[3]
			}
		}
		for key, want := range map[string]string{"top_k": "plan", "max_top_k": "plan", "queries_per_hour": "plan",
			"temperature": "system", "embedding_dimension": "tenant"} {
			if sources[key] != want {
				t.Errorf("%s from %q, want %q\n%s", key, sources[key], want, out)
			}
		}
		if !strings.Contains(out, "5000") || strings.Contains(out, "e+") {
			t.Errorf("queries_per_hour not printed as a whole number:\n%s", out)
		}
	})

	var keyID, apiKey string
	t.Run("keys create", func(t *testing.T) {
		apiKey = strings.TrimSpace(MustRunCLI(t, admin, "keys", "create", id, "--name", "ci"))
		if !regexp.MustCompile(`^rpk_[a-z2-7]{12}_[a-z2-7]+$`).MatchString(apiKey) {
			t.Fatalf("keys create printed %q, want one rpk_ key", apiKey)
		}
		out := MustRunCLI(t, admin, "--json", "keys", "list", id)
		var keys []ragplane.APIKey
		if err := json.Unmarshal([]byte(out), &keys); err != nil || len(keys) != 1 {
			t.Fatalf("keys list --json: %v\n%s", err, out)
		}
		keyID = keys[0].ID
		if !strings.HasPrefix(apiKey, "rpk_"+keys[0].Prefix+"_") || strings.Contains(out, apiKey) {
			t.Fatalf("listed key %+v for secret %q", keys[0], apiKey)
		}
	})

	t.Run("token", func(t *testing.T) {
		user := env{"RAGPLANE_ADMIN_URL": base, "RAGPLANE_API_KEY": apiKey}
		tok := strings.TrimSpace(MustRunCLI(t, user, "token", "--user", "alice", "--role", "reader"))
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			t.Fatalf("token %q is not a JWT", tok)
		}
		var header struct {
			Alg string `json:"alg"`
			Kid string `json:"kid"`
		}
		var claims struct {
			Sub      string   `json:"sub"`
			TenantID string   `json:"tenant_id"`
			Roles    []string `json:"roles"`
		}
		mustSegment(t, parts[0], &header)
		mustSegment(t, parts[1], &claims)
		if header.Alg != "EdDSA" || header.Kid == "" {
			t.Fatalf("header %+v", header)
		}
		if claims.Sub != "alice" || claims.TenantID != id || strings.Join(claims.Roles, ",") != "reader" {
			t.Fatalf("claims %+v", claims)
		}
		// The token command must not need (or send) the admin token: it works with it set too.
		if _, err := runCLI(t, user.with("RAGPLANE_ADMIN_TOKEN", testAdminToken), "token"); err != nil {
			t.Fatalf("token with an admin token in the environment: %v", err)
		}
	})

	t.Run("token errors", func(t *testing.T) {
		_, err := runCLI(t, env{"RAGPLANE_ADMIN_URL": base}, "token")
		if err == nil {
			t.Fatal("token without RAGPLANE_API_KEY succeeded")
		}
		_, err = runCLI(t, env{"RAGPLANE_ADMIN_URL": base, "RAGPLANE_API_KEY": apiKey + "x"}, "token")
		mustAPIError(t, err, http.StatusUnauthorized, ragplane.EUNAUTHORIZED)
		_, err = runCLI(t, env{"RAGPLANE_ADMIN_URL": base, "RAGPLANE_API_KEY": apiKey}, "token", "--role", "admin")
		mustAPIError(t, err, http.StatusForbidden, ragplane.EFORBIDDEN)
	})

	t.Run("tenants suspend and resume", func(t *testing.T) {
		out := MustRunCLI(t, admin, "tenants", "suspend", id, "--reason", "unpaid")
		if r := strings.Join(row(t, out, id), " "); !strings.Contains(r, "suspended (unpaid)") {
			t.Fatalf("suspend printed:\n%s", out)
		}
		_, err := runCLI(t, env{"RAGPLANE_ADMIN_URL": base, "RAGPLANE_API_KEY": apiKey}, "token")
		mustAPIError(t, err, http.StatusForbidden, ragplane.EFORBIDDEN)
		out = MustRunCLI(t, admin, "tenants", "resume", id)
		if r := strings.Join(row(t, out, id), " "); !strings.Contains(r, "active") {
			t.Fatalf("resume printed:\n%s", out)
		}
	})

	t.Run("keys revoke", func(t *testing.T) {
		out := MustRunCLI(t, admin, "keys", "revoke", id, keyID)
		if !strings.Contains(out, "revoked key "+keyID) {
			t.Fatalf("revoke printed %q", out)
		}
		out = MustRunCLI(t, admin, "keys", "list", id)
		if r := strings.Join(row(t, out, keyID), " "); !strings.Contains(r, "revoked") {
			t.Fatalf("list after revoke:\n%s", out)
		}
		_, err := runCLI(t, env{"RAGPLANE_ADMIN_URL": base, "RAGPLANE_API_KEY": apiKey}, "token")
		mustAPIError(t, err, http.StatusUnauthorized, ragplane.EUNAUTHORIZED)
		_, err = runCLI(t, admin, "keys", "revoke", id, "00000000-0000-0000-0000-000000000000")
		mustAPIError(t, err, http.StatusNotFound, ragplane.ENOTFOUND)
	})

	t.Run("tenants delete --wait", func(t *testing.T) {
		out := MustRunCLI(t, admin, "tenants", "delete", id, "--wait", "30s")
		if r := strings.Join(row(t, out, id), " "); !strings.Contains(r, "deleted") {
			t.Fatalf("delete printed:\n%s", out)
		}
		_, err := runCLI(t, admin, "tenants", "resume", id)
		mustAPIError(t, err, http.StatusConflict, ragplane.ECONFLICT)
	})

	t.Run("audit", func(t *testing.T) {
		out := MustRunCLI(t, admin, "audit", "--target", "tenant/"+id)
		for _, action := range []string{"tenant.create", "tenant.provisioned", "tenant.suspend", "tenant.resume",
			"tenant.delete", "tenant.deleted"} {
			if !strings.Contains(out, action) {
				t.Errorf("audit lacks %s:\n%s", action, out)
			}
		}
		out = MustRunCLI(t, admin, "--json", "audit", "--action", "key.revoke")
		var entries []ragplane.AuditEntry
		if err := json.Unmarshal([]byte(out), &entries); err != nil || len(entries) != 1 {
			t.Fatalf("audit --json --action key.revoke: %v\n%s", err, out)
		}
		if entries[0].Target != "tenant/"+id+"/keys/"+keyID || entries[0].Actor != "admin" {
			t.Fatalf("entry %+v", entries[0])
		}
	})

	t.Run("plans list", func(t *testing.T) {
		out := MustRunCLI(t, admin, "plans", "list")
		for _, p := range []string{"free", "pro", "enterprise"} {
			row(t, out, p)
		}
		if r := row(t, out, "enterprise"); r[1] != "100000" {
			t.Fatalf("enterprise queries/h %q, want 100000", r[1])
		}
	})
}

func TestCLIErrors(t *testing.T) {
	base := MustStartControlPlane(t)
	admin := env{"RAGPLANE_ADMIN_URL": base, "RAGPLANE_ADMIN_TOKEN": testAdminToken}

	tests := []struct {
		name   string
		given  env
		when   []string
		status int
		code   string
	}{
		{name: "wrong admin token", given: admin.with("RAGPLANE_ADMIN_TOKEN", "wrong-token-0123456789"),
			when: []string{"tenants", "list"}, status: http.StatusUnauthorized, code: ragplane.EUNAUTHORIZED},
		{name: "no admin token", given: env{"RAGPLANE_ADMIN_URL": base},
			when: []string{"tenants", "list"}, status: http.StatusUnauthorized, code: ragplane.EUNAUTHORIZED},
		{name: "unknown tenant", given: admin, when: []string{"tenants", "get", "no_such_tenant"},
			status: http.StatusNotFound, code: ragplane.ENOTFOUND},
		{name: "config of unknown tenant", given: admin, when: []string{"tenants", "config", "no_such_tenant"},
			status: http.StatusNotFound, code: ragplane.ENOTFOUND},
		{name: "keys of unknown tenant", given: admin, when: []string{"keys", "create", "no_such_tenant"},
			status: http.StatusNotFound, code: ragplane.ENOTFOUND},
		{name: "invalid tenant id", given: admin, when: []string{"tenants", "create", "--id", "Bad Id", "--name", "x", "--email", "x@example.com"},
			status: http.StatusUnprocessableEntity, code: ragplane.EINVALID},
		{name: "unknown plan", given: admin, when: []string{"tenants", "create", "--id", "cli_gold", "--name", "x", "--email", "x@example.com", "--plan", "gold"},
			status: http.StatusUnprocessableEntity, code: ragplane.EINVALID},
		{name: "suspend unknown tenant", given: admin, when: []string{"tenants", "suspend", "no_such_tenant"},
			status: http.StatusNotFound, code: ragplane.ENOTFOUND},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runCLI(t, tt.given, tt.when...)
			mustAPIError(t, err, tt.status, tt.code)
			if out != "" {
				t.Fatalf("printed %q on failure", out)
			}
		})
	}

	t.Run("error message names the status", func(t *testing.T) {
		_, err := runCLI(t, admin.with("RAGPLANE_ADMIN_TOKEN", "wrong-token-0123456789"), "tenants", "list")
		if err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("error %v does not mention 401", err)
		}
		_, err = runCLI(t, admin, "tenants", "get", "no_such_tenant")
		if err == nil || !strings.Contains(err.Error(), "404") {
			t.Fatalf("error %v does not mention 404", err)
		}
	})

	t.Run("field of an invalid create", func(t *testing.T) {
		_, err := runCLI(t, admin, "tenants", "create", "--id", "cli_bad_mail", "--name", "x", "--email", "not-an-email")
		var ae *apiError
		if !errors.As(err, &ae) || ae.Field != "email" {
			t.Fatalf("error %v, want field email", err)
		}
	})

	usage := []struct {
		name   string
		when   []string
		expect string // a word the error must name
	}{
		{name: "missing required flag", when: []string{"tenants", "create", "--id", "cli_x", "--name", "x"}, expect: "email"},
		{name: "missing every required flag", when: []string{"tenants", "create"}, expect: "id"},
		{name: "missing argument", when: []string{"tenants", "get"}, expect: "arg"},
		{name: "too many arguments", when: []string{"keys", "revoke", "a"}, expect: "arg"},
		{name: "unknown flag", when: []string{"tenants", "list", "--bogus"}, expect: "bogus"},
		{name: "bad duration", when: []string{"tenants", "create", "--id", "cli_x", "--name", "x", "--email", "x@example.com", "--wait", "soon"}, expect: "wait"},
	}
	for _, tt := range usage {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runCLI(t, admin, tt.when...)
			if err == nil {
				t.Fatalf("succeeded, printed %q", out)
			}
			var ae *apiError
			if errors.As(err, &ae) {
				t.Fatalf("reached the API: %v", err)
			}
			if !strings.Contains(err.Error(), tt.expect) {
				t.Fatalf("error %q does not name %q", err, tt.expect)
			}
		})
	}

	t.Run("unreachable admin API", func(t *testing.T) {
		_, err := runCLI(t, env{"RAGPLANE_ADMIN_URL": "http://127.0.0.1:1", "RAGPLANE_ADMIN_TOKEN": testAdminToken}, "tenants", "list")
		var ae *apiError
		if err == nil || errors.As(err, &ae) {
			t.Fatalf("error %v, want a connection error", err)
		}
	})

	t.Run("--admin-url overrides the environment", func(t *testing.T) {
		e := admin.with("RAGPLANE_ADMIN_URL", "http://127.0.0.1:1")
		if _, err := runCLI(t, e, "--admin-url", base+"/", "plans", "list"); err != nil {
			t.Fatalf("plans list with --admin-url: %v", err)
		}
	})

	t.Run("idempotent create", func(t *testing.T) {
		args := []string{"--json", "tenants", "create", "--id", "cli_idem", "--name", "Idem", "--email", "idem@example.com",
			"--idempotency-key", "cli-key-1"}
		first := MustRunCLI(t, admin, args...)
		second := MustRunCLI(t, admin, args...)
		var a, b ragplane.Tenant
		if json.Unmarshal([]byte(first), &a) != nil || json.Unmarshal([]byte(second), &b) != nil || a.ID != b.ID || !a.CreatedAt.Equal(b.CreatedAt) {
			t.Fatalf("replay differs:\n%s\n%s", first, second)
		}
		_, err := runCLI(t, admin, "tenants", "create", "--id", "cli_idem2", "--name", "Idem", "--email", "idem2@example.com",
			"--idempotency-key", "cli-key-1")
		mustAPIError(t, err, http.StatusConflict, ragplane.ECONFLICT)
	})
}

// A script reading `ragplane --json tenants list` must get an array whatever the number of tenants.
func TestCLIListJSONIsAnArray(t *testing.T) {
	base := MustStartControlPlane(t)
	admin := env{"RAGPLANE_ADMIN_URL": base, "RAGPLANE_ADMIN_TOKEN": testAdminToken}
	for i, id := range []string{"cli_arr_a", "cli_arr_b"} {
		out := MustRunCLI(t, admin, "--json", "tenants", "list")
		var ts []ragplane.Tenant
		if err := json.Unmarshal([]byte(out), &ts); err != nil || len(ts) != i {
			t.Fatalf("with %d tenants: %v\n%s", i, err, out)
		}
		MustRunCLI(t, admin, "tenants", "create", "--id", id, "--name", "x", "--email", id+"@example.com")
	}
}

// mustSegment decodes one base64url JWT segment as JSON into v.
func mustSegment(tb testing.TB, seg string, v any) {
	tb.Helper()
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		tb.Fatalf("segment %q: %v", seg, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		tb.Fatalf("segment %s: %v", b, err)
	}
}
