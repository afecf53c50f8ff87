package xdsclient_test

import (
	"context"
	"errors"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/ragplane/ragplane/proxy/xdsclient"
)

const (
	waitFor    = 10 * time.Second
	typeStruct = "type.googleapis.com/google.protobuf.Struct"
	typeString = "type.googleapis.com/google.protobuf.StringValue"
)

// fakeADS is a scripted delta ADS server: the test reads the client's requests and sends
// responses on the current stream.
type fakeADS struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	reqs    chan *discoveryv3.DeltaDiscoveryRequest
	streams chan discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer
	kill    chan struct{}
}

func (f *fakeADS) DeltaAggregatedResources(st discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	f.streams <- st
	errc := make(chan error, 1)
	go func() {
		for {
			req, err := st.Recv()
			if err != nil {
				errc <- err
				return
			}
			f.reqs <- req
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-f.kill:
		return errors.New("stream killed by the test")
	}
}

func TestClient(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fakeADS{
		reqs:    make(chan *discoveryv3.DeltaDiscoveryRequest, 100),
		streams: make(chan discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer, 10),
		kill:    make(chan struct{}),
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, f)
	go g.Serve(lis)
	defer g.Stop()

	var (
		mu      sync.Mutex
		handled []xdsclient.Response
	)
	cl := xdsclient.New(xdsclient.Config{
		Addr:     lis.Addr().String(),
		NodeID:   "proxy-t",
		TypeURLs: []string{typeStruct, typeString},
		Validate: func(typeURL string, res *anypb.Any) error {
			var s wrapperspb.StringValue
			if typeURL == typeString && res.UnmarshalTo(&s) == nil && s.GetValue() == "bad" {
				return errors.New("bad value")
			}
			return nil
		},
		OnResponse: func(r xdsclient.Response) {
			mu.Lock()
			handled = append(handled, r)
			mu.Unlock()
		},
		MaxBackoff: 200 * time.Millisecond,
	})
	done := make(chan error, 1)
	go func() { done <- cl.Run(ctx) }()

	st := MustRecv(t, f.streams)
	for _, want := range []string{typeStruct, typeString} {
		req := MustRecv(t, f.reqs)
		if req.GetTypeUrl() != want || !slices.Equal(req.GetResourceNamesSubscribe(), []string{"*"}) ||
			req.GetNode().GetId() != "proxy-t" || len(req.GetInitialResourceVersions()) != 0 {
			t.Fatalf("initial request: %v", req)
		}
	}

	nonce := 0
	// send sends a response and returns the client's answer to it.
	send := func(typeURL string, resources []*discoveryv3.Resource, removed ...string) *discoveryv3.DeltaDiscoveryRequest {
		t.Helper()
		nonce++
		resp := &discoveryv3.DeltaDiscoveryResponse{TypeUrl: typeURL, Resources: resources, RemovedResources: removed,
			Nonce: strings.Repeat("n", nonce), SystemVersionInfo: "sys"}
		if err := st.Send(resp); err != nil {
			t.Fatal(err)
		}
		reply := MustRecv(t, f.reqs)
		if reply.GetResponseNonce() != resp.GetNonce() || reply.GetTypeUrl() != typeURL {
			t.Fatalf("reply %v to nonce %s", reply, resp.GetNonce())
		}
		return reply
	}

	tests := []struct {
		name      string
		when      func() *discoveryv3.DeltaDiscoveryRequest
		expectAck bool
		expect    map[string]map[string]string // type URL -> name -> version held afterwards
		ready     bool
	}{
		{
			name: "first type applied: not ready yet",
			when: func() *discoveryv3.DeltaDiscoveryRequest {
				return send(typeStruct, []*discoveryv3.Resource{MustStruct(t, "a", "1")})
			},
			expectAck: true,
			expect:    map[string]map[string]string{typeStruct: {"a": "1"}, typeString: {}},
		},
		{
			name:      "second type applied, empty: ready",
			when:      func() *discoveryv3.DeltaDiscoveryRequest { return send(typeString, nil) },
			expectAck: true,
			expect:    map[string]map[string]string{typeStruct: {"a": "1"}, typeString: {}},
			ready:     true,
		},
		{
			name: "an invalid resource is rejected, the valid ones applied",
			when: func() *discoveryv3.DeltaDiscoveryRequest {
				return send(typeString, []*discoveryv3.Resource{MustString(t, "x", "1", "good"), MustString(t, "y", "1", "bad")})
			},
			expect: map[string]map[string]string{typeStruct: {"a": "1"}, typeString: {"x": "1"}},
			ready:  true,
		},
		{
			name: "a resource of another type is rejected",
			when: func() *discoveryv3.DeltaDiscoveryRequest {
				r := MustString(t, "b", "1", "s")
				return send(typeStruct, []*discoveryv3.Resource{r})
			},
			expect: map[string]map[string]string{typeStruct: {"a": "1"}, typeString: {"x": "1"}},
			ready:  true,
		},
		{
			name: "an unsubscribed type is rejected",
			when: func() *discoveryv3.DeltaDiscoveryRequest {
				return send("type.googleapis.com/google.protobuf.Empty", nil)
			},
			expect: map[string]map[string]string{typeStruct: {"a": "1"}, typeString: {"x": "1"}},
			ready:  true,
		},
		{
			name: "added, changed and removed in one response",
			when: func() *discoveryv3.DeltaDiscoveryRequest {
				send(typeStruct, []*discoveryv3.Resource{MustStruct(t, "b", "1")})
				return send(typeStruct, []*discoveryv3.Resource{MustStruct(t, "b", "2"), MustStruct(t, "c", "1")}, "a")
			},
			expectAck: true,
			expect:    map[string]map[string]string{typeStruct: {"b": "2", "c": "1"}, typeString: {"x": "1"}},
			ready:     true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply := tt.when()
			if gotAck := reply.GetErrorDetail() == nil; gotAck != tt.expectAck {
				t.Errorf("ACK=%t, want %t (%v)", gotAck, tt.expectAck, reply.GetErrorDetail())
			}
			for typeURL, want := range tt.expect {
				if got := cl.Versions(typeURL); !maps.Equal(got, want) {
					t.Errorf("%s: holds %v, want %v", typeURL, got, want)
				}
			}
			if cl.Ready() != tt.ready {
				t.Errorf("Ready=%t, want %t", cl.Ready(), tt.ready)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if last := handled[len(handled)-1]; !slices.Equal(last.Updated, []string{"b", "c"}) || !slices.Equal(last.Removed, []string{"a"}) || last.Err != nil {
		t.Errorf("last OnResponse: %+v", last)
	}
	if nacked := handled[2]; nacked.Err == nil || !strings.Contains(nacked.Err.Error(), "bad value") || !slices.Equal(nacked.Rejected, []string{"y"}) {
		t.Errorf("NACK reason: %v, rejected %v", nacked.Err, nacked.Rejected)
	}
	if st := cl.Status().Types[typeString]; !strings.Contains(st.Rejected["y"], "bad value") || !st.Synced {
		t.Errorf("status of %s: %+v", typeString, st)
	}
	MustEventually(t, "update notifications", func() bool { return len(cl.Updates()) > 0 })
	if cl.LastUpdate().IsZero() || !cl.Connected() {
		t.Errorf("LastUpdate=%v Connected=%t", cl.LastUpdate(), cl.Connected())
	}

	t.Run("reconnects with the versions it holds and keeps serving meanwhile", func(t *testing.T) {
		f.kill <- struct{}{} // ends the current stream only
		MustRecv(t, f.streams)
		for _, typeURL := range []string{typeStruct, typeString} {
			req := MustRecv(t, f.reqs)
			if req.GetTypeUrl() != typeURL || !maps.Equal(req.GetInitialResourceVersions(), cl.Versions(typeURL)) {
				t.Errorf("resubscription %v, want initial versions %v", req, cl.Versions(typeURL))
			}
		}
		if got := cl.Versions(typeStruct); !maps.Equal(got, map[string]string{"b": "2", "c": "1"}) || !cl.Ready() {
			t.Errorf("state after reconnect: %v ready=%t", got, cl.Ready())
		}
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Run did not return after cancel")
	}
	if cl.Connected() {
		t.Error("Connected after Run returned")
	}
}

func TestRunRequiresConfig(t *testing.T) {
	err := xdsclient.New(xdsclient.Config{NodeID: "n", TypeURLs: []string{typeStruct}}).Run(context.Background())
	if err == nil {
		t.Fatal("Run without Addr succeeded")
	}
}

func MustRecv[T any](tb testing.TB, ch <-chan T) T {
	tb.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitFor):
		tb.Fatal("timed out waiting for the client")
		panic("unreachable")
	}
}

func MustEventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func MustStruct(tb testing.TB, name, version string) *discoveryv3.Resource {
	tb.Helper()
	s, err := structpb.NewStruct(map[string]any{"name": name})
	if err != nil {
		tb.Fatal(err)
	}
	a, err := anypb.New(s)
	if err != nil {
		tb.Fatal(err)
	}
	return &discoveryv3.Resource{Name: name, Version: version, Resource: a}
}

func MustString(tb testing.TB, name, version, value string) *discoveryv3.Resource {
	tb.Helper()
	a, err := anypb.New(wrapperspb.String(value))
	if err != nil {
		tb.Fatal(err)
	}
	return &discoveryv3.Resource{Name: name, Version: version, Resource: a}
}
