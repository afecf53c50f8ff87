//go:build neo4j

// Integration tests against a real Neo4j 5: go test -tags neo4j ./dataplane/graph/neo4j/ with
// NEO4J_URI (bolt://host:7687 or neo4j://...), NEO4J_USERNAME, NEO4J_PASSWORD and optionally
// NEO4J_DATABASE set. They are behind a build tag because make test has no Neo4j to start.
package neo4j_test

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	neo4jdriver "github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/dataplane/graph"
	"github.com/ragplane/ragplane/dataplane/graph/graphtest"
	"github.com/ragplane/ragplane/dataplane/graph/neo4j"
)

var _ graph.Store = (*neo4j.Store)(nil)

// MustDriver connects to the Neo4j of NEO4J_URI, skipping without it (failing under make test).
func MustDriver(tb testing.TB) (neo4jdriver.DriverWithContext, string) {
	tb.Helper()
	uri := os.Getenv("NEO4J_URI")
	if uri == "" {
		if os.Getenv("RAGPLANE_REQUIRE_STACK") != "" {
			tb.Fatal("NEO4J_URI is not set")
		}
		tb.Skip("NEO4J_URI not set")
	}
	driver, err := neo4jdriver.NewDriverWithContext(uri, neo4jdriver.BasicAuth(os.Getenv("NEO4J_USERNAME"), os.Getenv("NEO4J_PASSWORD"), ""))
	if err != nil {
		tb.Fatalf("neo4j driver: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := driver.VerifyConnectivity(ctx); err != nil {
		tb.Fatalf("neo4j: %v", err)
	}
	tb.Cleanup(func() { driver.Close(context.Background()) })
	return driver, os.Getenv("NEO4J_DATABASE")
}

// MustStore returns a store with its schema in place.
func MustStore(tb testing.TB) (*neo4j.Store, neo4jdriver.DriverWithContext, string) {
	tb.Helper()
	driver, database := MustDriver(tb)
	s := neo4j.New(driver, database)
	if err := s.EnsureSchema(context.Background()); err != nil {
		tb.Fatalf("ensure schema: %v", err)
	}
	return s, driver, database
}

// MustTenant returns the context of a fresh tenant whose graph is removed when the test ends.
func MustTenant(tb testing.TB, driver neo4jdriver.DriverWithContext, database string) context.Context {
	tb.Helper()
	id := ragplane.TenantID(catalogtest.RandomName("rpt_"))
	tb.Cleanup(func() {
		_, err := neo4jdriver.ExecuteQuery(context.Background(), driver,
			`MATCH (e:Entity {group_id: $group_id}) DETACH DELETE e`,
			map[string]any{"group_id": string(id)}, neo4jdriver.EagerResultTransformer,
			neo4jdriver.ExecuteQueryWithDatabase(database))
		if err != nil {
			tb.Logf("cleanup tenant %s: %v", id, err)
		}
	})
	return ragplane.NewContextWithIdentity(context.Background(), ragplane.Identity{TenantID: id, Subject: "test"})
}

// newDocument makes ids only: the Neo4j store keeps no documents or chunks.
func newDocument(_ testing.TB, n int) (string, []string) {
	var chunks []string
	for range n {
		chunks = append(chunks, uuid.NewString())
	}
	return uuid.NewString(), chunks
}

func TestStore(t *testing.T) {
	s, driver, database := MustStore(t)
	graphtest.Run(t, func(t *testing.T) graphtest.Harness {
		return graphtest.Harness{Store: s, Ctx: MustTenant(t, driver, database), NewDocument: newDocument}
	})
}

func TestEnsureSchemaIsIdempotent(t *testing.T) {
	s, _, _ := MustStore(t)
	if err := s.EnsureSchema(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Two tenants with the same entity names, documents and chunk ids never see or change each
// other's nodes and edges.
func TestTenantsAreIsolated(t *testing.T) {
	s, driver, database := MustStore(t)
	a, b := MustTenant(t, driver, database), MustTenant(t, driver, database)
	doc, chunks := newDocument(t, 1)
	ha := graphtest.Harness{Store: s, Ctx: a}
	hb := graphtest.Harness{Store: s, Ctx: b}
	graphtest.MustAddFacts(t, ha, doc,
		graphtest.Fact("Jane Doe", "ceo_of", "Acme Corp", chunks[0], graphtest.Date("2020-01-01")),
		graphtest.Fact("Acme Corp", "uses", "AWS", chunks[0], nil))
	graphtest.MustAddFacts(t, hb, doc,
		graphtest.Fact("John Roe", "ceo_of", "Acme Corp", chunks[0], graphtest.Date("2024-01-01")),
		graphtest.Fact("Acme Corp", "uses", "Azure", chunks[0], nil))

	// B's newer CEO does not retire A's.
	mustEdges(t, a, s, "Acme Corp", "Acme Corp uses AWS", "Jane Doe ceo_of Acme Corp")
	mustEdges(t, b, s, "Acme Corp", "Acme Corp uses Azure", "John Roe ceo_of Acme Corp")
	tl, err := s.EntityTimeline(a, "Acme Corp")
	if err != nil || len(tl) != 2 {
		t.Fatalf("A's timeline %v, %v", graphtest.Edges(tl), err)
	}
	// Names only B knows are unknown to A.
	_, err = s.EntityRelations(a, "John Roe", 10)
	graphtest.MustCode(t, err, ragplane.ENOTFOUND)
	_, err = s.EntityTimeline(b, "Jane Doe")
	graphtest.MustCode(t, err, ragplane.ENOTFOUND)
	ents, err := s.SearchEntities(a, "a", 50)
	if err != nil || names(ents) == nil || slices.Contains(names(ents), "Azure") || slices.Contains(names(ents), "John Roe") {
		t.Fatalf("A's search sees %v (%v)", names(ents), err)
	}
	ents, err = s.EntitiesInText(b, "Jane Doe and John Roe of Acme Corp use AWS and Azure", 50)
	if err != nil || !slices.Equal(names(ents), []string{"Acme Corp", "John Roe", "Azure"}) {
		t.Fatalf("B finds %v in the text (%v)", names(ents), err)
	}
	facts, err := s.FactsForEntities(a, []string{"Acme Corp", "John Roe", "Azure"}, 50)
	if err != nil || !slices.Equal(graphtest.Edges(facts), []string{"Acme Corp uses AWS", "Jane Doe ceo_of Acme Corp"}) {
		t.Fatalf("A's facts %v (%v)", graphtest.Edges(facts), err)
	}
	// Deleting the document (same id in both tenants) in A leaves B whole.
	if err := s.DeleteDocument(a, doc); err != nil {
		t.Fatal(err)
	}
	_, err = s.EntityRelations(a, "Acme Corp", 10)
	graphtest.MustCode(t, err, ragplane.ENOTFOUND)
	mustEdges(t, b, s, "Acme Corp", "Acme Corp uses Azure", "John Roe ceo_of Acme Corp")

	// In the database: every node and edge has a group, and no edge crosses groups.
	res, err := neo4jdriver.ExecuteQuery(context.Background(), driver, `
MATCH (n) WHERE n:Entity AND n.group_id IS NULL RETURN count(n) AS bad
UNION ALL
MATCH ()-[r:RELATES_TO]->() WHERE r.group_id IS NULL RETURN count(r) AS bad
UNION ALL
MATCH (x)-[r:RELATES_TO]->(y) WHERE x.group_id <> r.group_id OR y.group_id <> r.group_id RETURN count(r) AS bad`,
		nil, neo4jdriver.EagerResultTransformer, neo4jdriver.ExecuteQueryWithDatabase(database))
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range res.Records {
		if n, _, _ := neo4jdriver.GetRecordValue[int64](rec, "bad"); n != 0 {
			t.Fatalf("%d nodes or edges without a group or across groups", n)
		}
	}
}

func mustEdges(tb testing.TB, ctx context.Context, s *neo4j.Store, name string, want ...string) {
	tb.Helper()
	rels, err := s.EntityRelations(ctx, name, 10)
	if err != nil {
		tb.Fatal(err)
	}
	got := graphtest.Edges(rels)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		tb.Fatalf("relations of %s: got %q, want %q", name, got, want)
	}
}

func names(ents []graph.Entity) []string {
	var out []string
	for _, e := range ents {
		out = append(out, e.Name)
	}
	return out
}

// DeleteGroup removes one tenant's whole graph, in batches, counting what it removed, and leaves
// another tenant with the same names whole; a second call finds nothing.
func TestDeleteGroup(t *testing.T) {
	s, driver, database := MustStore(t)
	neo4j.SetDeleteGroupBatch(t, 1) // three entities: three batches and a last, empty one
	a, b := MustTenant(t, driver, database), MustTenant(t, driver, database)
	doc, chunks := newDocument(t, 1)
	for _, ctx := range []context.Context{a, b} {
		graphtest.MustAddFacts(t, graphtest.Harness{Store: s, Ctx: ctx}, doc,
			graphtest.Fact("Jane Doe", "ceo_of", "Acme Corp", chunks[0], graphtest.Date("2020-01-01")),
			graphtest.Fact("Acme Corp", "uses", "AWS", chunks[0], nil))
	}
	tenantA, err := ragplane.TenantFromContext(a)
	if err != nil {
		t.Fatal(err)
	}
	nodes, rels, err := s.DeleteGroup(context.Background(), tenantA)
	if err != nil || nodes != 3 || rels != 2 {
		t.Fatalf("DeleteGroup = %d nodes, %d relationships, %v; want 3, 2", nodes, rels, err)
	}
	res, err := neo4jdriver.ExecuteQuery(context.Background(), driver,
		`MATCH (n {group_id: $group_id}) RETURN count(n) AS n UNION ALL MATCH ()-[r {group_id: $group_id}]->() RETURN count(r) AS n`,
		map[string]any{"group_id": string(tenantA)}, neo4jdriver.EagerResultTransformer, neo4jdriver.ExecuteQueryWithDatabase(database))
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range res.Records {
		if n, _, _ := neo4jdriver.GetRecordValue[int64](rec, "n"); n != 0 {
			t.Fatalf("%d nodes or relationships of the deleted tenant remain", n)
		}
	}
	_, err = s.EntityRelations(a, "Acme Corp", 10)
	graphtest.MustCode(t, err, ragplane.ENOTFOUND)
	mustEdges(t, b, s, "Acme Corp", "Acme Corp uses AWS", "Jane Doe ceo_of Acme Corp")
	if nodes, rels, err := s.DeleteGroup(context.Background(), tenantA); err != nil || nodes != 0 || rels != 0 {
		t.Fatalf("second DeleteGroup = %d, %d, %v; want 0, 0", nodes, rels, err)
	}
}
