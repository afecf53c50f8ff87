package catalog_test

import (
	"context"
	"testing"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/catalogtest"
)

// A tenant marked idle while a request was in flight is used after its idle_since (the request's
// usage event): the idle pass marks it awake as of that use; one unused since stays idle.
func TestWakeUsed(t *testing.T) {
	s, _ := catalogtest.MustOpen(t)
	ctx := context.Background()
	idle := time.Now().UTC().Add(-time.Hour).Truncate(time.Microsecond)
	for _, id := range []string{"used_late", "used_early"} {
		if _, _, err := s.CreateTenant(ctx, newTenant(id), nil, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Pool().Exec(ctx, `insert into tenant_activity (tenant_id, idle_since) values ($1, $2)`, id, idle); err != nil {
			t.Fatal(err)
		}
	}
	late := idle.Add(time.Minute)
	if _, err := s.RecordUsage(ctx, []ragplane.UsageEvent{
		{ID: "late-1", TenantID: "used_late", Route: "/v1/search", Status: 200, At: late},
		{ID: "early-1", TenantID: "used_early", Route: "/v1/search", Status: 200, At: idle.Add(-time.Minute)},
	}); err != nil {
		t.Fatal(err)
	}
	n, err := s.WakeUsed(ctx)
	if err != nil || n != 1 {
		t.Fatalf("WakeUsed = %d, %v; want 1", n, err)
	}
	var since, woke *time.Time
	if err := s.Pool().QueryRow(ctx, `select idle_since, woke_at from tenant_activity where tenant_id = 'used_late'`).Scan(&since, &woke); err != nil {
		t.Fatal(err)
	}
	if since != nil || woke == nil || !woke.Equal(late) {
		t.Fatalf("used_late: idle_since %v, woke_at %v; want awake as of %v", since, woke, late)
	}
	if got, err := s.IdleSince(ctx, "used_early"); err != nil || got == nil || !got.Equal(idle) {
		t.Fatalf("used_early: idle since %v, %v; want still idle since %v", got, err, idle)
	}
	if n, err := s.WakeUsed(ctx); err != nil || n != 0 {
		t.Fatalf("second WakeUsed = %d, %v; want 0", n, err)
	}
}
