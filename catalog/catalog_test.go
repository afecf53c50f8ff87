package catalog_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/catalog/catalogtest"
)

var admin = catalog.Actor{Name: "admin", RequestID: "req-test"}

// mustCode fails unless err carries code (and field, when field is not empty).
func mustCode(tb testing.TB, err error, code, field string) {
	tb.Helper()
	if got := ragplane.ErrorCode(err); got != code {
		tb.Fatalf("error code = %q, want %q (err: %v)", got, code, err)
	}
	if field != "" {
		if got := ragplane.ErrorField(err); got != field {
			tb.Fatalf("error field = %q, want %q (err: %v)", got, field, err)
		}
	}
}

func newTenant(id string) catalog.NewTenant {
	return catalog.NewTenant{
		ID: ragplane.TenantID(id), Name: "Tenant " + id, Email: id + "@example.com",
		Plan: "free", Region: "local", Provider: ragplane.ProviderLocal,
	}
}

// MustCreateTenant creates a tenant and fails the test on error.
func MustCreateTenant(tb testing.TB, s *catalog.Store, n catalog.NewTenant) *ragplane.Tenant {
	tb.Helper()
	t, replay, err := s.CreateTenant(context.Background(), n, nil, admin)
	if err != nil {
		tb.Fatalf("create tenant %s: %v", n.ID, err)
	}
	if replay {
		tb.Fatalf("create tenant %s: unexpected replay", n.ID)
	}
	return t
}

// MustActivate moves a provisioning tenant to active, as the reconciler does.
func MustActivate(tb testing.TB, s *catalog.Store, id ragplane.TenantID) {
	tb.Helper()
	ok, err := s.MarkActive(context.Background(), id, "proj-"+string(id), "postgres://u:p@127.0.0.1/"+string(id), 1, admin)
	if err != nil || !ok {
		tb.Fatalf("mark %s active: ok=%v err=%v", id, ok, err)
	}
}

// MustGetTenant reads a tenant.
func MustGetTenant(tb testing.TB, s *catalog.Store, id ragplane.TenantID) *ragplane.Tenant {
	tb.Helper()
	t, err := s.GetTenant(context.Background(), id)
	if err != nil {
		tb.Fatalf("get tenant %s: %v", id, err)
	}
	return t
}

// MustConnect opens a plain connection on the catalog database, for checks the Store does not expose.
func MustConnect(tb testing.TB, dbURL string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// num reads a JSON number that went through jsonb (float64) or was normalised (int64).
func num(tb testing.TB, v any) float64 {
	tb.Helper()
	switch n := v.(type) {
	case float64:
		return n
	case int64:
		return float64(n)
	case int:
		return float64(n)
	}
	tb.Fatalf("%v (%T) is not a number", v, v)
	return 0
}

func TestSealer(t *testing.T) {
	s, err := catalog.NewSealer(catalogtest.SecretKey)
	if err != nil {
		t.Fatal(err)
	}
	plaintext := []byte("postgres://tenant:secret@db/acme")

	t.Run("round trip", func(t *testing.T) {
		got, err := s.Open(s.Seal(plaintext, "tenant-db:acme"), "tenant-db:acme")
		if err != nil || !bytes.Equal(got, plaintext) {
			t.Fatalf("Open = %q, %v; want %q", got, err, plaintext)
		}
	})
	t.Run("empty plaintext round trips", func(t *testing.T) {
		got, err := s.Open(s.Seal(nil, "c"), "c")
		if err != nil || len(got) != 0 {
			t.Fatalf("Open = %q, %v; want empty", got, err)
		}
	})
	t.Run("sealed value does not leak plaintext", func(t *testing.T) {
		if bytes.Contains(s.Seal(plaintext, "c"), plaintext) {
			t.Fatal("sealed value contains the plaintext")
		}
	})
	t.Run("two seals differ", func(t *testing.T) {
		a, b := s.Seal(plaintext, "c"), s.Seal(plaintext, "c")
		if bytes.Equal(a, b) {
			t.Fatal("two seals of the same plaintext are equal: the nonce is not random")
		}
	})
	t.Run("different secret cannot open", func(t *testing.T) {
		other, err := catalog.NewSealer(strings.Repeat("x", catalog.MinSecretKeyLen))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Open(s.Seal(plaintext, "c"), "c"); err == nil {
			t.Fatal("a sealer with another secret opened the value")
		}
	})

	sealed := s.Seal(plaintext, "tenant-db:acme")
	tests := []struct {
		name    string
		given   []byte
		context string
	}{
		{name: "other context", given: sealed, context: "tenant-db:other"},
		{name: "empty context", given: sealed, context: ""},
		{name: "tampered ciphertext", given: flip(sealed, len(sealed)-1), context: "tenant-db:acme"},
		{name: "tampered nonce", given: flip(sealed, 1), context: "tenant-db:acme"},
		{name: "unknown version", given: flip(sealed, 0), context: "tenant-db:acme"},
		{name: "truncated", given: sealed[:10], context: "tenant-db:acme"},
		{name: "empty", given: nil, context: "tenant-db:acme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := s.Open(tt.given, tt.context); err == nil {
				t.Fatalf("Open succeeded with %q", got)
			}
		})
	}
}

// flip returns a copy of b with byte i changed.
func flip(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0x01
	return out
}

func TestNewSealerSecretLength(t *testing.T) {
	tests := []struct {
		name   string
		given  string
		expect bool
	}{
		{name: "empty", given: "", expect: false},
		{name: "one short", given: strings.Repeat("k", catalog.MinSecretKeyLen-1), expect: false},
		{name: "exactly minimum", given: strings.Repeat("k", catalog.MinSecretKeyLen), expect: true},
		{name: "long", given: strings.Repeat("k", 200), expect: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := catalog.NewSealer(tt.given)
			if (err == nil) != tt.expect {
				t.Fatalf("NewSealer(%d bytes) err = %v, want ok=%v", len(tt.given), err, tt.expect)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	t.Run("short secret is rejected", func(t *testing.T) {
		dbURL := catalogtest.NewDatabase(t)
		if s, err := catalog.Open(t.Context(), catalog.Config{URL: dbURL, SecretKey: "short"}); err == nil {
			s.Close()
			t.Fatal("Open accepted a short secret key")
		}
	})
	t.Run("unparseable URL is rejected without echoing it", func(t *testing.T) {
		_, err := catalog.Open(t.Context(), catalog.Config{URL: "postgres://u:hunter2@[bad", SecretKey: catalogtest.SecretKey})
		if err == nil {
			t.Fatal("Open accepted a bad URL")
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("error leaks the password: %v", err)
		}
	})
	t.Run("two replicas migrate together", func(t *testing.T) {
		dbURL := catalogtest.NewDatabase(t)
		const replicas = 4
		var wg sync.WaitGroup
		errs := make([]error, replicas)
		stores := make([]*catalog.Store, replicas)
		for i := range replicas {
			wg.Go(func() {
				stores[i], errs[i] = catalog.Open(t.Context(), catalog.Config{URL: dbURL, SecretKey: catalogtest.SecretKey})
			})
		}
		wg.Wait()
		for _, st := range stores {
			if st != nil {
				t.Cleanup(st.Close)
			}
		}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("replica %d: %v", i, err)
			}
		}
		plans, err := stores[0].ListPlans(t.Context())
		if err != nil || len(plans) != 3 {
			t.Fatalf("ListPlans = %d plans, %v; want the 3 seeded plans once", len(plans), err)
		}
	})
	t.Run("reopen is a no-op", func(t *testing.T) {
		s, dbURL := catalogtest.MustOpen(t)
		MustCreateTenant(t, s, newTenant("reopen"))
		s2, err := catalog.Open(t.Context(), catalog.Config{URL: dbURL, SecretKey: catalogtest.SecretKey})
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		MustGetTenant(t, s2, "reopen")
	})
}

func TestCreateTenantValidation(t *testing.T) {
	t.Parallel()
	s, _ := catalogtest.MustOpen(t)
	tests := []struct {
		name   string
		when   func(n *catalog.NewTenant)
		expect string // field
	}{
		{name: "bad id", when: func(n *catalog.NewTenant) { n.ID = "Acme" }, expect: "id"},
		{name: "id too short", when: func(n *catalog.NewTenant) { n.ID = "ab" }, expect: "id"},
		{name: "id ends with underscore", when: func(n *catalog.NewTenant) { n.ID = "acme_" }, expect: "id"},
		{name: "empty name", when: func(n *catalog.NewTenant) { n.Name = "  " }, expect: "name"},
		{name: "control character in name", when: func(n *catalog.NewTenant) { n.Name = "a\x00b" }, expect: "name"},
		{name: "bad email", when: func(n *catalog.NewTenant) { n.Email = "not-an-email" }, expect: "email"},
		{name: "email with display name", when: func(n *catalog.NewTenant) { n.Email = "Ops <ops@example.com>" }, expect: "email"},
		{name: "bad region", when: func(n *catalog.NewTenant) { n.Region = "US East" }, expect: "region"},
		{name: "bad provider", when: func(n *catalog.NewTenant) { n.Provider = "aws" }, expect: "provider"},
		{name: "unknown limit", when: func(n *catalog.NewTenant) { n.Limits = ragplane.Overrides{"bogus": 1} }, expect: "limits.bogus"},
		{name: "limit out of range", when: func(n *catalog.NewTenant) { n.Limits = ragplane.Overrides{"max_top_k": 0} }, expect: "limits.max_top_k"},
		{name: "setting wrong type", when: func(n *catalog.NewTenant) { n.Settings = ragplane.Overrides{"top_k": "five"} }, expect: "settings.top_k"},
		{name: "unknown plan", when: func(n *catalog.NewTenant) { n.Plan = "gold" }, expect: "plan"},
		{name: "empty plan", when: func(n *catalog.NewTenant) { n.Plan = "" }, expect: "plan"},
		{
			name:   "overlap not below chunk size",
			when:   func(n *catalog.NewTenant) { n.Settings = ragplane.Overrides{"chunk_overlap": 256} },
			expect: "settings.chunk_overlap",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newTenant("valid_" + strings.ReplaceAll(strings.ToLower(tt.expect), ".", "_"))
			tt.when(&n)
			_, _, err := s.CreateTenant(t.Context(), n, nil, admin)
			mustCode(t, err, ragplane.EINVALID, tt.expect)
		})
	}
	ts, _, err := s.ListTenants(t.Context(), catalog.TenantFilter{})
	if err != nil || len(ts) != 0 {
		t.Fatalf("after invalid creates: %d tenants, %v; want none", len(ts), err)
	}
}

func TestCreateTenant(t *testing.T) {
	t.Parallel()
	s, _ := catalogtest.MustOpen(t)
	ctx := t.Context()

	n := newTenant("acme")
	n.Email = "Ops@Acme.example.com"
	n.Settings = ragplane.Overrides{"top_k": 3}
	n.Limits = ragplane.Overrides{"burst": 2}
	got := MustCreateTenant(t, s, n)
	if got.Status != ragplane.StatusProvisioning || got.Plan != "free" || got.ConfigVersion < 1 {
		t.Fatalf("created %+v", got)
	}
	if num(t, got.Settings["top_k"]) != 3 || num(t, got.Limits["burst"]) != 2 {
		t.Fatalf("overrides not stored: settings %v limits %v", got.Settings, got.Limits)
	}

	t.Run("embedding settings are frozen", func(t *testing.T) {
		want := ragplane.SystemSettings()
		for _, k := range ragplane.FixedSettingKeys() {
			v, ok := got.Settings[k]
			if !ok {
				t.Fatalf("settings lack %s: %v", k, got.Settings)
			}
			if want, ok := want[k].(string); ok && v != want {
				t.Errorf("%s = %v, want %v", k, v, want)
			}
		}
		if num(t, got.Settings["embedding_dimension"]) != 512 {
			t.Fatalf("embedding_dimension = %v, want 512", got.Settings["embedding_dimension"])
		}
		// A later change of the system default does not reach the existing tenant.
		err := s.PutSystemConfig(ctx, ragplane.ConfigLayer{Settings: ragplane.Overrides{"embedding_dimension": 768}}, admin)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _, err := s.TenantConfig(ctx, "acme", nil)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Settings.EmbeddingDimension != 512 || cfg.SettingSources["embedding_dimension"].Source != ragplane.LayerTenant {
			t.Fatalf("existing tenant's dimension = %d from %s, want 512 from tenant",
				cfg.Settings.EmbeddingDimension, cfg.SettingSources["embedding_dimension"].Source)
		}
		later := MustCreateTenant(t, s, newTenant("later"))
		if num(t, later.Settings["embedding_dimension"]) != 768 {
			t.Fatalf("new tenant's dimension = %v, want 768", later.Settings["embedding_dimension"])
		}
	})

	t.Run("duplicate id", func(t *testing.T) {
		d := newTenant("acme")
		d.Email = "someone-else@example.com"
		_, _, err := s.CreateTenant(ctx, d, nil, admin)
		mustCode(t, err, ragplane.ECONFLICT, "")
	})

	t.Run("duplicate email ignores case", func(t *testing.T) {
		d := newTenant("acme2")
		d.Email = "ops@ACME.example.COM"
		_, _, err := s.CreateTenant(ctx, d, nil, admin)
		mustCode(t, err, ragplane.ECONFLICT, "email")
	})

	t.Run("email is held until the tenant is deleted", func(t *testing.T) {
		MustCreateTenant(t, s, newTenant("gone"))
		if _, err := s.SetStatus(ctx, "gone", ragplane.StatusDeleting, "", admin); err != nil {
			t.Fatal(err)
		}
		again := newTenant("gone_again")
		again.Email = "gone@example.com"
		_, _, err := s.CreateTenant(ctx, again, nil, admin)
		mustCode(t, err, ragplane.ECONFLICT, "email")
		if err := s.MarkDeleted(ctx, "gone", admin); err != nil {
			t.Fatal(err)
		}
		MustCreateTenant(t, s, again)
		// The id of a deleted tenant is never reused.
		_, _, err = s.CreateTenant(ctx, newTenant("gone"), nil, admin)
		mustCode(t, err, ragplane.ECONFLICT, "")
	})

	t.Run("every create is audited", func(t *testing.T) {
		entries, _, err := s.ListAudit(ctx, catalog.AuditFilter{Target: "tenant/acme", Action: "tenant.create"})
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 {
			t.Fatalf("%d tenant.create entries for acme, want 1", len(entries))
		}
		e := entries[0]
		if e.Actor != admin.Name || e.RequestID != admin.RequestID || e.Before != nil || e.After == nil {
			t.Fatalf("audit entry %+v", e)
		}
		var after ragplane.Tenant
		if err := json.Unmarshal(e.After, &after); err != nil || after.ID != "acme" {
			t.Fatalf("audit after = %s (%v)", e.After, err)
		}
		all, _, err := s.ListAudit(ctx, catalog.AuditFilter{Action: "tenant.create"})
		if err != nil || len(all) != 4 {
			t.Fatalf("%d tenant.create entries, %v; want 4 (acme, later, gone, gone_again), none for the failed creates", len(all), err)
		}
		// Paging newest first with a cursor visits every entry once.
		var ids []int64
		var before int64
		for {
			page, next, err := s.ListAudit(ctx, catalog.AuditFilter{Action: "tenant.create", Before: before, Limit: 3})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page {
				ids = append(ids, e.ID)
			}
			if next == 0 {
				break
			}
			before = next
		}
		if len(ids) != 4 || ids[0] != all[0].ID || ids[3] != all[3].ID || ids[0] <= ids[3] {
			t.Fatalf("paged ids %v, want the 4 entries newest first", ids)
		}
	})
}

func TestCreateTenantIdempotency(t *testing.T) {
	t.Parallel()
	s, _ := catalogtest.MustOpen(t)
	ctx := t.Context()
	n := newTenant("idem")
	body := []byte(`{"id":"idem"}`)

	first, replay, err := s.CreateTenant(ctx, n, &catalog.Idempotency{Key: "k1", Body: body}, admin)
	if err != nil || replay {
		t.Fatalf("first create: replay=%v err=%v", replay, err)
	}
	again, replay, err := s.CreateTenant(ctx, n, &catalog.Idempotency{Key: "k1", Body: body}, admin)
	if err != nil || !replay {
		t.Fatalf("replay: replay=%v err=%v", replay, err)
	}
	if again.ID != first.ID || !again.CreatedAt.Equal(first.CreatedAt) || again.ConfigVersion != first.ConfigVersion {
		t.Fatalf("replay returned %+v, want %+v", again, first)
	}

	t.Run("same key other body", func(t *testing.T) {
		other := newTenant("idem_other")
		_, _, err := s.CreateTenant(ctx, other, &catalog.Idempotency{Key: "k1", Body: []byte(`{"id":"idem_other"}`)}, admin)
		mustCode(t, err, ragplane.ECONFLICT, "Idempotency-Key")
		if _, err := s.GetTenant(ctx, "idem_other"); ragplane.ErrorCode(err) != ragplane.ENOTFOUND {
			t.Fatalf("tenant of the conflicting request exists: %v", err)
		}
	})
	t.Run("bad key", func(t *testing.T) {
		_, _, err := s.CreateTenant(ctx, newTenant("idem_bad"), &catalog.Idempotency{Key: "", Body: body}, admin)
		mustCode(t, err, ragplane.EINVALID, "Idempotency-Key")
		_, _, err = s.CreateTenant(ctx, newTenant("idem_bad"), &catalog.Idempotency{Key: strings.Repeat("k", 256), Body: body}, admin)
		mustCode(t, err, ragplane.EINVALID, "Idempotency-Key")
	})
	t.Run("a failed create does not burn the key", func(t *testing.T) {
		bad := newTenant("idem_retry")
		bad.Plan = "gold"
		b := []byte(`{"id":"idem_retry"}`)
		_, _, err := s.CreateTenant(ctx, bad, &catalog.Idempotency{Key: "k2", Body: b}, admin)
		mustCode(t, err, ragplane.EINVALID, "plan")
		// The failed request's claim rolled back with it, so the key is free for the next attempt.
		good := newTenant("idem_retry")
		_, replay, err := s.CreateTenant(ctx, good, &catalog.Idempotency{Key: "k2", Body: b}, admin)
		if err != nil || replay {
			t.Fatalf("retry after failure: replay=%v err=%v", replay, err)
		}
	})
	t.Run("concurrent identical requests create one tenant", func(t *testing.T) {
		const clients = 6
		n := newTenant("idem_race")
		b := []byte(`{"id":"idem_race"}`)
		var wg sync.WaitGroup
		replays := make([]bool, clients)
		errs := make([]error, clients)
		for i := range clients {
			wg.Go(func() {
				_, replays[i], errs[i] = s.CreateTenant(ctx, n, &catalog.Idempotency{Key: "k3", Body: b}, admin)
			})
		}
		wg.Wait()
		fresh := 0
		for i := range clients {
			if errs[i] != nil {
				t.Fatalf("client %d: %v", i, errs[i])
			}
			if !replays[i] {
				fresh++
			}
		}
		if fresh != 1 {
			t.Fatalf("%d clients created the tenant, want exactly 1", fresh)
		}
	})
}

func TestUpdateTenant(t *testing.T) {
	t.Parallel()
	s, _ := catalogtest.MustOpen(t)
	ctx := t.Context()
	n := newTenant("upd")
	n.Settings = ragplane.Overrides{"top_k": 3, "temperature": 0.1}
	n.Limits = ragplane.Overrides{"burst": 2}
	created := MustCreateTenant(t, s, n)

	t.Run("merge", func(t *testing.T) {
		name := "Renamed"
		got, err := s.UpdateTenant(ctx, "upd", catalog.TenantPatch{
			Name:     &name,
			Settings: ragplane.Overrides{"top_k": nil, "temperature": 0.7},
			Limits:   ragplane.Overrides{"max_top_k": 8},
		}, admin)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "Renamed" || got.Plan != "free" {
			t.Fatalf("name %q plan %q", got.Name, got.Plan)
		}
		if _, ok := got.Settings["top_k"]; ok {
			t.Fatalf("top_k override not removed: %v", got.Settings)
		}
		if num(t, got.Settings["temperature"]) != 0.7 {
			t.Fatalf("temperature = %v, want 0.7", got.Settings["temperature"])
		}
		if num(t, got.Limits["burst"]) != 2 || num(t, got.Limits["max_top_k"]) != 8 {
			t.Fatalf("limits = %v, want burst 2 kept and max_top_k 8 added", got.Limits)
		}
		if num(t, got.Settings["embedding_dimension"]) != 512 {
			t.Fatalf("frozen embedding settings lost: %v", got.Settings)
		}
		if got.ConfigVersion <= created.ConfigVersion {
			t.Fatalf("config_version %d, want > %d", got.ConfigVersion, created.ConfigVersion)
		}
		entries, _, err := s.ListAudit(ctx, catalog.AuditFilter{Target: "tenant/upd", Action: "tenant.update"})
		if err != nil || len(entries) != 1 || entries[0].Before == nil || entries[0].After == nil {
			t.Fatalf("tenant.update audit = %+v, %v", entries, err)
		}
	})

	tests := []struct {
		name   string
		given  catalog.TenantPatch
		expect string // field
	}{
		{name: "fixed key", given: catalog.TenantPatch{Settings: ragplane.Overrides{"embedding_dimension": 768}}, expect: "settings.embedding_dimension"},
		{name: "fixed key removal", given: catalog.TenantPatch{Settings: ragplane.Overrides{"embedding_model": nil}}, expect: "settings.embedding_model"},
		{name: "fixed provider", given: catalog.TenantPatch{Settings: ragplane.Overrides{"embedding_provider": "openai"}}, expect: "settings.embedding_provider"},
		{name: "unknown setting", given: catalog.TenantPatch{Settings: ragplane.Overrides{"colour": "red"}}, expect: "settings.colour"},
		{name: "bad limit", given: catalog.TenantPatch{Limits: ragplane.Overrides{"burst": -1}}, expect: "limits.burst"},
		{name: "bad name", given: catalog.TenantPatch{Name: ptr("")}, expect: "name"},
		{name: "unknown plan", given: catalog.TenantPatch{Plan: ptr("gold")}, expect: "plan"},
		{name: "overlap reaches chunk size", given: catalog.TenantPatch{Settings: ragplane.Overrides{"chunk_overlap": 256}}, expect: "settings.chunk_overlap"},
		{name: "chunk size drops to overlap", given: catalog.TenantPatch{Settings: ragplane.Overrides{"chunk_size": 32}}, expect: "settings.chunk_overlap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := MustGetTenant(t, s, "upd")
			_, err := s.UpdateTenant(ctx, "upd", tt.given, admin)
			mustCode(t, err, ragplane.EINVALID, tt.expect)
			after := MustGetTenant(t, s, "upd")
			if after.ConfigVersion != before.ConfigVersion || !sameJSON(t, after, before) {
				t.Fatalf("a rejected patch changed the tenant:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}

	t.Run("invalid across plan and tenant layers", func(t *testing.T) {
		if _, err := s.PutPlan(ctx, ragplane.Plan{Name: "small_chunks", Settings: ragplane.Overrides{"chunk_size": 64}, Limits: ragplane.Overrides{}}, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateTenant(ctx, "upd", catalog.TenantPatch{Settings: ragplane.Overrides{"chunk_overlap": 48}}, admin); err != nil {
			t.Fatal(err)
		}
		moved, err := s.UpdateTenant(ctx, "upd", catalog.TenantPatch{Plan: ptr("small_chunks")}, admin)
		if err != nil {
			t.Fatalf("move to small_chunks with overlap 48 < 64: %v", err)
		}
		_, err = s.UpdateTenant(ctx, "upd", catalog.TenantPatch{Settings: ragplane.Overrides{"chunk_overlap": 64}}, admin)
		mustCode(t, err, ragplane.EINVALID, "settings.chunk_overlap")
		if after := MustGetTenant(t, s, "upd"); after.ConfigVersion != moved.ConfigVersion || num(t, after.Settings["chunk_overlap"]) != 48 {
			t.Fatalf("rejected patch changed the tenant: %+v", after)
		}
		// Back to a plan with larger chunks is fine, and removing the overlap override too.
		if _, err := s.UpdateTenant(ctx, "upd", catalog.TenantPatch{Plan: ptr("free"), Settings: ragplane.Overrides{"chunk_overlap": nil}}, admin); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("unknown tenant", func(t *testing.T) {
		_, err := s.UpdateTenant(ctx, "nosuch", catalog.TenantPatch{Name: ptr("x")}, admin)
		mustCode(t, err, ragplane.ENOTFOUND, "")
	})

	t.Run("deleting tenant", func(t *testing.T) {
		MustCreateTenant(t, s, newTenant("upd_gone"))
		if _, err := s.SetStatus(ctx, "upd_gone", ragplane.StatusDeleting, "bye", admin); err != nil {
			t.Fatal(err)
		}
		_, err := s.UpdateTenant(ctx, "upd_gone", catalog.TenantPatch{Name: ptr("x")}, admin)
		mustCode(t, err, ragplane.ECONFLICT, "")
	})
}

func ptr[T any](v T) *T { return &v }

// sameJSON compares two values by their JSON form.
func sameJSON(tb testing.TB, a, b any) bool {
	tb.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		tb.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		tb.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

func TestSetStatus(t *testing.T) {
	t.Parallel()
	s, _ := catalogtest.MustOpen(t)
	ctx := t.Context()

	// setup brings a fresh tenant to a status the way the system does.
	setup := func(t *testing.T, id string, status ragplane.TenantStatus) {
		t.Helper()
		MustCreateTenant(t, s, newTenant(id))
		switch status {
		case ragplane.StatusProvisioning:
		case ragplane.StatusActive:
			MustActivate(t, s, ragplane.TenantID(id))
		case ragplane.StatusSuspended:
			MustActivate(t, s, ragplane.TenantID(id))
			if _, err := s.SetStatus(ctx, ragplane.TenantID(id), ragplane.StatusSuspended, "", admin); err != nil {
				t.Fatal(err)
			}
		case ragplane.StatusFailed:
			if err := s.MarkFailed(ctx, ragplane.TenantID(id), "boom", admin); err != nil {
				t.Fatal(err)
			}
		case ragplane.StatusDeleting:
			if _, err := s.SetStatus(ctx, ragplane.TenantID(id), ragplane.StatusDeleting, "", admin); err != nil {
				t.Fatal(err)
			}
		case ragplane.StatusDeleted:
			if _, err := s.SetStatus(ctx, ragplane.TenantID(id), ragplane.StatusDeleting, "", admin); err != nil {
				t.Fatal(err)
			}
			if err := s.MarkDeleted(ctx, ragplane.TenantID(id), admin); err != nil {
				t.Fatal(err)
			}
		}
		if got := MustGetTenant(t, s, ragplane.TenantID(id)).Status; got != status {
			t.Fatalf("setup: %s is %s, want %s", id, got, status)
		}
	}

	tests := []struct {
		name   string
		given  ragplane.TenantStatus
		when   ragplane.TenantStatus
		expect string // error code, "" for success
	}{
		{name: "suspend active", given: ragplane.StatusActive, when: ragplane.StatusSuspended},
		{name: "resume suspended", given: ragplane.StatusSuspended, when: ragplane.StatusActive},
		{name: "delete active", given: ragplane.StatusActive, when: ragplane.StatusDeleting},
		{name: "delete suspended", given: ragplane.StatusSuspended, when: ragplane.StatusDeleting},
		{name: "delete provisioning", given: ragplane.StatusProvisioning, when: ragplane.StatusDeleting},
		{name: "delete failed", given: ragplane.StatusFailed, when: ragplane.StatusDeleting},
		{name: "suspend suspended is a no-op", given: ragplane.StatusSuspended, when: ragplane.StatusSuspended},
		{name: "suspend provisioning", given: ragplane.StatusProvisioning, when: ragplane.StatusSuspended, expect: ragplane.ECONFLICT},
		{name: "resume deleting", given: ragplane.StatusDeleting, when: ragplane.StatusActive, expect: ragplane.ECONFLICT},
		{name: "suspend deleting", given: ragplane.StatusDeleting, when: ragplane.StatusSuspended, expect: ragplane.ECONFLICT},
		{name: "resume failed", given: ragplane.StatusFailed, when: ragplane.StatusActive, expect: ragplane.ECONFLICT},
		{name: "resume deleted", given: ragplane.StatusDeleted, when: ragplane.StatusActive, expect: ragplane.ECONFLICT},
		{name: "delete deleted", given: ragplane.StatusDeleted, when: ragplane.StatusDeleting, expect: ragplane.ECONFLICT},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := ragplane.TenantID("st_" + string(rune('a'+i)) + "_" + string(tt.given))
			setup(t, string(id), tt.given)
			before := MustGetTenant(t, s, id)
			got, err := s.SetStatus(ctx, id, tt.when, "ops said so", admin)
			if tt.expect != "" {
				mustCode(t, err, tt.expect, "")
				if after := MustGetTenant(t, s, id); after.Status != before.Status || after.ConfigVersion != before.ConfigVersion {
					t.Fatalf("refused transition changed the tenant: %s v%d -> %s v%d",
						before.Status, before.ConfigVersion, after.Status, after.ConfigVersion)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.when {
				t.Fatalf("status = %s, want %s", got.Status, tt.when)
			}
			if tt.given == tt.when {
				if got.ConfigVersion != before.ConfigVersion {
					t.Fatalf("no-op bumped config_version %d -> %d", before.ConfigVersion, got.ConfigVersion)
				}
				return
			}
			if got.ConfigVersion <= before.ConfigVersion || got.StatusReason != "ops said so" {
				t.Fatalf("config_version %d -> %d, reason %q", before.ConfigVersion, got.ConfigVersion, got.StatusReason)
			}
		})
	}

	t.Run("unknown tenant", func(t *testing.T) {
		_, err := s.SetStatus(ctx, "nosuch", ragplane.StatusSuspended, "", admin)
		mustCode(t, err, ragplane.ENOTFOUND, "")
	})

	t.Run("deleting revokes every key", func(t *testing.T) {
		setup(t, "st_keys", ragplane.StatusActive)
		var secrets []string
		for _, name := range []string{"one", "two", "three"} {
			_, secret, err := s.CreateAPIKey(ctx, "st_keys", catalog.NewAPIKey{Name: name}, admin)
			if err != nil {
				t.Fatal(err)
			}
			secrets = append(secrets, secret)
		}
		if _, err := s.SetStatus(ctx, "st_keys", ragplane.StatusDeleting, "", admin); err != nil {
			t.Fatal(err)
		}
		keys, err := s.ListAPIKeys(ctx, "st_keys")
		if err != nil || len(keys) != 3 {
			t.Fatalf("ListAPIKeys = %d, %v", len(keys), err)
		}
		for _, k := range keys {
			if k.RevokedAt == nil {
				t.Errorf("key %s not revoked", k.Name)
			}
		}
		for _, secret := range secrets {
			_, _, err := s.AuthenticateAPIKey(ctx, secret)
			mustCode(t, err, ragplane.EUNAUTHORIZED, "")
		}
		entries, _, err := s.ListAudit(ctx, catalog.AuditFilter{Target: "tenant/st_keys", Action: "tenant.delete"})
		if err != nil || len(entries) != 1 {
			t.Fatalf("tenant.delete audit entries = %d, %v; want 1", len(entries), err)
		}
	})
}

func TestAPIKeys(t *testing.T) {
	t.Parallel()
	s, dbURL := catalogtest.MustOpen(t)
	ctx := t.Context()
	MustCreateTenant(t, s, newTenant("keys_a"))
	MustActivate(t, s, "keys_a")
	MustCreateTenant(t, s, newTenant("keys_b"))
	MustActivate(t, s, "keys_b")

	k, secret, err := s.CreateAPIKey(ctx, "keys_a", catalog.NewAPIKey{Name: "ci"}, admin)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "rpk_"+k.Prefix+"_") || len(k.Prefix) != 12 {
		t.Fatalf("secret %q does not start with rpk_<prefix %q>_", secret, k.Prefix)
	}
	if strings.Join(k.Roles, ",") != "reader,writer" {
		t.Fatalf("default roles = %v, want reader,writer", k.Roles)
	}

	t.Run("authenticate", func(t *testing.T) {
		got, tenant, err := s.AuthenticateAPIKey(ctx, secret)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != k.ID || tenant == nil || tenant.ID != "keys_a" {
			t.Fatalf("authenticated key %s of %v, want %s of keys_a", got.ID, tenant, k.ID)
		}
		keys, err := s.ListAPIKeys(ctx, "keys_a")
		if err != nil || len(keys) != 1 || keys[0].LastUsedAt == nil {
			t.Fatalf("last_used_at not recorded: %+v, %v", keys, err)
		}
	})

	t.Run("the database holds no secret", func(t *testing.T) {
		conn := MustConnect(t, dbURL)
		var row string
		var hash []byte
		if err := conn.QueryRow(ctx, `select row_to_json(k)::text, secret_hash from api_keys k where id = $1`, k.ID).Scan(&row, &hash); err != nil {
			t.Fatal(err)
		}
		random := secret[strings.LastIndexByte(secret, '_')+1:]
		if strings.Contains(row, random) || strings.Contains(row, secret) {
			t.Fatalf("api_keys row contains the secret: %s", row)
		}
		if sum := sha256.Sum256([]byte(secret)); !bytes.Equal(hash, sum[:]) {
			t.Fatalf("secret_hash is not the SHA-256 of the key")
		}
		var audit string
		if err := conn.QueryRow(ctx, `select coalesce(string_agg(after::text, ' '), '') from audit_log where action = 'key.create'`).Scan(&audit); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(audit, random) {
			t.Fatalf("audit log contains the secret: %s", audit)
		}
	})

	rejected := []struct {
		name  string
		given string
	}{
		{name: "empty", given: ""},
		{name: "modified secret", given: secret[:len(secret)-1] + string(other(secret[len(secret)-1]))},
		{name: "truncated", given: secret[:len(secret)-1]},
		{name: "extended", given: secret + "a"},
		{name: "wrong scheme", given: "rpx" + secret[3:]},
		{name: "no scheme", given: secret[4:]},
		{name: "short prefix", given: "rpk_abc_" + secret[len(secret)-32:]},
		{name: "extra part", given: secret + "_x"},
		{name: "unknown prefix", given: "rpk_aaaaaaaaaaaa_" + secret[len(secret)-32:]},
		{name: "too long", given: "rpk_" + k.Prefix + "_" + strings.Repeat("a", 200)},
		{name: "SQL in prefix", given: "rpk_' or 1=1 --_" + secret[len(secret)-32:]},
	}
	for _, tt := range rejected {
		t.Run("reject "+tt.name, func(t *testing.T) {
			_, tenant, err := s.AuthenticateAPIKey(ctx, tt.given)
			mustCode(t, err, ragplane.EUNAUTHORIZED, "")
			if tenant != nil {
				t.Fatalf("tenant %s returned for a rejected key", tenant.ID)
			}
		})
	}

	t.Run("expired", func(t *testing.T) {
		exp := time.Now().Add(time.Hour)
		ek, esecret, err := s.CreateAPIKey(ctx, "keys_a", catalog.NewAPIKey{Name: "short-lived", ExpiresAt: &exp}, admin)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.AuthenticateAPIKey(ctx, esecret); err != nil {
			t.Fatalf("unexpired key rejected: %v", err)
		}
		conn := MustConnect(t, dbURL)
		if _, err := conn.Exec(ctx, `update api_keys set expires_at = now() - interval '1 second' where id = $1`, ek.ID); err != nil {
			t.Fatal(err)
		}
		_, _, err = s.AuthenticateAPIKey(ctx, esecret)
		mustCode(t, err, ragplane.EUNAUTHORIZED, "")
	})

	t.Run("revoked", func(t *testing.T) {
		rk, rsecret, err := s.CreateAPIKey(ctx, "keys_a", catalog.NewAPIKey{Name: "to revoke", Roles: []string{"admin", "reader", "admin"}}, admin)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(rk.Roles, ",") != "admin,reader" {
			t.Fatalf("roles = %v, want sorted and deduplicated admin,reader", rk.Roles)
		}
		got, err := s.RevokeAPIKey(ctx, "keys_a", rk.ID, admin)
		if err != nil || got.RevokedAt == nil {
			t.Fatalf("revoke: %+v, %v", got, err)
		}
		_, _, err = s.AuthenticateAPIKey(ctx, rsecret)
		mustCode(t, err, ragplane.EUNAUTHORIZED, "")
		again, err := s.RevokeAPIKey(ctx, "keys_a", rk.ID, admin)
		if err != nil || again.RevokedAt == nil || !again.RevokedAt.Equal(*got.RevokedAt) {
			t.Fatalf("second revoke: %+v, %v; want a no-op", again, err)
		}
		entries, _, err := s.ListAudit(ctx, catalog.AuditFilter{Target: "tenant/keys_a/keys/" + rk.ID, Action: "key.revoke"})
		if err != nil || len(entries) != 1 {
			t.Fatalf("key.revoke audit = %d, %v; want 1", len(entries), err)
		}
	})

	t.Run("revoke another tenant's key", func(t *testing.T) {
		_, err := s.RevokeAPIKey(ctx, "keys_b", k.ID, admin)
		mustCode(t, err, ragplane.ENOTFOUND, "")
		if _, _, err := s.AuthenticateAPIKey(ctx, secret); err != nil {
			t.Fatalf("key revoked through another tenant: %v", err)
		}
	})

	t.Run("revoke malformed id", func(t *testing.T) {
		_, err := s.RevokeAPIKey(ctx, "keys_a", "not-a-uuid", admin)
		mustCode(t, err, ragplane.ENOTFOUND, "")
	})

	past := time.Now().Add(-time.Minute)
	invalid := []struct {
		name   string
		tenant ragplane.TenantID
		given  catalog.NewAPIKey
		code   string
		field  string
	}{
		{name: "empty name", tenant: "keys_a", given: catalog.NewAPIKey{Name: ""}, code: ragplane.EINVALID, field: "name"},
		{name: "long name", tenant: "keys_a", given: catalog.NewAPIKey{Name: strings.Repeat("n", 101)}, code: ragplane.EINVALID, field: "name"},
		{name: "unknown role", tenant: "keys_a", given: catalog.NewAPIKey{Name: "x", Roles: []string{"reader", "root"}}, code: ragplane.EINVALID, field: "roles[1]"},
		{name: "expiry in the past", tenant: "keys_a", given: catalog.NewAPIKey{Name: "x", ExpiresAt: &past}, code: ragplane.EINVALID, field: "expires_at"},
		{name: "unknown tenant", tenant: "nosuch", given: catalog.NewAPIKey{Name: "x"}, code: ragplane.ENOTFOUND},
	}
	for _, tt := range invalid {
		t.Run("create "+tt.name, func(t *testing.T) {
			_, secret, err := s.CreateAPIKey(ctx, tt.tenant, tt.given, admin)
			mustCode(t, err, tt.code, tt.field)
			if secret != "" {
				t.Fatal("a secret was returned with an error")
			}
		})
	}

	t.Run("create for a deleting tenant", func(t *testing.T) {
		MustCreateTenant(t, s, newTenant("keys_gone"))
		if _, err := s.SetStatus(ctx, "keys_gone", ragplane.StatusDeleting, "", admin); err != nil {
			t.Fatal(err)
		}
		_, _, err := s.CreateAPIKey(ctx, "keys_gone", catalog.NewAPIKey{Name: "late"}, admin)
		mustCode(t, err, ragplane.ECONFLICT, "")
	})

	t.Run("list of an unknown tenant", func(t *testing.T) {
		_, err := s.ListAPIKeys(ctx, "nosuch")
		mustCode(t, err, ragplane.ENOTFOUND, "")
	})
}

// A revoked API key is in its tenant's policy while tokens it minted may live (and no longer),
// newest revocation first and at most catalog.MaxRevokedKeys of them; revoking bumps the config
// version and is a change the incremental feed reads again.
func TestRevokedKeysInPolicy(t *testing.T) {
	t.Parallel()
	s, dbURL := catalogtest.MustOpen(t)
	ctx := t.Context()
	for _, id := range []ragplane.TenantID{"revoke_a", "revoke_b"} {
		MustCreateTenant(t, s, newTenant(string(id)))
		MustActivate(t, s, id)
	}
	policy := func(tb testing.TB, id ragplane.TenantID) ragplane.TenantPolicy {
		tb.Helper()
		ps, err := s.TenantPoliciesByID(ctx, []ragplane.TenantID{id})
		if err != nil || len(ps) != 1 {
			tb.Fatalf("policy of %s: %v, %v", id, ps, err)
		}
		return ps[0]
	}
	keyA1, _, err := s.CreateAPIKey(ctx, "revoke_a", catalog.NewAPIKey{Name: "a1"}, admin)
	if err != nil {
		t.Fatal(err)
	}
	keyA2, _, err := s.CreateAPIKey(ctx, "revoke_a", catalog.NewAPIKey{Name: "a2"}, admin)
	if err != nil {
		t.Fatal(err)
	}
	before := policy(t, "revoke_a")
	if len(before.RevokedAPIKeys) != 0 {
		t.Fatalf("revoked before any revocation: %v", before.RevokedAPIKeys)
	}
	_, mark, err := s.TenantPoliciesChangedSince(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}

	for _, k := range []ragplane.APIKey{keyA1, keyA2} {
		if _, err := s.RevokeAPIKey(ctx, "revoke_a", k.ID, admin); err != nil {
			t.Fatal(err)
		}
	}
	after := policy(t, "revoke_a")
	if !slices.Equal(after.RevokedAPIKeys, []string{keyA2.ID, keyA1.ID}) || after.ConfigVersion <= before.ConfigVersion {
		t.Fatalf("after revocation: revoked %v version %d; want [%s %s] and a version above %d",
			after.RevokedAPIKeys, after.ConfigVersion, keyA2.ID, keyA1.ID, before.ConfigVersion)
	}
	changed, _, err := s.TenantPoliciesChangedSince(ctx, mark)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(changed, func(p ragplane.TenantPolicy) bool { return p.TenantID == "revoke_a" }); i < 0 ||
		!slices.Equal(changed[i].RevokedAPIKeys, after.RevokedAPIKeys) {
		t.Fatalf("changed since the mark: %+v; want revoke_a with its revoked keys", changed)
	}
	if other := policy(t, "revoke_b"); len(other.RevokedAPIKeys) != 0 {
		t.Fatalf("another tenant's policy lists %v", other.RevokedAPIKeys)
	}

	conn := MustConnect(t, dbURL)
	// A key revoked longer ago than a token can live is left out.
	if _, err := conn.Exec(ctx, `update api_keys set revoked_at = now() - $2::interval where id = $1`,
		keyA1.ID, fmt.Sprintf("%d seconds", int((catalog.RevokedKeyWindow+time.Minute).Seconds()))); err != nil {
		t.Fatal(err)
	}
	if got := policy(t, "revoke_a").RevokedAPIKeys; !slices.Equal(got, []string{keyA2.ID}) {
		t.Fatalf("revoked %v, want only the recent %s", got, keyA2.ID)
	}
	// The list is bounded, keeping the newest revocations.
	if _, err := conn.Exec(ctx, `insert into api_keys (id, tenant_id, name, prefix, secret_hash, roles, revoked_at)
		select 'bulk-' || lpad(g::text, 5, '0'), 'revoke_b', 'bulk', 'bulk' || lpad(g::text, 8, '0'), '\x00', '{reader}',
			now() - make_interval(secs => g) from generate_series(1, $1) g`, catalog.MaxRevokedKeys+5); err != nil {
		t.Fatal(err)
	}
	got := policy(t, "revoke_b").RevokedAPIKeys
	if len(got) != catalog.MaxRevokedKeys || got[0] != "bulk-00001" || got[len(got)-1] != fmt.Sprintf("bulk-%05d", catalog.MaxRevokedKeys) {
		t.Fatalf("bounded list: %d keys from %v to %v; want the %d newest", len(got), got[0], got[len(got)-1], catalog.MaxRevokedKeys)
	}
}

// other returns a base32 character different from c.
func other(c byte) byte {
	if c == 'a' {
		return 'b'
	}
	return 'a'
}

func TestSigningKeys(t *testing.T) {
	t.Parallel()
	s, _ := catalogtest.MustOpen(t)
	ctx := t.Context()

	rotated, err := s.EnsureSigningKey(ctx, time.Hour, time.Minute, 0)
	if err != nil || !rotated {
		t.Fatalf("first EnsureSigningKey = %v, %v; want a new key", rotated, err)
	}
	keys, err := s.SigningKeys(ctx)
	if err != nil || len(keys) != 1 {
		t.Fatalf("SigningKeys = %d, %v; want 1", len(keys), err)
	}
	first := keys[0]
	if first.Alg != "EdDSA" || first.Private == nil || first.PublishUntil != nil {
		t.Fatalf("first key %+v", first)
	}
	if !first.Public.Equal(first.Private.Public()) {
		t.Fatal("public key does not match the private key")
	}
	msg := []byte("token")
	if !ed25519.Verify(first.Public, msg, ed25519.Sign(first.Private, msg)) {
		t.Fatal("signature does not verify")
	}

	t.Run("no rotation within rotateEvery", func(t *testing.T) {
		rotated, err := s.EnsureSigningKey(ctx, time.Hour, time.Minute, 0)
		if err != nil || rotated {
			t.Fatalf("EnsureSigningKey = %v, %v; want no rotation", rotated, err)
		}
		keys, err := s.SigningKeys(ctx)
		if err != nil || len(keys) != 1 || keys[0].KID != first.KID {
			t.Fatalf("SigningKeys = %+v, %v", keys, err)
		}
	})

	t.Run("rotate", func(t *testing.T) {
		if err := s.RotateSigningKey(ctx, time.Hour, 0, catalog.Actor{Name: "test"}); err != nil {
			t.Fatal(err)
		}
		keys, err := s.SigningKeys(ctx)
		if err != nil || len(keys) != 2 {
			t.Fatalf("SigningKeys = %d, %v; want 2", len(keys), err)
		}
		if keys[0].KID == first.KID || keys[0].Private == nil || keys[0].PublishUntil != nil {
			t.Fatalf("newest key %+v, want a new signing key", keys[0])
		}
		if keys[1].KID != first.KID || keys[1].Private != nil || keys[1].PublishUntil == nil {
			t.Fatalf("old key %+v, want it published without its private half", keys[1])
		}
		if !keys[1].Public.Equal(first.Public) {
			t.Fatal("old key's public half changed")
		}
		if until := time.Until(*keys[1].PublishUntil); until < 50*time.Minute || until > 61*time.Minute {
			t.Fatalf("old key published for %s more, want about the 1h overlap", until)
		}
		entries, _, err := s.ListAudit(ctx, catalog.AuditFilter{Action: "signing_key.rotate"})
		if err != nil || len(entries) != 2 {
			t.Fatalf("signing_key.rotate audit = %d, %v; want 2", len(entries), err)
		}
	})

	t.Run("rotation after rotateEvery", func(t *testing.T) {
		time.Sleep(20 * time.Millisecond)
		rotated, err := s.EnsureSigningKey(ctx, 10*time.Millisecond, 0, 0)
		if err != nil || !rotated {
			t.Fatalf("EnsureSigningKey = %v, %v; want a rotation", rotated, err)
		}
		// Overlap 0 retires the previous key at once; the one retired earlier is still within its hour.
		keys, err := s.SigningKeys(ctx)
		if err != nil || len(keys) != 2 || keys[0].Private == nil || keys[1].KID != first.KID {
			t.Fatalf("SigningKeys = %+v, %v", keys, err)
		}
	})

	t.Run("the next key is published before it signs", func(t *testing.T) {
		before, err := s.SigningKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		current := before[0]
		if err := s.RotateSigningKey(ctx, time.Hour, time.Hour, catalog.Actor{Name: "test"}); err != nil {
			t.Fatal(err)
		}
		keys, err := s.SigningKeys(ctx)
		if err != nil || len(keys) != len(before)+1 {
			t.Fatalf("SigningKeys = %d, %v; want %d", len(keys), err, len(before)+1)
		}
		next := keys[0]
		if next.KID == current.KID || next.Private == nil || next.PublishUntil != nil || time.Until(next.ActiveAt) < 50*time.Minute {
			t.Fatalf("next key %+v, want it published, pending for about the hour", next)
		}
		// The current key keeps its private half (it signs until the next one is active) and stays
		// published for the overlap after that.
		if keys[1].KID != current.KID || keys[1].Private == nil || keys[1].PublishUntil == nil ||
			keys[1].PublishUntil.Sub(next.ActiveAt) != time.Hour {
			t.Fatalf("current key %+v, want it signing until %s and published an hour after", keys[1], next.ActiveAt)
		}
		// A live replica whose proxies do not all hold it yet keeps it pending; one that fell
		// silent (older than liveFor) does not.
		if err := s.ReportKeyHolder(ctx, "replica-a", []string{current.KID}); err != nil {
			t.Fatal(err)
		}
		if err := s.ReportKeyHolder(ctx, "replica-b", []string{current.KID, next.KID}); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.ActivateSigningKey(ctx, next.KID, time.Hour); err != nil || ok {
			t.Fatalf("ActivateSigningKey while replica-a lacks the key = %v, %v; want false", ok, err)
		}
		if keys, err := s.SigningKeys(ctx); err != nil || time.Until(keys[0].ActiveAt) < 50*time.Minute {
			t.Fatalf("next key after a refused activation: %+v, %v; want it still pending", keys[0], err)
		}
		if ok, err := s.ActivateSigningKey(ctx, "k-unknown", 0); err != nil || ok {
			t.Fatalf("ActivateSigningKey of an unknown key = %v, %v; want false", ok, err)
		}
		if ok, err := s.ActivateSigningKey(ctx, current.KID, 0); err != nil || ok {
			t.Fatalf("ActivateSigningKey of the superseded key = %v, %v; want false", ok, err)
		}
		// Once every live replica holds it (every proxy does), it signs now and the current key retires.
		if err := s.ReportKeyHolder(ctx, "replica-a", []string{current.KID, next.KID}); err != nil {
			t.Fatal(err)
		}
		if err := s.ReportKeyHolder(ctx, "replica-gone", nil); err != nil {
			t.Fatal(err)
		}
		if err := s.ForgetKeyHolder(ctx, "replica-gone"); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.ActivateSigningKey(ctx, next.KID, time.Hour); err != nil || !ok {
			t.Fatalf("ActivateSigningKey = %v, %v; want true", ok, err)
		}
		if ok, err := s.ActivateSigningKey(ctx, next.KID, time.Hour); err != nil || ok {
			t.Fatalf("second ActivateSigningKey = %v, %v; want false (already active)", ok, err)
		}
		keys, err = s.SigningKeys(ctx)
		if err != nil || keys[0].KID != next.KID || keys[0].Private == nil || time.Until(keys[0].ActiveAt) > 0 {
			t.Fatalf("after activation keys[0] = %+v, %v; want the next key active", keys[0], err)
		}
		if keys[1].KID != current.KID || keys[1].Private != nil || keys[1].PublishUntil == nil {
			t.Fatalf("after activation the old key %+v, want it retired and still published", keys[1])
		}
	})

	t.Run("another secret cannot use the keys", func(t *testing.T) {
		// A store opened with the wrong secret must fail loudly rather than sign with garbage.
		good, dbURL := catalogtest.MustOpen(t)
		if _, err := good.EnsureSigningKey(ctx, time.Hour, time.Minute, 0); err != nil {
			t.Fatal(err)
		}
		bad, err := catalog.Open(ctx, catalog.Config{URL: dbURL, SecretKey: strings.Repeat("z", 40)})
		if err != nil {
			t.Fatal(err)
		}
		defer bad.Close()
		if keys, err := bad.SigningKeys(ctx); err == nil {
			t.Fatalf("SigningKeys with the wrong secret returned %d keys", len(keys))
		}
	})
}

func TestEnsureSigningKeyConcurrent(t *testing.T) {
	t.Parallel()
	s, _ := catalogtest.MustOpen(t)
	const callers = 8
	var wg sync.WaitGroup
	rotated := make([]bool, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { rotated[i], errs[i] = s.EnsureSigningKey(t.Context(), time.Hour, time.Minute, time.Hour) })
	}
	wg.Wait()
	n := 0
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if rotated[i] {
			n++
		}
	}
	keys, err := s.SigningKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || len(keys) != 1 {
		t.Fatalf("%d callers rotated, %d keys; want exactly 1 and 1", n, len(keys))
	}
}

func TestPutPlanAndSystemConfig(t *testing.T) {
	t.Parallel()
	s, _ := catalogtest.MustOpen(t)
	ctx := t.Context()

	// big_overlap is valid only while chunk_size stays above 200.
	big := newTenant("big_overlap")
	big.Settings = ragplane.Overrides{"chunk_overlap": 200}
	MustCreateTenant(t, s, big)
	MustCreateTenant(t, s, newTenant("free_plain"))
	pro := newTenant("pro_plain")
	pro.Plan = "pro"
	MustCreateTenant(t, s, pro)

	versions := func() map[ragplane.TenantID]int64 {
		ts, _, err := s.ListTenants(ctx, catalog.TenantFilter{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[ragplane.TenantID]int64{}
		for _, tn := range ts {
			out[tn.ID] = tn.ConfigVersion
		}
		return out
	}

	t.Run("plan that breaks a tenant is rejected", func(t *testing.T) {
		before := versions()
		planBefore, err := s.GetPlan(ctx, "free")
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.PutPlan(ctx, ragplane.Plan{Name: "free", Description: "smaller", Settings: ragplane.Overrides{"chunk_size": 128}, Limits: ragplane.Overrides{}}, admin)
		mustCode(t, err, ragplane.EINVALID, "settings.chunk_overlap")
		planAfter, err := s.GetPlan(ctx, "free")
		if err != nil {
			t.Fatal(err)
		}
		if !sameJSON(t, planAfter, planBefore) {
			t.Fatalf("rejected plan was stored: %+v", planAfter)
		}
		if after := versions(); !sameJSON(t, after, before) {
			t.Fatalf("config versions changed: %v -> %v", before, after)
		}
		if entries, _, _ := s.ListAudit(ctx, catalog.AuditFilter{Action: "plan.put"}); len(entries) != 0 {
			t.Fatalf("rejected plan was audited: %+v", entries)
		}
	})

	t.Run("system config that breaks a tenant is rejected", func(t *testing.T) {
		before := versions()
		err := s.PutSystemConfig(ctx, ragplane.ConfigLayer{Settings: ragplane.Overrides{"chunk_size": 100}}, admin)
		mustCode(t, err, ragplane.EINVALID, "settings.chunk_overlap")
		overrides, effective, err := s.SystemConfig(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(overrides.Settings) != 0 || num(t, effective.Settings["chunk_size"]) != 256 {
			t.Fatalf("rejected system config stored: overrides %v, effective chunk_size %v", overrides.Settings, effective.Settings["chunk_size"])
		}
		if after := versions(); !sameJSON(t, after, before) {
			t.Fatalf("config versions changed: %v -> %v", before, after)
		}
	})

	t.Run("invalid plan fields", func(t *testing.T) {
		_, err := s.PutPlan(ctx, ragplane.Plan{Name: "Bad Name"}, admin)
		mustCode(t, err, ragplane.EINVALID, "name")
		_, err = s.PutPlan(ctx, ragplane.Plan{Name: "ok", Limits: ragplane.Overrides{"max_top_k": 1000}}, admin)
		mustCode(t, err, ragplane.EINVALID, "limits.max_top_k")
		err = s.PutSystemConfig(ctx, ragplane.ConfigLayer{Limits: ragplane.Overrides{"nope": 1}}, admin)
		mustCode(t, err, ragplane.EINVALID, "limits.nope")
	})

	t.Run("valid plan change bumps only its tenants", func(t *testing.T) {
		before := versions()
		if _, err := s.PutPlan(ctx, ragplane.Plan{Name: "free", Description: "more", Settings: ragplane.Overrides{"top_k": 7},
			Limits: ragplane.Overrides{"max_top_k": 10}}, admin); err != nil {
			t.Fatal(err)
		}
		after := versions()
		for _, id := range []ragplane.TenantID{"big_overlap", "free_plain"} {
			if after[id] <= before[id] {
				t.Errorf("%s config_version %d -> %d, want a bump", id, before[id], after[id])
			}
		}
		if after["pro_plain"] != before["pro_plain"] {
			t.Errorf("pro tenant's config_version %d -> %d, want unchanged", before["pro_plain"], after["pro_plain"])
		}
		cfg, _, err := s.TenantConfig(ctx, "free_plain", nil)
		if err != nil || cfg.Settings.TopK != 7 || cfg.SettingSources["top_k"].Source != ragplane.LayerPlan {
			t.Fatalf("free tenant top_k = %+v, %v; want 7 from plan", cfg.SettingSources["top_k"], err)
		}
	})

	t.Run("a new plan touches no tenant", func(t *testing.T) {
		before := versions()
		if _, err := s.PutPlan(ctx, ragplane.Plan{Name: "startup", Settings: ragplane.Overrides{"top_k": 4}, Limits: ragplane.Overrides{}}, admin); err != nil {
			t.Fatal(err)
		}
		if after := versions(); !sameJSON(t, after, before) {
			t.Fatalf("config versions changed: %v -> %v", before, after)
		}
		if _, err := s.GetPlan(ctx, "startup"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("valid system config bumps every live tenant", func(t *testing.T) {
		MustCreateTenant(t, s, newTenant("dead"))
		if _, err := s.SetStatus(ctx, "dead", ragplane.StatusDeleting, "", admin); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkDeleted(ctx, "dead", admin); err != nil {
			t.Fatal(err)
		}
		before := versions()
		if err := s.PutSystemConfig(ctx, ragplane.ConfigLayer{Settings: ragplane.Overrides{"temperature": 0.4}}, admin); err != nil {
			t.Fatal(err)
		}
		after := versions()
		for id := range before {
			bumped := after[id] > before[id]
			if want := id != "dead"; bumped != want {
				t.Errorf("%s config_version %d -> %d, want bumped=%v", id, before[id], after[id], want)
			}
		}
		overrides, _, err := s.SystemConfig(ctx)
		if err != nil || num(t, overrides.Settings["temperature"]) != 0.4 {
			t.Fatalf("system overrides = %v, %v", overrides.Settings, err)
		}
	})
}

func TestTenantConfig(t *testing.T) {
	t.Parallel()
	s, _ := catalogtest.MustOpen(t)
	ctx := t.Context()
	MustCreateTenant(t, s, newTenant("cfg")) // free: max_top_k 10, max_model_tier small

	tests := []struct {
		name    string
		given   ragplane.Overrides
		topK    int
		tier    string
		clamped bool
		source  ragplane.Layer
	}{
		{name: "no request", given: nil, topK: 5, tier: "small", source: ragplane.LayerPlan},
		{name: "request within limits", given: ragplane.Overrides{"top_k": 9}, topK: 9, tier: "small", source: ragplane.LayerRequest},
		{name: "top_k above max_top_k", given: ragplane.Overrides{"top_k": 50}, topK: 10, tier: "small", clamped: true, source: ragplane.LayerRequest},
		{name: "tier above max tier", given: ragplane.Overrides{"model_tier": "large"}, topK: 5, tier: "small", source: ragplane.LayerPlan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, tenant, err := s.TenantConfig(ctx, "cfg", tt.given)
			if err != nil {
				t.Fatal(err)
			}
			if tenant.ID != "cfg" {
				t.Fatalf("tenant %s", tenant.ID)
			}
			src := cfg.SettingSources["top_k"]
			if cfg.Settings.TopK != tt.topK || src.Clamped != tt.clamped || src.Source != tt.source {
				t.Fatalf("top_k = %d %+v, want %d clamped=%v from %s", cfg.Settings.TopK, src, tt.topK, tt.clamped, tt.source)
			}
			if cfg.Settings.ModelTier != tt.tier {
				t.Fatalf("model_tier = %s, want %s", cfg.Settings.ModelTier, tt.tier)
			}
			if cfg.Limits.MaxTopK != 10 || cfg.LimitSources["max_top_k"].Source != ragplane.LayerPlan {
				t.Fatalf("max_top_k = %d from %s", cfg.Limits.MaxTopK, cfg.LimitSources["max_top_k"].Source)
			}
		})
	}
	t.Run("model tier clamp is marked", func(t *testing.T) {
		cfg, _, err := s.TenantConfig(ctx, "cfg", ragplane.Overrides{"model_tier": "large"})
		if err != nil {
			t.Fatal(err)
		}
		if src := cfg.SettingSources["model_tier"]; !src.Clamped || src.Value != "small" {
			t.Fatalf("model_tier %+v, want small clamped", src)
		}
	})
	t.Run("request may not override chunking", func(t *testing.T) {
		_, _, err := s.TenantConfig(ctx, "cfg", ragplane.Overrides{"chunk_size": 64})
		mustCode(t, err, ragplane.EINVALID, "override_config.chunk_size")
	})
	t.Run("the caller's overrides are not modified", func(t *testing.T) {
		req := ragplane.Overrides{"top_k": 50}
		if _, _, err := s.TenantConfig(ctx, "cfg", req); err != nil {
			t.Fatal(err)
		}
		if v, ok := req["top_k"].(int); !ok || v != 50 {
			t.Fatalf("request overrides changed to %v (%T)", req["top_k"], req["top_k"])
		}
	})
	t.Run("unknown tenant", func(t *testing.T) {
		_, _, err := s.TenantConfig(ctx, "nosuch", nil)
		mustCode(t, err, ragplane.ENOTFOUND, "")
	})
}

func TestTenantDatabaseURL(t *testing.T) {
	t.Parallel()
	s, dbURL := catalogtest.MustOpen(t)
	ctx := t.Context()
	MustCreateTenant(t, s, newTenant("dburl"))
	MustCreateTenant(t, s, newTenant("dburl_other"))
	const secretURL = "postgres://dburl_role:s3cret-Passw0rd@10.0.0.7:5432/dburl_db?sslmode=require"

	_, err := s.TenantDatabaseURL(ctx, "dburl")
	mustCode(t, err, ragplane.ENOTFOUND, "")
	_, err = s.TenantDatabaseURL(ctx, "nosuch")
	mustCode(t, err, ragplane.ENOTFOUND, "")

	ok, err := s.MarkActive(ctx, "dburl", "proj-1", secretURL, 2, catalog.Actor{Name: "reconciler"})
	if err != nil || !ok {
		t.Fatalf("MarkActive = %v, %v", ok, err)
	}
	got, err := s.TenantDatabaseURL(ctx, "dburl")
	if err != nil || got != secretURL {
		t.Fatalf("TenantDatabaseURL = %q, %v; want %q", got, err, secretURL)
	}
	tn := MustGetTenant(t, s, "dburl")
	if tn.Status != ragplane.StatusActive || tn.ProviderProjectID != "proj-1" || tn.SchemaVersion != 2 {
		t.Fatalf("tenant after MarkActive: %+v", tn)
	}

	t.Run("stored sealed", func(t *testing.T) {
		conn := MustConnect(t, dbURL)
		var sealed []byte
		var row string
		if err := conn.QueryRow(ctx, `select database_url_sealed, row_to_json(t)::text from tenants t where id = 'dburl'`).Scan(&sealed, &row); err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{secretURL, "s3cret-Passw0rd", "dburl_role"} {
			if bytes.Contains(sealed, []byte(secret)) || strings.Contains(row, secret) {
				t.Fatalf("tenants row contains %q", secret)
			}
		}
		var audit string
		if err := conn.QueryRow(ctx, `select coalesce(string_agg(coalesce(before::text, '') || coalesce(after::text, ''), ' '), '') from audit_log`).Scan(&audit); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(audit, "s3cret-Passw0rd") {
			t.Fatal("audit log contains the database password")
		}
	})

	t.Run("sealed value is bound to its tenant", func(t *testing.T) {
		conn := MustConnect(t, dbURL)
		if _, err := conn.Exec(ctx, `update tenants set database_url_sealed = (select database_url_sealed from tenants where id = 'dburl')
			where id = 'dburl_other'`); err != nil {
			t.Fatal(err)
		}
		if got, err := s.TenantDatabaseURL(ctx, "dburl_other"); err == nil {
			t.Fatalf("a sealed URL moved to another tenant opened: %q", got)
		}
	})

	t.Run("second MarkActive is refused", func(t *testing.T) {
		ok, err := s.MarkActive(ctx, "dburl", "proj-2", "postgres://x@y/z", 3, catalog.Actor{Name: "reconciler"})
		if err != nil || ok {
			t.Fatalf("MarkActive on an active tenant = %v, %v; want false, nil", ok, err)
		}
		if got, _ := s.TenantDatabaseURL(ctx, "dburl"); got != secretURL {
			t.Fatalf("URL replaced by %q", got)
		}
	})

	t.Run("deleted tenant has no URL", func(t *testing.T) {
		if _, err := s.SetStatus(ctx, "dburl", ragplane.StatusDeleting, "", admin); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkDeleted(ctx, "dburl", admin); err != nil {
			t.Fatal(err)
		}
		_, err := s.TenantDatabaseURL(ctx, "dburl")
		mustCode(t, err, ragplane.ENOTFOUND, "")
	})
}

func TestListTenants(t *testing.T) {
	t.Parallel()
	s, _ := catalogtest.MustOpen(t)
	ctx := t.Context()
	for _, id := range []string{"lt_c", "lt_a", "lt_e", "lt_b", "lt_d"} {
		MustCreateTenant(t, s, newTenant(id))
	}
	MustActivate(t, s, "lt_b")
	var seen []string
	var after ragplane.TenantID
	for page := 0; ; page++ {
		ts, next, err := s.ListTenants(ctx, catalog.TenantFilter{After: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, tn := range ts {
			seen = append(seen, string(tn.ID))
		}
		if next == "" {
			break
		}
		if page > 5 {
			t.Fatal("pagination does not end")
		}
		after = next
	}
	if got := strings.Join(seen, ","); got != "lt_a,lt_b,lt_c,lt_d,lt_e" {
		t.Fatalf("pages = %s", got)
	}
	active, _, err := s.ListTenants(ctx, catalog.TenantFilter{Status: ragplane.StatusActive})
	if err != nil || len(active) != 1 || active[0].ID != "lt_b" {
		t.Fatalf("active tenants = %v, %v", active, err)
	}
}

// An operator's resume is for suspended tenants. A provisioning tenant becomes active only through
// MarkActive, which stores its database URL; resuming it early leaves an active tenant with no
// database while the reconciler's MarkActive is then refused and the new database is orphaned.
func TestSetStatusCannotActivateProvisioningTenant(t *testing.T) {
	t.Parallel()
	s, _ := catalogtest.MustOpen(t)
	MustCreateTenant(t, s, newTenant("early"))
	_, err := s.SetStatus(t.Context(), "early", ragplane.StatusActive, "", admin)
	mustCode(t, err, ragplane.ECONFLICT, "")
	ok, err := s.MarkActive(t.Context(), "early", "proj", "postgres://u:p@h/early", 1, admin)
	if err != nil || !ok {
		t.Fatalf("MarkActive after a refused resume = %v, %v; want true", ok, err)
	}
}
