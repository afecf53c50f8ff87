package main

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/e2etest"
)

// adminCall sends an admin API request the CLI has no command for (PUT /v1/config/defaults).
func adminCall(tb testing.TB, base, method, path string, body any) e2etest.Response {
	tb.Helper()
	return e2etest.Send(tb, method, base+path, body, "Authorization", "Bearer "+testAdminToken)
}

// mustSameData fails unless the -o json and -o yaml outputs of a command decode to the same data.
func mustSameData(tb testing.TB, jsonOut, yamlOut string) any {
	tb.Helper()
	var fromJSON, fromYAML any
	if err := json.Unmarshal([]byte(jsonOut), &fromJSON); err != nil {
		tb.Fatalf("-o json is not JSON: %v\n%s", err, jsonOut)
	}
	if err := yaml.Unmarshal([]byte(yamlOut), &fromYAML); err != nil {
		tb.Fatalf("-o yaml is not YAML: %v\n%s", err, yamlOut)
	}
	if strings.HasPrefix(strings.TrimSpace(yamlOut), "{") || strings.HasPrefix(strings.TrimSpace(yamlOut), "[") {
		tb.Fatalf("-o yaml printed JSON:\n%s", yamlOut)
	}
	// YAML decodes integers as int and times as strings like JSON does: compare through JSON.
	b, err := json.Marshal(fromYAML)
	if err != nil {
		tb.Fatal(err)
	}
	var normalised any
	if err := json.Unmarshal(b, &normalised); err != nil {
		tb.Fatal(err)
	}
	if !reflect.DeepEqual(fromJSON, normalised) {
		tb.Fatalf("-o json and -o yaml differ:\n%s\n---\n%s", jsonOut, yamlOut)
	}
	return fromJSON
}

// TestCLIOutputFormats runs every admin read command with -o table, json and yaml.
func TestCLIOutputFormats(t *testing.T) {
	base := MustStartControlPlane(t)
	admin := env{"RAGPLANE_ADMIN_URL": base, "RAGPLANE_ADMIN_TOKEN": testAdminToken}
	const id = "cli_fmt"
	MustRunCLI(t, admin, "tenants", "create", "--id", id, "--name", "Fmt", "--email", "fmt@example.com", "--plan", "pro", "--wait", "30s")
	MustRunCLI(t, admin, "keys", "create", id, "--name", "fmt-key")

	reads := []struct {
		args   []string
		header string // the table's first column
		check  func(t *testing.T, data any)
	}{
		{[]string{"tenants", "list"}, "ID", func(t *testing.T, d any) { mustField(t, d, "0.id", id) }},
		{[]string{"tenants", "get", id}, "ID", func(t *testing.T, d any) { mustField(t, d, "plan", "pro") }},
		{[]string{"tenants", "config", id}, "tenant", func(t *testing.T, d any) { mustField(t, d, "settings.top_k.source", "plan") }},
		{[]string{"tenants", "tier", id}, "tenant", func(t *testing.T, d any) { mustField(t, d, "configured_tier", "siloed") }},
		{[]string{"tenants", "activity", id}, "TENANT", func(t *testing.T, d any) { mustField(t, d, "state", "awake") }},
		{[]string{"keys", "list", id}, "ID", func(t *testing.T, d any) { mustField(t, d, "0.name", "fmt-key") }},
		{[]string{"plans", "list"}, "PLAN", func(t *testing.T, d any) { mustField(t, d, "0.name", "enterprise") }},
		{[]string{"plans", "get", "pro"}, "plan", func(t *testing.T, d any) { mustField(t, d, "limits.queries_per_hour", 5000.0) }},
		{[]string{"config", "defaults"}, "KIND", func(t *testing.T, d any) { mustField(t, d, "effective.settings.temperature", 0.2) }},
		{[]string{"audit", "--target", "tenant/" + id}, "AT", func(t *testing.T, d any) { mustField(t, d, "0.target", "tenant/"+id) }},
		{[]string{"usage", id}, "TENANT", func(t *testing.T, d any) { mustField(t, d, "0.tenant_id", id) }},
		{[]string{"version"}, "ragplane", func(t *testing.T, d any) { mustField(t, d, "module", "github.com/ragplane/ragplane") }},
	}
	for _, r := range reads {
		t.Run(strings.Join(r.args, " "), func(t *testing.T) {
			table := MustRunCLI(t, admin, append(r.args, "-o", "table")...)
			if f := strings.Fields(table); len(f) == 0 || f[0] != r.header {
				t.Fatalf("-o table starts %q, want %q:\n%s", firstLine(table), r.header, table)
			}
			if plain := MustRunCLI(t, admin, r.args...); plain != table && r.args[0] != "audit" {
				t.Fatalf("the default is not the table:\n%s\n---\n%s", plain, table)
			}
			jsonOut := MustRunCLI(t, admin, append(r.args, "-o", "json")...)
			if legacy := MustRunCLI(t, admin, append([]string{"--json"}, r.args...)...); r.args[0] != "audit" && r.args[0] != "version" && legacy != jsonOut {
				t.Fatalf("--json differs from -o json:\n%s\n---\n%s", legacy, jsonOut)
			}
			data := mustSameData(t, jsonOut, MustRunCLI(t, admin, append(r.args, "-o", "yaml")...))
			r.check(t, data)
		})
	}

	t.Run("tenants tier --wait follows a plan change's move", func(t *testing.T) {
		MustRunCLI(t, admin, "tenants", "update", id, "--plan", "free")
		var tier struct {
			Tier           string `json:"tier"`
			ConfiguredTier string `json:"configured_tier"`
			Move           any    `json:"move"`
		}
		if err := json.Unmarshal([]byte(MustRunCLI(t, admin, "-o", "json", "tenants", "tier", id, "--wait", "2m")), &tier); err != nil {
			t.Fatal(err)
		}
		if tier.Tier != "pooled" || tier.ConfiguredTier != "pooled" || tier.Move != nil {
			t.Fatalf("after the wait: %+v, want the free plan's pooled tier and no move", tier)
		}
	})

	t.Run("a bad -o is a usage error", func(t *testing.T) {
		_, err := runCLI(t, admin, "tenants", "list", "-o", "xml")
		if err == nil || !strings.Contains(err.Error(), "table, json or yaml") || exitCode(err) != exitUsage {
			t.Fatalf("error %v (exit %d), want a usage error naming the formats", err, exitCode(err))
		}
		_, err = runCLI(t, admin, "--json", "tenants", "list", "-o", "yaml")
		if exitCode(err) != exitUsage {
			t.Fatalf("--json with -o yaml: %v (exit %d), want a usage error", err, exitCode(err))
		}
	})
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

// mustField fails unless data at a dotted path (numbers index arrays) is want.
func mustField(tb testing.TB, data any, path string, want any) {
	tb.Helper()
	cur := data
	for _, p := range strings.Split(path, ".") {
		switch v := cur.(type) {
		case map[string]any:
			cur = v[p]
		case []any:
			i := 0
			for _, c := range p {
				i = i*10 + int(c-'0')
			}
			if i >= len(v) {
				tb.Fatalf("%s: index %d of %d items", path, i, len(v))
			}
			cur = v[i]
		default:
			tb.Fatalf("%s: %T at %q", path, cur, p)
		}
	}
	if !reflect.DeepEqual(cur, want) {
		tb.Fatalf("%s = %#v, want %#v", path, cur, want)
	}
}

func TestCLITenantsUpdatePlansAndDefaults(t *testing.T) {
	base := MustStartControlPlane(t)
	admin := env{"RAGPLANE_ADMIN_URL": base, "RAGPLANE_ADMIN_TOKEN": testAdminToken}
	const id = "cli_upd"
	MustRunCLI(t, admin, "tenants", "create", "--id", id, "--name", "Upd", "--email", "upd@example.com", "--plan", "free", "--wait", "30s")

	sources := func(t *testing.T) map[string]ragplane.Sourced {
		var cfg struct {
			Settings map[string]ragplane.Sourced `json:"settings"`
			Limits   map[string]ragplane.Sourced `json:"limits"`
		}
		if err := json.Unmarshal([]byte(MustRunCLI(t, admin, "-o", "json", "tenants", "config", id)), &cfg); err != nil {
			t.Fatal(err)
		}
		for k, v := range cfg.Limits {
			cfg.Settings[k] = v
		}
		return cfg.Settings
	}

	t.Run("plan, limit and setting", func(t *testing.T) {
		out := MustRunCLI(t, admin, "tenants", "update", id, "--plan", "pro", "--name", "Upd Corp",
			"--limit", "queries_per_hour=1234", "--setting", "retrieval_mode=keyword")
		if r := strings.Join(row(t, out, id), " "); !strings.Contains(r, "pro") || !strings.Contains(r, "Upd Corp") {
			t.Fatalf("update printed:\n%s", out)
		}
		s := sources(t)
		if v := s["queries_per_hour"]; v.Source != ragplane.LayerTenant || v.Value != 1234.0 {
			t.Fatalf("queries_per_hour = %+v, want 1234 from the tenant", v)
		}
		if v := s["retrieval_mode"]; v.Source != ragplane.LayerTenant || v.Value != "keyword" {
			t.Fatalf("retrieval_mode = %+v, want keyword from the tenant", v)
		}
		if v := s["max_top_k"]; v.Source != ragplane.LayerPlan {
			t.Fatalf("max_top_k from %s, want the (new) plan", v.Source)
		}
	})

	t.Run("unset", func(t *testing.T) {
		MustRunCLI(t, admin, "tenants", "update", id, "--unset-limit", "queries_per_hour", "--unset-setting", "retrieval_mode")
		s := sources(t)
		if v := s["queries_per_hour"]; v.Source != ragplane.LayerPlan || v.Value != 5000.0 {
			t.Fatalf("queries_per_hour = %+v after unset, want pro's 5000", v)
		}
		if v := s["retrieval_mode"]; v.Source == ragplane.LayerTenant {
			t.Fatalf("retrieval_mode still from the tenant: %+v", v)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tt := range []struct {
			args []string
			code int
		}{
			{[]string{"tenants", "update", id}, exitUsage},                                   // nothing to change
			{[]string{"tenants", "update", id, "--limit", "queries_per_hour"}, exitUsage},    // no =
			{[]string{"tenants", "update", id, "--limit", "queries_per_hour=-5"}, exitUsage}, // the API says 422
			{[]string{"tenants", "update", id, "--plan", "gold"}, exitUsage},
			{[]string{"tenants", "update", "no_such_tenant", "--plan", "pro"}, exitNotFound},
			{[]string{"plans", "get", "gold"}, exitNotFound},
		} {
			out, err := runCLI(t, admin, tt.args...)
			if code := exitCode(err); code != tt.code {
				t.Errorf("%v: exit %d (%v), want %d", tt.args, code, err, tt.code)
			}
			if out != "" {
				t.Errorf("%v printed %q on failure", tt.args, out)
			}
		}
	})

	t.Run("plans get", func(t *testing.T) {
		out := MustRunCLI(t, admin, "plans", "get", "pro")
		if r := row(t, out, "limit"); len(r) < 4 {
			t.Fatalf("plans get:\n%s", out)
		}
		found := false
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) == 4 && f[1] == "queries_per_hour" && f[2] == "5000" && f[3] == "plan" {
				found = true
			}
		}
		if !found || !strings.HasPrefix(out, "plan pro: ") {
			t.Fatalf("plans get pro lacks queries_per_hour 5000:\n%s", out)
		}
	})

	t.Run("config defaults", func(t *testing.T) {
		kinds := func() map[string][]string {
			m := map[string][]string{}
			for _, line := range strings.Split(MustRunCLI(t, admin, "config", "defaults"), "\n") {
				if f := strings.Fields(line); len(f) == 4 {
					m[f[1]] = f
				}
			}
			return m
		}
		if r := kinds()["temperature"]; r == nil || r[3] != "built-in" {
			t.Fatalf("temperature row %v, want built-in", r)
		}
		if r := adminCall(t, base, "PUT", "/v1/config/defaults", map[string]any{"settings": map[string]any{"temperature": 0.3}, "limits": map[string]any{}}); r.Status != http.StatusOK {
			t.Fatalf("PUT defaults: %d %s", r.Status, r.Body)
		}
		if r := kinds()["temperature"]; r == nil || r[2] != "0.3" || r[3] != "override" {
			t.Fatalf("temperature row %v, want 0.3 override", r)
		}
	})
}

func TestCLIKeysExpiryAndRotation(t *testing.T) {
	base := MustStartControlPlane(t)
	admin := env{"RAGPLANE_ADMIN_URL": base, "RAGPLANE_ADMIN_TOKEN": testAdminToken}
	const id = "cli_rot"
	MustRunCLI(t, admin, "tenants", "create", "--id", id, "--name", "Rot", "--email", "rot@example.com", "--wait", "30s")
	tokenWith := func(key string) error {
		_, err := runCLI(t, env{"RAGPLANE_ADMIN_URL": base, "RAGPLANE_API_KEY": key}, "token")
		return err
	}
	listed := func(t *testing.T) map[string]ragplane.APIKey {
		var keys []ragplane.APIKey
		if err := json.Unmarshal([]byte(MustRunCLI(t, admin, "-o", "json", "keys", "list", id)), &keys); err != nil {
			t.Fatal(err)
		}
		m := map[string]ragplane.APIKey{}
		for _, k := range keys {
			m[k.ID] = k
		}
		return m
	}

	var created newKey
	t.Run("create with expiry", func(t *testing.T) {
		before := time.Now()
		out := MustRunCLI(t, admin, "-o", "json", "keys", "create", id, "--name", "ci", "--role", "reader", "--expires-in", "720h")
		if err := json.Unmarshal([]byte(out), &created); err != nil || created.Key == "" {
			t.Fatalf("keys create -o json: %v\n%s", err, out)
		}
		if created.ExpiresAt == nil || created.ExpiresAt.Before(before.Add(719*time.Hour)) || created.ExpiresAt.After(time.Now().Add(721*time.Hour)) {
			t.Fatalf("expires_at %v, want about 720h from now", created.ExpiresAt)
		}
		if r := row(t, MustRunCLI(t, admin, "keys", "list", id), created.ID); r[5] != created.ExpiresAt.Format(time.RFC3339) || r[6] != "active" {
			t.Fatalf("keys list row %v, want EXPIRES %s and active", r, created.ExpiresAt.Format(time.RFC3339))
		}
		at := MustRunCLI(t, admin, "-o", "json", "keys", "create", id, "--name", "dated", "--expires-at", "2099-01-02T03:04:05Z")
		var k newKey
		if json.Unmarshal([]byte(at), &k) != nil || k.ExpiresAt == nil || !k.ExpiresAt.Equal(time.Date(2099, 1, 2, 3, 4, 5, 0, time.UTC)) {
			t.Fatalf("--expires-at: %s", at)
		}
		for _, bad := range [][]string{
			{"--expires-at", "2001-01-01T00:00:00Z"}, // the API: must be in the future (422)
			{"--expires-at", "tomorrow"},
			{"--expires-in", "1h", "--expires-at", "2099-01-01T00:00:00Z"},
		} {
			_, err := runCLI(t, admin, append([]string{"keys", "create", id}, bad...)...)
			if exitCode(err) != exitUsage {
				t.Errorf("keys create %v: %v (exit %d), want a usage error", bad, err, exitCode(err))
			}
		}
	})

	t.Run("rotate", func(t *testing.T) {
		if err := tokenWith(created.Key); err != nil {
			t.Fatalf("the key before rotation: %v", err)
		}
		var stderr strings.Builder
		out, err := runCLIErr(t, admin, &stderr, "keys", "rotate", id, created.ID)
		if err != nil {
			t.Fatal(err)
		}
		secret := strings.TrimSpace(out)
		if !strings.HasPrefix(secret, "rpk_") || strings.Contains(secret, "\n") {
			t.Fatalf("rotate printed %q, want the new key alone", out)
		}
		if !strings.Contains(stderr.String(), "now revoked") {
			t.Fatalf("stderr %q does not say the old key is revoked", stderr.String())
		}
		if err := tokenWith(secret); err != nil {
			t.Fatalf("the new key: %v", err)
		}
		mustAPIError(t, tokenWith(created.Key), http.StatusUnauthorized, ragplane.EUNAUTHORIZED)
		keys := listed(t)
		if keys[created.ID].RevokedAt == nil {
			t.Fatal("the old key is not revoked")
		}
		var newest ragplane.APIKey
		for _, k := range keys {
			if strings.HasPrefix(secret, "rpk_"+k.Prefix+"_") {
				newest = k
			}
		}
		if newest.Name != "ci" || strings.Join(newest.Roles, ",") != "reader" || newest.RevokedAt != nil {
			t.Fatalf("the new key %+v does not keep the old one's name and roles", newest)
		}

		// --keep-old leaves the old key valid; -o json names both.
		out = MustRunCLI(t, admin, "-o", "json", "keys", "rotate", id, newest.ID, "--keep-old", "--expires-in", "1h")
		var res struct {
			Key       string     `json:"key"`
			ID        string     `json:"id"`
			Replaces  string     `json:"replaces"`
			Revoked   any        `json:"revoked"`
			ExpiresAt *time.Time `json:"expires_at"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.Replaces != newest.ID || res.Revoked != nil || res.ExpiresAt == nil {
			t.Fatalf("rotate --keep-old -o json: %v\n%s", err, out)
		}
		if err := tokenWith(secret); err != nil {
			t.Fatalf("the kept old key: %v", err)
		}
		if err := tokenWith(res.Key); err != nil {
			t.Fatalf("the newest key: %v", err)
		}

		_, err = runCLI(t, admin, "keys", "rotate", id, created.ID)
		if exitCode(err) != exitConflict {
			t.Fatalf("rotating a revoked key: %v (exit %d), want a conflict", err, exitCode(err))
		}
		_, err = runCLI(t, admin, "keys", "rotate", id, "00000000-0000-0000-0000-000000000000")
		if exitCode(err) != exitNotFound {
			t.Fatalf("rotating an unknown key: %v (exit %d), want not found", err, exitCode(err))
		}
	})
}

// TestCLIUsageRows: every row names its tenant, and an unknown tenant does not stop the others.
func TestCLIUsageRows(t *testing.T) {
	base := MustStartControlPlane(t)
	admin := env{"RAGPLANE_ADMIN_URL": base, "RAGPLANE_ADMIN_TOKEN": testAdminToken}
	for _, id := range []string{"cli_use_a", "cli_use_b"} {
		MustRunCLI(t, admin, "tenants", "create", "--id", id, "--name", "x", "--email", id+"@example.com")
	}
	var stderr strings.Builder
	out, err := runCLIErr(t, admin, &stderr, "-o", "json", "usage", "cli_use_a", "no_such_tenant", "cli_use_b")
	if exitCode(err) != exitNotFound {
		t.Fatalf("exit %d (%v), want %d for the unknown tenant", exitCode(err), err, exitNotFound)
	}
	var rows []struct {
		TenantID string         `json:"tenant_id"`
		Costs    map[string]any `json:"costs"`
		Error    *apiError      `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 3 {
		t.Fatalf("usage -o json: %v\n%s", err, out)
	}
	for i, want := range []string{"cli_use_a", "no_such_tenant", "cli_use_b"} {
		if rows[i].TenantID != want {
			t.Fatalf("row %d is %q, want %q", i, rows[i].TenantID, want)
		}
	}
	if rows[0].Costs == nil || rows[2].Costs == nil || rows[0].Error != nil {
		t.Fatalf("known tenants' rows %+v %+v", rows[0], rows[2])
	}
	if rows[1].Error == nil || rows[1].Error.Status != http.StatusNotFound || rows[1].Costs != nil {
		t.Fatalf("unknown tenant's row %+v", rows[1])
	}
	if !strings.Contains(stderr.String(), "no_such_tenant") {
		t.Fatalf("stderr %q does not name the unknown tenant", stderr.String())
	}
	table, err := runCLI(t, admin, "usage", "no_such_tenant", "cli_use_b")
	if err == nil {
		t.Fatal("usage of an unknown tenant succeeded")
	}
	row(t, table, "cli_use_b")
}

// TestCLIHelpHasExamples walks the whole command tree: every command's help has examples.
func TestCLIHelpHasExamples(t *testing.T) {
	root := newRootCommand(nil, os.Getenv)
	var walk func(c *cobra.Command)
	count := 0
	walk = func(c *cobra.Command) {
		count++
		path := strings.Fields(c.CommandPath())[1:]
		t.Run(c.CommandPath(), func(t *testing.T) {
			out := MustRunCLI(t, env{}, append(path, "--help")...)
			if !strings.Contains(out, "Examples:\n  ") {
				t.Fatalf("%s --help has no examples:\n%s", c.CommandPath(), out)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if count < 40 {
		t.Fatalf("walked %d commands: the tree is not all there", count)
	}
	out := MustRunCLI(t, env{}, "--help")
	for _, want := range []string{"Exit codes:", "2  usage", "3  authentication", "4  not found", "5  conflict", "6  server error"} {
		if !strings.Contains(out, want) {
			t.Errorf("root help lacks %q", want)
		}
	}
}

// TestCLIExitCodes: each class of failure has its own exit code.
func TestCLIExitCodes(t *testing.T) {
	base := MustStartControlPlane(t)
	admin := env{"RAGPLANE_ADMIN_URL": base, "RAGPLANE_ADMIN_TOKEN": testAdminToken}
	MustRunCLI(t, admin, "tenants", "create", "--id", "cli_gone", "--name", "x", "--email", "gone@example.com", "--wait", "30s")
	MustRunCLI(t, admin, "tenants", "delete", "cli_gone", "--wait", "30s")
	tests := []struct {
		name  string
		given env
		args  []string
		code  int
	}{
		{"ok", admin, []string{"plans", "list"}, exitOK},
		{"unknown flag", admin, []string{"tenants", "list", "--bogus"}, exitUsage},
		{"unknown command", admin, []string{"tenants", "bogus"}, exitUsage},
		{"unknown top-level command", admin, []string{"bogus"}, exitUsage},
		{"missing argument", admin, []string{"tenants", "get"}, exitUsage},
		{"missing required flag", admin, []string{"usage", "export"}, exitUsage},
		{"bad output format", admin, []string{"plans", "list", "-o", "toml"}, exitUsage},
		{"invalid request (422)", admin, []string{"tenants", "create", "--id", "Bad Id", "--name", "x", "--email", "x@example.com"}, exitUsage},
		{"bad month (422)", admin, []string{"usage", "export", "--month", "November"}, exitUsage},
		{"wrong admin token", admin.with("RAGPLANE_ADMIN_TOKEN", "wrong-token-0123456789"), []string{"tenants", "list"}, exitAuth},
		{"no admin token", env{"RAGPLANE_ADMIN_URL": base}, []string{"tenants", "list"}, exitAuth},
		{"no API key", env{"RAGPLANE_ADMIN_URL": base}, []string{"token"}, exitAuth},
		{"no tenant credentials", env{"RAGPLANE_ADMIN_URL": base}, []string{"documents", "list"}, exitAuth},
		{"not found", admin, []string{"tenants", "get", "no_such_tenant"}, exitNotFound},
		{"conflict", admin, []string{"tenants", "resume", "cli_gone"}, exitConflict},
		{"unreachable", env{"RAGPLANE_ADMIN_URL": "http://127.0.0.1:1", "RAGPLANE_ADMIN_TOKEN": testAdminToken}, []string{"tenants", "list"}, exitUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runCLI(t, tt.given, tt.args...)
			if got := exitCode(err); got != tt.code {
				t.Fatalf("exit %d (%v), want %d", got, err, tt.code)
			}
		})
	}
}

// TestCLIBinaryVersionAndExitCodes builds the real binary (with its VCS stamp) and checks what
// a shell sees: `version` prints the commit it was built from, and the process exits with the
// documented codes.
func TestCLIBinaryVersionAndExitCodes(t *testing.T) {
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "ragplane")
	if out, err := exec.Command("go", "build", "-buildvcs=true", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version", "-o", "json").Output()
	if err != nil {
		t.Fatalf("version: %v", err)
	}
	var v buildVersion
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("version -o json: %v\n%s", err, out)
	}
	if v.Commit != strings.TrimSpace(string(head)) || v.Module != "github.com/ragplane/ragplane" || v.GoVersion == "" {
		t.Fatalf("version %+v, want commit %s", v, head)
	}

	base := MustStartControlPlane(t)
	for _, tt := range []struct {
		args []string
		env  []string
		code int
	}{
		{[]string{"tenants", "list"}, []string{"RAGPLANE_ADMIN_URL=" + base, "RAGPLANE_ADMIN_TOKEN=" + testAdminToken}, exitOK},
		{[]string{"tenants", "get"}, nil, exitUsage},
		{[]string{"tenants", "list"}, []string{"RAGPLANE_ADMIN_URL=" + base, "RAGPLANE_ADMIN_TOKEN=wrong-token-0123456789"}, exitAuth},
		{[]string{"tenants", "get", "no_such_tenant"}, []string{"RAGPLANE_ADMIN_URL=" + base, "RAGPLANE_ADMIN_TOKEN=" + testAdminToken}, exitNotFound},
		{[]string{"tenants", "list"}, []string{"RAGPLANE_ADMIN_URL=http://127.0.0.1:1"}, exitUnavailable},
	} {
		cmd := exec.Command(bin, tt.args...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, tt.env...)
		out, _ := cmd.CombinedOutput()
		if got := cmd.ProcessState.ExitCode(); got != tt.code {
			t.Errorf("ragplane %v exited %d, want %d:\n%s", tt.args, got, tt.code, out)
		}
	}
}

func TestVersionOfBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/ragplane/ragplane", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	want := buildVersion{Module: "github.com/ragplane/ragplane", Version: "v1.2.3", Commit: "0123abcd", CommitAt: "2026-12-01T10:00:00Z", Modified: true, GoVersion: "go1.26.8"}
	if got := versionOf(bi); got != want {
		t.Fatalf("versionOf = %+v, want %+v", got, want)
	}
	if got := versionOf(&debug.BuildInfo{Main: debug.Module{Path: "m"}}); got.Commit != "unknown" || got.Version != "unknown" {
		t.Fatalf("without a VCS stamp: %+v", got)
	}
}
