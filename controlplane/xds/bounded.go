package xds

import (
	"maps"
	"slices"
	"strings"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"

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
	// The resources are marshaled once per cache entry (go-control-plane caches the bytes), so
	// building the full response to split it costs wrappers, not encoding.
	full, err := resp.GetDeltaDiscoveryResponse()
	if err != nil {
		return resp // the server fails the stream with the same error
	}
	size := 0
	for _, name := range full.GetRemovedResources() {
		size += len(name) + 3
	}
	for _, r := range full.GetResources() {
		if size > c.maxBytes {
			break
		}
		size += proto.Size(r) + 4
	}
	if size <= c.maxBytes {
		return resp
	}

	// Too big: send removals first (they are small and free memory), then resources in name
	// order, up to the budget and at least one item so that a sync always progresses.
	removed := slices.Sorted(slices.Values(full.GetRemovedResources()))
	resources := slices.SortedFunc(slices.Values(full.GetResources()), func(a, b *discoveryv3.Resource) int {
		return strings.Compare(a.GetName(), b.GetName())
	})
	returned := maps.Clone(sub.ReturnedResources())
	out := &discoveryv3.DeltaDiscoveryResponse{TypeUrl: full.GetTypeUrl()}
	budget := c.maxBytes
	for _, name := range removed {
		n := len(name) + 3
		if budget < n && len(out.RemovedResources) > 0 {
			break
		}
		budget -= n
		out.RemovedResources = append(out.RemovedResources, name)
		delete(returned, name)
	}
	for _, r := range resources {
		n := proto.Size(r) + 4
		if budget < n && (len(out.Resources) > 0 || len(out.RemovedResources) > 0) {
			break
		}
		budget -= n
		out.Resources = append(out.Resources, r)
		returned[r.GetName()] = r.GetVersion()
	}
	out.SystemVersionInfo = full.GetSystemVersionInfo()
	if len(out.RemovedResources) < len(removed) || len(out.Resources) < len(resources) {
		out.SystemVersionInfo = xdsapi.MarkPartial(out.SystemVersionInfo)
	}
	return &cache.DeltaPassthroughResponse{DeltaRequest: resp.GetDeltaRequest(), NextVersionMap: returned, DeltaDiscoveryResponse: out}
}
