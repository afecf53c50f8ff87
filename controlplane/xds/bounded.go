package xds

import (
	"maps"
	"slices"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/ragplane/ragplane/internal/xdsapi"
)

// boundedCache serves a LinearCache's delta watches in bounded responses. The LinearCache
// answers a watch with every resource the client lacks: at a new proxy's first request that is
// every tenant, one message over any sensible gRPC limit. boundedCache forwards at most maxBytes
// of it (removed names first, then resources by name, so the split is deterministic), marks the
// response partial (xdsapi.PartialSuffix) and reports as returned only what it sent. The
// go-control-plane server stores that as the subscription's known versions, so the watch opened
// by the client's answer finds the rest still missing and the next chunk goes out at once.
//
// State-of-the-world watches pass through untouched (clusters and endpoints are tiny; rate limits
// for state-of-the-world subscribers come from lazyRateLimits).
type boundedCache struct {
	*cache.LinearCache
	maxBytes int
}

// CreateDeltaWatch opens the LinearCache's watch on a channel of its own and forwards its answer,
// bounded, to out.
func (c *boundedCache) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, out chan cache.DeltaResponse) (func(), error) {
	in := make(chan cache.DeltaResponse, 1)
	cancel, err := c.LinearCache.CreateDeltaWatch(req, sub, in)
	if err != nil {
		return nil, err
	}
	select {
	case resp := <-in: // answered at once, as the LinearCache does when the client lacks something
		out <- c.bound(resp, sub)
		return cancel, nil
	default:
	}
	// The answer comes later, from UpdateResources. The server closes out right after cancelling
	// its watches, so the cancel func waits for the forwarder to be gone.
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		select {
		case resp := <-in:
			select {
			case out <- c.bound(resp, sub):
			case <-done:
			}
		case <-done:
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			if cancel != nil {
				cancel()
			}
			close(done)
			<-exited
		})
	}, nil
}

// bound returns resp if it fits in maxBytes, else its first chunk. sub is the subscription the
// watch was opened with; it is not modified while the watch is open.
func (c *boundedCache) bound(resp cache.DeltaResponse, sub cache.Subscription) cache.DeltaResponse {
	raw, ok := resp.(*cache.RawDeltaResponse)
	if !ok {
		return resp
	}
	known, next := sub.ReturnedResources(), raw.GetReturnedResources()
	// The LinearCache drops removed names from the returned versions and keeps everything else.
	var removed []string
	for name := range known {
		if _, ok := next[name]; !ok {
			removed = append(removed, name)
		}
	}
	resources := raw.GetRawResources()
	size := 0
	for _, name := range removed {
		size += len(name) + 3
	}
	fits := size <= c.maxBytes
	for _, r := range resources {
		if !fits {
			break
		}
		size += proto.Size(r.Resource) + 100 // name, version and framing
		fits = size <= c.maxBytes
	}
	if fits {
		return resp
	}

	// Too big: send removals first (they are small and free memory), then resources in name
	// order, up to the budget and at least one item so that a sync always progresses.
	slices.Sort(removed)
	byName := make(map[string]types.Resource, len(resources))
	names := make([]string, 0, len(resources))
	for _, r := range resources {
		name := cache.GetResourceName(r.Resource)
		byName[name] = r.Resource
		names = append(names, name)
	}
	slices.Sort(names)
	returned := maps.Clone(known)
	out := &discoveryv3.DeltaDiscoveryResponse{TypeUrl: raw.GetDeltaRequest().GetTypeUrl()}
	budget := c.maxBytes
	for _, name := range removed {
		if budget < len(name)+3 && len(out.RemovedResources) > 0 {
			break
		}
		budget -= len(name) + 3
		out.RemovedResources = append(out.RemovedResources, name)
		delete(returned, name)
	}
	for _, name := range names {
		b, err := cache.MarshalResource(byName[name])
		if err != nil {
			return resp // the server reports the same error when it marshals the whole response
		}
		n := len(b) + len(name) + 100
		if budget < n && (len(out.Resources) > 0 || len(out.RemovedResources) > 0) {
			break
		}
		budget -= n
		out.Resources = append(out.Resources, &discoveryv3.Resource{
			Name: name, Version: next[name], Resource: &anypb.Any{TypeUrl: out.TypeUrl, Value: b},
		})
		returned[name] = next[name]
	}
	out.SystemVersionInfo = raw.GetResponseVersion()
	if len(out.RemovedResources) < len(removed) || len(out.Resources) < len(names) {
		out.SystemVersionInfo = xdsapi.MarkPartial(out.SystemVersionInfo)
	}
	return &cache.DeltaPassthroughResponse{DeltaRequest: raw.GetDeltaRequest(), NextVersionMap: returned, DeltaDiscoveryResponse: out}
}
