package dataplane

import (
	"context"
	"strings"
	"testing"

	"github.com/ragplane/ragplane/dataplane/graph/neo4j"
	"github.com/ragplane/ragplane/dataplane/graph/postgres"
)

// The graph store is chosen by configuration: PostgreSQL unless RAGPLANE_GRAPH_STORE says neo4j.
// Choosing Neo4j builds its store without connecting (nothing listens on the URI below); its
// behaviour against a server is the neo4j package's integration test.
func TestGraphStoreFromConfig(t *testing.T) {
	tests := []struct {
		name   string
		given  map[string]string
		expect string // "postgres", "neo4j", or a variable the config error names
	}{
		{name: "default", given: map[string]string{}, expect: "postgres"},
		{name: "postgres", given: map[string]string{"RAGPLANE_GRAPH_STORE": "postgres"}, expect: "postgres"},
		{name: "neo4j", given: map[string]string{"RAGPLANE_GRAPH_STORE": "neo4j", "NEO4J_URI": "neo4j://127.0.0.1:1",
			"NEO4J_USERNAME": "neo4j", "NEO4J_PASSWORD": "secret", "NEO4J_DATABASE": "graphs"}, expect: "neo4j"},
		{name: "neo4j without auth", given: map[string]string{"RAGPLANE_GRAPH_STORE": "neo4j", "NEO4J_URI": "bolt://127.0.0.1:1"}, expect: "neo4j"},
		{name: "neo4j without a URI", given: map[string]string{"RAGPLANE_GRAPH_STORE": "neo4j"}, expect: "NEO4J_URI"},
		{name: "neo4j with a bad scheme", given: map[string]string{"RAGPLANE_GRAPH_STORE": "neo4j", "NEO4J_URI": "http://127.0.0.1:7474"}, expect: "NEO4J_URI"},
		{name: "password without user", given: map[string]string{"RAGPLANE_GRAPH_STORE": "neo4j", "NEO4J_URI": "neo4j://127.0.0.1:1", "NEO4J_PASSWORD": "x"}, expect: "NEO4J_USERNAME"},
		{name: "unknown store", given: map[string]string{"RAGPLANE_GRAPH_STORE": "memgraph"}, expect: "RAGPLANE_GRAPH_STORE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"DATABASE_URL": "postgres://localhost/catalog",
				"RAGPLANE_INTERNAL_KEY": strings.Repeat("k", 64), "RAGPLANE_SECRET_KEY": strings.Repeat("s", 64)}
			for k, v := range tt.given {
				env[k] = v
			}
			cfg, err := ConfigFromEnv(func(k string) string { return env[k] })
			if err != nil {
				t.Fatalf("ConfigFromEnv: %v", err)
			}
			err = cfg.Validate()
			if tt.expect != "postgres" && tt.expect != "neo4j" {
				if err == nil || !strings.Contains(err.Error(), tt.expect+":") {
					t.Fatalf("Validate() = %v, want an error naming %s", err, tt.expect)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			g, err := newGraph(cfg.Graph)
			if err != nil {
				t.Fatalf("newGraph: %v", err)
			}
			switch store := g.stores(nil); tt.expect {
			case "postgres":
				if _, ok := store.(*postgres.Store); !ok || g.ready != nil || g.close != nil {
					t.Fatalf("store = %T (ready %v, close %v), want *postgres.Store alone", store, g.ready != nil, g.close != nil)
				}
			case "neo4j":
				if _, ok := store.(*neo4j.Store); !ok || g.ready == nil || g.close == nil {
					t.Fatalf("store = %T (ready %v, close %v), want *neo4j.Store with ready and close", store, g.ready != nil, g.close != nil)
				}
				if store != g.stores(nil) {
					t.Fatal("the Neo4j store is not one store shared by every request")
				}
				if err := g.close(context.Background()); err != nil {
					t.Fatalf("close: %v", err)
				}
			}
		})
	}
}
