package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/controlplane"
	"github.com/ragplane/ragplane/controlplane/provision"
	"github.com/ragplane/ragplane/e2etest"
)

// mustActivity runs `tenants activity ID -o json` and decodes it.
func mustActivity(tb testing.TB, e env, id string) tenantActivity {
	tb.Helper()
	var a tenantActivity
	out := MustRunCLI(tb, e, "-o", "json", "tenants", "activity", id)
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		tb.Fatalf("tenants activity -o json: %v\n%s", err, out)
	}
	return a
}

// TestCLITenantsActivityAndWake: an active tenant is awake, and waking it changes nothing; an
// unknown tenant is not found and a deleted one cannot be woken.
func TestCLITenantsActivityAndWake(t *testing.T) {
	base := MustStartControlPlane(t)
	admin := env{"RAGPLANE_ADMIN_URL": base, "RAGPLANE_ADMIN_TOKEN": testAdminToken}
	const id = "cli_wake"
	MustRunCLI(t, admin, "tenants", "create", "--id", id, "--name", "Wake", "--email", "wake@example.com", "--plan", "pro", "--wait", "30s")

	if a := mustActivity(t, admin, id); a.TenantID != id || a.State != "awake" || a.IdleSince != nil || a.Offload != nil {
		t.Fatalf("activity of a new tenant: %+v, want awake with no offload", a)
	}
	if r := row(t, MustRunCLI(t, admin, "tenants", "activity", id), id); strings.Join(r, " ") != id+" awake - - - - -" {
		t.Fatalf("activity table row %v, want awake and nothing else", r)
	}
	data := mustSameData(t, MustRunCLI(t, admin, "-o", "json", "tenants", "activity", id),
		MustRunCLI(t, admin, "-o", "yaml", "tenants", "activity", id))
	mustField(t, data, "state", "awake")
	mustField(t, data, "offload", nil)

	var woke tenantActivity
	if err := json.Unmarshal([]byte(MustRunCLI(t, admin, "-o", "json", "tenants", "wake", id, "--wait", "10s")), &woke); err != nil {
		t.Fatal(err)
	}
	if woke.TenantID != id || woke.State != "awake" || woke.Offload != nil {
		t.Fatalf("wake of an awake tenant: %+v, want it awake", woke)
	}

	MustRunCLI(t, admin, "tenants", "delete", id, "--wait", "30s")
	for _, tt := range []struct {
		name string
		args []string
		code int
	}{
		{"activity of an unknown tenant", []string{"tenants", "activity", "no_such_tenant"}, exitNotFound},
		{"wake of an unknown tenant", []string{"tenants", "wake", "no_such_tenant"}, exitNotFound},
		{"wake of a deleted tenant", []string{"tenants", "wake", id}, exitConflict},
		{"wake without an id", []string{"tenants", "wake"}, exitUsage},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runCLI(t, admin, tt.args...)
			if code := exitCode(err); code != tt.code {
				t.Fatalf("exit %d (%v), want %d", code, err, tt.code)
			}
			if out != "" {
				t.Fatalf("printed %q on failure", out)
			}
		})
	}
}

// TestCLITenantsWakeRestoresOffloaded runs a control plane that offloads idle siloed tenants:
// `tenants activity` shows the offload, `tenants wake --wait` restores the tenant's database,
// and a restore that keeps failing makes --wait fail with the state and the last error. The
// answers are checked against the admin API's OpenAPI document too.
func TestCLITenantsWakeRestoresOffloaded(t *testing.T) {
	// The hook is set before the control plane starts and restored after it stops (cleanups run
	// last first); the test switches it with an atomic.
	var holdRestore atomic.Bool
	t.Cleanup(provision.SetOffloadHook(func(step string, tenant ragplane.TenantID) error {
		if step == "loaded" && tenant == "cli_offl" && holdRestore.Load() {
			return ragplane.Errorf(ragplane.EUNAVAILABLE, "restore held by the test")
		}
		return nil
	}))
	dir := t.TempDir()
	st := e2etest.Start(t, e2etest.Options{ControlPlane: func(c *controlplane.Config) {
		c.Provision.IdleAfter = 2 * time.Second
		c.Provision.OffloadAfter = time.Second
		c.Provision.OffloadDir = dir
	}})
	raw, err := os.ReadFile(filepath.Join("..", "..", "controlplane", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	doc := e2etest.NewAPIDoc(t, raw)
	auth := []string{"Authorization", "Bearer " + e2etest.AdminToken}
	admin := env{"RAGPLANE_ADMIN_URL": st.AdminURL, "RAGPLANE_ADMIN_TOKEN": e2etest.AdminToken}
	const id = "cli_offl"
	// Siloed. It gets no request: one still in flight when the tenant is marked idle (a first
	// ingest can take seconds under -race) would keep it from being offloaded. The control
	// plane's own tests check what an archive holds.
	st.CreateTenant(id, "pro", nil)
	rt, err := st.Store().TenantRuntime(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	db := rt.Tenant.ProviderProjectID

	offloaded := func(t *testing.T) tenantActivity {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			a := mustActivity(t, admin, id)
			if a.State == "offloaded" && a.Offload != nil && a.Offload.Dropped {
				return a
			}
			if time.Now().After(deadline) {
				t.Fatalf("tenant %s was not offloaded: %+v", id, a)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	t.Run("activity of an offloaded tenant", func(t *testing.T) {
		a := offloaded(t)
		o := a.Offload
		if a.IdleSince == nil || o.Archive == "" || o.Bytes == 0 || len(o.SHA256) != 64 || len(o.Rows) == 0 ||
			o.OffloadedAt == nil || o.RestoreRequestedAt != nil {
			t.Fatalf("activity %+v, offload %+v: want idle, an archive with its row counts, no restore asked for", a, o)
		}
		if catalogtest.DatabaseExists(t, db) {
			t.Fatalf("database %s exists with the tenant offloaded", db)
		}
		r := row(t, MustRunCLI(t, admin, "tenants", "activity", id), id)
		if len(r) != 7 || r[1] != "offloaded" || r[2] != a.IdleSince.Format(time.RFC3339) || r[3] != strconv.FormatInt(o.Bytes, 10) ||
			r[4] != o.OffloadedAt.Format(time.RFC3339) || r[5] != "-" {
			t.Fatalf("activity table row %v, want offloaded, idle since %v, %d bytes", r, a.IdleSince, o.Bytes)
		}
		if r := doc.Send(t, st.AdminURL, "GET", "/v1/tenants/"+id+"/activity", nil, auth...); r.Status != http.StatusOK {
			t.Fatalf("GET activity: %d %s", r.Status, r.Body)
		}
	})

	t.Run("wake --wait restores it", func(t *testing.T) {
		var stderr strings.Builder
		out, err := runCLIErr(t, admin, &stderr, "-o", "json", "tenants", "wake", id, "--wait", "1m")
		if err != nil {
			t.Fatalf("wake --wait: %v\n%s", err, stderr.String())
		}
		var a tenantActivity
		if err := json.Unmarshal([]byte(out), &a); err != nil {
			t.Fatalf("wake -o json: %v\n%s", err, out)
		}
		if a.asleep() || a.Offload != nil {
			t.Fatalf("after wake --wait: %+v, want the restore ended", a)
		}
		if !strings.Contains(stderr.String(), "is restoring") {
			t.Fatalf("stderr %q does not follow the restore", stderr.String())
		}
		if !catalogtest.DatabaseExists(t, db) {
			t.Fatalf("database %s missing after wake --wait", db)
		}
	})

	t.Run("wake --wait names the state and the last error of a failing restore", func(t *testing.T) {
		holdRestore.Store(true)
		offloaded(t)
		r := doc.Send(t, st.AdminURL, "POST", "/v1/tenants/"+id+"/wake", nil, auth...)
		var a tenantActivity
		r.Decode(t, &a)
		if r.Status != http.StatusAccepted || a.State != "restoring" || a.Offload == nil || a.Offload.RestoreRequestedAt == nil ||
			a.Offload.RestoreRequestedBy != "admin" {
			t.Fatalf("POST wake of an offloaded tenant: %d %s, want 202 restoring, asked for by admin", r.Status, r.Body)
		}
		deadline := time.Now().Add(time.Minute)
		for a.Offload == nil || a.Offload.LastError == "" {
			if time.Now().After(deadline) {
				t.Fatalf("the held restore recorded no error: %+v", a.Offload)
			}
			time.Sleep(20 * time.Millisecond)
			a = mustActivity(t, admin, id)
		}
		out, err := runCLI(t, admin, "tenants", "wake", id, "--wait", "300ms")
		if exitCode(err) != exitUnavailable || !strings.Contains(err.Error(), "still restoring") ||
			!strings.Contains(err.Error(), "restore held by the test") {
			t.Fatalf("wake --wait of a failing restore: %v (exit %d), want exit %d naming restoring and the last error",
				err, exitCode(err), exitUnavailable)
		}
		if out != "" {
			t.Fatalf("printed %q on failure", out)
		}

		holdRestore.Store(false)
		var b tenantActivity
		if err := json.Unmarshal([]byte(MustRunCLI(t, admin, "-o", "json", "tenants", "wake", id, "--wait", "1m")), &b); err != nil {
			t.Fatal(err)
		}
		if b.asleep() || b.Offload != nil || !catalogtest.DatabaseExists(t, db) {
			t.Fatalf("after the hold: %+v, database exists %v, want the restore ended", b, catalogtest.DatabaseExists(t, db))
		}
	})
}
