package dataplane

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/internal/clocktest"
)

// The tenant cache serves an entry for its TTL and reads the catalog again after it, so a
// suspension takes effect within the TTL.
func TestTenantCacheExpiry(t *testing.T) {
	clock := clocktest.New(time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC))
	var reads atomic.Int32
	status := ragplane.StatusActive
	tc := newTenants(tenantCacheConfig{TTL: 2 * time.Second, Now: clock.Now,
		Load: func(_ context.Context, id ragplane.TenantID) (*catalog.Runtime, error) {
			reads.Add(1)
			return &catalog.Runtime{Tenant: &ragplane.Tenant{ID: id, Status: status}, DatabaseURL: "postgres://t"}, nil
		}})
	ctx := context.Background()
	for _, step := range []struct {
		name      string
		advance   time.Duration
		suspend   bool
		wantReads int32
		wantCode  string
	}{
		{name: "first request reads the catalog", wantReads: 1},
		{name: "within the TTL the entry is served", advance: 1 * time.Second, wantReads: 1},
		{name: "a suspension within the TTL is not seen yet", advance: 999 * time.Millisecond, suspend: true, wantReads: 1},
		{name: "after the TTL the catalog is read again", advance: 2 * time.Millisecond, wantReads: 2, wantCode: ragplane.EFORBIDDEN},
		{name: "and cached again", advance: time.Second, wantReads: 2, wantCode: ragplane.EFORBIDDEN},
	} {
		t.Run(step.name, func(t *testing.T) {
			clock.Advance(step.advance)
			if step.suspend {
				status = ragplane.StatusSuspended
			}
			_, err := tc.get(ctx, "acme_corp")
			if got := ragplane.ErrorCode(err); got != step.wantCode {
				t.Fatalf("error code %q (%v), want %q", got, err, step.wantCode)
			}
			if got := reads.Load(); got != step.wantReads {
				t.Fatalf("%d catalog reads, want %d", got, step.wantReads)
			}
		})
	}
}

// The monthly token count is cached for its TTL and counts from the first of the clock's month.
func TestMonthlyTokensCacheAndMonth(t *testing.T) {
	clock := clocktest.New(time.Date(2025, 3, 31, 23, 59, 58, 0, time.UTC))
	var since []time.Time
	used := int64(10)
	m := newMonthlyTokens(monthlyTokensConfig{TTL: 5 * time.Second, Now: clock.Now,
		Load: func(_ context.Context, _ ragplane.TenantID, from time.Time) (int64, error) {
			since = append(since, from)
			return used, nil
		}})
	ctx := context.Background()
	for _, step := range []struct {
		name      string
		advance   time.Duration
		setUsed   int64
		wantUsed  int64
		wantSince []time.Time
	}{
		{name: "first check reads the month so far", wantUsed: 10,
			wantSince: []time.Time{time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)}},
		{name: "within the TTL the count is served", advance: time.Second, setUsed: 20, wantUsed: 10,
			wantSince: []time.Time{time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)}},
		{name: "after the TTL, in the next month, it counts from the new month", advance: 5 * time.Second, setUsed: 3, wantUsed: 3,
			wantSince: []time.Time{time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)}},
	} {
		t.Run(step.name, func(t *testing.T) {
			clock.Advance(step.advance)
			if step.setUsed != 0 {
				used = step.setUsed
			}
			got, err := m.used(ctx, "acme_corp", false)
			if err != nil {
				t.Fatal(err)
			}
			if got != step.wantUsed {
				t.Fatalf("used %d, want %d", got, step.wantUsed)
			}
			if len(since) != len(step.wantSince) {
				t.Fatalf("catalog read since %v, want %v", since, step.wantSince)
			}
			for i := range since {
				if !since[i].Equal(step.wantSince[i]) {
					t.Fatalf("catalog read since %v, want %v", since, step.wantSince)
				}
			}
		})
	}
}

// While shipping fails the records stay in the spool, the failures are counted and the lag grows
// with the spool's clock; once shipping works they are shipped once and the lag is 0.
func TestSpoolShipFailureAndLag(t *testing.T) {
	clock := clocktest.New(time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC))
	var mu sync.Mutex
	down := true
	var shipped []ragplane.UsageEvent
	reg := prometheus.NewRegistry()
	dir := t.TempDir()
	s, err := newSpool(spoolConfig{Dir: dir, Now: clock.Now, Registerer: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ship: func(_ context.Context, events []ragplane.UsageEvent) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			if down {
				return 0, ragplane.Errorf(ragplane.EUNAVAILABLE, "catalog away")
			}
			shipped = append(shipped, events...)
			return len(events), nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.f.Close() })
	metric := func(name string) float64 {
		t.Helper()
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() == name {
				m := f.GetMetric()[0]
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	lag := func() float64 { return metric("ragplane_dataplane_usage_spool_lag_seconds") }
	failed := func() float64 { return metric("ragplane_dataplane_usage_ship_failures_total") }
	shippedTotal := func() float64 { return metric("ragplane_dataplane_usage_shipped_total") }
	if got := lag(); got != 0 {
		t.Fatalf("lag %v on an empty spool, want 0", got)
	}
	for i := 0; i < 3; i++ {
		if err := s.append(ragplane.UsageEvent{ID: ragplane.NewRequestID(), TenantID: "acme_corp", At: clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	for round := 1; round <= 2; round++ {
		clock.Advance(time.Second)
		s.ship(ctx)
		if got := failed(); got != float64(round) {
			t.Fatalf("%v ship failures after %d failed rounds", got, round)
		}
		if got := lag(); got != float64(round) {
			t.Fatalf("lag %vs after %d rounds of a second, want %d", got, round, round)
		}
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "usage.[0-9]*.jsonl"))
	if len(segs) != 1 {
		t.Fatalf("segments %v during the outage, want one", segs)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	clock.Advance(time.Second)
	s.ship(ctx)
	if len(shipped) != 3 || shippedTotal() != 3 {
		t.Fatalf("%d records shipped (counter %v), want 3", len(shipped), shippedTotal())
	}
	if got := lag(); got != 0 {
		t.Fatalf("lag %v after shipping, want 0", got)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "usage.") && e.Name() != "usage.active.jsonl" {
			t.Fatalf("%s left after shipping", e.Name())
		}
	}
}
