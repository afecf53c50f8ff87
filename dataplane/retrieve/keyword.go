package retrieve

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode"

	"github.com/jackc/pgx/v5"
)

// Keyword ranking is BM25 (k1, b below) over PostgreSQL full text:
//
//   - The query is analysed with every text-search configuration the tenant's documents use
//     (table text_configs), so a French question finds French chunks by French stems, and the
//     union of the lexemes is the query's terms. Any term may match (OR): a question never needs
//     every word.
//   - A term's weight is its BM25 idf, ln(1 + (N - df + 0.5)/(df + 0.5)), from the tenant's own
//     chunks: a common term's df from the planner's statistics of the tsvector column
//     (pg_stats.most_common_elems), the others' counted through the GIN index, exactly up to
//     just past the essential-term cutoff (see weigh). N is the chunk count.
//   - Candidates are the chunks with an essential (rare) term, all scored with every term (see
//     keywordSearch).
//   - A term's frequency in a chunk comes from ts_rank with that term alone, which saturates like
//     BM25's tf with k1 near 1 (1, 1.25, 1.36, ... for 1, 2, 3 occurrences in the body) and
//     counts an occurrence in the title (weight A) titleWeight times one in the body (weight D).
//   - Chunk length is normalised as BM25 does, by the chunk's tokens against the tenant's mean.
//
// "quoted phrases" must match (and their words count as terms), -word and -"phrase" must not,
// and "or" is the default anyway. Chunks are ranked by the sum of their terms' scores.
const (
	bm25K1      = 0.9
	bm25B       = 0.4
	titleWeight = 2.0
	// exactStats: below this many chunks (by the planner's estimate) N and the mean length are
	// computed exactly; above, the mean comes from a sample of about statsSample rows' pages.
	exactStats  = 5000
	statsSample = 1000
	// Essential terms (see keywordSearch) are in at most max(essentialMin, essentialShare*N)
	// chunks.
	essentialMin   = 1000
	essentialShare = 0.01
)

// bodyWeight is ts_rank's weight D, for body text; titles (weight A) get titleWeight times it.
// ts_rank wants every weight at most 1.
const bodyWeight = 0.5

// rankWeights are ts_rank's {D, C, B, A} weights.
var rankWeights = fmt.Sprintf("{%g,%g,%g,%g}", bodyWeight, bodyWeight, bodyWeight, titleWeight*bodyWeight)

// tfScale turns ts_rank of one term into a term frequency: one body occurrence is 1 (ts_rank
// divides by pi^2/6, and weighs it bodyWeight).
const tfScale = math.Pi * math.Pi / 6 / bodyWeight

// parsedQuery is a query in websearch syntax, split into what the database analyses.
type parsedQuery struct {
	words   string   // every positive word, phrases' included, for the terms
	phrases []string // "quoted phrases", each required
	not     []string // -word and -"phrase", each excluded
}

// parseQuery splits q the way websearch_to_tsquery reads it: "a phrase", -word, -"a phrase"; the
// word "or" is dropped (any word may match anyway).
func parseQuery(q string) parsedQuery {
	var p parsedQuery
	var words []string
	rs := []rune(q)
	for i := 0; i < len(rs); {
		if unicode.IsSpace(rs[i]) {
			i++
			continue
		}
		neg := false
		if rs[i] == '-' && i+1 < len(rs) && !unicode.IsSpace(rs[i+1]) {
			neg = true
			i++
		}
		if rs[i] == '"' {
			end := i + 1
			for end < len(rs) && rs[end] != '"' {
				end++
			}
			phrase := strings.TrimSpace(string(rs[i+1 : end]))
			i = end + 1
			if phrase == "" {
				continue
			}
			if neg {
				p.not = append(p.not, phrase)
			} else {
				p.phrases = append(p.phrases, phrase)
				words = append(words, phrase)
			}
			continue
		}
		end := i
		for end < len(rs) && !unicode.IsSpace(rs[end]) && rs[end] != '"' {
			end++
		}
		word := string(rs[i:end])
		i = end
		switch {
		case neg:
			p.not = append(p.not, word)
		case strings.EqualFold(word, "or"):
		default:
			words = append(words, word)
		}
	}
	p.words = strings.Join(words, " ")
	return p
}

// quoteLexeme writes a lexeme as a tsquery operand.
func quoteLexeme(l string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(l, `\`, `\\`), `'`, `''`) + "'"
}

// anyOf joins tsquery texts by OR, each in parentheses; "" if there are none.
func anyOf(qs []string) string {
	var parts []string
	for _, q := range qs {
		if strings.TrimSpace(q) != "" {
			parts = append(parts, "("+q+")")
		}
	}
	return strings.Join(parts, " | ")
}

// keywordPlan is an analysed query: the tsquery a chunk must match and each term's weight.
type keywordPlan struct {
	match     string    // tsquery text a chunk must match: any term, every phrase, no negation
	essential []string  // the rare terms' tsquery texts (see keywordSearch)
	must      []string  // the phrase and negation conditions of match
	lexemes   []string  // the terms as lexemes
	terms     []string  // one tsquery text per term (a quoted lexeme)
	weights   []float64 // idf * tfScale per term
	avgLen    float64
}

// planKeyword analyses req.Query in tx. A nil plan means nothing can match (stop words only).
func planKeyword(ctx context.Context, tx pgx.Tx, query string) (*keywordPlan, error) {
	pq := parseQuery(query)
	rows, err := tx.Query(ctx, `select coalesce(array(select distinct lexeme from unnest(to_tsvector(t.config, $1))), '{}'),
			array(select phraseto_tsquery(t.config, p)::text from unnest($2::text[]) p),
			array(select phraseto_tsquery(t.config, p)::text from unnest($3::text[]) p)
		from text_configs t order by t.config`, pq.words, pq.phrases, pq.not)
	if err != nil {
		return nil, dbError("keyword analysis", err)
	}
	var lexemes []string
	phrases := make([][]string, len(pq.phrases))
	nots := make([][]string, len(pq.not))
	for rows.Next() {
		var lx, ph, nt []string
		if err := rows.Scan(&lx, &ph, &nt); err != nil {
			rows.Close()
			return nil, dbError("keyword analysis", err)
		}
		lexemes = append(lexemes, lx...)
		for i := range ph {
			phrases[i] = append(phrases[i], ph[i])
		}
		for i := range nt {
			nots[i] = append(nots[i], nt[i])
		}
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("keyword analysis", err)
	}
	slices.Sort(lexemes)
	lexemes = slices.Compact(lexemes)
	plan := &keywordPlan{lexemes: lexemes}
	for _, l := range lexemes {
		plan.terms = append(plan.terms, quoteLexeme(l))
	}
	var must []string
	if len(plan.terms) > 0 {
		must = append(must, strings.Join(plan.terms, " | "))
	}
	for _, ph := range phrases {
		q := anyOf(ph)
		if q == "" {
			continue // a phrase of stop words constrains nothing
		}
		must = append(must, q)
	}
	if len(must) == 0 {
		return nil, nil
	}
	for _, nt := range nots {
		if q := anyOf(nt); q != "" {
			must = append(must, "!("+q+")")
		}
	}
	plan.match = "(" + strings.Join(must, ") & (") + ")"
	if len(plan.terms) > 0 {
		plan.must = must[1:]
	}
	if len(plan.terms) == 0 {
		return plan, nil
	}
	if err := plan.weigh(ctx, tx); err != nil {
		return nil, err
	}
	return plan, nil
}

// weigh sets the terms' idf weights, which of them are essential, and the mean chunk length, from
// the tenant's chunks. It reads no more than it must: N is the planner's row estimate (an exact
// count below exactStats chunks), the mean length comes from a sample of about statsSample rows,
// a common term's document frequency from the column's statistics (pg_stats.most_common_elems of
// tsv, kept by ANALYZE), and only the others are counted, through the GIN index, up to just past
// the essential-term cutoff.
func (p *keywordPlan) weigh(ctx context.Context, tx pgx.Tx) error {
	var n, avgLen float64
	// In a pool database (row level security binds this session) the table's size, its samples
	// and its statistics are every tenant's: N and the mean length are counted over the tenant's
	// own chunks (found through chunks_tenant), and pg_stats, which hides the statistics of such a
	// table, gives no document frequency: each term's is counted, the tenant's own, below.
	err := tx.QueryRow(ctx, `select case when s.est < $1 or s.bound then (select count(*) from chunks)::float8 else s.est end,
			case when s.est < $1 or s.bound then (select coalesce(avg(tokens), 0) from chunks)::float8
				else (select coalesce(avg(tokens), 0) from chunks tablesample system (least(100, 100 * $2 / s.est)) repeatable (0))::float8 end
		from (select greatest(reltuples, -1)::float8 as est, row_security_active('chunks') as bound from pg_class where oid = 'chunks'::regclass) s`,
		exactStats, statsSample).Scan(&n, &avgLen)
	if err != nil {
		return dbError("keyword statistics", err)
	}
	df := make([]float64, len(p.terms))
	known := make([]bool, len(p.terms))
	index := map[string]int{}
	for i, l := range p.lexemes {
		index[l] = i
	}
	rows, err := tx.Query(ctx, `select e.elem, e.freq from pg_stats s,
			unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) e(elem, freq)
		where s.schemaname = current_schema() and s.tablename = 'chunks' and s.attname = 'tsv' and e.elem = any($1)`, p.lexemes)
	if err != nil {
		return dbError("keyword statistics", err)
	}
	for rows.Next() {
		var elem string
		var freq float64
		if err := rows.Scan(&elem, &freq); err != nil {
			rows.Close()
			return dbError("keyword statistics", err)
		}
		if i, ok := index[elem]; ok {
			df[i], known[i] = max(1, freq*n), true
		}
	}
	if err := rows.Err(); err != nil {
		return dbError("keyword statistics", err)
	}
	// From here on the searches of this transaction run without sequential scans: the planner
	// prices tsv @@ query at one operator call per row, far below what matching a tsvector costs,
	// and so would scan a table of a few thousand chunks rather than read the few that match from
	// the GIN index (measured: 10 ms against 1 ms for an eight-word question on 5,000 chunks).
	if _, err := tx.Exec(ctx, `select set_config('enable_seqscan', 'off', true)`); err != nil {
		return dbError("keyword statistics", err)
	}
	// One scalar subquery per term, each with its own parameter: a plan made for the term's own
	// selectivity counts a rare term through the GIN index (a correlated parameter would get one
	// generic plan, a sequential scan, for all of them).
	// Counting stops just past the essential-term cutoff: beyond it only idf's precision is at
	// stake, and a term that common has a small idf anyway.
	cutoff := max(essentialMin, essentialShare*n)
	limit := int(cutoff) + 1
	var q query
	var counted []int
	for i, term := range p.terms {
		if known[i] {
			continue
		}
		if len(counted) > 0 {
			q.sql.WriteString(", ")
		}
		q.sql.WriteString("(select count(*) from (select from chunks c where c.tsv @@ " + q.arg(term) + "::tsquery limit " +
			q.arg(limit) + ") m)::float8")
		counted = append(counted, i)
	}
	if len(counted) > 0 {
		var counts []float64
		if err := tx.QueryRow(ctx, "select array["+q.sql.String()+"]", q.args...).Scan(&counts); err != nil {
			return dbError("keyword statistics", err)
		}
		for j, i := range counted {
			df[i] = counts[j]
		}
	}
	for _, d := range df {
		n = max(n, d)
	}
	p.avgLen = max(avgLen, 1)
	p.weights = make([]float64, len(df))
	for i, d := range df {
		p.weights[i] = math.Log(1+(n-d+0.5)/(d+0.5)) * tfScale
	}
	// Essential terms: those in at most max(essentialMin, essentialShare*N) chunks, or else the
	// rarest one. Only chunks with an essential term are candidates; the others are scored too.
	rarest := 0
	for i, d := range df {
		if d <= cutoff {
			p.essential = append(p.essential, p.terms[i])
		}
		if d < df[rarest] {
			rarest = i
		}
	}
	if len(p.essential) == 0 {
		p.essential = []string{p.terms[rarest]}
	}
	return nil
}

// keywordSearch returns up to limit chunks matching req.Query, best first, ranked by BM25 (see
// above); Score is the BM25 score.
//
// Every candidate is scored (a ts_rank per query term), so the cost grows with the candidates. A
// natural question has common words that match a large part of any corpus, and chunks that match
// only those rarely make the top: so the candidates are the chunks with an essential term (one in
// at most 1% of the chunks, or 1,000; the rarest term when none is), all scored with every term.
// When they are fewer than the request's top_k (or limit, if smaller), every chunk matching any
// term is. The inner query keeps the
// work narrow (chunk ID and score, documents only as a semi-join for filters) and the outer one
// reads the full rows of the top chunks alone.
func keywordSearch(ctx context.Context, tx pgx.Tx, req Request, limit int) ([]scored, error) {
	plan, err := planKeyword(ctx, tx, req.Query)
	if err != nil || plan == nil {
		return nil, err
	}
	if len(plan.essential) < len(plan.terms) {
		match := "(" + strings.Join(plan.essential, " | ") + ")"
		if len(plan.must) > 0 {
			match += " & (" + strings.Join(plan.must, ") & (") + ")"
		}
		// Enough when the caller's top_k is filled: a fused list (limit > top_k) needs depth,
		// which the other lists give, more than the chunks with common words alone.
		s, err := scoreKeyword(ctx, tx, req, plan, match, limit)
		if err != nil || len(s) >= min(limit, req.TopK) {
			return s, err
		}
	}
	return scoreKeyword(ctx, tx, req, plan, plan.match, limit)
}

// scoreKeyword ranks the chunks matching match (a tsquery text) by BM25 with plan's terms.
func scoreKeyword(ctx context.Context, tx pgx.Tx, req Request, plan *keywordPlan, match string, limit int) ([]scored, error) {
	var q query
	matchArg := q.arg(match) + "::tsquery"
	score := "1"
	if len(plan.terms) > 0 {
		// BM25's length normalisation for one occurrence, with the constants as float8 (a bare
		// parameter next to an integer column would be taken for an integer).
		score = "(select coalesce(sum(t.w * ts_rank(" + q.arg(rankWeights) + "::float4[], c.tsv, t.q)), 0) from unnest(" +
			q.arg(plan.terms) + "::tsquery[], " + q.arg(plan.weights) + "::float8[]) t(q, w)) * " +
			q.arg(bm25K1+1) + "::float8 / (1 + " + q.arg(bm25K1) + "::float8 * (" + q.arg(1-bm25B) + "::float8 + " +
			q.arg(bm25B) + "::float8 * c.tokens / " + q.arg(plan.avgLen) + "::float8))"
	}
	q.sql.WriteString("select " + hitColumns + ", k.score" +
		" from (select c.id, " + score + " as score from chunks c where c.tsv @@ " + matchArg)
	if len(req.Filters) > 0 {
		q.sql.WriteString(" and exists (select from documents d where d.id = c.document_id")
		if err := q.where(req.Filters); err != nil {
			return nil, err
		}
		q.sql.WriteString(")")
	}
	q.sql.WriteString(" order by score desc, c.id limit " + q.arg(limit) + ") k" +
		" join chunks c on c.id = k.id join documents d on d.id = c.document_id order by k.score desc, c.id")
	rows, err := tx.Query(ctx, q.sql.String(), q.args...)
	if err != nil {
		return nil, dbError("keyword search", err)
	}
	s, err := scanHits(rows)
	if err != nil {
		return nil, dbError("keyword search", err)
	}
	for i := range s {
		s[i].hit.Score = s[i].rank
	}
	sortByScore(s)
	return s, nil
}
