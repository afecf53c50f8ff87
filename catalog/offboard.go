package catalog

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
)

// ActionDeletionReport is the audit action that holds a deleted tenant's deletion report.
const ActionDeletionReport = "tenant.deletion_report"

// Audit appends an audit entry for something done outside a catalog transaction (an export, a
// restore, a deletion report): after is its record.
func (s *Store) Audit(ctx context.Context, actor Actor, action, target string, after any) error {
	return s.inTx(ctx, func(tx pgx.Tx) error { return audit(ctx, tx, actor, action, target, nil, after) })
}

// DeletionReport reads the latest deletion report of tenant into v (see ActionDeletionReport).
// ENOTFOUND when there is none.
func (s *Store) DeletionReport(ctx context.Context, tenant ragplane.TenantID, v any) error {
	var after []byte
	err := s.pool.QueryRow(ctx, `select after from audit_log where action = $1 and target = $2 order by id desc limit 1`,
		ActionDeletionReport, "tenant/"+string(tenant)).Scan(&after)
	if err != nil {
		return pgError(err, fmt.Sprintf("Deletion report of tenant %q", tenant))
	}
	return json.Unmarshal(after, v)
}
