package controlplane_test

import (
	"net/http"
	"testing"

	"github.com/ragplane/ragplane"
)

// The deployment guide's create request: flat max_documents and max_storage_mb, no plan. They are
// the tenant's limits of those names, the plan defaults to free, and errors name the fields as sent.
func TestCreateTenantFlatLimitsAndDefaultPlan(t *testing.T) {
	ts := mustStart(t)
	r := ts.do("POST", "/v1/tenants", `{
    "id": "test_corp",
    "name": "Test Corporation",
    "email": "test@corp.com",
    "max_documents": 100,
    "max_storage_mb": 50
  }`)
	mustStatus(t, r, http.StatusAccepted)
	var tn ragplane.Tenant
	r.decode(t, &tn)
	if tn.Plan != "free" || tn.Limits["max_documents"] != float64(100) || tn.Limits["max_storage_mb"] != float64(50) {
		t.Fatalf("tenant plan %q limits %v, want free with max_documents 100 and max_storage_mb 50", tn.Plan, tn.Limits)
	}
	var cfg struct {
		Limits map[string]struct {
			Value  any    `json:"value"`
			Source string `json:"source"`
		} `json:"limits"`
	}
	ts.do("GET", "/v1/tenants/test_corp/config", nil).decode(t, &cfg)
	if l := cfg.Limits["max_documents"]; l.Value != float64(100) || l.Source != "tenant" {
		t.Errorf("effective max_documents %+v, want 100 from the tenant", l)
	}

	for _, c := range []struct{ body, field string }{
		{`{"id": "dup_corp", "name": "D", "email": "d@corp.com", "max_documents": 10, "limits": {"max_documents": 20}}`, "max_documents"},
		{`{"id": "neg_corp", "name": "N", "email": "n@corp.com", "max_storage_mb": -5}`, "max_storage_mb"},
		{`{"id": "typ_corp", "name": "T", "email": "t@corp.com", "max_documents": "lots"}`, "max_documents"},
		// A pool database is <prefix>pool_<dim>_<n>: a tenant of that id would own its name.
		{`{"id": "pool_384_001", "name": "P", "email": "p@corp.com"}`, "id"},
	} {
		r := ts.do("POST", "/v1/tenants", c.body)
		if r.Status != http.StatusUnprocessableEntity && r.Status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 4xx", c.body, r.Status)
			continue
		}
		if p := r.problem(t); p["field"] != c.field {
			t.Errorf("%s: problem names field %v, want %q", c.body, p["field"], c.field)
		}
	}
	mustStatus(t, ts.do("GET", "/v1/tenants/dup_corp", nil), http.StatusNotFound)
}
