package catalog

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
)

// audit appends an entry in the caller's transaction, so a change and its record commit together.
func audit(ctx context.Context, tx pgx.Tx, actor Actor, action, target string, before, after any) error {
	enc := func(v any) ([]byte, error) {
		if v == nil {
			return nil, nil
		}
		return json.Marshal(v)
	}
	b, err := enc(before)
	if err != nil {
		return err
	}
	a, err := enc(after)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `insert into audit_log (actor, action, target, before, after, request_id)
		values ($1, $2, $3, $4, $5, $6)`, actor.Name, action, target, b, a, actor.RequestID)
	if err != nil {
		return fmt.Errorf("catalog: audit: %w", err)
	}
	return nil
}

// AuditFilter selects audit entries, newest first.
type AuditFilter struct {
	// Target and Action select by exact match when set.
	Target string
	Action string
	// Before is a cursor: only entries with a smaller id.
	Before int64
	// Limit caps the page (1-500, default 50).
	Limit int
}

// ListAudit returns a page of audit entries, newest first, and the cursor for the next page (0 at the end).
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]ragplane.AuditEntry, int64, error) {
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 50
	}
	rows, err := s.pool.Query(ctx, `select id, at, actor, action, target, before, after, request_id
		from audit_log
		where ($1 = '' or target = $1) and ($2 = '' or action = $2) and ($3 = 0 or id < $3)
		order by id desc limit $4`, f.Target, f.Action, f.Before, f.Limit+1)
	if err != nil {
		return nil, 0, pgError(err, "audit log")
	}
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ragplane.AuditEntry, error) {
		var e ragplane.AuditEntry
		var before, after []byte
		err := r.Scan(&e.ID, &e.At, &e.Actor, &e.Action, &e.Target, &before, &after, &e.RequestID)
		e.Before, e.After = before, after
		return e, err
	})
	if err != nil {
		return nil, 0, pgError(err, "audit log")
	}
	var next int64
	if len(entries) > f.Limit {
		entries = entries[:f.Limit]
		next = entries[len(entries)-1].ID
	}
	return entries, next, nil
}
