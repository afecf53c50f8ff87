package xds

import (
	"path/filepath"
	"testing"
)

// TestUpdatePushesOnlyDifferences checks what Update hands each LinearCache: unchanged resources
// keep their cached entry (same pointer) and unchanged types keep their version.
func TestUpdatePushesOnlyDifferences(t *testing.T) {
	s := New(Config{})
	in := MustReadInput(t, filepath.Join("testdata", "in", "basic.json"))
	if err := s.Update(in); err != nil {
		t.Fatal(err)
	}
	before := s.caches[TypeTenantPolicy].GetResources()
	versions := map[string]uint64{}
	for _, typeURL := range typeOrder {
		versions[typeURL] = s.versions[typeURL]
		if s.versions[typeURL] != 1 {
			t.Errorf("%s version %d after the first Update, want 1", typeURL, s.versions[typeURL])
		}
	}

	tests := []struct {
		name    string
		when    func(in *Input)
		changed []string // types whose version moves
	}{
		{name: "same input", when: func(*Input) {}},
		{name: "one tenant's limits", when: func(in *Input) { in.Policies[0].Limits.QueriesPerHour++ },
			changed: []string{TypeTenantPolicy, TypeRateLimit}},
		{name: "one tenant's plan", when: func(in *Input) { in.Policies[0].Plan = "pro" },
			changed: []string{TypeTenantPolicy}},
		{name: "a worker", when: func(in *Input) { in.Workers = in.Workers[:1] },
			changed: []string{TypeEndpoint}},
		{name: "a key", when: func(in *Input) { in.Keys = in.Keys[:1] },
			changed: []string{TypeJWTProvider}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.when(&in)
			if err := s.Update(in); err != nil {
				t.Fatal(err)
			}
			for _, typeURL := range typeOrder {
				moved := s.versions[typeURL] != versions[typeURL]
				want := false
				for _, c := range tt.changed {
					want = want || c == typeURL
				}
				if moved != want {
					t.Errorf("%s: version moved=%t, want %t", typeLabel(typeURL), moved, want)
				}
				versions[typeURL] = s.versions[typeURL]
			}
		})
	}
	after := s.caches[TypeTenantPolicy].GetResources()
	if after["globex_corp"] != before["globex_corp"] {
		t.Error("the untouched tenant's policy was replaced in the cache")
	}
	if after["acme"] == before["acme"] {
		t.Error("the changed tenant's policy was not replaced in the cache")
	}
}
