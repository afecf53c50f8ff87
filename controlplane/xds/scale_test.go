//go:build !race

package xds_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/controlplane/xds"
	"github.com/ragplane/ragplane/internal/xdsapi"
	"github.com/ragplane/ragplane/proxy/xdsclient"
)

// scaleTenants is the tenant count a new proxy must be able to sync (issue 8).
const scaleTenants = 100_000

// TestColdProxy100k: 100,000 tenants reach a new proxy-like client (the proxy's types, policies
// decoded as the proxy does) in bounded responses. Left out of the race suite, where it takes
// minutes; TestChunkedSync covers the same path there at 15,000 tenants. The time to ready is
// logged, not asserted (a benchmark's job).
func TestColdProxy100k(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := MustInput(t)
	base := in.Policies[0]
	in.Policies = make([]ragplane.TenantPolicy, scaleTenants)
	for i := range in.Policies {
		p := base
		p.TenantID = ragplane.TenantID(fmt.Sprintf("tenant_%06d", i))
		in.Policies[i] = p
	}
	start := time.Now()
	srv := MustStartServer(t, ctx, "127.0.0.1:0", prometheus.NewRegistry(), in)
	t.Logf("control plane: first Update of %d tenants in %v", scaleTenants, time.Since(start))

	var policies, responses atomic.Int64
	sizes := &maxSize{}
	start = time.Now()
	cl := xdsclient.New(xdsclient.Config{
		Addr: srv.addr, NodeID: "proxy-100k", TypeURLs: xdsapi.ProxyTypeURLs,
		Decode: func(typeURL string, res *anypb.Any) (any, error) {
			if typeURL == xdsapi.TypeTenantPolicy {
				return xdsapi.DecodePolicyAny(res)
			}
			return nil, nil
		},
		Apply: func(typeURL string, updated map[string]any, removed []string) {
			if typeURL == xdsapi.TypeTenantPolicy {
				policies.Add(int64(len(updated) - len(removed)))
				responses.Add(1)
			}
		},
		DialOptions: []grpc.DialOption{grpc.WithStreamInterceptor(sizes.intercept)},
	})
	go cl.Run(ctx)
	deadline := time.Now().Add(60 * time.Second)
	for !cl.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("not ready after 60 s: %d policies in %d responses", policies.Load(), responses.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("cold proxy: ready with %d policies in %v, %d policy responses, largest message %d bytes",
		policies.Load(), time.Since(start), responses.Load(), sizes.get())
	if policies.Load() != scaleTenants {
		t.Errorf("%d policies, want %d", policies.Load(), scaleTenants)
	}
	if sizes.get() > xdsapi.MaxPolicyResponseBytes+64<<10 {
		t.Errorf("largest message %d bytes", sizes.get())
	}
	_ = xds.TypeURLs
}
