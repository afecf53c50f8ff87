package retrieve_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/catalog/tenantdb"
	"github.com/ragplane/ragplane/dataplane/retrieve"
)

// BenchmarkPooledVsSiloedSearch measures one tenant's searches in a pool of
// RAGPLANE_BENCH_POOL_TENANTS tenants (default 1,000) of RAGPLANE_BENCH_POOL_CHUNKS chunks each
// (default 1,000) against the same tenant's chunks in a database of its own, side by side: every
// query runs pooled then siloed, in one run. Chunks are random unit vectors of
// RAGPLANE_BENCH_POOL_DIM (default 384, the hashing embedder's) with 30-50 generated words;
// top_k 10, ef_search 100. The pool is reached as its non-owner role, through row level security.
//
//	RAGPLANE_BENCH_POOL=1 go test -run '^$' -bench PooledVsSiloed -benchtime 1x -timeout 2h ./dataplane/retrieve/
func BenchmarkPooledVsSiloedSearch(b *testing.B) {
	if os.Getenv("RAGPLANE_BENCH_POOL") == "" {
		b.Skip("set RAGPLANE_BENCH_POOL=1 to seed a pool (1,000 x 1,000 chunks by default) and search it")
	}
	env := func(k string, d int) int {
		if n, err := strconv.Atoi(os.Getenv(k)); err == nil && n > 0 {
			return n
		}
		return d
	}
	tenants, chunks, dim := env("RAGPLANE_BENCH_POOL_TENANTS", 1000), env("RAGPLANE_BENCH_POOL_CHUNKS", 1000), env("RAGPLANE_BENCH_POOL_DIM", 384)
	ctx := context.Background()
	pool := MustPoolDB(b, dim)
	silo := MustTenantDB(b, dim)
	r := rand.New(rand.NewPCG(11, 12))
	words := newVocabulary(r, 4000)
	z := rand.NewZipf(r, 1.07, 2, uint64(len(words)-1))
	var samples [][]float32
	start := time.Now()
	poolAdmin := adminConn(b, pool)
	defer poolAdmin.Close(ctx)
	siloConn, err := silo.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer siloConn.Release()
	for _, c := range []*pgx.Conn{poolAdmin, siloConn.Conn()} {
		for _, stmt := range []string{"drop index chunks_embedding", "drop index chunks_tsv"} {
			if _, err := c.Exec(ctx, stmt); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Tenant t0000 is the one measured; it is also copied, chunk for chunk, into the silo.
	for t := range tenants {
		tenant := fmt.Sprintf("t%04d", t)
		const perDoc = 100
		docs := make([][]any, 0, chunks/perDoc+1)
		var docIDs []uuid.UUID
		for d := 0; d*perDoc < chunks; d++ {
			id := uuid.New()
			docIDs = append(docIDs, id)
			docs = append(docs, []any{id, tenant, fmt.Sprintf("Document %d", d), id[:], fmt.Sprintf(`{"group": %d}`, d%10)})
		}
		rows := make([][]any, chunks)
		for i := range rows {
			emb := randomUnit(r, dim)
			if t == 0 && len(samples) < 200 {
				samples = append(samples, emb)
			}
			content := text(r, z, words, 30+r.IntN(20))
			rows[i] = []any{uuid.New(), tenant, docIDs[i/perDoc], i % perDoc, content, len(strings.Fields(content)), pgvector.NewVector(emb)}
		}
		targets := []*pgx.Conn{poolAdmin}
		if t == 0 {
			targets = append(targets, siloConn.Conn())
		}
		for _, c := range targets {
			if c != poolAdmin { // the silo's tenant is acme (MustTenantDB)
				for _, row := range docs {
					row[1] = "acme"
				}
				for _, row := range rows {
					row[1] = "acme"
				}
			}
			if _, err := c.CopyFrom(ctx, pgx.Identifier{"documents"}, []string{"id", "tenant_id", "title", "content_hash", "metadata"}, pgx.CopyFromRows(docs)); err != nil {
				b.Fatal(err)
			}
			if _, err := c.CopyFrom(ctx, pgx.Identifier{"chunks"}, []string{"id", "tenant_id", "document_id", "ordinal", "content", "tokens", "embedding"}, pgx.CopyFromRows(rows)); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Exec(ctx, `insert into text_configs (tenant_id, config) values ($1, 'english') on conflict do nothing`, rows[0][1]); err != nil {
				b.Fatal(err)
			}
		}
	}
	loaded := time.Now()
	for _, c := range []*pgx.Conn{poolAdmin, siloConn.Conn()} {
		for _, stmt := range []string{
			"set maintenance_work_mem = '2GB'",
			"set max_parallel_maintenance_workers = 2",
			"create index chunks_embedding on chunks using hnsw (embedding vector_cosine_ops)",
			"create index chunks_tsv on chunks using gin (tsv) with (fastupdate = off)",
			"reset maintenance_work_mem",
			"reset max_parallel_maintenance_workers",
			"vacuum analyze",
		} {
			if _, err := c.Exec(ctx, stmt); err != nil {
				b.Fatalf("%s: %v", stmt, err)
			}
		}
	}
	b.Logf("seeded %d tenants x %d chunks (dim %d): copy %v, indexes %v", tenants, chunks, dim,
		loaded.Sub(start).Round(time.Second), time.Since(loaded).Round(time.Second))

	word := func() string {
		for {
			if k := z.Uint64(); k >= 40 {
				return words[k]
			}
		}
	}
	queries := make([]benchQuery, 200)
	for i := range queries {
		emb := slices.Clone(samples[i%len(samples)])
		for j := range emb {
			emb[j] += float32(r.NormFloat64()) * 0.03
		}
		queries[i] = benchQuery{text: word() + " " + word(), embedding: normalize(emb)}
	}
	pooled, siloed := tenantdb.Scope(pool, "t0000"), tenantdb.Scope(silo, "acme")
	modes := []struct {
		name string
		run  func(db retrieve.DB, q benchQuery) error
	}{
		{"vector", func(db retrieve.DB, q benchQuery) error {
			_, err := retrieve.Vector(ctx, db, retrieve.Request{Embedding: q.embedding, TopK: 10, EFSearch: retrieve.DefaultEFSearch})
			return err
		}},
		{"keyword", func(db retrieve.DB, q benchQuery) error {
			_, err := retrieve.Keyword(ctx, db, retrieve.Request{Query: q.text, TopK: 10})
			return err
		}},
		{"hybrid", func(db retrieve.DB, q benchQuery) error {
			_, err := retrieve.Hybrid(ctx, db, retrieve.Request{Query: q.text, Embedding: q.embedding, TopK: 10, EFSearch: retrieve.DefaultEFSearch})
			return err
		}},
	}
	b.ResetTimer()
	for b.Loop() {
		for _, m := range modes {
			var lat [2][]float64
			for round := range 2 { // the first round warms the caches and is not counted
				for _, q := range queries {
					for i, db := range []retrieve.DB{pooled, siloed} {
						t0 := time.Now()
						if err := m.run(db, q); err != nil {
							b.Fatalf("%s: %v", m.name, err)
						}
						if round == 1 {
							lat[i] = append(lat[i], float64(time.Since(t0).Microseconds())/1000)
						}
					}
				}
			}
			p := func(ms []float64, q float64) float64 {
				s := slices.Clone(ms)
				slices.Sort(s)
				return s[min(len(s)-1, int(q*float64(len(s))))]
			}
			b.ReportMetric(p(lat[0], 0.5), m.name+"-pooled-p50-ms")
			b.ReportMetric(p(lat[0], 0.95), m.name+"-pooled-p95-ms")
			b.ReportMetric(p(lat[1], 0.5), m.name+"-siloed-p50-ms")
			b.ReportMetric(p(lat[1], 0.95), m.name+"-siloed-p95-ms")
			b.ReportMetric(p(lat[0], 0.95)/p(lat[1], 0.95), m.name+"-p95-ratio")
		}
	}
	b.ReportMetric(0, "ns/op")
}

// adminConn connects to pool's database as the test server's superuser, with pgvector's types.
func adminConn(tb testing.TB, pool *pgxpool.Pool) *pgx.Conn {
	tb.Helper()
	u, err := url.Parse(catalogtest.ServerURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	u.Path = "/" + pool.Config().ConnConfig.Database
	conn, err := pgx.Connect(context.Background(), u.String())
	if err != nil {
		tb.Fatal(err)
	}
	if err := pgxvec.RegisterTypes(context.Background(), conn); err != nil {
		tb.Fatal(err)
	}
	return conn
}
