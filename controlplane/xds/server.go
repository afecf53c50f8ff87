package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	gcplog "github.com/envoyproxy/go-control-plane/pkg/log"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	rlsconfigservice "github.com/envoyproxy/go-control-plane/ratelimit/service/ratelimit/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"
)

// gRPC settings, after go-control-plane's example server. Proxies keep one ADS stream open for
// their lifetime, so keepalives are what detect a peer that vanished without closing it.
const (
	// grpcKeepaliveTime is how long a connection may be idle before the server pings it.
	grpcKeepaliveTime = 30 * time.Second
	// grpcKeepaliveTimeout is how long the server waits for the ping's answer before closing.
	grpcKeepaliveTimeout = 5 * time.Second
	// grpcKeepaliveMinTime is the most often a client may ping; the proxy pings every 30 s.
	grpcKeepaliveMinTime = 15 * time.Second
	// grpcMaxConcurrentStreams is per connection; a proxy uses one, a non-ADS client one per type.
	grpcMaxConcurrentStreams = 1000
	// shutdownGrace bounds the graceful stop before open connections are cut.
	shutdownGrace = 5 * time.Second
)

// Config configures a Server. Zero fields get defaults.
type Config struct {
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// Registerer registers the server's metrics; nil leaves them unregistered.
	Registerer prometheus.Registerer
}

// Server serves the translated resources over xDS: one LinearCache per type URL behind a
// MuxCache, served by go-control-plane on ADS (incremental and state of the world) and on the
// per-type CDS, EDS and RLS-config services.
//
// One exception: state-of-the-world requests for rate-limit configs go to a snapshot cache. A
// LinearCache answers those with the changed resources only, but envoyproxy/ratelimit replaces its
// whole configuration with each response, so it must receive every tenant's config every time.
type Server struct {
	log     *slog.Logger
	metrics *metrics
	tracker *tracker
	caches  map[string]*cache.LinearCache
	rlsSotW cache.SnapshotCache
	mux     *cache.MuxCache
	// prefix makes this instance's system versions distinct from a previous instance's.
	prefix string

	mu      sync.Mutex // serialises Update
	current map[string]map[string]proto.Message
	// versions mirrors each LinearCache's version counter, which UpdateResources increments once
	// per call; only Update calls it.
	versions map[string]uint64
	warned   map[string]bool // the last Update's warnings

	ready     chan struct{} // closed by the first successful Update
	readyOnce sync.Once
}

// New returns a server with empty caches. Call Update before (or while) Serve waits for it.
func New(cfg Config) *Server {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "xds")
	m := newMetrics(cfg.Registerer)
	s := &Server{
		log:      log,
		metrics:  m,
		tracker:  newTracker(log, m),
		caches:   map[string]*cache.LinearCache{},
		prefix:   strconv.FormatInt(time.Now().UnixMilli(), 36) + ".",
		current:  map[string]map[string]proto.Message{},
		versions: map[string]uint64{},
		ready:    make(chan struct{}),
	}
	caches := map[string]cache.Cache{}
	for _, t := range typeOrder {
		c := cache.NewLinearCache(t, cache.WithVersionPrefix(s.prefix), cache.WithLogger(gcpLogger(log)))
		s.caches[t], caches[t] = c, c
	}
	s.rlsSotW = cache.NewSnapshotCache(false, sameForAllNodes{}, gcpLogger(log))
	caches[sotwRateLimitKey] = s.rlsSotW
	s.mux = &cache.MuxCache{
		Classify: func(r *cache.Request) string {
			if r.GetTypeUrl() == TypeRateLimit {
				return sotwRateLimitKey
			}
			return r.GetTypeUrl()
		},
		ClassifyDelta: func(r *cache.DeltaRequest) string { return r.GetTypeUrl() },
		Caches:        caches,
	}
	return s
}

// sotwRateLimitKey is the MuxCache key of the state-of-the-world rate-limit snapshot cache.
const sotwRateLimitKey = "sotw/" + TypeRateLimit

// sameForAllNodes serves one snapshot to every node: the configuration is not per proxy.
type sameForAllNodes struct{}

func (sameForAllNodes) ID(*corev3.Node) string { return "" }

// Update translates in, checks the result and pushes only the differences: per type, the
// resources added or changed (by proto.Equal) and the names removed, in one UpdateResources call.
// A change to one tenant therefore sends that tenant's policy and rate limit, nothing else, to
// delta subscribers. On error nothing is pushed. Safe for concurrent use; updates are serialised.
func (s *Server) Update(in Input) error {
	res, err := Translate(in)
	if err != nil {
		return err
	}
	if err := Check(res); err != nil {
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// Update runs on every catalog poll; a bad row is logged when it appears, not every time.
	warned := map[string]bool{}
	for _, w := range res.Warnings {
		if !s.warned[w] {
			s.log.Warn("input skipped", "reason", w)
		}
		warned[w] = true
	}
	s.warned = warned
	now := time.Now()
	for _, t := range typeOrder {
		changed, removed := diff(s.current[t], res.Types[t])
		first := s.current[t] == nil
		if len(changed) == 0 && len(removed) == 0 && !first {
			continue
		}
		if len(changed) > 0 || len(removed) > 0 {
			// Record the version before pushing: the cache sends to watches inside
			// UpdateResources, so an ACK may arrive before it returns.
			s.versions[t]++
			s.tracker.recordVersion(t, s.version(t), now)
			if err := s.caches[t].UpdateResources(changed, removed); err != nil {
				// The cache holds the new resources even when notifying a watch failed.
				s.log.Error("notify watches", "type", typeLabel(t), "error", err)
			}
		}
		// The snapshot is set even when the first Update has no tenants, so that
		// state-of-the-world subscribers get their (empty) first response.
		if t == TypeRateLimit {
			if err := s.setRateLimitSnapshot(s.version(t), res.Types[t]); err != nil {
				s.log.Error("set rate limit snapshot", "version", s.version(t), "error", err)
			}
		}
		s.current[t] = res.Types[t]
		s.log.Debug("resources updated", "type", typeLabel(t), "version", s.version(t),
			"changed", len(changed), "removed", len(removed))
	}
	s.readyOnce.Do(func() { close(s.ready) })
	return nil
}

// version is the LinearCache's current version of a type; s.mu must be held.
func (s *Server) version(typeURL string) string {
	return s.prefix + strconv.FormatUint(s.versions[typeURL], 10)
}

// setRateLimitSnapshot gives state-of-the-world subscribers every rate-limit config, under the
// LinearCache's version so that both report the same version for the same content.
func (s *Server) setRateLimitSnapshot(version string, byName map[string]proto.Message) error {
	all := make([]types.Resource, 0, len(byName))
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		all = append(all, byName[name])
	}
	snap, err := cache.NewSnapshot(version, map[string][]types.Resource{TypeRateLimit: all})
	if err != nil {
		return err
	}
	return s.rlsSotW.SetSnapshot(context.Background(), "", snap)
}

// diff returns the resources of next that are new or differ from prev, and the names of prev
// that next lacks.
func diff(prev, next map[string]proto.Message) (map[string]types.Resource, []string) {
	changed := map[string]types.Resource{}
	for name, msg := range next {
		if old, ok := prev[name]; !ok || !proto.Equal(old, msg) {
			changed[name] = msg
		}
	}
	var removed []string
	for name := range prev {
		if _, ok := next[name]; !ok {
			removed = append(removed, name)
		}
	}
	slices.Sort(removed)
	return changed, removed
}

// Proxies returns the status of every open stream, by node id.
func (s *Server) Proxies() []ProxyStatus { return s.tracker.proxies() }

// Serve serves xDS on lis until ctx is done, then stops gracefully (cutting connections after
// shutdownGrace) and returns nil. It starts answering only after the first successful Update, so
// no proxy is ever handed an empty configuration by a control plane that has not read the catalog
// yet; proxies keep their last configuration meanwhile. Serve closes lis.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	select {
	case <-s.ready:
	case <-ctx.Done():
		lis.Close()
		return nil
	}

	// go-control-plane ends every stream handler when this ctx is done, so GracefulStop does not
	// wait for the proxies to hang up.
	xds := serverv3.NewServer(ctx, s.mux, s.tracker.callbacks())
	g := grpc.NewServer(
		grpc.MaxConcurrentStreams(grpcMaxConcurrentStreams),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: grpcKeepaliveTime, Timeout: grpcKeepaliveTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: grpcKeepaliveMinTime, PermitWithoutStream: true}),
	)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, xds)
	clusterservice.RegisterClusterDiscoveryServiceServer(g, xds)
	endpointservice.RegisterEndpointDiscoveryServiceServer(g, xds)
	rlsconfigservice.RegisterRateLimitConfigDiscoveryServiceServer(g, xds)

	errc := make(chan error, 1)
	go func() { errc <- g.Serve(lis) }()
	s.log.Info("serving xDS", "addr", lis.Addr().String())

	select {
	case err := <-errc:
		return fmt.Errorf("xds: serve: %w", err)
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() {
		g.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(shutdownGrace):
		g.Stop()
		<-stopped
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("xds: serve: %w", err)
	}
	s.log.Info("stopped serving xDS")
	return nil
}

// gcpLogger passes go-control-plane's warnings and errors to slog; its info and debug lines are
// per watch and would drown everything else.
func gcpLogger(log *slog.Logger) gcplog.Logger {
	return gcplog.LoggerFuncs{
		WarnFunc: func(format string, args ...any) {
			log.Warn("go-control-plane", "detail", fmt.Sprintf(format, args...))
		},
		ErrorFunc: func(format string, args ...any) {
			log.Error("go-control-plane", "detail", fmt.Sprintf(format, args...))
		},
	}
}
