package xdsclient_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"

	"github.com/ragplane/ragplane/proxy/xdsclient"
)

// Ready never turns true before the caller's Apply has stored the response that completes the
// first sync: a proxy that reported ready before it held its keys and policies refused valid
// tokens (issue 11, item 18).
func TestReadyOnlyAfterApply(t *testing.T) {
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

	var cl atomic.Pointer[xdsclient.Client]
	var applied, readyDuringApply atomic.Int32
	c := xdsclient.New(xdsclient.Config{
		Addr: lis.Addr().String(), NodeID: "proxy-ready", TypeURLs: []string{typeStruct, typeString},
		Apply: func(string, map[string]any, []string) {
			if cl.Load().Ready() {
				readyDuringApply.Add(1)
			}
			applied.Add(1)
		},
	})
	cl.Store(c)
	go c.Run(ctx)

	st := MustRecv(t, f.streams)
	MustRecv(t, f.reqs)
	MustRecv(t, f.reqs)
	for i, typeURL := range []string{typeStruct, typeString} {
		resp := &discoveryv3.DeltaDiscoveryResponse{TypeUrl: typeURL, Nonce: typeURL, SystemVersionInfo: "v1",
			Resources: []*discoveryv3.Resource{MustStruct(t, "a", "1")}}
		if typeURL == typeString {
			resp.Resources = []*discoveryv3.Resource{MustString(t, "s", "1", "x")}
		}
		if err := st.Send(resp); err != nil {
			t.Fatal(err)
		}
		MustRecv(t, f.reqs) // the ACK: the response is handled
		if got := applied.Load(); got != int32(i+1) {
			t.Fatalf("Apply ran %d times after %d responses", got, i+1)
		}
	}
	if !c.Ready() {
		t.Fatal("not ready after every type synced")
	}
	if n := readyDuringApply.Load(); n != 0 {
		t.Fatalf("Ready was true while Apply had not stored the response (%d times)", n)
	}
}
