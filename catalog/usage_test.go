package catalog_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/catalogtest"
)

// Workers ship usage batches at once that touch the same rollup rows in every order: none fails
// (before the rollups were upserted in key order, PostgreSQL detected deadlocks and aborted one of
// two such transactions), and every event is counted once.
func TestRecordUsageConcurrentBatches(t *testing.T) {
	s, _ := catalogtest.MustOpen(t)
	ctx := context.Background()
	tenants := []string{"usage_a", "usage_b", "usage_c", "usage_d"}
	for _, id := range tenants {
		if _, _, err := s.CreateTenant(ctx, newTenant(id), nil, admin); err != nil {
			t.Fatal(err)
		}
	}
	hour := time.Now().UTC().Truncate(time.Hour)
	const workers, batches, perBatch = 6, 15, 12
	var wg sync.WaitGroup
	errs := make(chan error, workers*batches)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for b := range batches {
				events := make([]ragplane.UsageEvent, perBatch)
				for i := range events {
					events[i] = ragplane.UsageEvent{ID: fmt.Sprintf("w%d-b%d-e%d", w, b, i),
						TenantID: ragplane.TenantID(tenants[r.IntN(len(tenants))]), Route: "/v1/search",
						PromptTokens: 1, Status: 200, At: hour.Add(time.Duration(r.IntN(3)) * time.Hour)}
				}
				if _, err := s.RecordUsage(ctx, events); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a shipment failed: %v", err)
	}
	var total float64
	err := s.Pool().QueryRow(ctx, `select coalesce(sum(metric_value), 0) from tenant_usage
		where metric_name = 'requests' and granularity = 'hour'`).Scan(&total)
	if err != nil {
		t.Fatal(err)
	}
	if want := float64(workers * batches * perBatch); total != want {
		t.Errorf("%v requests in the hourly rollups, want %v", total, want)
	}
}
