package controlplane_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog/catalogtest"
	"github.com/ragplane/ragplane/controlplane"
	"github.com/ragplane/ragplane/internal/xdsapi"
	"github.com/ragplane/ragplane/proxy/xdsclient"
)

// TestXDSFeedFromCatalog bulk-inserts tenants straight into the catalog of a running control
// plane (raceBulkTenants under -race, 100,000 otherwise), lets a new proxy-like client sync them,
// then changes one tenant in the catalog and checks that the proxy receives that tenant alone.
func TestXDSFeedFromCatalog(t *testing.T) {
	dbURL := catalogtest.NewDatabase(t)
	cfg := controlplane.DefaultConfig()
	cfg.AdminAddr, cfg.XDSAddr, cfg.DatabaseURL = "127.0.0.1:0", "127.0.0.1:0", dbURL
	cfg.Provision.LocalAdminURL = catalogtest.ServerURL(t)
	cfg.Provision.LocalPrefix = catalogtest.RandomName("rpt") + "_"
	cfg.AdminToken, cfg.SecretKey = adminToken, catalogtest.SecretKey
	cfg.AllowUndurable = true // the test stack runs PostgreSQL in its fast mode
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := controlplane.New(ctx, cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()

	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	start := time.Now()
	if _, err := db.Exec(ctx, `insert into tenants (id, name, email, plan, region, status, provider)
		select 'bulk_' || g, 'Bulk ' || g, 'bulk' || g || '@example.com', 'pro', 'local', 'active', 'local'
		from generate_series(1, $1) g`, bulkTenants); err != nil {
		t.Fatal(err)
	}
	t.Logf("inserted %d tenants in %v", bulkTenants, time.Since(start))

	var mu sync.Mutex
	policies := map[string]ragplane.TenantPolicy{}
	var responses []xdsclient.Response
	var count atomic.Int64
	cl := xdsclient.New(xdsclient.Config{Addr: srv.XDSAddr(), NodeID: "feed-proxy", TypeURLs: xdsapi.ProxyTypeURLs,
		Decode: func(typeURL string, res *anypb.Any) (any, error) {
			if typeURL == xdsapi.TypeTenantPolicy {
				return xdsapi.DecodePolicyAny(res)
			}
			return nil, nil
		},
		Apply: func(typeURL string, updated map[string]any, removed []string) {
			if typeURL != xdsapi.TypeTenantPolicy {
				return
			}
			mu.Lock()
			for name, v := range updated {
				policies[name] = v.(ragplane.TenantPolicy)
			}
			for _, name := range removed {
				delete(policies, name)
			}
			count.Store(int64(len(policies)))
			mu.Unlock()
		},
		OnResponse: func(r xdsclient.Response) {
			mu.Lock()
			responses = append(responses, r)
			mu.Unlock()
		},
		MaxBackoff: 200 * time.Millisecond,
	})
	start = time.Now()
	go cl.Run(ctx)
	waitUntil(t, 90*time.Second, "every tenant at the proxy", func() bool { return cl.Ready() && count.Load() == bulkTenants })
	t.Logf("a new proxy holds %d tenants %v after connecting", bulkTenants, time.Since(start))

	// One tenant's change reaches the proxy alone. A stream that broke meanwhile (keepalive under
	// a loaded machine) is answered on reconnection by what the server finds the client lacks,
	// which is not what is measured here: such a round is void and measured again with another
	// tenant.
	for round := 0; ; round++ {
		id := fmt.Sprintf("bulk_%d", 77+round)
		errAt := cl.Status().StreamErrorAt
		mu.Lock()
		mark := len(responses)
		mu.Unlock()
		start = time.Now()
		if _, err := db.Exec(ctx, `update tenants set limits = '{"queries_per_hour": 4242}', config_version = config_version + 1 where id = $1`, id); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 10*time.Second, "the change at the proxy", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return policies[id].Limits.QueriesPerHour == 4242
		})
		t.Logf("one tenant's change reached the proxy in %v", time.Since(start))
		if st := cl.Status(); !st.StreamErrorAt.Equal(errAt) {
			if round == 4 {
				t.Fatalf("the proxy's stream broke in each of 5 rounds (last: %s)", st.StreamError)
			}
			t.Logf("the proxy's stream broke during the round (%s): measuring again", st.StreamError)
			continue
		}
		mu.Lock()
		sent := 0
		for _, r := range responses[mark:] {
			sent += len(r.Updated) + len(r.Removed)
			if r.TypeURL == xdsapi.TypeTenantPolicy && (len(r.Updated) != 1 || r.Updated[0] != id) {
				t.Errorf("policy response after the change: updated %d (%v...), removed %d, version %s, nonce %s",
					len(r.Updated), r.Updated[:min(3, len(r.Updated))], len(r.Removed), r.SystemVersion, r.Nonce)
			}
		}
		mu.Unlock()
		if sent != 1 {
			t.Errorf("%d resources sent for a change to one tenant, want 1", sent)
		}
		return
	}
}

func waitUntil(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
