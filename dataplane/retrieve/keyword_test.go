package retrieve_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/retrieve"
)

// textCorpus is a tenant database of titled chunks in given languages, with ids chosen by the
// test: equal keyword scores are ordered by chunk id, so a test can put the chunk it expects first
// last in id order and fail when the ranking feature it checks is missing.
type textCorpus struct {
	t    *testing.T
	db   *pgxpool.Pool
	dim  int
	name map[string]string // chunk id -> name
	n    int
}

func newTextCorpus(t *testing.T) *textCorpus {
	return &textCorpus{t: t, db: MustTenantDB(t, 8), dim: 8, name: map[string]string{}}
}

// add inserts a one-chunk document; id orders chunks (a higher id sorts later on equal scores).
func (c *textCorpus) add(name string, id int, title, content, config string, emb []float32) {
	c.t.Helper()
	ctx := context.Background()
	c.n++
	docID := fmt.Sprintf("00000000-0000-0000-0000-%012d", c.n)
	chunkID := fmt.Sprintf("10000000-0000-0000-0000-%012d", id)
	hash := sha256.Sum256([]byte(name))
	if emb == nil {
		emb = axis(c.dim, uint64(id), map[int]float32{0: 1})
	}
	_, err := c.db.Exec(ctx, `insert into text_configs (config) values ($1::regconfig) on conflict do nothing`, config)
	if err == nil {
		_, err = c.db.Exec(ctx, `insert into documents (id, title, content_hash, text_config) values ($1, $2, $3, $4::regconfig)`,
			docID, title, hash[:], config)
	}
	if err == nil {
		_, err = c.db.Exec(ctx, `insert into chunks (id, document_id, ordinal, content, tokens, embedding, title, text_config)
			values ($1, $2, 0, $3, $4, $5, $6, $7::regconfig)`, chunkID, docID, content, len(strings.Fields(content)),
			pgvector.NewVector(emb), title, config)
	}
	if err != nil {
		c.t.Fatalf("insert %s: %v", name, err)
	}
	c.name[chunkID] = name
}

func (c *textCorpus) keyword(query string, topK int) []string {
	c.t.Helper()
	hits, err := retrieve.Keyword(context.Background(), c.db, retrieve.Request{Query: query, TopK: topK})
	if err != nil {
		c.t.Fatalf("keyword %q: %v", query, err)
	}
	return c.names(hits)
}

func (c *textCorpus) names(hits []ragplane.SearchHit) []string {
	var out []string
	for _, h := range hits {
		out = append(out, c.name[h.ChunkID])
	}
	return out
}

// filler is n words no test query uses.
func filler(n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = fmt.Sprintf("filler%c%c", 'a'+i%26, 'a'+i/26%26)
	}
	return strings.Join(w, " ")
}

func TestKeywordRanking(t *testing.T) {
	c := newTextCorpus(t)
	// Ten chunks share "harbour"; one has "lighthouse".
	for i := range 10 {
		c.add(fmt.Sprintf("harbour%d", i), 100+i, "", "The harbour is busy today. "+filler(6), "english", nil)
	}
	c.add("lighthouse", 200, "", "The lighthouse is busy today. "+filler(6), "english", nil)
	// "volcano" once in a title against once in a body of the same length.
	c.add("volcano-title", 301, "Volcano", "It erupted in the spring. "+filler(6), "english", nil)
	c.add("volcano-body", 300, "", "The volcano erupted in spring. "+filler(6), "english", nil)
	// "kiwi" once in a short chunk and once in a long one.
	c.add("kiwi-short", 401, "", "Kiwi fruit grows here.", "english", nil)
	c.add("kiwi-long", 400, "", "Kiwi fruit grows here. "+filler(120), "english", nil)
	// Phrases and negation.
	c.add("red-panda", 500, "", "A red panda sleeps in the tree.", "english", nil)
	c.add("red-and-panda", 501, "", "The red roof shelters a giant panda.", "english", nil)
	c.add("panda", 502, "", "A panda eats bamboo.", "english", nil)

	t.Run("any word may match", func(t *testing.T) {
		// No chunk has both words: each is found.
		got := c.keyword("lighthouse kiwi", 10)
		if !slices.Contains(got, "lighthouse") || !slices.Contains(got, "kiwi-short") || !slices.Contains(got, "kiwi-long") {
			t.Errorf("got %v, expect the lighthouse and both kiwi chunks", got)
		}
	})
	t.Run("rarer words weigh more", func(t *testing.T) {
		// Every chunk matches one word once, at the same length; the rare word's chunk has the
		// highest id, so without idf it would come last of the ties.
		got := c.keyword("harbour lighthouse", 11)
		if len(got) != 11 || got[0] != "lighthouse" {
			t.Errorf("got %v, expect lighthouse first of 11", got)
		}
	})
	t.Run("titles weigh more than body text", func(t *testing.T) {
		got := c.keyword("volcano", 5)
		if !slices.Equal(got, []string{"volcano-title", "volcano-body"}) {
			t.Errorf("got %v, expect the title match first", got)
		}
	})
	t.Run("long chunks are normalised", func(t *testing.T) {
		got := c.keyword("kiwi", 5)
		if !slices.Equal(got, []string{"kiwi-short", "kiwi-long"}) {
			t.Errorf("got %v, expect the short chunk first", got)
		}
	})
	t.Run("quoted phrases must match", func(t *testing.T) {
		got := c.keyword(`"red panda"`, 5)
		if !slices.Equal(got, []string{"red-panda"}) {
			t.Errorf("got %v, expect only the adjacent words", got)
		}
	})
	t.Run("-word excludes", func(t *testing.T) {
		got := c.keyword("panda -red", 5)
		if !slices.Equal(got, []string{"panda"}) {
			t.Errorf("got %v, expect only the chunk without red", got)
		}
		got = c.keyword(`panda -"red panda"`, 5)
		if slices.Contains(got, "red-panda") || len(got) != 2 {
			t.Errorf("got %v, expect the two chunks without the phrase", got)
		}
	})
	t.Run("or is not a word", func(t *testing.T) {
		if got := c.keyword("kiwi or volcano", 10); len(got) != 4 {
			t.Errorf("got %v, expect the kiwi and volcano chunks", got)
		}
	})
	t.Run("fills top_k", func(t *testing.T) {
		for _, k := range []int{1, 5, 10} {
			if got := c.keyword("harbour busy", k); len(got) != k {
				t.Errorf("top_k %d: %d hits", k, len(got))
			}
		}
	})
}

// A tenant with documents in two languages finds each by keyword and by hybrid search in its own
// language; an embedder that reads one language does not drag the other's ranking down.
func TestKeywordLanguages(t *testing.T) {
	c := newTextCorpus(t)
	c.add("en-whales", 1, "Whales", "Whales migrate across the oceans every year.", "english", nil)
	c.add("en-bread", 2, "Bread", "Bakers bake bread before dawn.", "english", nil)
	c.add("fr-baleines", 3, "Baleines", "Les baleines migrent à travers les océans chaque année.", "french", nil)
	c.add("fr-pain", 4, "Pain", "Les boulangers cuisent le pain avant l'aube.", "french", nil)
	ctx := context.Background()

	if got := c.keyword("whale migration", 5); len(got) == 0 || got[0] != "en-whales" {
		t.Errorf("English keyword: %v", got)
	}
	// French words, stemmed by the French configuration the chunks were indexed with.
	if got := c.keyword("baleine", 5); !slices.Equal(got, []string{"fr-baleines"}) {
		t.Errorf("French keyword: %v", got)
	}
	if got := c.keyword("les boulangers", 5); len(got) == 0 || got[0] != "fr-pain" {
		t.Errorf("French keyword: %v", got)
	}
	// Hybrid with an English-only embedder whose query vector is nearest the English bread chunk:
	// the French question still finds the French chunk, and the vector list ranks no French chunk.
	near := axis(c.dim, 2, map[int]float32{0: 1})
	hits, err := retrieve.Hybrid(ctx, c.db, retrieve.Request{Query: "baleine", Embedding: near, TopK: 4, VectorConfigs: []string{"english"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.names(hits); !slices.Contains(got, "fr-baleines") {
		t.Errorf("French hybrid: %v", got)
	}
	for _, h := range hits {
		if strings.HasPrefix(c.name[h.ChunkID], "fr-") && c.name[h.ChunkID] != "fr-baleines" {
			t.Errorf("the vector list ranked a French chunk it cannot read: %v", c.names(hits))
		}
	}
	// With the question's language recognised among the tenant's, a French question is not
	// embedded into the fusion at all: the keyword ranking alone, the French chunk first.
	detect := func(text string, among []string) (string, bool) {
		if !slices.Equal(among, []string{"english", "french"}) {
			t.Errorf("detection among %v", among)
		}
		return map[string]string{"baleine": "french", "whales": "english"}[text], true
	}
	if hits, err = retrieve.Hybrid(ctx, c.db, retrieve.Request{Query: "baleine", Embedding: near, TopK: 4,
		VectorConfigs: []string{"english"}, DetectLanguage: detect}); err != nil {
		t.Fatal(err)
	}
	if got := c.names(hits); !slices.Equal(got, []string{"fr-baleines"}) {
		t.Errorf("French hybrid with the question's language known: %v, want the keyword ranking", got)
	}
	if hits, err = retrieve.Hybrid(ctx, c.db, retrieve.Request{Query: "whales", Embedding: near, TopK: 4, VectorConfigs: []string{"english"}, DetectLanguage: detect}); err != nil {
		t.Fatal(err)
	}
	if got := c.names(hits); len(got) == 0 || got[0] != "en-whales" {
		t.Errorf("English hybrid: %v", got)
	}
}

// A tenant whose documents are all in a language the embedder cannot read gets exactly the
// keyword ranking from hybrid search.
func TestHybridLeavesOutAnEmbedderThatCannotRead(t *testing.T) {
	c := newTextCorpus(t)
	for i, text := range []string{"Le chat dort sur le canapé.", "Le chien court dans le jardin.",
		"Le chat et le chien jouent.", "Les oiseaux chantent le matin."} {
		c.add(fmt.Sprintf("fr%d", i), i+1, "", text, "french", nil)
	}
	ctx := context.Background()
	kw := c.keyword("chat chien", 4)
	// The query vector is nearest the chunk the keywords rank last.
	near := axis(c.dim, 4, map[int]float32{0: 1})
	hits, err := retrieve.Hybrid(ctx, c.db, retrieve.Request{Query: "chat chien", Embedding: near, TopK: 4, VectorConfigs: []string{"english"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.names(hits); !slices.Equal(got, kw) {
		t.Errorf("hybrid %v, keyword %v", got, kw)
	}
	// Control: an embedder that reads everything is fused.
	hits, err = retrieve.Hybrid(ctx, c.db, retrieve.Request{Query: "chat chien", Embedding: near, TopK: 4})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.names(hits); slices.Equal(got, kw) {
		t.Errorf("control: hybrid with the vector list equals keyword %v", kw)
	}
}

// Essential terms: with a word in more than 1,000 chunks, the candidates are the chunks with the
// rarer words (scored with every word); when they are fewer than top_k, every chunk matching any
// word is a candidate, so top_k is still filled.
func TestKeywordEssentialTerms(t *testing.T) {
	c := newTextCorpus(t)
	ctx := context.Background()
	rows := make([][]any, 0, 1500)
	for i := range 1500 {
		rows = append(rows, []any{fmt.Sprintf("20000000-0000-0000-0000-%012d", i), "The meadow is green in spring. " + filler(4)})
	}
	if _, err := c.db.Exec(ctx, `insert into documents (id, title, content_hash) values ('30000000-0000-0000-0000-000000000000', 'Meadows', '\x01')`); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if _, err := c.db.Exec(ctx, `insert into chunks (id, document_id, ordinal, content, tokens, embedding)
			values ($1, '30000000-0000-0000-0000-000000000000', $2, $3, 10, $4)`, r[0], len(c.name), r[1], pgvector.NewVector(axis(c.dim, 1, map[int]float32{0: 1}))); err != nil {
			t.Fatal(err)
		}
		c.name[r[0].(string)] = "meadow"
	}
	c.add("orchid", 900, "", "A rare orchid grows in the green meadow.", "english", nil)
	c.add("orchid2", 901, "", "The orchid blooms once a year.", "english", nil)

	db := &recordingDB{Pool: c.db}
	hits, err := retrieve.Keyword(ctx, db, retrieve.Request{Query: "green meadow orchid", TopK: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Which orchid comes first depends on how common "green" and "meadow" are taken to be: in
	// 1,501 of 1,502 chunks (ANALYZE's statistics) they weigh next to nothing and the shorter chunk
	// wins on length, as in any BM25; counted only up to the essential-term cutoff they weigh more.
	// Whether autovacuum has analysed the table yet decides which, so only the set is asserted.
	if got := c.names(hits); !slices.Equal(sorted(got), []string{"orchid", "orchid2"}) {
		t.Errorf("top 2 %v, want the two orchid chunks", got)
	}
	var scored int
	for _, call := range db.recorded() {
		if strings.Contains(call.sql, "ts_rank(") {
			scored++
			if m := fmt.Sprint(call.args[0]); strings.Contains(m, "meadow") {
				t.Errorf("candidates matched on the common word: %s", m)
			}
		}
	}
	if scored != 1 {
		t.Errorf("%d scoring queries, want 1 (enough candidates with the rare word)", scored)
	}
	// Fewer candidates than top_k: every chunk with any word.
	hits, err = retrieve.Keyword(ctx, c.db, retrieve.Request{Query: "green meadow orchid", TopK: 10})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.names(hits); len(got) != 10 || !slices.Equal(sorted(got[:2]), []string{"orchid", "orchid2"}) {
		t.Errorf("top 10 %v, want 10 with the two orchids first", got)
	}
}

// sorted returns a sorted copy of names.
func sorted(names []string) []string {
	out := slices.Clone(names)
	slices.Sort(out)
	return out
}
