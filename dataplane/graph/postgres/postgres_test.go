package postgres_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/catalog/tenantdb"
	"github.com/ragplane/ragplane/dataplane/graph"
	"github.com/ragplane/ragplane/dataplane/graph/graphtest"
	"github.com/ragplane/ragplane/dataplane/graph/postgres"
)

var _ graph.Store = (*postgres.Store)(nil)

const dimension = 64

// MustTenantDB returns a pool on a fresh, migrated tenant database, closed when the test ends.
func MustTenantDB(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	url := catalogtest.NewDatabase(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := tenantdb.MigrateSilo(ctx, conn, dimension, "acme"); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		tb.Fatalf("pool config: %v", err)
	}
	// The test's own SQL runs as a superuser, whom row level security does not confine; the
	// tenant set for the session fills the rows' tenant_id.
	cfg.ConnConfig.RuntimeParams["ragplane.tenant_id"] = "acme"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		tb.Fatalf("pool: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// MustDocument inserts a document with n chunks and returns their ids.
func MustDocument(tb testing.TB, db postgres.DB, n int) (string, []string) {
	tb.Helper()
	ctx := context.Background()
	doc := uuid.NewString()
	if _, err := db.Exec(ctx, `insert into documents (id, content_hash) values ($1, $2)`, doc, []byte(rand.Text())); err != nil {
		tb.Fatalf("insert document: %v", err)
	}
	var chunks []string
	for i := range n {
		id := uuid.NewString()
		_, err := db.Exec(ctx, `insert into chunks (id, document_id, ordinal, content, tokens, embedding)
values ($1, $2, $3, 'text', 1, array_fill(0, array[$4::int])::vector)`, id, doc, i, dimension)
		if err != nil {
			tb.Fatalf("insert chunk: %v", err)
		}
		chunks = append(chunks, id)
	}
	return doc, chunks
}

func tenantContext(id ragplane.TenantID) context.Context {
	return ragplane.NewContextWithIdentity(context.Background(), ragplane.Identity{TenantID: id, Subject: "test"})
}

func TestStore(t *testing.T) {
	graphtest.Run(t, func(t *testing.T) graphtest.Harness {
		pool := MustTenantDB(t)
		return graphtest.Harness{
			Store:       postgres.New(pool),
			Ctx:         tenantContext("acme"),
			NewDocument: func(tb testing.TB, n int) (string, []string) { return MustDocument(tb, pool, n) },
		}
	})
}

func TestMissingDocumentOrChunk(t *testing.T) {
	pool := MustTenantDB(t)
	s, ctx := postgres.New(pool), tenantContext("acme")
	doc, chunks := MustDocument(t, pool, 1)
	err := s.AddFacts(ctx, uuid.NewString(), []graph.Fact{graphtest.Fact("Acme", "uses", "AWS", chunks[0], nil)})
	graphtest.MustCode(t, err, ragplane.ENOTFOUND)
	err = s.AddFacts(ctx, doc, []graph.Fact{graphtest.Fact("Acme", "uses", "AWS", uuid.NewString(), nil)})
	graphtest.MustCode(t, err, ragplane.ENOTFOUND)
	// The failed calls left nothing behind, entities included: each call is one transaction.
	ents, err := s.SearchEntities(ctx, "a", 10)
	if err != nil || len(ents) != 0 {
		t.Fatalf("entities %v, err %v", ents, err)
	}
	// A fact without a chunk is fine.
	if err := s.AddFacts(ctx, doc, []graph.Fact{graphtest.Fact("Acme", "uses", "AWS", "", nil)}); err != nil {
		t.Fatal(err)
	}
	rels, err := s.EntityRelations(ctx, "acme", 10)
	if err != nil || len(rels) != 1 || rels[0].ChunkID != "" || rels[0].DocumentID != doc {
		t.Fatalf("relations %+v, err %v", rels, err)
	}
}

// The store works inside a caller's transaction and on a single connection too.
func TestStoreOnTxAndConn(t *testing.T) {
	pool := MustTenantDB(t)
	ctx := tenantContext("acme")
	doc, chunks := MustDocument(t, pool, 1)
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := postgres.New(tx).AddFacts(ctx, doc, []graph.Fact{graphtest.Fact("Acme", "uses", "AWS", chunks[0], nil)}); err != nil {
		t.Fatal(err)
	}
	if rels, err := postgres.New(tx).EntityRelations(ctx, "Acme", 10); err != nil || len(rels) != 1 {
		t.Fatalf("inside the transaction: %v, %v", rels, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = postgres.New(pool).EntityRelations(ctx, "Acme", 10)
	graphtest.MustCode(t, err, ragplane.ENOTFOUND)

	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	s := postgres.New(conn.Conn())
	if err := s.AddFacts(ctx, doc, []graph.Fact{graphtest.Fact("Acme", "uses", "AWS", chunks[0], nil)}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteDocument(ctx, doc); err != nil {
		t.Fatal(err)
	}
}

// Concurrent writers of contradicting facts leave exactly one current, whatever the interleaving.
func TestConcurrentContradictions(t *testing.T) {
	pool := MustTenantDB(t)
	s, ctx := postgres.New(pool), tenantContext("acme")
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		doc, chunks := MustDocument(t, pool, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := graphtest.Fact(fmt.Sprintf("Person %c", 'A'+i), "ceo_of", "Acme Corp", chunks[0], nil)
			errs <- s.AddFacts(ctx, doc, []graph.Fact{f})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	rels, err := s.EntityRelations(ctx, "Acme Corp", 10)
	if err != nil || len(rels) != 1 {
		t.Fatalf("%d current CEOs (%v), want 1: %v", len(rels), graphtest.Edges(rels), err)
	}
	tl, err := s.EntityTimeline(ctx, "Acme Corp")
	if err != nil || len(tl) != writers {
		t.Fatalf("timeline of %d, want %d: %v", len(tl), writers, err)
	}
}

// Deleting a document while another adds facts about the same entities never loses the new facts.
func TestConcurrentDeleteKeepsNewFacts(t *testing.T) {
	pool := MustTenantDB(t)
	s, ctx := postgres.New(pool), tenantContext("acme")
	for round := range 20 {
		old, oc := MustDocument(t, pool, 1)
		graphtest.MustAddFacts(t, graphtest.Harness{Store: s, Ctx: ctx}, old, graphtest.Fact("Acme", "uses", "AWS", oc[0], nil))
		doc, chunks := MustDocument(t, pool, 1)
		var wg sync.WaitGroup
		var addErr, delErr error
		wg.Add(2)
		go func() {
			defer wg.Done()
			addErr = s.AddFacts(ctx, doc, []graph.Fact{graphtest.Fact("Acme", "supports", "SAML", chunks[0], nil)})
		}()
		go func() { defer wg.Done(); delErr = s.DeleteDocument(ctx, old) }()
		wg.Wait()
		if addErr != nil || delErr != nil {
			t.Fatalf("round %d: add %v, delete %v", round, addErr, delErr)
		}
		rels, err := s.EntityRelations(ctx, "Acme", 10)
		if err != nil || len(rels) != 1 || rels[0].Relation != "supports" {
			t.Fatalf("round %d: relations %v, err %v", round, graphtest.Edges(rels), err)
		}
		if err := s.DeleteDocument(ctx, doc); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLimitsAreClamped(t *testing.T) {
	pool := MustTenantDB(t)
	s, ctx := postgres.New(pool), tenantContext("acme")
	doc, chunks := MustDocument(t, pool, 1)
	var facts []graph.Fact
	for i := range graph.DefaultLimit + 5 {
		facts = append(facts, graphtest.Fact("Acme", "uses", fmt.Sprintf("Tool %d", i), chunks[0], nil))
	}
	graphtest.MustAddFacts(t, graphtest.Harness{Store: s, Ctx: ctx}, doc, facts...)
	rels, err := s.EntityRelations(ctx, "Acme", 0)
	if err != nil || len(rels) != graph.DefaultLimit {
		t.Fatalf("%d relations for limit 0, want %d: %v", len(rels), graph.DefaultLimit, err)
	}
	rels, err = s.EntityRelations(ctx, "Acme", 1<<30)
	if err != nil || len(rels) != len(facts) {
		t.Fatalf("%d relations for a huge limit, want %d: %v", len(rels), len(facts), err)
	}
}
