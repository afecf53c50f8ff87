// Command eval measures retrieval quality: it ingests a BEIR-format folder into a fresh tenant
// through the real API (control plane, proxy and one data-plane worker, started as subprocesses of
// bin/ragplane the way ops/demo.sh runs them), searches every query in every retrieval mode, and
// prints nDCG@10 and Recall@100 per mode next to an in-memory BM25 over the same corpus computed in
// the same run. `make eval` runs it; see BENCHMARKS.md.
//
//	go run ./ops/eval -data ../shared/eval/dbpedia-5k [-modes keyword,hybrid] [-limit-queries 10]
//	    [-settings '{"embedding_dimension":256}'] [-json results.json] [-keep]
//	go run ./ops/eval -data ../shared/eval/dbpedia-5k -check-bm25   # the baseline alone, against its reference
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// options are the command's flags.
type options struct {
	data         string
	modes        []string
	topK         int
	plan         string
	settings     map[string]any
	override     map[string]any
	sweep        []map[string]any
	limits       map[string]any
	concurrency  int
	batch        int
	limitQueries int
	jsonPath     string
	keep         bool
	titleContent bool
	checkBM25    bool
	refNDCG      float64
	refRecall    float64
	binary       string
	logDir       string
	adminURL     string
	apiURL       string
	revision     string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	var modes, settings, limits, override, sweep string
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.data, "data", "../shared/eval/dbpedia-5k", "BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv")
	fs.StringVar(&modes, "modes", "keyword,vector,hybrid,graph", "retrieval modes to evaluate, comma-separated")
	fs.IntVar(&o.topK, "top-k", 100, "top_k of each search (Recall is measured at 100 over what comes back)")
	fs.StringVar(&o.plan, "plan", "enterprise", "plan of the evaluation tenant (its max_top_k must allow -top-k)")
	fs.StringVar(&settings, "settings", "", `tenant settings as JSON, e.g. '{"embedding_model":"...","embedding_dimension":100}'`)
	fs.StringVar(&limits, "limits", "", "tenant limit overrides as JSON")
	fs.IntVar(&o.concurrency, "concurrency", 4, "ingestion requests in flight")
	fs.IntVar(&o.batch, "batch", 50, "documents per POST /v1/documents/batch (at most 100)")
	fs.IntVar(&o.limitQueries, "limit-queries", 0, "evaluate only the first N judged queries (0: all)")
	fs.StringVar(&o.jsonPath, "json", "", "also write the results to this file as JSON")
	fs.BoolVar(&o.keep, "keep", false, "keep the tenant: against -admin-url it stays; with the run's own services they keep running until interrupted")
	fs.BoolVar(&o.titleContent, "title-in-content", false, "also prepend the title to the content, as the reference runs of 2026-12-01 did (the data plane indexes and embeds titles itself since 387d626)")
	fs.StringVar(&override, "override", "", `per-request settings for every search (override_config), e.g. '{"fusion_vector_weight":0.5}'`)
	fs.StringVar(&sweep, "sweep", "", `also run the modes with each of these override_config objects, separated by ';' (one ingestion, several settings)`)
	fs.BoolVar(&o.checkBM25, "check-bm25", false, "compute only the BM25 baseline and fail unless it is within 0.005 of -bm25-ndcg and -bm25-recall")
	fs.Float64Var(&o.refNDCG, "bm25-ndcg", 0.352, "reference BM25 nDCG@10 for -check-bm25 (dbpedia-5k's README)")
	fs.Float64Var(&o.refRecall, "bm25-recall", 0.787, "reference BM25 Recall@100 for -check-bm25")
	fs.StringVar(&o.binary, "bin", "bin/ragplane", "the ragplane binary to run the services from")
	fs.StringVar(&o.logDir, "logs", ".ragplane", "directory for the services' logs")
	fs.StringVar(&o.adminURL, "admin-url", "", "use running services: the admin API (token from RAGPLANE_ADMIN_TOKEN)")
	fs.StringVar(&o.apiURL, "api-url", "", "use running services: the tenant API (the proxy)")
	fs.StringVar(&o.revision, "revision", "", "what the services were built from, for the report (default: git describe --always --dirty of the work tree)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	for _, m := range strings.Split(modes, ",") {
		switch m = strings.TrimSpace(m); m {
		case "":
		case "keyword", "vector", "hybrid", "graph":
			o.modes = append(o.modes, m)
		default:
			return o, fmt.Errorf("-modes: %q is not a search mode (keyword, vector, hybrid, graph)", m)
		}
	}
	for _, j := range []struct {
		name, text string
		into       *map[string]any
	}{{"settings", settings, &o.settings}, {"limits", limits, &o.limits}, {"override", override, &o.override}} {
		if j.text == "" {
			continue
		}
		if err := json.Unmarshal([]byte(j.text), j.into); err != nil {
			return o, fmt.Errorf("-%s: %w", j.name, err)
		}
	}
	for _, part := range strings.Split(sweep, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(part), &m); err != nil {
			return o, fmt.Errorf("-sweep: %q: %w", part, err)
		}
		o.sweep = append(o.sweep, m)
	}
	switch {
	case o.batch < 1 || o.batch > 100:
		return o, fmt.Errorf("-batch must be 1 to 100")
	case o.concurrency < 1:
		return o, fmt.Errorf("-concurrency must be at least 1")
	case o.topK < 1:
		return o, fmt.Errorf("-top-k must be at least 1")
	case (o.adminURL == "") != (o.apiURL == ""):
		return o, fmt.Errorf("-admin-url and -api-url go together")
	case len(o.modes) == 0 && !o.checkBM25:
		return o, fmt.Errorf("-modes is empty")
	}
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "eval:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "eval:", err)
		os.Exit(1)
	}
}

const (
	ndcgAt   = 10
	recallAt = 100
)

func run(ctx context.Context, o options, out io.Writer) error {
	ds, err := LoadDataset(o.data)
	if err != nil {
		return err
	}
	if o.revision == "" {
		o.revision = revision()
	}
	queries := ds.JudgedQueries()
	if o.limitQueries > 0 && o.limitQueries < len(queries) {
		queries = queries[:o.limitQueries]
	}
	rep := &Report{Data: o.data, Documents: len(ds.Corpus), Queries: len(queries), TopK: o.topK, Plan: o.plan,
		Settings: o.settings, Override: o.override, TitleInContent: o.titleContent, Revision: o.revision, Started: time.Now().UTC()}
	fmt.Fprintf(out, "eval: %s: %d documents, %d judged queries (of %d), revision %s\n", o.data, len(ds.Corpus), len(queries), len(ds.Queries), rep.Revision)

	// The baseline, in memory, on the same queries.
	ix := NewBM25(ds.Corpus, 0.9, 0.4)
	bm := ModeResult{Mode: "bm25"}
	for _, q := range queries {
		bm.add(ix.Search(q.Text, recallAt), ds.Qrels[q.ID], 0)
	}
	bm.finish(nil)
	rep.BM25 = bm
	if o.checkBM25 {
		fmt.Fprintf(out, "BM25 (k1 0.9, b 0.4): nDCG@10 %.4f (reference %.3f), Recall@100 %.4f (reference %.3f)\n", bm.NDCG, o.refNDCG, bm.Recall, o.refRecall)
		if math.Abs(bm.NDCG-o.refNDCG) > 0.005 || math.Abs(bm.Recall-o.refRecall) > 0.005 {
			return fmt.Errorf("BM25 does not reproduce the reference within 0.005")
		}
		fmt.Fprintln(out, "BM25 reproduces the reference within 0.005")
		return nil
	}

	c := &client{http: &http.Client{Timeout: 5 * time.Minute}, adminURL: o.adminURL, apiURL: o.apiURL, adminToken: os.Getenv("RAGPLANE_ADMIN_TOKEN")}
	var st *stack
	if o.adminURL == "" {
		fmt.Fprintf(out, "starting a control plane, a worker and a proxy from %s (logs in %s/eval-*.log)\n", o.binary, o.logDir)
		st, err = startStack(ctx, stackConfig{Binary: o.binary, DatabaseURL: os.Getenv("DATABASE_URL"), RedisURL: os.Getenv("REDIS_URL"), LogDir: o.logDir})
		if err != nil {
			return err
		}
		defer st.close()
		c.adminURL, c.apiURL, c.adminToken = st.AdminURL, st.APIURL, st.AdminToken
	} else if c.adminToken == "" {
		return fmt.Errorf("RAGPLANE_ADMIN_TOKEN must be set with -admin-url")
	}

	tenant := "eval_" + time.Now().UTC().Format("20060102_150405") + "_" + randomHex(2)
	rep.Tenant = tenant
	if err := c.createTenant(ctx, tenant, o.plan, o.settings, o.limits); err != nil {
		return err
	}
	fmt.Fprintf(out, "tenant %s (plan %s) is active\n", tenant, o.plan)
	if !o.keep {
		defer func() {
			dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := c.deleteTenant(dctx, tenant); err != nil {
				fmt.Fprintf(os.Stderr, "eval: delete tenant %s: %v\n", tenant, err)
			}
		}()
	}
	if err := c.createKey(ctx, tenant); err != nil {
		return err
	}
	if err := c.waitTenantAPI(ctx); err != nil {
		return fmt.Errorf("the proxy does not serve the tenant: %w", err)
	}

	docOf, err := ingestCorpus(ctx, c, o, ds.Corpus, rep, out)
	if err != nil {
		return err
	}
	// Large documents are embedded in the background: search once every one is ready.
	for waited := time.Duration(0); ; waited += time.Second {
		n, err := c.embedding(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		if waited%(10*time.Second) == 0 {
			fmt.Fprintf(out, "  waiting for %d documents to be embedded\n", n)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	runs := []map[string]any{o.override}
	for _, m := range o.sweep {
		merged := map[string]any{}
		for k, v := range o.override {
			merged[k] = v
		}
		for k, v := range m {
			merged[k] = v
		}
		runs = append(runs, merged)
	}
	for i, override := range runs {
		ro := o
		ro.override = override
		for _, mode := range o.modes {
			r, err := evalMode(ctx, c, ro, mode, queries, ds.Qrels, docOf, rep.Ingest.Chunks, ix)
			if err != nil {
				return fmt.Errorf("mode %s: %w", mode, err)
			}
			if i > 0 {
				b, _ := json.Marshal(o.sweep[i-1])
				r.Mode += " " + string(b)
			}
			r.finish(&rep.BM25)
			rep.Modes = append(rep.Modes, r)
			fmt.Fprintf(out, "%-8s nDCG@10 %.4f  Recall@100 %.4f  (%d queries, p50 %.0f ms)\n", r.Mode, r.NDCG, r.Recall, r.Queries, r.P50MS)
		}
	}
	rep.Finished = time.Now().UTC()
	rep.Print(out)
	if o.jsonPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.jsonPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "results written to %s\n", o.jsonPath)
	}
	if o.keep {
		fmt.Fprintf(out, "\nkept tenant %s\n", tenant)
		if st != nil {
			tok, _ := c.bearer(ctx)
			fmt.Fprintf(out, "the services keep running until Ctrl-C (then everything this run made is removed):\n"+
				"  export RAGPLANE_ADMIN_URL=%s RAGPLANE_ADMIN_TOKEN=%s RAGPLANE_API_URL=%s\n  export RAGPLANE_TOKEN=%s\n",
				st.AdminURL, st.AdminToken, st.APIURL, tok)
			<-ctx.Done()
		}
	}
	return nil
}

// ingestCorpus writes every corpus document through POST /v1/documents/batch, o.concurrency
// batches in flight, and returns the corpus ids of each stored document id.
func ingestCorpus(ctx context.Context, c *client, o options, corpus []Doc, rep *Report, out io.Writer) (map[string][]string, error) {
	start := time.Now()
	docOf := map[string][]string{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.concurrency)
	runID := randomHex(4)
	for from := 0; from < len(corpus); from += o.batch {
		part := corpus[from:min(from+o.batch, len(corpus))]
		key := fmt.Sprintf("eval-%s-%d", runID, from)
		g.Go(func() error {
			docs := make([]newDocument, len(part))
			for i, d := range part {
				content := d.Text
				if o.titleContent && d.Title != "" {
					content = d.Title + "\n\n" + d.Text
				}
				if strings.TrimSpace(content) == "" {
					content = d.ID // the API refuses empty content; such a document can only be found by chance
				}
				docs[i] = newDocument{Title: d.Title, Content: content, Metadata: map[string]any{"beir_id": d.ID}}
			}
			res, err := c.ingestBatch(gctx, docs, key)
			if err != nil {
				return fmt.Errorf("ingest documents %d-%d: %w", from, from+len(part)-1, err)
			}
			mu.Lock()
			defer mu.Unlock()
			for i, r := range res {
				docOf[r.ID] = append(docOf[r.ID], part[i].ID)
				if r.Duplicate {
					rep.Ingest.Duplicates++
				} else {
					rep.Ingest.Chunks += r.ChunkCount
				}
			}
			rep.Ingest.Documents += len(res)
			if n := rep.Ingest.Documents; n%1000 < len(res) {
				fmt.Fprintf(out, "  ingested %d/%d documents (%.0f docs/s)\n", n, len(corpus), float64(n)/time.Since(start).Seconds())
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	rep.Ingest.Seconds = time.Since(start).Seconds()
	rep.Ingest.DocsPerSecond = float64(rep.Ingest.Documents) / rep.Ingest.Seconds
	fmt.Fprintf(out, "ingested %d documents (%d chunks, %d duplicates) in %.1f s: %.0f docs/s, %d batches of %d, %d in flight\n",
		rep.Ingest.Documents, rep.Ingest.Chunks, rep.Ingest.Duplicates, rep.Ingest.Seconds, rep.Ingest.DocsPerSecond,
		(len(corpus)+o.batch-1)/o.batch, o.batch, o.concurrency)
	return docOf, nil
}

// evalMode searches every query in one mode, one request at a time (so the latencies are those of
// an idle system), and scores the ranked documents.
func evalMode(ctx context.Context, c *client, o options, mode string, queries []Query, qrels Qrels, docOf map[string][]string, chunks int, ix *BM25) (ModeResult, error) {
	r := ModeResult{Mode: mode}
	for _, q := range queries {
		start := time.Now()
		resp, err := c.search(ctx, q.Text, mode, o.topK, o.override)
		ms := float64(time.Since(start).Microseconds()) / 1000
		if err != nil {
			return r, fmt.Errorf("query %s: %w", q.ID, err)
		}
		if resp.RetrievalMode != "" && resp.RetrievalMode != mode {
			return r, fmt.Errorf("asked for %s, the API answered with %s", mode, resp.RetrievalMode)
		}
		var ids []string
		for _, h := range resp.Results {
			beir, ok := docOf[h.DocumentID]
			if !ok {
				return r, fmt.Errorf("query %s: a hit names document %s, which this run did not ingest", q.ID, h.DocumentID)
			}
			ids = append(ids, beir...)
		}
		if len(resp.Results) < o.topK && chunks >= o.topK {
			r.ShortQueries++
			if ix.Matches(q.Text) >= o.topK {
				r.ShortWithMatches++
			}
		}
		if resp.GraphFallback {
			r.GraphFallbacks++
		}
		r.add(Dedupe(ids), qrels[q.ID], ms)
	}
	return r, nil
}

// revision names the checked-out commit, "-dirty" when the work tree has changes (the services run
// from the work tree as built by make build).
func revision() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty", "--abbrev=12").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
