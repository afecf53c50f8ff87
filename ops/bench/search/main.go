// Command search measures the data plane's search latency on a tenant database of natural English
// text (100,000 chunks by default) with natural questions, and its ingestion throughput, each
// next to a baseline measured in the same run. See BENCHMARKS.md ("Search latency with natural
// questions") and `go run ./ops/bench/search -h`.
//
// It needs the local stack (make up): DATABASE_URL of a superuser, RAGPLANE_MODEL_DIR for the
// GloVe and USE embedders. Every database it makes (named ragplane_benchsearch_<pid>_...) is
// dropped when it ends, also on Ctrl-C. The text is read at run time from the given paths; nothing
// of it is written anywhere but the databases.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ragplane/ragplane/dataplane/embed/glove"
	"github.com/ragplane/ragplane/dataplane/embed/hashing"
	"github.com/ragplane/ragplane/dataplane/embed/use"
)

// config is the command line.
type config struct {
	dbURL, modelDir         string
	dbpedia, queries        string
	goDirs, manDirs         []string
	chunks, size, overlap   int
	embedder                string
	questions               int
	conns, rounds           int
	topKs                   []int
	search, ingest, explain bool
	ingestEmbedders         []string
	ingestLong, ingestShort int
	useDiv                  int
	jsonOut                 string
	whatIf                  string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-search:", err)
		os.Exit(2)
	}
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench-search:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("search", flag.ContinueOnError)
	var c config
	var goDirs, manDirs, topKs, ingestEmb string
	fs.StringVar(&c.dbURL, "database-url", os.Getenv("DATABASE_URL"), "superuser URL of the local stack's PostgreSQL (default $DATABASE_URL)")
	fs.StringVar(&c.modelDir, "model-dir", os.Getenv("RAGPLANE_MODEL_DIR"), "local embedding models (default $RAGPLANE_MODEL_DIR)")
	fs.StringVar(&c.dbpedia, "dbpedia", "../shared/eval/dbpedia-5k/corpus.jsonl", "BEIR corpus.jsonl of DBpedia abstracts (read, never copied); empty: none")
	fs.StringVar(&c.queries, "queries", "", "BEIR queries.jsonl (default: queries.jsonl next to -dbpedia)")
	fs.StringVar(&goDirs, "go-src", "", "comma-separated directories of Go sources whose doc comments are text (default: $(go env GOROOT)/src and $(go env GOMODCACHE))")
	fs.StringVar(&manDirs, "man", "/usr/share/man/man1,/usr/share/man/man2,/usr/share/man/man3,/usr/share/man/man4,/usr/share/man/man5,/usr/share/man/man7,/usr/share/man/man8",
		"comma-separated directories of gzipped English manual pages")
	fs.IntVar(&c.chunks, "chunks", 100_000, "chunks in the search corpus (with -embedder use, embedding runs at ~40 chunks/s per core: use fewer)")
	fs.IntVar(&c.size, "chunk-size", 200, "chunk size of the search corpus, in tokens")
	fs.IntVar(&c.overlap, "chunk-overlap", 20, "chunk overlap of the search corpus, in tokens")
	fs.StringVar(&c.embedder, "embedder", "glove", "embedder of the search corpus and questions: hash (384-d), glove (100-d) or use (512-d)")
	fs.IntVar(&c.questions, "questions", 200, "questions: the BEIR queries, then generated ones")
	fs.IntVar(&c.conns, "conns", 4, "connections of the search pool")
	fs.IntVar(&c.rounds, "rounds", 1, "timed passes over the questions (after one warm-up pass)")
	fs.StringVar(&topKs, "topk", "10,100", "comma-separated top_k values")
	fs.BoolVar(&c.search, "search", true, "run the search benchmark")
	fs.BoolVar(&c.explain, "explain", true, "profile keyword search's steps and EXPLAIN ANALYZE its median, p95 and slowest question")
	fs.StringVar(&c.whatIf, "whatif", "0.02", "comma-separated cutoffs (fractions of the chunks) of the rare-terms what-if of keyword search (whatif.go); empty: none")
	fs.BoolVar(&c.ingest, "ingest", true, "run the ingestion benchmark")
	fs.StringVar(&ingestEmb, "ingest-embedders", "hash,glove,use", "embedders of the ingestion benchmark")
	fs.IntVar(&c.ingestLong, "ingest-long", 100, "2,000-token documents per ingestion run")
	fs.IntVar(&c.ingestShort, "ingest-short", 1000, "100-token documents per ingestion run")
	fs.IntVar(&c.useDiv, "use-div", 10, "the USE embedder ingests this many times fewer documents")
	fs.StringVar(&c.jsonOut, "json", "", "also write the results as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.dbURL == "" {
		return c, errors.New("no database: set DATABASE_URL (source .ragplane/stack.env) or -database-url")
	}
	if c.queries == "" && c.dbpedia != "" {
		c.queries = filepath.Join(filepath.Dir(c.dbpedia), "queries.jsonl")
	}
	if goDirs == "" {
		out, err := exec.Command("go", "env", "GOROOT", "GOMODCACHE").Output()
		if err != nil {
			return c, fmt.Errorf("go env: %w (or pass -go-src)", err)
		}
		f := strings.Fields(string(out))
		if len(f) == 2 {
			goDirs = filepath.Join(f[0], "src") + "," + f[1]
		}
	}
	c.goDirs = splitList(goDirs)
	c.manDirs = splitList(manDirs)
	c.ingestEmbedders = splitList(ingestEmb)
	for _, s := range splitList(topKs) {
		k, err := strconv.Atoi(s)
		if err != nil {
			return c, fmt.Errorf("-topk: %w", err)
		}
		c.topKs = append(c.topKs, k)
	}
	return c, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// loadEmbedder returns the named embedder and its dimension.
func loadEmbedder(name, modelDir string) (Embedder, int, error) {
	switch name {
	case "hash":
		e, err := hashing.New(384)
		return e, 384, err
	case "glove":
		e, err := glove.Load(modelDir)
		return e, glove.Dimensions, err
	case "use":
		e, err := use.Load(modelDir)
		return e, use.Dimension, err
	}
	return nil, 0, fmt.Errorf("unknown embedder %q (hash, glove or use)", name)
}

// report is everything measured, for -json.
type report struct {
	Started    time.Time       `json:"started"`
	Commit     string          `json:"commit"`
	Args       []string        `json:"args"`
	Embedder   string          `json:"embedder"`
	Corpus     *corpusStats    `json:"corpus,omitempty"`
	Questions  []questionInfo  `json:"questions,omitempty"`
	Matches    *matchSummary   `json:"matches,omitempty"`
	Search     []modeResult    `json:"search,omitempty"`
	Profile    *keywordProfile `json:"keyword_profile,omitempty"`
	QueryEmbed float64         `json:"query_embedding_p50_ms,omitempty"`
	WhatIf     []whatIfResult  `json:"whatif_rare_terms,omitempty"`
	Ingestion  []ingestResult  `json:"ingestion,omitempty"`
}

type questionInfo struct {
	Kind       string `json:"kind"`
	Text       string `json:"text"`
	MatchesOR  int    `json:"matches_or"`
	MatchesAND int    `json:"matches_and"`
}

type matchSummary struct {
	ORMedian, ORP95, ORMax    int
	ANDMedian, ANDP95, ANDMax int
	CountORP50, CountORP95    float64 // ms to count the OR matches (no scoring)
}

func run(ctx context.Context, cfg config) error {
	rep := report{Started: time.Now().UTC(), Args: os.Args[1:], Embedder: cfg.embedder}
	if out, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		rep.Commit = strings.TrimSpace(string(out))
	}
	fmt.Printf("bench-search: %s, commit %s, embedder %s\n", rep.Started.Format(time.RFC3339), rep.Commit, cfg.embedder)
	if cfg.search {
		if err := runSearch(ctx, cfg, &rep); err != nil {
			return err
		}
	}
	if cfg.ingest {
		if err := runIngestion(ctx, cfg, &rep); err != nil {
			return err
		}
	}
	if cfg.jsonOut != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(cfg.jsonOut, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func corpusSrc(cfg config) corpusSources {
	return corpusSources{DBpedia: cfg.dbpedia, GoDirs: cfg.goDirs, ManDirs: cfg.manDirs}
}

func runSearch(ctx context.Context, cfg config, rep *report) error {
	emb, dim, err := loadEmbedder(cfg.embedder, cfg.modelDir)
	if err != nil {
		return err
	}
	st := &corpusStats{ByKind: map[string]int{}}
	start := time.Now()
	qm := newQuestionMaker()
	docs, err := buildCorpus(corpusSrc(cfg), cfg.chunks, cfg.size, cfg.overlap, qm)
	if err != nil {
		return err
	}
	st.GatherSeconds = time.Since(start).Seconds()
	tokens := 0
	for _, d := range docs {
		st.Documents++
		st.Chunks += len(d.chunks)
		st.ByKind[d.src.Kind] += len(d.chunks)
		for _, c := range d.chunks {
			tokens += c.tokens
		}
	}
	st.MeanTokens = float64(tokens) / float64(max(st.Chunks, 1))
	fmt.Printf("corpus: %d documents, %d chunks (%v), mean %.0f tokens, read and chunked in %.1f s\n",
		st.Documents, st.Chunks, st.ByKind, st.MeanTokens, st.GatherSeconds)
	if st.Chunks < cfg.chunks {
		fmt.Printf("note: only %d chunks of text found, fewer than -chunks %d\n", st.Chunks, cfg.chunks)
	}
	start = time.Now()
	if err := embedCorpus(ctx, emb, docs); err != nil {
		return err
	}
	st.EmbedSeconds = time.Since(start).Seconds()
	st.EmbedChunksSec = float64(st.Chunks) / st.EmbedSeconds
	fmt.Printf("embedded with %s in %.1f s (%.0f chunks/s on all cores)\n", cfg.embedder, st.EmbedSeconds, st.EmbedChunksSec)

	db, err := newTenantDB(ctx, cfg.dbURL, "search", dim, cfg.conns)
	if err != nil {
		return err
	}
	defer db.drop()
	if err := seedCorpus(ctx, db.Pool, docs, st); err != nil {
		return err
	}
	fmt.Printf("loaded with COPY in %.1f s, indexes built and analysed in %.1f s\n", st.CopySeconds, st.IndexSeconds)
	rep.Corpus = st

	var given []question
	if cfg.queries != "" {
		if given, err = readQueries(cfg.queries); err != nil {
			return err
		}
	}
	qs := qm.questions(given, cfg.questions)
	sqs := make([]searchQuestion, len(qs))
	var embedLat []time.Duration
	for i, q := range qs {
		start := time.Now()
		v, err := emb.Embed(ctx, []string{q.Text})
		if err != nil {
			return err
		}
		embedLat = append(embedLat, time.Since(start))
		sqs[i] = searchQuestion{question: q, Embedding: v[0]}
	}
	rep.QueryEmbed = pct(embedLat, 50)
	countLat, err := countMatches(ctx, db.Pool, sqs)
	if err != nil {
		return err
	}
	var or, and []int
	for _, q := range sqs {
		or = append(or, q.MatchesOR)
		and = append(and, q.MatchesAND)
		rep.Questions = append(rep.Questions, questionInfo{Kind: q.Kind, Text: q.Text, MatchesOR: q.MatchesOR, MatchesAND: q.MatchesAND})
	}
	ms := &matchSummary{ORMedian: ipct(or, 50), ORP95: ipct(or, 95), ORMax: ipct(or, 100),
		ANDMedian: ipct(and, 50), ANDP95: ipct(and, 95), ANDMax: ipct(and, 100),
		CountORP50: pct(countLat, 50), CountORP95: pct(countLat, 95)}
	rep.Matches = ms
	printQuestions(sqs)

	var vectorConfigs []string
	if lb, ok := emb.(interface{ Languages() []string }); ok {
		vectorConfigs = lb.Languages()
	}
	results, err := measure(ctx, sqs, modes(db.Pool, newFacts(docs), cfg.topKs, vectorConfigs), cfg.rounds)
	if err != nil {
		return err
	}
	rep.Search = results
	printSearch(cfg, st, ms, results, rep.QueryEmbed)

	if cfg.explain {
		prof, err := profileKeyword(ctx, db.Pool, sqs, cfg.topKs[0])
		if err != nil {
			return err
		}
		rep.Profile = &prof
		printProfile(prof)
	}
	for _, s := range splitList(cfg.whatIf) {
		cutoff, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("-whatif: %w", err)
		}
		for _, k := range cfg.topKs {
			w, err := whatIfRareTerms(ctx, db.Pool, sqs, k, cutoff)
			if err != nil {
				return err
			}
			rep.WhatIf = append(rep.WhatIf, w)
		}
	}
	printWhatIf(rep.WhatIf)
	return nil
}

func runIngestion(ctx context.Context, cfg config, rep *report) error {
	// The documents' text: the same sources as the search corpus, read again (only as much as
	// is needed).
	need := (cfg.ingestLong*2000 + cfg.ingestShort*100) * 2
	qm := newQuestionMaker()
	docs, err := buildCorpus(corpusSrc(cfg), need/150+1, 200, 0, qm)
	if err != nil {
		return err
	}
	ws := &wordStream{docs: docs}
	type set struct {
		tokens int
		docs   []rawDoc
	}
	sets := []set{{tokens: 2000}, {tokens: 100}}
	for i, n := range []int{cfg.ingestLong, cfg.ingestShort} {
		for range n {
			d, ok := ws.next(sets[i].tokens)
			if !ok {
				break
			}
			sets[i].docs = append(sets[i].docs, d)
		}
	}
	fmt.Printf("\n## Ingestion (one worker goroutine; chunks of %d tokens, overlap %d; batches of %d documents)\n\n", ingestChunkSize, ingestChunkOverlap, ingestBatch)
	fmt.Println("| embedder | document | documents | chunks | worker path chunks/s | prepare share (embed / language / facts) | raw COPY chunks/s | ratio |")
	fmt.Println("| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |")
	for _, name := range cfg.ingestEmbedders {
		emb, dim, err := loadEmbedder(name, cfg.modelDir)
		if err != nil {
			return err
		}
		// Warm up what a running worker has warm: the language detector's models (loaded on
		// first use) and the embedder.
		if _, _, err := prepareDoc(ctx, emb, sets[0].docs[0]); err != nil {
			return err
		}
		for _, s := range sets {
			ds := s.docs
			if name == "use" {
				ds = ds[:max(len(ds)/max(cfg.useDiv, 1), 1)]
			}
			r, err := measureIngestion(ctx, cfg.dbURL, name, emb, dim, ds, s.tokens)
			if err != nil {
				return err
			}
			rep.Ingestion = append(rep.Ingestion, r)
			fmt.Printf("| %s | %d tokens | %d | %d | %.0f | %.0f%% (%.0f / %.0f / %.0f%%) | %.0f | %.2f |\n", r.Embedder, r.DocTokens, r.Documents, r.Chunks,
				r.ChunksPerSec, 100*r.PrepareShare, 100*r.EmbedShare, 100*r.DetectShare, 100*r.ExtractShare, r.CopyChunksSec, r.RatioToCopy)
		}
	}
	return nil
}
