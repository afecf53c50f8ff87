package xds

import (
	"cmp"
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

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/internal/xdsapi"
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
	// PolicyResponseBytes bounds the tenant policies of one delta response (default
	// xdsapi.MaxPolicyResponseBytes): a smaller bound lowers the memory a sync takes on both ends
	// and costs more round trips.
	PolicyResponseBytes int
}

// Server serves the translated resources over xDS: one LinearCache per type URL behind a
// MuxCache, served by go-control-plane on ADS (incremental and state of the world) and on the
// per-type CDS, EDS and RLS-config services.
//
// Delta responses are bounded (boundedCache): a type's state larger than
// xdsapi.MaxResponseResourceBytes (tenant policies: Config.PolicyResponseBytes) goes out in
// several responses, each but the last marked partial.
//
// One exception: state-of-the-world requests for rate-limit configs go to a snapshot cache. A
// LinearCache answers those with the changed resources only, but envoyproxy/ratelimit replaces its
// whole configuration with each response, so it must receive every tenant's config every time.
// That snapshot is built lazily (lazyRateLimits), only while such a subscriber exists.
type Server struct {
	log     *slog.Logger
	metrics *metrics
	tracker *tracker
	caches  map[string]*cache.LinearCache
	rlsSotW *lazyRateLimits
	mux     *cache.MuxCache
	// prefix makes this instance's system versions distinct from a previous instance's.
	prefix string

	mu      sync.Mutex // serialises the updates
	current map[string]map[string]proto.Message
	// versions mirrors each LinearCache's version counter, which UpdateResources increments once
	// per call; only push calls it.
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
		s.caches[t] = c
		bound := xdsapi.MaxResponseResourceBytes
		if t == TypeTenantPolicy {
			bound = cmp.Or(cfg.PolicyResponseBytes, xdsapi.MaxPolicyResponseBytes)
		}
		caches[t] = &boundedCache{LinearCache: c, maxBytes: bound}
	}
	s.rlsSotW = newLazyRateLimits(cache.NewSnapshotCache(false, sameForAllNodes{}, gcpLogger(log)), s.rateLimitState, log, m)
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
//
// Update translates and compares every tenant: it is for the first load (and tests). Later
// changes go through UpdateTenants, UpdateEndpoints and UpdateJWTProvider, whose cost follows the
// size of the change.
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
	// Update may run again with the same input; a bad row is logged when it appears, not every time.
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
		s.push(t, changed, removed, now)
		s.current[t] = res.Types[t]
	}
	s.rlsSotW.changed(s.tracker.sotwStreams() > 0)
	s.readyOnce.Do(func() { close(s.ready) })
	return nil
}

// UpdateTenants pushes the policies and rate limits of the given tenants (added or changed; a
// policy with status deleted removes its tenant) and removes the tenants named in removed. Only
// these tenants are translated and compared, so the cost follows the size of the change, not
// the tenant count. A tenant that cannot be translated is logged and removed: one bad row must
// not hold back the others. Safe for concurrent use.
func (s *Server) UpdateTenants(upserted []ragplane.TenantPolicy, removed []ragplane.TenantID) error {
	res := Resources{Types: map[string]map[string]proto.Message{TypeTenantPolicy: {}, TypeRateLimit: {}}}
	var gone []string
	for _, id := range removed {
		gone = append(gone, string(id))
	}
	for _, p := range upserted {
		if p.Status == ragplane.StatusDeleted {
			gone = append(gone, string(p.TenantID))
			continue
		}
		policy, limit, err := makeTenant(p)
		if err != nil {
			s.log.Warn("input skipped", "reason", err.Error())
			gone = append(gone, string(p.TenantID))
			continue
		}
		res.Types[TypeTenantPolicy][string(p.TenantID)] = policy
		res.Types[TypeRateLimit][RateLimitPrefix+string(p.TenantID)] = limit
	}
	if err := Check(res); err != nil {
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for _, t := range []string{TypeTenantPolicy, TypeRateLimit} {
		prefix := ""
		if t == TypeRateLimit {
			prefix = RateLimitPrefix
		}
		cur := s.current[t]
		if cur == nil {
			cur = map[string]proto.Message{}
			s.current[t] = cur
		}
		changed := map[string]types.Resource{}
		for name, msg := range res.Types[t] {
			if old, ok := cur[name]; !ok || !proto.Equal(old, msg) {
				changed[name] = msg
				cur[name] = msg
			}
		}
		var dropped []string
		for _, id := range gone {
			name := prefix + id
			if _, ok := res.Types[t][name]; ok {
				continue // removed and re-added in one batch: the upsert wins
			}
			if _, ok := cur[name]; ok {
				dropped = append(dropped, name)
				delete(cur, name)
			}
		}
		slices.Sort(dropped)
		s.push(t, changed, dropped, now)
	}
	s.rlsSotW.changed(s.tracker.sotwStreams() > 0)
	return nil
}

// UpdateEndpoints pushes the load assignment of the live workers, if it changed.
func (s *Server) UpdateEndpoints(workers []ragplane.Worker) error {
	cla, warnings := makeLoadAssignment(DataplaneCluster, workers)
	return s.updateOne(TypeEndpoint, DataplaneCluster, cla, warnings)
}

// UpdateJWTProvider pushes the token verification keys and claims, if they changed.
func (s *Server) UpdateJWTProvider(issuer, audience string, keys []JWK) error {
	if issuer == "" || audience == "" {
		return ragplane.Errorf(ragplane.EINVALID, "Token issuer and audience are required for the JWT provider.")
	}
	provider, warnings := makeJWTProvider(issuer, audience, keys)
	return s.updateOne(TypeJWTProvider, JWTProviderName, provider, warnings)
}

// updateOne replaces the one resource of a single-resource type.
func (s *Server) updateOne(typeURL, name string, msg proto.Message, warnings []string) error {
	if err := Check(Resources{Types: map[string]map[string]proto.Message{typeURL: {name: msg}}}); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range warnings {
		if !s.warned[w] {
			s.log.Warn("input skipped", "reason", w)
			s.warned[w] = true
		}
	}
	next := map[string]proto.Message{name: msg}
	changed, removed := diff(s.current[typeURL], next)
	s.push(typeURL, changed, removed, time.Now())
	s.current[typeURL] = next
	return nil
}

// push hands one type's changes to its LinearCache; s.mu must be held.
func (s *Server) push(t string, changed map[string]types.Resource, removed []string, now time.Time) {
	if len(changed) == 0 && len(removed) == 0 {
		return
	}
	// Record the version before pushing: the cache sends to watches inside UpdateResources, so
	// an ACK may arrive before it returns.
	s.versions[t]++
	s.tracker.recordVersion(t, s.version(t), now)
	if err := s.caches[t].UpdateResources(changed, removed); err != nil {
		// The cache holds the new resources even when notifying a watch failed.
		s.log.Error("notify watches", "type", typeLabel(t), "error", err)
	}
	s.log.Debug("resources updated", "type", typeLabel(t), "version", s.version(t),
		"changed", len(changed), "removed", len(removed))
}

// version is the LinearCache's current version of a type; s.mu must be held.
func (s *Server) version(typeURL string) string {
	return s.prefix + strconv.FormatUint(s.versions[typeURL], 10)
}

// rateLimitState returns every rate-limit config by name and their version, for the
// state-of-the-world snapshot. The map is a copy.
func (s *Server) rateLimitState() (string, map[string]proto.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version(TypeRateLimit), maps.Clone(s.current[TypeRateLimit])
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
		// Responses stay near xdsapi.MaxResponseResourceBytes; a reconnecting proxy's first
		// request lists every resource it holds, hence the larger shared limit.
		grpc.MaxRecvMsgSize(xdsapi.MaxMessageBytes),
		grpc.MaxSendMsgSize(xdsapi.MaxMessageBytes),
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
