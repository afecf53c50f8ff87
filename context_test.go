package ragplane_test

import (
	"context"
	"slices"
	"testing"

	"github.com/ragplane/ragplane"
)

// foreignKey is a context key that is not ragplane's: an Identity stored under it must not count.
type foreignKey struct{}

func TestTenantFromContext(t *testing.T) {
	type expect struct {
		tenant ragplane.TenantID
		code   string
	}
	tests := []struct {
		name   string
		given  func() context.Context
		expect expect
	}{
		{
			name:   "empty context",
			given:  context.Background,
			expect: expect{code: ragplane.EUNAUTHORIZED},
		},
		{
			name: "zero identity",
			given: func() context.Context {
				return ragplane.NewContextWithIdentity(context.Background(), ragplane.Identity{})
			},
			expect: expect{code: ragplane.EUNAUTHORIZED},
		},
		{
			name: "identity with subject and roles but no tenant",
			given: func() context.Context {
				return ragplane.NewContextWithIdentity(context.Background(),
					ragplane.Identity{Subject: "svc-ingest", Roles: []string{ragplane.RoleAdmin}})
			},
			expect: expect{code: ragplane.EUNAUTHORIZED},
		},
		{
			name: "inner identity without tenant shadows an outer one",
			given: func() context.Context {
				ctx := ragplane.NewContextWithIdentity(context.Background(), ragplane.Identity{TenantID: "acme_corp"})
				return ragplane.NewContextWithIdentity(ctx, ragplane.Identity{Subject: "u1"})
			},
			expect: expect{code: ragplane.EUNAUTHORIZED},
		},
		{
			name: "identity under a foreign key",
			given: func() context.Context {
				return context.WithValue(context.Background(), foreignKey{}, ragplane.Identity{TenantID: "acme_corp"})
			},
			expect: expect{code: ragplane.EUNAUTHORIZED},
		},
		{
			name: "tenant round-trips",
			given: func() context.Context {
				return ragplane.NewContextWithIdentity(context.Background(), ragplane.Identity{TenantID: "acme_corp", Subject: "u1"})
			},
			expect: expect{tenant: "acme_corp"},
		},
		{
			name: "innermost tenant wins",
			given: func() context.Context {
				ctx := ragplane.NewContextWithIdentity(context.Background(), ragplane.Identity{TenantID: "acme_corp"})
				return ragplane.NewContextWithIdentity(ctx, ragplane.Identity{TenantID: "globex"})
			},
			expect: expect{tenant: "globex"},
		},
		{
			name: "survives derived contexts",
			given: func() context.Context {
				ctx := ragplane.NewContextWithIdentity(context.Background(), ragplane.Identity{TenantID: "acme_corp"})
				ctx, cancel := context.WithCancel(context.WithValue(ctx, foreignKey{}, "x"))
				cancel()
				return ctx
			},
			expect: expect{tenant: "acme_corp"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ragplane.TenantFromContext(tc.given())
			assertErr(t, err, tc.expect.code, "")
			if got != tc.expect.tenant {
				t.Fatalf("tenant = %q, want %q", got, tc.expect.tenant)
			}
		})
	}
}

func TestIdentityFromContext(t *testing.T) {
	type expect struct {
		identity ragplane.Identity
		ok       bool
	}
	full := ragplane.Identity{TenantID: "acme_corp", Subject: "user-42", Roles: []string{ragplane.RoleReader, ragplane.RoleWriter}}
	tests := []struct {
		name   string
		given  context.Context
		expect expect
	}{
		{
			name:   "empty context",
			given:  context.Background(),
			expect: expect{ok: false},
		},
		{
			name:   "no tenant is not ok",
			given:  ragplane.NewContextWithIdentity(context.Background(), ragplane.Identity{Subject: "user-42"}),
			expect: expect{identity: ragplane.Identity{Subject: "user-42"}, ok: false},
		},
		{
			name:   "round-trips subject and roles",
			given:  ragplane.NewContextWithIdentity(context.Background(), full),
			expect: expect{identity: full, ok: true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ragplane.IdentityFromContext(tc.given)
			if ok != tc.expect.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.expect.ok)
			}
			if !ok {
				return
			}
			if got.TenantID != tc.expect.identity.TenantID || got.Subject != tc.expect.identity.Subject ||
				!slices.Equal(got.Roles, tc.expect.identity.Roles) {
				t.Fatalf("identity = %+v, want %+v", got, tc.expect.identity)
			}
		})
	}
}
