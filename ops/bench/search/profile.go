package main

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ragplane/ragplane/dataplane/retrieve"
)

// Keyword search runs several statements in its transaction (dataplane/retrieve/keyword.go).
// profileDB times each of them from the client, by what the statement does, and can run EXPLAIN
// (ANALYZE, BUFFERS) of each before running it.
type profileDB struct {
	*pgxpool.Pool
	explain bool

	mu    sync.Mutex
	steps map[string]time.Duration // this search's time per step
	plans []stepPlan
}

type stepPlan struct {
	Step string `json:"step"`
	Plan string `json:"plan"`
}

// keywordSteps are the steps of a keyword search, in the order they run, and how to tell their
// SQL apart.
var keywordSteps = []struct{ name, marker string }{
	{"configure transaction (set_config)", "set_config('plan_cache_mode'"},
	{"analyse query (to_tsvector per text config)", "from text_configs t order by"},
	{"N and mean length (pg_class, avg(tokens))", "from pg_class where oid = 'chunks'"},
	{"enable_seqscan off (set_config)", "set_config('enable_seqscan'"},
	{"document frequencies (count per term, capped)", "select from chunks c where c.tsv @@"},
	{"pg_stats for capped terms", "from pg_stats"},
	{"score all matches, take top_k (BM25 via ts_rank per term)", "k.score"},
}

func stepOf(sql string) string {
	// The scoring query also names the chunks' tsv: test it first.
	if strings.Contains(sql, "k.score") {
		return keywordSteps[len(keywordSteps)-1].name
	}
	for _, s := range keywordSteps {
		if strings.Contains(sql, s.marker) {
			return s.name
		}
	}
	return "other"
}

func (p *profileDB) record(step string, d time.Duration) {
	p.mu.Lock()
	p.steps[step] += d
	p.mu.Unlock()
}

func (p *profileDB) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := p.Pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &profileTx{Tx: tx, p: p}, nil
}

type profileTx struct {
	pgx.Tx
	p *profileDB
}

func (t *profileTx) explainFirst(ctx context.Context, step, sql string, args []any) {
	if !t.p.explain || strings.Contains(step, "set_config") {
		return
	}
	rows, err := t.Tx.Query(ctx, "explain (analyze, buffers) "+sql, args...)
	if err != nil {
		return
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	t.p.mu.Lock()
	t.p.plans = append(t.p.plans, stepPlan{Step: step, Plan: strings.Join(lines, "\n")})
	t.p.mu.Unlock()
}

func (t *profileTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	step := stepOf(sql)
	start := time.Now()
	tag, err := t.Tx.Exec(ctx, sql, args...)
	t.p.record(step, time.Since(start))
	return tag, err
}

func (t *profileTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	step := stepOf(sql)
	t.explainFirst(ctx, step, sql, args)
	start := time.Now()
	rows, err := t.Tx.Query(ctx, sql, args...)
	if err != nil {
		t.p.record(step, time.Since(start))
		return nil, err
	}
	return &timedRows{Rows: rows, done: func() { t.p.record(step, time.Since(start)) }}, nil
}

func (t *profileTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	step := stepOf(sql)
	t.explainFirst(ctx, step, sql, args)
	start := time.Now()
	return &timedRow{Row: t.Tx.QueryRow(ctx, sql, args...), done: func() { t.p.record(step, time.Since(start)) }}
}

// timedRows calls done once, when the rows are read or closed.
type timedRows struct {
	pgx.Rows
	done func()
	once sync.Once
}

func (r *timedRows) Next() bool {
	ok := r.Rows.Next()
	if !ok {
		r.once.Do(r.done)
	}
	return ok
}

func (r *timedRows) Close() {
	r.Rows.Close()
	r.once.Do(r.done)
}

type timedRow struct {
	pgx.Row
	done func()
}

func (r *timedRow) Scan(dest ...any) error {
	err := r.Row.Scan(dest...)
	r.done()
	return err
}

// stepResult is one step's time over the questions.
type stepResult struct {
	Step  string  `json:"step"`
	P50ms float64 `json:"p50_ms"`
	P95ms float64 `json:"p95_ms"`
	Share float64 `json:"share_of_total"` // of the summed time of all searches
}

// keywordProfile is where keyword search's time goes.
type keywordProfile struct {
	TopK      int          `json:"top_k"`
	Steps     []stepResult `json:"steps"`
	TotalP50  float64      `json:"total_p50_ms"`
	TotalP95  float64      `json:"total_p95_ms"`
	Explained []explained  `json:"explained,omitempty"`
}

type explained struct {
	Question  string     `json:"question"`
	MatchesOR int        `json:"matches_or"`
	Ms        float64    `json:"ms"`
	Why       string     `json:"why"`
	Plans     []stepPlan `json:"plans"`
}

// profileKeyword runs Keyword on every question timing its steps, then
// EXPLAIN ANALYZEs the questions at the median, p95 and maximum of the total.
func profileKeyword(ctx context.Context, pool *pgxpool.Pool, qs []searchQuestion, topK int) (keywordProfile, error) {
	prof := keywordProfile{TopK: topK}
	p := &profileDB{Pool: pool}
	per := map[string][]time.Duration{}
	var totals []time.Duration
	sums := map[string]time.Duration{}
	var sum time.Duration
	// The caches are warm from the timed passes: one pass.
	for _, q := range qs {
		p.steps = map[string]time.Duration{}
		start := time.Now()
		if _, err := retrieve.Keyword(ctx, p, retrieve.Request{Query: q.Text, TopK: topK}); err != nil {
			return prof, err
		}
		total := time.Since(start)
		totals = append(totals, total)
		sum += total
		for _, s := range keywordSteps {
			per[s.name] = append(per[s.name], p.steps[s.name])
			sums[s.name] += p.steps[s.name]
		}
	}
	for _, s := range keywordSteps {
		prof.Steps = append(prof.Steps, stepResult{Step: s.name, P50ms: pct(per[s.name], 50), P95ms: pct(per[s.name], 95),
			Share: float64(sums[s.name]) / float64(max(sum, 1))})
	}
	prof.TotalP50, prof.TotalP95 = pct(totals, 50), pct(totals, 95)

	order := make([]int, len(totals))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return int(totals[a] - totals[b]) })
	pick := []struct {
		why string
		i   int
	}{{"median", order[len(order)/2]}, {"p95", order[(len(order)*95+99)/100-1]}, {"slowest", order[len(order)-1]}}
	p.explain = true
	for _, k := range pick {
		q := qs[k.i]
		p.plans, p.steps = nil, map[string]time.Duration{}
		if _, err := retrieve.Keyword(ctx, p, retrieve.Request{Query: q.Text, TopK: topK}); err != nil {
			return prof, err
		}
		prof.Explained = append(prof.Explained, explained{Question: q.Text, MatchesOR: q.MatchesOR,
			Ms: float64(totals[k.i].Microseconds()) / 1000, Why: k.why, Plans: p.plans})
	}
	return prof, nil
}
