package dataplane

import (
	"context"
	"sync"
	"time"

	"github.com/ragplane/ragplane"
)

// backfill is the worker's queue of tenants with chunks stored without a vector (large
// ingestions, see Config.SyncEmbedChunks). One goroutine embeds them, a tenant at a time, in
// batches of docstore.PendingBatch; several workers may embed the same tenant at once and share
// the chunks (FOR UPDATE SKIP LOCKED). The queue is not durable: chunks a stopped worker left are
// found by the tenant's next ingestion on any worker (docstore.HasPending), and keyword search
// finds them meanwhile.
type backfill struct {
	mu      sync.Mutex
	pending map[ragplane.TenantID]bool
	order   []ragplane.TenantID
	wake    chan struct{}
}

func newBackfill() *backfill {
	return &backfill{pending: map[ragplane.TenantID]bool{}, wake: make(chan struct{}, 1)}
}

// add queues a tenant (once).
func (b *backfill) add(t ragplane.TenantID) {
	b.mu.Lock()
	if !b.pending[t] {
		b.pending[t] = true
		b.order = append(b.order, t)
	}
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// next takes the oldest queued tenant.
func (b *backfill) next() (ragplane.TenantID, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.order) == 0 {
		return "", false
	}
	t := b.order[0]
	b.order = b.order[1:]
	delete(b.pending, t)
	return t, true
}

// backfillRetry is how long a tenant whose embedding failed waits before it is tried again.
const backfillRetry = 5 * time.Second

// runBackfill embeds queued tenants' pending chunks until ctx ends.
func (s *Server) runBackfill(ctx context.Context) {
	for {
		t, ok := s.backfill.next()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-s.backfill.wake:
			}
			continue
		}
		if err := s.backfillTenant(ctx, t); err != nil && ctx.Err() == nil {
			code := ragplane.ErrorCode(err)
			if code == ragplane.EGONE || code == ragplane.EFORBIDDEN || code == ragplane.ENOTFOUND {
				continue // deleted or suspended: nothing to do for it now
			}
			s.log.Warn("background embedding failed; retrying", "tenant_id", t, "error", err, "retry_in", backfillRetry)
			time.AfterFunc(backfillRetry, func() { s.backfill.add(t) })
		}
	}
}

// backfillTenant embeds a tenant's pending chunks, batch by batch, until none is left.
func (s *Server) backfillTenant(ctx context.Context, t ragplane.TenantID) error {
	ctx = ragplane.NewContextWithIdentity(ctx, ragplane.Identity{TenantID: t, Subject: "ragplane-backfill"})
	start := time.Now()
	total := 0
	for {
		// A scope per batch: the tenant's pool slot is not held across the whole backlog, and
		// a changed configuration (or a suspension) is seen between batches.
		sc, err := s.open(ctx, nil)
		if err != nil {
			return err
		}
		set := sc.cfg.Settings
		n, err := s.docs(sc).EmbedPending(ctx, func(ctx context.Context, titles, contents []string) ([][]float32, error) {
			return s.embedChunks(ctx, set, titles, contents)
		})
		sc.release()
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		total += n
	}
	if total > 0 {
		s.log.Info("background embedding done", "tenant_id", t, "chunks", total, "duration_ms", time.Since(start).Milliseconds())
	}
	return nil
}
