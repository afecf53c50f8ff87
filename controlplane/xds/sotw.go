package xds

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"

	"github.com/ragplane/ragplane/internal/xdsapi"
)

// sotwDebounce lets a burst of tenant changes settle into one state-of-the-world rebuild.
const sotwDebounce = 200 * time.Millisecond

// lazyRateLimits serves state-of-the-world rate-limit subscribers (envoyproxy/ratelimit) from a
// snapshot of every tenant's RateLimitConfig. Rebuilding that snapshot costs time and memory in
// proportion to the tenant count, so it is never rebuilt on a change by itself: a change marks it
// stale; it is rebuilt when a subscriber asks (CreateWatch, Fetch) or, while state-of-the-world
// streams are open, once per sotwDebounce. A control plane serving only Ragplane proxies (delta)
// never builds it. A snapshot over xdsapi.MaxStateOfTheWorldBytes is not served (it would fail
// every subscriber's stream): the previous one stays, and the failure is logged and counted.
type lazyRateLimits struct {
	cache.SnapshotCache
	state   func() (string, map[string]proto.Message)
	log     *slog.Logger
	metrics *metrics

	stale   atomic.Bool
	buildMu sync.Mutex // serialises rebuilds; never held while taking the server's lock first
	timerMu sync.Mutex
	timer   *time.Timer
}

func newLazyRateLimits(c cache.SnapshotCache, state func() (string, map[string]proto.Message), log *slog.Logger, m *metrics) *lazyRateLimits {
	l := &lazyRateLimits{SnapshotCache: c, state: state, log: log, metrics: m}
	l.stale.Store(true) // even an empty first state must reach the first subscriber
	return l
}

// CreateWatch serves from a current snapshot.
func (l *lazyRateLimits) CreateWatch(req *cache.Request, sub cache.Subscription, out chan cache.Response) (func(), error) {
	l.refresh()
	return l.SnapshotCache.CreateWatch(req, sub, out)
}

// Fetch serves from a current snapshot.
func (l *lazyRateLimits) Fetch(ctx context.Context, req *cache.Request) (cache.Response, error) {
	l.refresh()
	return l.SnapshotCache.Fetch(ctx, req)
}

// changed marks the snapshot stale and, when state-of-the-world streams are open, schedules a
// rebuild. It may be called with the server's lock held.
func (l *lazyRateLimits) changed(subscribers bool) {
	l.stale.Store(true)
	if !subscribers {
		return
	}
	l.timerMu.Lock()
	defer l.timerMu.Unlock()
	if l.timer == nil {
		l.timer = time.AfterFunc(sotwDebounce, func() {
			l.timerMu.Lock()
			l.timer = nil
			l.timerMu.Unlock()
			l.refresh()
		})
	}
}

// refresh rebuilds the snapshot if it is stale.
func (l *lazyRateLimits) refresh() {
	l.buildMu.Lock()
	defer l.buildMu.Unlock()
	if !l.stale.Swap(false) {
		return
	}
	version, byName := l.state()
	all := make([]types.Resource, 0, len(byName))
	size := 0
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		all = append(all, byName[name])
		size += proto.Size(byName[name]) + 8
	}
	if size > xdsapi.MaxStateOfTheWorldBytes {
		l.metrics.sotwOversize.Inc()
		l.log.Error("rate-limit configs too large for one state-of-the-world response; subscribers keep the previous one",
			"version", version, "bytes", size, "limit", xdsapi.MaxStateOfTheWorldBytes, "configs", len(all))
		return
	}
	snap, err := cache.NewSnapshot(version, map[string][]types.Resource{TypeRateLimit: all})
	if err == nil {
		err = l.SnapshotCache.SetSnapshot(context.Background(), "", snap)
	}
	if err != nil {
		l.log.Error("set rate limit snapshot", "version", version, "error", err)
	}
}
