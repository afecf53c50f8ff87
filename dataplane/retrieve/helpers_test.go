package retrieve_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/catalog/tenantdb"
)

// MustTenantDB returns a pool on a fresh, migrated tenant database with embeddings of dim, closed
// and dropped when the test ends.
func MustTenantDB(tb testing.TB, dim int) *pgxpool.Pool {
	tb.Helper()
	dbURL := catalogtest.NewDatabase(tb)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "create extension if not exists vector"); err != nil {
		tb.Fatalf("create extension: %v", err)
	}
	if _, err := tenantdb.MigrateSilo(ctx, conn, dim, "acme"); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		tb.Fatalf("parse url: %v", err)
	}
	cfg.AfterConnect = pgxvec.RegisterTypes
	// The test's own SQL runs as a superuser, whom row level security does not confine; the
	// tenant set for the session fills the rows' tenant_id.
	cfg.ConnConfig.RuntimeParams["ragplane.tenant_id"] = "acme"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		tb.Fatalf("open pool: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// doc is a document to insert.
type doc struct {
	id, title, source string
	metadata          map[string]any
	updatedAt         time.Time
}

// MustInsertDoc inserts d.
func MustInsertDoc(tb testing.TB, db *pgxpool.Pool, d doc) {
	tb.Helper()
	meta, err := json.Marshal(d.metadata)
	if err != nil {
		tb.Fatal(err)
	}
	if d.updatedAt.IsZero() {
		d.updatedAt = time.Now()
	}
	hash := sha256.Sum256([]byte(d.id))
	_, err = db.Exec(context.Background(), `insert into documents (id, title, source, content_hash, metadata, updated_at)
		values ($1, $2, $3, $4, $5, $6)`, d.id, d.title, d.source, hash[:], string(meta), d.updatedAt)
	if err != nil {
		tb.Fatalf("insert document: %v", err)
	}
}

// MustInsertChunk inserts a chunk of document docID and returns its ID.
func MustInsertChunk(tb testing.TB, db *pgxpool.Pool, docID string, ordinal int, content string, emb []float32) string {
	tb.Helper()
	id := uuid.NewString()
	_, err := db.Exec(context.Background(), `insert into chunks (id, document_id, ordinal, content, tokens, embedding)
		values ($1, $2, $3, $4, $5, $6)`, id, docID, ordinal, content, len(strings.Fields(content)), pgvector.NewVector(emb))
	if err != nil {
		tb.Fatalf("insert chunk: %v", err)
	}
	return id
}

// axis returns a unit vector of dim mostly along the given axes, weighted, plus a little
// deterministic noise so that no two toy vectors are exactly equal.
func axis(dim int, seed uint64, weights map[int]float32) []float32 {
	r := rand.New(rand.NewPCG(seed, 7))
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32(r.NormFloat64()) * 0.01
	}
	for i, w := range weights {
		v[i] += w
	}
	return normalize(v)
}

// randomUnit returns a random unit vector of dim.
func randomUnit(r *rand.Rand, dim int) []float32 {
	v := make([]float32, dim)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return normalize(v)
}

func normalize(v []float32) []float32 {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	n := float32(math.Sqrt(sum))
	for i := range v {
		v[i] /= n
	}
	return v
}

// recordingDB wraps a pool so that tests can see, from inside each search transaction, the
// settings the search applied and, optionally, the plan of each query.
type recordingDB struct {
	*pgxpool.Pool
	explain bool

	mu    sync.Mutex
	calls []recordedQuery
}

// recordedQuery is one query run in a search transaction.
type recordedQuery struct {
	sql                                string
	args                               []any
	efSearch, iterative, planCacheMode string
	plan                               string
}

func (r *recordingDB) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := r.Pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &recordingTx{Tx: tx, db: r}, nil
}

func (r *recordingDB) recorded() []recordedQuery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recordedQuery(nil), r.calls...)
}

type recordingTx struct {
	pgx.Tx
	db *recordingDB
}

func (t *recordingTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rec := recordedQuery{sql: sql, args: args}
	err := t.Tx.QueryRow(ctx, `select current_setting('hnsw.ef_search'), current_setting('hnsw.iterative_scan'),
		current_setting('plan_cache_mode')`).Scan(&rec.efSearch, &rec.iterative, &rec.planCacheMode)
	if err != nil {
		return nil, err
	}
	if t.db.explain {
		rows, err := t.Tx.Query(ctx, "explain "+sql, args...)
		if err != nil {
			return nil, err
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, err
		}
		rec.plan = strings.Join(lines, "\n")
	}
	t.db.mu.Lock()
	t.db.calls = append(t.db.calls, rec)
	t.db.mu.Unlock()
	return t.Tx.Query(ctx, sql, args...)
}
