package xds_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/controlplane/xds"
	"github.com/ragplane/ragplane/internal/xdsapi"
	"github.com/ragplane/ragplane/proxy/xdsclient"
)

// chunkedTenants makes the policies alone several times chunkBytes (about 570 bytes each), so
// the initial sync and the resync take several responses; chunkBytes is the server's policy
// bound in these tests, smaller than the default so that the race suite stays fast.
const (
	chunkedTenants = 15000
	chunkBytes     = 2 << 20
	// syncWait bounds a sync of chunkedTenants: a failure bound, generous because the race
	// detector on a busy 2-core machine makes a sync take many seconds.
	syncWait = 2 * time.Minute
)

// TestChunkedSync: a state larger than one response reaches a new client in bounded responses,
// each but the last marked partial; the client is not ready before the last; the server reports
// the ACKed version only then; a change to one tenant afterwards sends that tenant alone; and a
// client reconnecting to a restarted control plane with most tenants changed resyncs in chunks.
func TestChunkedSync(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in := MustInput(t)
	base := in.Policies[0]
	in.Policies = nil
	for i := range chunkedTenants {
		p := base
		p.TenantID = ragplane.TenantID(fmt.Sprintf("tenant_%05d", i))
		in.Policies = append(in.Policies, p)
	}
	srv := MustStartServerWith(t, ctx, "127.0.0.1:0", xds.Config{Registerer: prometheus.NewRegistry(), PolicyResponseBytes: chunkBytes}, in)

	rec := &recorder{}
	sizes := &maxSize{}
	var readyAt []bool // Ready() as seen right after each policy response
	var mu sync.Mutex
	var cl *xdsclient.Client
	cl = xdsclient.New(xdsclient.Config{
		Addr: srv.addr, NodeID: "proxy-big", TypeURLs: xds.TypeURLs(), Validate: validate, MaxBackoff: 200 * time.Millisecond,
		OnResponse: func(r xdsclient.Response) {
			rec.add(r)
			if r.TypeURL == xds.TypeTenantPolicy {
				mu.Lock()
				readyAt = append(readyAt, cl.Ready())
				mu.Unlock()
			}
		},
		DialOptions: []grpc.DialOption{grpc.WithStreamInterceptor(sizes.intercept)},
	})
	go cl.Run(ctx)

	deadline := time.Now().Add(syncWait)
	for !cl.Ready() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !cl.Ready() {
		for typeURL, rs := range rec.since(0) {
			for _, r := range rs {
				t.Logf("%s: %s updated=%d removed=%d partial=%t err=%v", typeURL, r.SystemVersion, len(r.Updated), len(r.Removed), r.Partial, r.Err)
			}
		}
		t.Fatalf("client not ready; status %+v", cl.Status())
	}
	got := rec.since(0)[xds.TypeTenantPolicy]
	if len(got) < 3 {
		t.Fatalf("%d policy responses for %d tenants, want several", len(got), chunkedTenants)
	}
	for i, r := range got {
		if last := i == len(got)-1; r.Partial == last {
			t.Errorf("policy response %d of %d: partial=%t", i+1, len(got), r.Partial)
		}
	}
	mu.Lock()
	if slices.Contains(readyAt[:len(readyAt)-1], true) || !readyAt[len(readyAt)-1] {
		t.Errorf("Ready after each policy response: %v, want true only after the last", readyAt)
	}
	mu.Unlock()
	if n := len(updated(got)); n != chunkedTenants {
		t.Errorf("%d policies received, want %d", n, chunkedTenants)
	}
	if largest := sizes.get(); largest > max(chunkBytes, xdsapi.MaxResponseResourceBytes)+64<<10 {
		t.Errorf("largest response %d bytes, want at most about %d", largest, max(chunkBytes, xdsapi.MaxResponseResourceBytes))
	}
	MustEventually(t, "final version ACKed", func() bool {
		p := onlyProxy(srv.Proxies())
		return p != nil && allAcked(p.Types) && len(p.Types) == len(xds.TypeURLs()) &&
			!xdsapi.IsPartial(p.Types[xds.TypeTenantPolicy].AckedVersion)
	})

	t.Run("a change to one tenant sends that tenant only", func(t *testing.T) {
		mark := rec.len()
		p := in.Policies[4321]
		p.Limits.QueriesPerHour = 4321
		if err := srv.UpdateTenants([]ragplane.TenantPolicy{p}, nil); err != nil {
			t.Fatal(err)
		}
		MustEventually(t, "policy and rate limit", func() bool {
			got := rec.since(mark)
			return len(got[xds.TypeTenantPolicy]) > 0 && len(got[xds.TypeRateLimit]) > 0
		})
		got := rec.since(mark)
		if u := updated(got[xds.TypeTenantPolicy]); !slices.Equal(u, []string{"tenant_04321"}) {
			t.Errorf("policies sent: %v", u)
		}
		if u := updated(got[xds.TypeRateLimit]); !slices.Equal(u, []string{"ratelimit/tenant_04321"}) {
			t.Errorf("rate limits sent: %v", u)
		}
		if MustPolicy(t, cl, "tenant_04321").Limits.QueriesPerHour != 4321 {
			t.Error("the change did not arrive")
		}
	})

	t.Run("a reconnect after a restart resyncs in chunks", func(t *testing.T) {
		srv.stop(t)
		MustEventually(t, "client disconnected", func() bool { return !cl.Connected() })
		// While the control plane is away, most tenants change, one goes, one arrives.
		for i := range in.Policies {
			if i%4 != 0 {
				in.Policies[i].Limits.QueriesPerHour = 777
			}
		}
		in.Policies = append(in.Policies[1:], ragplane.TenantPolicy{TenantID: "newcomer", Status: ragplane.StatusActive,
			Plan: "pro", Limits: base.Limits, ConfigVersion: 1})
		mark := rec.len()
		srv = MustStartServerWith(t, ctx, srv.addr, xds.Config{Registerer: prometheus.NewRegistry(), PolicyResponseBytes: chunkBytes}, in)
		synced := func() bool {
			p := onlyProxy(srv.Proxies())
			return p != nil && len(p.Types) == len(xds.TypeURLs()) && allAcked(p.Types) &&
				!xdsapi.IsPartial(p.Types[xds.TypeTenantPolicy].AckedVersion)
		}
		for deadline := time.Now().Add(syncWait); !synced() && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if !synced() {
			t.Fatalf("not every type ACKed on the new server: %+v; client %+v", srv.Proxies(), cl.Status())
		}
		got := rec.since(mark)[xds.TypeTenantPolicy]
		if len(got) < 2 || !got[0].Partial {
			t.Errorf("%d policy responses after the restart (first partial: %t), want several", len(got), len(got) > 0 && got[0].Partial)
		}
		want := chunkedTenants*3/4 + 1 // the changed ones (tenant_00000 went) and the newcomer
		if n := len(updated(got)); n > want+1 || n < want-1 {
			t.Errorf("%d policies resent after the restart, want about %d (only what changed)", n, want)
		}
		if r := removed(got); !slices.Equal(r, []string{"tenant_00000"}) {
			t.Errorf("removed after the restart: %v", r)
		}
		snap := cl.Snapshot(xds.TypeTenantPolicy)
		if len(snap) != chunkedTenants || snap["newcomer"] == nil || MustPolicy(t, cl, "tenant_00001").Limits.QueriesPerHour != 777 {
			t.Errorf("client state after resync: %d policies", len(snap))
		}
		if largest := sizes.get(); largest > max(chunkBytes, xdsapi.MaxResponseResourceBytes)+64<<10 {
			t.Errorf("largest response %d bytes", largest)
		}
	})
}

// maxSize records the largest message a client stream received.
type maxSize struct {
	mu  sync.Mutex
	max int
}

func (m *maxSize) get() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.max
}

func (m *maxSize) intercept(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return &sizedStream{ClientStream: s, m: m}, nil
}

type sizedStream struct {
	grpc.ClientStream
	m *maxSize
}

func (s *sizedStream) RecvMsg(msg any) error {
	err := s.ClientStream.RecvMsg(msg)
	if pm, ok := msg.(proto.Message); ok && err == nil {
		n := proto.Size(pm)
		s.m.mu.Lock()
		s.m.max = max(s.m.max, n)
		s.m.mu.Unlock()
	}
	return err
}
