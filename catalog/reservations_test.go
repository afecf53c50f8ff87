package catalog_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/catalog/catalogtest"
)

func monthStart() time.Time {
	now := time.Now().UTC()
	return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
}

func mustCounted(tb testing.TB, s *catalog.Store, tenant ragplane.TenantID, want int64) {
	tb.Helper()
	got, err := s.TokensCounted(context.Background(), tenant, monthStart())
	if err != nil {
		tb.Fatal(err)
	}
	if got != want {
		tb.Fatalf("%d tokens counted, want %d", got, want)
	}
}

// Many workers reserve for one tenant at once, each on its own connection: they are admitted
// while the count is below the limit, so together they hold at most the limit plus one
// reservation, and the rest are refused.
func TestReserveTokensConcurrent(t *testing.T) {
	s, _ := catalogtest.MustOpen(t)
	ctx := context.Background()
	MustCreateTenant(t, s, newTenant("reserve_a"))
	const n, estimate, limit = 24, 100, 250
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, ok, err := s.ReserveTokens(ctx, "reserve_a", fmt.Sprintf("r%d", i), estimate, limit, monthStart(), time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				mu.Lock()
				admitted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Admitted at counts 0, 100 and 200; refused from 300 on.
	if admitted != 3 {
		t.Fatalf("%d of %d reservations admitted against a limit of %d, want 3", admitted, n, limit)
	}
	mustCounted(t, s, "reserve_a", 3*estimate)
}

// A reservation is counted as its estimate, then as its settled tokens, then as its shipped usage
// event, never twice; a released or lapsed one is not counted, and shipped usage counts against
// the limit.
func TestReservationLifecycle(t *testing.T) {
	s, _ := catalogtest.MustOpen(t)
	ctx := context.Background()
	MustCreateTenant(t, s, newTenant("reserve_b"))
	reserve := func(id string, estimate, limit int64, ttl time.Duration) bool {
		t.Helper()
		_, ok, err := s.ReserveTokens(ctx, "reserve_b", id, estimate, limit, monthStart(), ttl)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !reserve("q1", 100, 1000, time.Minute) {
		t.Fatal("refused under the limit")
	}
	mustCounted(t, s, "reserve_b", 100)
	if err := s.SettleTokens(ctx, "q1", 40, time.Minute); err != nil {
		t.Fatal(err)
	}
	mustCounted(t, s, "reserve_b", 40)
	// Shipping the request's usage event ends its reservation in the same transaction.
	ev := ragplane.UsageEvent{ID: "q1", TenantID: "reserve_b", Route: "POST /v1/query", PromptTokens: 30,
		CompletionTokens: 10, Status: 200, At: time.Now().UTC()}
	if _, err := s.RecordUsage(ctx, []ragplane.UsageEvent{ev}); err != nil {
		t.Fatal(err)
	}
	mustCounted(t, s, "reserve_b", 40)
	// Settling after the shipper has ended the reservation changes nothing.
	if err := s.SettleTokens(ctx, "q1", 40, time.Minute); err != nil {
		t.Fatal(err)
	}
	mustCounted(t, s, "reserve_b", 40)
	// A released reservation (a failed model call) holds nothing.
	if !reserve("q2", 500, 1000, time.Minute) {
		t.Fatal("refused under the limit")
	}
	mustCounted(t, s, "reserve_b", 540)
	if err := s.SettleTokens(ctx, "q2", 0, time.Minute); err != nil {
		t.Fatal(err)
	}
	mustCounted(t, s, "reserve_b", 40)
	// A reservation whose worker died lapses (here one that has already expired).
	if !reserve("q3", 500, 1000, -time.Second) {
		t.Fatal("refused under the limit")
	}
	mustCounted(t, s, "reserve_b", 40)
	// Shipped usage counts: at the limit, the next request is refused.
	if reserve("q4", 1, 40, time.Minute) {
		t.Fatal("admitted with the limit used up")
	}
	if !reserve("q5", 1, 41, time.Minute) {
		t.Fatal("refused below the limit")
	}
}

// BenchmarkReserveSettle is the catalog cost a model query adds: one reservation and its
// settlement, two round trips.
func BenchmarkReserveSettle(b *testing.B) {
	s, _ := catalogtest.MustOpen(b)
	ctx := context.Background()
	MustCreateTenant(b, s, newTenant("reserve_bench"))
	i := 0
	for b.Loop() {
		id := fmt.Sprintf("b%d", i)
		i++
		if _, ok, err := s.ReserveTokens(ctx, "reserve_bench", id, 100, 1<<60, monthStart(), time.Minute); err != nil || !ok {
			b.Fatal(ok, err)
		}
		if err := s.SettleTokens(ctx, id, 0, time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}
