package retrieve_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"
)

// corpusConfig describes a generated corpus for index tests and benchmarks.
type corpusConfig struct {
	chunks       int
	dim          int
	chunksPerDoc int
	// groups is how many values metadata "group" takes, spread evenly over documents.
	groups int
	seed   uint64
}

// corpus is what seedCorpus loaded.
type corpus struct {
	// docGroup and docLang map document IDs to their metadata "group" and "lang".
	docGroup map[string]int
	docLang  map[string]string
	// samples are some of the chunks' embeddings, to make queries near real data.
	samples [][]float32
	// words is the vocabulary, most frequent first.
	words []string
}

// commonWords start the vocabulary, so that generated text reads English-ish and the most
// frequent words are real stopwords and everyday words.
var commonWords = strings.Fields(`the of and to in is for that on with as by it be are this from at or an was
which can will not have has but all their more one also each when its other these into may use used only new
data system time service user request tenant document search index query model answer cluster policy refund
billing invoice customer account storage network latency memory vector embedding chunk token limit plan usage
report error retry timeout backup restore region replica server client version release feature support team
security access key secret role permission audit event metric dashboard alert log trace budget cost price
contract agreement payment card transfer month year day week hour minute second rate quota graph entity
relation fact source title content metadata filter score rank result page section table figure example case`)

// syllables build the rest of the vocabulary.
var syllables = strings.Fields("ka ren tor mi lo sa ve dun pra el ix no ta ber gen sol mar fi qua zo lin dra pe hus vo")

// newVocabulary returns commonWords followed by made-up words, n in all.
func newVocabulary(r *rand.Rand, n int) []string {
	words := append([]string(nil), commonWords...)
	seen := map[string]bool{}
	for _, w := range words {
		seen[w] = true
	}
	for len(words) < n {
		var b strings.Builder
		for range 2 + r.IntN(3) {
			b.WriteString(syllables[r.IntN(len(syllables))])
		}
		if w := b.String(); !seen[w] {
			seen[w] = true
			words = append(words, w)
		}
	}
	return words
}

// text returns about n words of Zipf-distributed vocabulary in sentences.
func text(r *rand.Rand, z *rand.Zipf, words []string, n int) string {
	var b strings.Builder
	for written := 0; written < n; {
		k := 6 + r.IntN(10)
		for i := range k {
			w := words[z.Uint64()]
			if i == 0 {
				w = strings.ToUpper(w[:1]) + w[1:]
			} else {
				b.WriteByte(' ')
			}
			b.WriteString(w)
		}
		b.WriteString(". ")
		written += k
	}
	return strings.TrimSpace(b.String())
}

// seedCorpus loads a generated corpus with COPY into a migrated tenant database, building its
// indexes after the load, which is much faster than maintaining them row by row.
func seedCorpus(tb testing.TB, pool *pgxpool.Pool, cfg corpusConfig) *corpus {
	tb.Helper()
	ctx := context.Background()
	start := time.Now()
	r := rand.New(rand.NewPCG(cfg.seed, 42))
	c := &corpus{docGroup: map[string]int{}, docLang: map[string]string{}, words: newVocabulary(r, 4000)}
	z := rand.NewZipf(r, 1.07, 2, uint64(len(c.words)-1))

	conn, err := pool.Acquire(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Release()
	for _, stmt := range []string{"drop index chunks_embedding", "drop index chunks_tsv"} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			tb.Fatalf("%s: %v", stmt, err)
		}
	}

	ndocs := (cfg.chunks + cfg.chunksPerDoc - 1) / cfg.chunksPerDoc
	docIDs := make([]uuid.UUID, ndocs)
	docRows := make([][]any, ndocs)
	for i := range docRows {
		docIDs[i] = uuid.New()
		group := i % cfg.groups
		lang := []string{"en", "fr", "de"}[i%3]
		c.docGroup[docIDs[i].String()] = group
		c.docLang[docIDs[i].String()] = lang
		docRows[i] = []any{docIDs[i], fmt.Sprintf("Document %d", i), fmt.Sprintf("doc-%d.md", i), docIDs[i][:],
			fmt.Sprintf(`{"group": %d, "lang": %q}`, group, lang), cfg.chunksPerDoc}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"documents"},
		[]string{"id", "title", "source", "content_hash", "metadata", "chunk_count"}, pgx.CopyFromRows(docRows)); err != nil {
		tb.Fatalf("copy documents: %v", err)
	}

	i := 0
	rows := pgx.CopyFromFunc(func() ([]any, error) {
		if i == cfg.chunks {
			return nil, nil
		}
		emb := randomUnit(r, cfg.dim)
		if len(c.samples) < 256 && r.IntN(max(cfg.chunks/256, 1)) == 0 {
			c.samples = append(c.samples, emb)
		}
		content := text(r, z, c.words, 90+r.IntN(40))
		row := []any{uuid.New(), docIDs[i/cfg.chunksPerDoc], i % cfg.chunksPerDoc, content, len(strings.Fields(content)), pgvector.NewVector(emb)}
		i++
		return row, nil
	})
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"chunks"},
		[]string{"id", "document_id", "ordinal", "content", "tokens", "embedding"}, rows); err != nil {
		tb.Fatalf("copy chunks: %v", err)
	}
	loaded := time.Now()

	// The HNSW build is the slow part: give it memory to keep the graph in and both cores.
	for _, stmt := range []string{
		"set maintenance_work_mem = '2GB'",
		"set max_parallel_maintenance_workers = 2",
		"create index chunks_embedding on chunks using hnsw (embedding vector_cosine_ops)",
		"create index chunks_tsv on chunks using gin (tsv)",
		"reset maintenance_work_mem",
		"reset max_parallel_maintenance_workers",
		"vacuum analyze documents",
		"vacuum analyze chunks",
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			tb.Fatalf("%s: %v", stmt, err)
		}
	}
	tb.Logf("seeded %d chunks of dim %d: copy %v, indexes %v", cfg.chunks, cfg.dim,
		loaded.Sub(start).Round(time.Millisecond), time.Since(loaded).Round(time.Millisecond))
	return c
}
