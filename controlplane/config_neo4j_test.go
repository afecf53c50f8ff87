package controlplane_test

import (
	"strings"
	"testing"

	"github.com/ragplane/ragplane/controlplane"
)

// The control plane reads the workers' NEO4J_* variables (to remove a deleted tenant's graph) and
// refuses to start on settings the worker would refuse too, naming the variable.
func TestConfigNeo4j(t *testing.T) {
	load := loadConfig
	cfg, err := load(t, map[string]string{"NEO4J_URI": "neo4j+s://graph.example.com:7687", "NEO4J_USERNAME": "neo4j",
		"NEO4J_PASSWORD": "secret", "NEO4J_DATABASE": "graphs"})
	if err != nil {
		t.Fatal(err)
	}
	want := controlplane.Neo4jConfig{URI: "neo4j+s://graph.example.com:7687", Username: "neo4j", Password: "secret", Database: "graphs"}
	if cfg.Neo4j != want {
		t.Fatalf("Neo4j config %+v, want %+v", cfg.Neo4j, want)
	}
	if cfg, err := load(t, nil); err != nil || cfg.Neo4j != (controlplane.Neo4jConfig{}) {
		t.Fatalf("without NEO4J_URI: %+v, %v (want no Neo4j, valid)", cfg.Neo4j, err)
	}
	for _, c := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"scheme", map[string]string{"NEO4J_URI": "http://graph:7474"}, `NEO4J_URI: want a neo4j://`},
		{"no host", map[string]string{"NEO4J_URI": "graph:7687"}, "NEO4J_URI: want a URL like neo4j://host:7687"},
		{"password alone", map[string]string{"NEO4J_URI": "bolt://graph:7687", "NEO4J_PASSWORD": "secret"}, "NEO4J_USERNAME: required"},
	} {
		if _, err := load(t, c.env); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

// loadConfig reads the control plane's config from a minimal valid environment with extra
// variables over it, and validates it.
func loadConfig(t *testing.T, extra map[string]string) (controlplane.Config, error) {
	t.Helper()
	base := map[string]string{
		"DATABASE_URL":         "postgres://u@127.0.0.1:5432/catalog",
		"RAGPLANE_ADMIN_TOKEN": "test-admin-token-0123456789",
		"RAGPLANE_SECRET_KEY":  "0123456789abcdef0123456789abcdef",
	}
	cfg, err := controlplane.ConfigFromEnv(func(k string) string {
		if v, ok := extra[k]; ok {
			return v
		}
		return base[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, cfg.Validate()
}
