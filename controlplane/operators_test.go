package controlplane_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/ragplane/ragplane"
)

// Named operators with roles: the audit log says which operator did what, a role limits what its
// token may call (403 naming the role), and a revoked operator's token is refused at once.
func TestOperatorIdentities(t *testing.T) {
	ts := mustStart(t)
	tokens := map[string]string{}
	for _, op := range []struct{ name, role string }{{"alice", "admin"}, {"victor", "viewer"}, {"bill", "billing"}} {
		r := ts.do("POST", "/v1/operators", map[string]string{"name": op.name, "role": op.role})
		mustStatus(t, r, http.StatusCreated)
		var created struct {
			Name, Role, Token, CreatedBy string
		}
		r.decode(t, &created)
		if created.Name != op.name || created.Role != op.role || !strings.HasPrefix(created.Token, "rpo_") || r.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("created %+v, Cache-Control %q", created, r.Header.Get("Cache-Control"))
		}
		tokens[op.name] = created.Token
	}
	as := func(name string) []string { return []string{"Authorization", "Bearer " + tokens[name]} }

	// Bad input names the field; a taken name is a conflict.
	for _, bad := range []map[string]string{{"name": "Bad Name", "role": "admin"}, {"name": "ok", "role": "root"}} {
		r := ts.do("POST", "/v1/operators", bad)
		if r.Status != http.StatusUnprocessableEntity && r.Status != http.StatusBadRequest {
			t.Errorf("%v: status %d, want 400/422", bad, r.Status)
		}
	}
	mustStatus(t, ts.do("POST", "/v1/operators", map[string]string{"name": "alice", "role": "viewer"}), http.StatusConflict)

	// alice (admin) creates a tenant: the audit entry names her.
	mustStatus(t, ts.do("POST", "/v1/tenants", map[string]any{"id": "acme_ops", "name": "Acme", "email": "ops@example.com", "plan": "free"}, as("alice")...), http.StatusAccepted)
	var audit struct {
		Items []ragplane.AuditEntry `json:"items"`
	}
	ts.do("GET", "/v1/audit?target=tenant/acme_ops&action=tenant.create", nil).decode(t, &audit)
	if len(audit.Items) != 1 || audit.Items[0].Actor != "operator:alice" {
		t.Fatalf("audit of alice's tenant.create: %+v", audit.Items)
	}

	// alice rotates the signing key: the audit entry names her, not the control plane.
	mustStatus(t, ts.do("POST", "/v1/signing-keys/rotate", nil, as("alice")...), http.StatusOK)
	ts.do("GET", "/v1/audit?action=signing_key.rotate", nil).decode(t, &audit)
	if len(audit.Items) == 0 || audit.Items[0].Actor != "operator:alice" {
		t.Fatalf("audit of alice's key rotation: %+v", audit.Items)
	}

	// victor (viewer) reads everything and changes nothing.
	mustStatus(t, ts.do("GET", "/v1/tenants/acme_ops", nil, as("victor")...), http.StatusOK)
	mustStatus(t, ts.do("GET", "/v1/audit", nil, as("victor")...), http.StatusOK)
	r := ts.do("POST", "/v1/tenants/acme_ops/suspend", map[string]string{"reason": "x"}, as("victor")...)
	mustStatus(t, r, http.StatusForbidden)
	if p := r.problem(t); !strings.Contains(p["detail"].(string), "viewer") {
		t.Errorf("403 problem %v does not name the role", p)
	}
	mustStatus(t, ts.do("POST", "/v1/operators", map[string]string{"name": "eve", "role": "admin"}, as("victor")...), http.StatusForbidden)

	// bill (billing) reads usage and tenants, but not keys or the audit log.
	mustStatus(t, ts.do("GET", "/v1/usage/export?month=2026-01", nil, as("bill")...), http.StatusOK)
	mustStatus(t, ts.do("GET", "/v1/tenants", nil, as("bill")...), http.StatusOK)
	mustStatus(t, ts.do("GET", "/v1/tenants/acme_ops/keys", nil, as("bill")...), http.StatusForbidden)
	mustStatus(t, ts.do("GET", "/v1/audit", nil, as("bill")...), http.StatusForbidden)

	// whoami, and the listing shows roles and no token.
	var me struct{ Name, Role string }
	ts.do("GET", "/v1/operators/me", nil, as("bill")...).decode(t, &me)
	if me.Name != "bill" || me.Role != "billing" {
		t.Errorf("me = %+v", me)
	}
	list := ts.do("GET", "/v1/operators", nil, as("victor")...)
	mustStatus(t, list, http.StatusOK)
	if strings.Contains(string(list.Body), tokens["alice"]) || strings.Contains(string(list.Body), "token") {
		t.Errorf("the operator listing leaks tokens: %s", list.Body)
	}

	// Revoked: the next request with victor's token is 401, and the revocation is audited as alice's.
	mustStatus(t, ts.do("DELETE", "/v1/operators/victor", nil, as("alice")...), http.StatusOK)
	mustStatus(t, ts.do("GET", "/v1/tenants", nil, as("victor")...), http.StatusUnauthorized)
	mustStatus(t, ts.do("DELETE", "/v1/operators/nobody", nil, as("alice")...), http.StatusNotFound)
	ts.do("GET", "/v1/audit?target=operator/victor&action=operator.revoke", nil).decode(t, &audit)
	if len(audit.Items) != 1 || audit.Items[0].Actor != "operator:alice" {
		t.Fatalf("audit of the revocation: %+v", audit.Items)
	}
}
