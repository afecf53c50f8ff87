package catalog

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
)

// RecordUsage stores usage events and folds the new ones into the hourly and daily rollups, in one
// transaction that also ends the events' token reservations (see ReserveTokens). Events are keyed
// by id: an event delivered twice is stored and counted once. It returns how many events were new.
func (s *Store) RecordUsage(ctx context.Context, events []ragplane.UsageEvent) (int, error) {
	if len(events) == 0 {
		return 0, nil
	}
	inserted := 0
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		type key struct {
			tenant, metric, gran string
			period               time.Time
		}
		sums := map[key]float64{}
		for _, e := range events {
			tag, err := tx.Exec(ctx, `insert into usage_events (id, tenant_id, subject, route, retrieval_mode, model,
				prompt_tokens, completion_tokens, embedding_tokens, documents_written, chunks_written, latency_ms, status, request_id, at)
				select $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15
				where exists (select 1 from tenants where id = $2)
				on conflict (id) do nothing`,
				e.ID, e.TenantID, e.Subject, e.Route, e.RetrievalMode, e.Model, e.PromptTokens, e.CompletionTokens,
				e.EmbeddingTokens, e.DocumentsWritten, e.ChunksWritten, e.LatencyMS, e.Status, e.RequestID, e.At)
			if err != nil {
				return pgError(err, "Usage")
			}
			if tag.RowsAffected() == 0 {
				continue // delivered before (or the tenant is gone from the catalog)
			}
			inserted++
			errs := 0.0
			if e.Status >= 500 {
				errs = 1
			}
			for _, g := range []struct {
				name  string
				trunc time.Duration
			}{{"hour", time.Hour}, {"day", 24 * time.Hour}} {
				p := e.At.UTC().Truncate(g.trunc)
				for metric, v := range map[string]float64{
					"requests": 1, "errors": errs, "prompt_tokens": float64(e.PromptTokens),
					"completion_tokens": float64(e.CompletionTokens), "embedding_tokens": float64(e.EmbeddingTokens),
					"documents_written": float64(e.DocumentsWritten), "chunks_written": float64(e.ChunksWritten),
					"latency_ms_sum": float64(e.LatencyMS),
				} {
					sums[key{string(e.TenantID), metric, g.name, p}] += v
				}
			}
		}
		// The events' token reservations (ReserveTokens) end here, in the transaction that counts
		// the events: a request is counted as its reservation or as its usage, never both or neither.
		ids := make([]string, len(events))
		for i, e := range events {
			ids[i] = e.ID
		}
		if _, err := tx.Exec(ctx, `delete from token_reservations where id = any($1)`, ids); err != nil {
			return pgError(err, "Token reservation")
		}
		if len(sums) == 0 {
			return nil
		}
		// One upsert, its rows in key order: every shipper locks the rollup rows it shares with
		// another in the same order, so two workers shipping at once wait for each other instead
		// of deadlocking (map order is random).
		keys := slices.SortedFunc(maps.Keys(sums), func(a, b key) int {
			return cmp.Or(cmp.Compare(a.tenant, b.tenant), cmp.Compare(a.metric, b.metric),
				cmp.Compare(a.gran, b.gran), a.period.Compare(b.period))
		})
		tenants, metrics, grans := make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys))
		periods, values := make([]time.Time, len(keys)), make([]float64, len(keys))
		for i, k := range keys {
			tenants[i], metrics[i], grans[i], periods[i], values[i] = k.tenant, k.metric, k.gran, k.period, sums[k]
		}
		if _, err := tx.Exec(ctx, `insert into tenant_usage (tenant_id, metric_name, granularity, period_start, metric_value)
			select u.t, u.m, u.g, u.p, u.v from unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::float8[]) with ordinality u(t, m, g, p, v, i)
				order by u.i
			on conflict (tenant_id, metric_name, granularity, period_start)
			do update set metric_value = tenant_usage.metric_value + excluded.metric_value, updated_at = now()`,
			tenants, metrics, grans, periods, values); err != nil {
			return pgError(err, "Usage rollup")
		}
		return nil
	})
	return inserted, err
}

// UsagePoint is one rollup value.
type UsagePoint struct {
	PeriodStart time.Time `json:"period_start"`
	Metric      string    `json:"metric"`
	Value       float64   `json:"value"`
}

// Usage returns a tenant's rollups at granularity ("hour" or "day") in [from, to).
func (s *Store) Usage(ctx context.Context, tenant ragplane.TenantID, granularity string, from, to time.Time) ([]UsagePoint, error) {
	if granularity != "hour" && granularity != "day" {
		return nil, ragplane.FieldErrorf("granularity", "granularity must be hour or day.")
	}
	if !from.Before(to) || to.Sub(from) > 366*24*time.Hour {
		return nil, ragplane.FieldErrorf("from", "from must be before to, at most a year apart.")
	}
	rows, err := s.pool.Query(ctx, `select period_start, metric_name, metric_value::float8 from tenant_usage
		where tenant_id = $1 and granularity = $2 and period_start >= $3 and period_start < $4
		order by period_start, metric_name`, tenant, granularity, from, to)
	if err != nil {
		return nil, pgError(err, "Usage")
	}
	pts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[UsagePoint])
	return pts, pgError(err, "Usage")
}

// ExportUsage calls fn for every usage event in [from, to), optionally of one tenant, in time
// order; ids are the events' own, stable across exports.
func (s *Store) ExportUsage(ctx context.Context, tenant ragplane.TenantID, from, to time.Time, fn func(ragplane.UsageEvent) error) error {
	rows, err := s.pool.Query(ctx, `select id, tenant_id, subject, route, retrieval_mode, model, prompt_tokens, completion_tokens,
		embedding_tokens, documents_written, chunks_written, latency_ms, status, request_id, at
		from usage_events where ($1 = '' or tenant_id = $1) and at >= $2 and at < $3 order by at, id`, tenant, from, to)
	if err != nil {
		return pgError(err, "Usage")
	}
	defer rows.Close()
	for rows.Next() {
		var e ragplane.UsageEvent
		if err := rows.Scan(&e.ID, &e.TenantID, &e.Subject, &e.Route, &e.RetrievalMode, &e.Model, &e.PromptTokens,
			&e.CompletionTokens, &e.EmbeddingTokens, &e.DocumentsWritten, &e.ChunksWritten, &e.LatencyMS, &e.Status,
			&e.RequestID, &e.At); err != nil {
			return pgError(err, "Usage")
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return pgError(rows.Err(), "Usage")
}

// TokensSince sums the tokens (prompt, completion and embedding) a tenant used since from, from
// the daily rollups: the monthly-token quota counts what was shipped, in PostgreSQL.
func (s *Store) TokensSince(ctx context.Context, tenant ragplane.TenantID, from time.Time) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `select coalesce(sum(metric_value), 0)::bigint from tenant_usage
		where tenant_id = $1 and granularity = 'day' and period_start >= $2
		and metric_name in ('prompt_tokens', 'completion_tokens', 'embedding_tokens')`, tenant, from.UTC().Truncate(24*time.Hour)).Scan(&n)
	return n, pgError(err, "Usage")
}
