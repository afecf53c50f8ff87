// Package xdsclient is the proxy's incremental (delta) ADS client: it subscribes to every
// resource of a set of type URLs on one DeltaAggregatedResources stream, validates each resource
// of a response, applies the valid ones and ACKs, or NACKs naming the invalid ones (which keep
// their previous state: one bad resource does not hold back the others), and keeps serving its
// last good state while the control plane is away. On reconnect it sends the versions it holds,
// so the server sends only what changed.
//
// A large state arrives in several bounded responses, each but the last marked partial
// (xdsapi.PartialSuffix); a type counts as synced once its last one is handled.
package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/ragplane/ragplane/internal/xdsapi"
)

// Connection settings.
const (
	// keepaliveTime is how often an idle connection is pinged; the control plane allows 15 s.
	keepaliveTime = 30 * time.Second
	// keepaliveTimeout is how long a ping may go unanswered before the connection is dropped.
	keepaliveTimeout = 5 * time.Second
	// defaultMinBackoff and defaultMaxBackoff bound the wait between reconnection attempts.
	defaultMinBackoff = 100 * time.Millisecond
	defaultMaxBackoff = 5 * time.Second
	// wildcard subscribes to every resource of a type (explicitly, not the legacy empty list).
	wildcard = "*"
)

// Config configures a Client. Zero fields get defaults where they have one.
type Config struct {
	// Addr is the control plane's xDS address, host:port. Required.
	Addr string
	// NodeID identifies this proxy to the control plane. Required.
	NodeID string
	// Cluster is the node's cluster (the proxy's deployment name); optional.
	Cluster string
	// TypeURLs are the resource types to subscribe to, every resource of each. Required.
	TypeURLs []string
	// Logger receives the client's logs; nil discards them. The client adds no component
	// attribute: the caller names it (the proxy passes component=proxy.xdsclient).
	Logger *slog.Logger
	// Validate checks one resource of a response; nil accepts everything of the right type. A
	// response is applied only when every resource in it passes; otherwise it is NACKed with the
	// error and the type keeps its previous state.
	Validate func(typeURL string, res *anypb.Any) error
	// DialOptions are added after the defaults (insecure credentials, keepalive, connect
	// backoff), so a grpc.WithTransportCredentials here turns TLS on.
	DialOptions []grpc.DialOption
	// MinBackoff and MaxBackoff bound the exponential wait between reconnections (default
	// 100 ms and 5 s).
	MinBackoff, MaxBackoff time.Duration
	// Decode, if set, replaces Validate: it checks one resource and returns its decoded form,
	// which Apply receives, so that a resource is decoded once.
	Decode func(typeURL string, res *anypb.Any) (any, error)
	// Apply, if set, receives the accepted resources of each response (decoded by Decode, else
	// the *anypb.Any itself) by name, and the names removed. It runs on the receiving goroutine
	// before the response is ACKed and before the client records the response (Ready, Versions,
	// Status), so a caller that keeps its own state in step needs no snapshot of everything per
	// update, and holds that state whenever Ready is true.
	Apply func(typeURL string, updated map[string]any, removed []string)
	// OnResponse, if set, is called after each response is handled, for metrics and debugging.
	// It runs on the receiving goroutine and must not block.
	OnResponse func(Response)
}

// Response describes a handled response.
type Response struct {
	// TypeURL, Nonce and SystemVersion are the response's.
	TypeURL       string
	Nonce         string
	SystemVersion string
	// Updated names the resources added or changed, Removed the names removed.
	Updated []string
	Removed []string
	// Rejected names the resources that failed validation and were not applied.
	Rejected []string
	// Partial reports that more responses of the type follow (xdsapi.PartialSuffix).
	Partial bool
	// Err is the reason the response was NACKed; nil if it was applied whole.
	Err error
}

// TypeStatus is the client's view of one subscribed type.
type TypeStatus struct {
	// Synced reports that the type's whole state has arrived at least once (since New).
	Synced bool
	// Syncing reports that a state split over several responses is arriving now.
	Syncing bool
	// Rejected maps the names of resources whose latest version was rejected to the reason; they
	// keep their previous version (or are absent) until a valid one arrives.
	Rejected map[string]string
}

// Status is the client's view of its subscription.
type Status struct {
	// Connected reports whether a stream is open now.
	Connected bool
	// StreamError is why the last stream ended (empty while the first is open); StreamErrorAt when.
	StreamError   string
	StreamErrorAt time.Time
	// Types holds the state of each subscribed type, by type URL.
	Types map[string]TypeStatus
}

type entry struct {
	version string
	res     *anypb.Any
}

// Client is a delta ADS client. Its state outlives connections.
type Client struct {
	cfg     Config
	log     *slog.Logger
	updates chan string

	mu         sync.RWMutex
	state      map[string]map[string]entry  // by type URL, then name
	synced     map[string]bool              // types whose whole state has arrived
	syncing    map[string]bool              // types between a partial response and the last one
	rejected   map[string]map[string]string // by type URL, then name: why its latest version was refused
	connected  bool
	lastUpdate time.Time
	streamErr  string
	streamAt   time.Time
}

// New returns a client; Run connects it.
func New(cfg Config) *Client {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = defaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = defaultMaxBackoff
	}
	cfg.TypeURLs = slices.Clone(cfg.TypeURLs)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{
		cfg:      cfg,
		log:      log,
		updates:  make(chan string, 4*len(cfg.TypeURLs)+1),
		state:    map[string]map[string]entry{},
		synced:   map[string]bool{},
		syncing:  map[string]bool{},
		rejected: map[string]map[string]string{},
	}
	for _, t := range cfg.TypeURLs {
		c.state[t] = map[string]entry{}
		c.rejected[t] = map[string]string{}
	}
	return c
}

// Run keeps a stream to the control plane open until ctx is done, reconnecting with exponential
// backoff, and returns nil then. It fails at once only on a configuration error.
func (c *Client) Run(ctx context.Context) error {
	if c.cfg.Addr == "" || c.cfg.NodeID == "" || len(c.cfg.TypeURLs) == 0 {
		return errors.New("xdsclient: Addr, NodeID and TypeURLs are required")
	}
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: keepaliveTimeout, PermitWithoutStream: true}),
		// gRPC's own reconnection backoff grows to 2 minutes by default; keep it within ours.
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: grpcbackoff.Config{
			BaseDelay: c.cfg.MinBackoff, Multiplier: 1.6, Jitter: 0.2, MaxDelay: c.cfg.MaxBackoff,
		}, MinConnectTimeout: 5 * time.Second}),
		// The contract's limits, not gRPC's 4 MiB default: responses are bounded by the server,
		// and the first request after a reconnect lists every resource held.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(xdsapi.MaxMessageBytes), grpc.MaxCallSendMsgSize(xdsapi.MaxMessageBytes)),
	}, c.cfg.DialOptions...)
	conn, err := grpc.NewClient(c.cfg.Addr, opts...)
	if err != nil {
		return fmt.Errorf("xdsclient: %w", err)
	}
	defer conn.Close()
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(conn)

	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.RandomizationFactor = c.cfg.MinBackoff, c.cfg.MaxBackoff, 0.2
	b.Reset()
	for {
		progressed, err := c.stream(ctx, ads)
		if ctx.Err() != nil {
			return nil
		}
		if progressed {
			b.Reset()
		}
		wait := min(b.NextBackOff(), c.cfg.MaxBackoff) // jitter must not pass the cap
		c.setStreamError(err)
		if status.Code(err) == codes.ResourceExhausted {
			// A message over a size limit fails every retry the same way: say so loudly.
			c.log.Error("xDS stream failed: message over the size limit; configuration is stale", "addr", c.cfg.Addr, "error", err, "retry_in", wait)
		} else {
			c.log.Warn("xDS stream ended", "addr", c.cfg.Addr, "error", err, "retry_in", wait)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// stream runs one DeltaAggregatedResources stream until it fails. progressed reports whether a
// response arrived, which resets the backoff.
func (c *Client) stream(ctx context.Context, ads discoveryv3.AggregatedDiscoveryServiceClient) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := ads.DeltaAggregatedResources(ctx)
	if err != nil {
		return false, err
	}
	node := &corev3.Node{Id: c.cfg.NodeID, Cluster: c.cfg.Cluster}
	for _, t := range c.cfg.TypeURLs {
		// initial_resource_versions lets the server skip what this client already holds.
		req := &discoveryv3.DeltaDiscoveryRequest{
			Node:                    node,
			TypeUrl:                 t,
			ResourceNamesSubscribe:  []string{wildcard},
			InitialResourceVersions: c.versions(t),
		}
		if err := st.Send(req); err != nil {
			return false, err
		}
	}
	c.setConnected(true)
	defer c.setConnected(false)
	c.log.Info("xDS stream open", "addr", c.cfg.Addr)
	for {
		resp, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("closed by the server")
			}
			return progressed, err
		}
		progressed = true
		if err := st.Send(c.handle(resp)); err != nil {
			return progressed, err
		}
	}
}

// handle validates and applies one response and returns its ACK or NACK.
func (c *Client) handle(resp *discoveryv3.DeltaDiscoveryResponse) *discoveryv3.DeltaDiscoveryRequest {
	t := resp.GetTypeUrl()
	out := Response{TypeURL: t, Nonce: resp.GetNonce(), SystemVersion: resp.GetSystemVersionInfo(), Removed: resp.GetRemovedResources(),
		Partial: xdsapi.IsPartial(resp.GetSystemVersionInfo())}
	for _, r := range resp.GetResources() {
		out.Updated = append(out.Updated, r.GetName())
	}
	reply := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}
	if !slices.Contains(c.cfg.TypeURLs, t) {
		out.Err = fmt.Errorf("type %s is not subscribed", t)
	} else {
		accepted, decoded, rejected := c.validate(resp)
		for _, r := range rejected {
			out.Rejected = append(out.Rejected, r.name)
		}
		if len(rejected) > 0 {
			out.Err = rejectionError(rejected)
		}
		// The caller's state first, then the client's own: Ready turns true only once the
		// caller holds the configuration it reports (a proxy ready before it held the keys or
		// policies of its first sync answered valid tokens 401).
		if c.cfg.Apply != nil {
			c.cfg.Apply(t, decoded, resp.GetRemovedResources())
		}
		c.apply(resp, accepted, rejected, out.Partial)
		c.log.Debug("configuration applied", "type", t, "version", out.SystemVersion,
			"updated", len(accepted), "removed", len(out.Removed), "rejected", len(rejected), "partial", out.Partial)
		select {
		case c.updates <- t:
		default: // the reader is behind; it will see the latest state when it catches up
		}
	}
	if out.Err != nil {
		reply.ErrorDetail = &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: out.Err.Error()}
		c.log.Warn("configuration rejected", "type", t, "version", out.SystemVersion, "error", out.Err)
	}
	if c.cfg.OnResponse != nil {
		c.cfg.OnResponse(out)
	}
	return reply
}

// rejection is one resource that failed validation.
type rejection struct {
	name string
	err  error
}

// rejectionError summarises the rejected resources of a response for the NACK: the first few
// in full, so the control plane's view of the proxy says which and why.
func rejectionError(rs []rejection) error {
	const shown = 5
	var b strings.Builder
	for i, r := range rs {
		if i == shown {
			fmt.Fprintf(&b, "; and %d more", len(rs)-shown)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "resource %q: %v", r.name, r.err)
	}
	return errors.New(b.String())
}

// validate checks every resource of a response and returns the valid ones (with their decoded
// form for Apply) and the rejected ones.
func (c *Client) validate(resp *discoveryv3.DeltaDiscoveryResponse) ([]*discoveryv3.Resource, map[string]any, []rejection) {
	t := resp.GetTypeUrl()
	accepted := make([]*discoveryv3.Resource, 0, len(resp.GetResources()))
	decoded := make(map[string]any, len(resp.GetResources()))
	var rejected []rejection
	for _, r := range resp.GetResources() {
		var err error
		var v any = r.GetResource()
		switch {
		case r.GetName() == "":
			err = errors.New("resource without a name")
		case r.GetResource() == nil:
			err = errors.New("no body")
		case r.GetResource().GetTypeUrl() != t:
			err = fmt.Errorf("is a %s", r.GetResource().GetTypeUrl())
		case c.cfg.Decode != nil:
			v, err = c.cfg.Decode(t, r.GetResource())
		case c.cfg.Validate != nil:
			err = c.cfg.Validate(t, r.GetResource())
		}
		if err != nil {
			rejected = append(rejected, rejection{r.GetName(), err})
			continue
		}
		accepted = append(accepted, r)
		decoded[r.GetName()] = v
	}
	return accepted, decoded, rejected
}

func (c *Client) apply(resp *discoveryv3.DeltaDiscoveryResponse, accepted []*discoveryv3.Resource, rejected []rejection, partial bool) {
	t := resp.GetTypeUrl()
	c.mu.Lock()
	defer c.mu.Unlock()
	s, bad := c.state[t], c.rejected[t]
	for _, r := range accepted {
		s[r.GetName()] = entry{version: r.GetVersion(), res: r.GetResource()}
		delete(bad, r.GetName())
	}
	for _, r := range rejected {
		bad[r.name] = r.err.Error()
	}
	for _, name := range resp.GetRemovedResources() {
		delete(s, name)
		delete(bad, name)
	}
	c.syncing[t] = partial
	if !partial {
		c.synced[t] = true
	}
	c.lastUpdate = time.Now()
}

func (c *Client) versions(typeURL string) map[string]string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make(map[string]string, len(c.state[typeURL]))
	for name, e := range c.state[typeURL] {
		out[name] = e.version
	}
	return out
}

func (c *Client) setConnected(v bool) {
	c.mu.Lock()
	c.connected = v
	if !v {
		// A split state stops arriving with its stream; the next stream starts it again.
		clear(c.syncing)
	}
	c.mu.Unlock()
}

// Snapshot returns the current resources of a type by name: a new map the caller may keep. The
// resources themselves are shared and must not be modified.
func (c *Client) Snapshot(typeURL string) map[string]*anypb.Any {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make(map[string]*anypb.Any, len(c.state[typeURL]))
	for name, e := range c.state[typeURL] {
		out[name] = e.res
	}
	return out
}

// Versions returns the version of each resource of a type, by name.
func (c *Client) Versions(typeURL string) map[string]string { return c.versions(typeURL) }

// Ready reports whether the whole state of every subscribed type has arrived at least once
// (since New, across connections), that is, whether the proxy has a complete configuration to
// serve with. A type whose state comes in several responses is not ready before the last one.
func (c *Client) Ready() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.synced) == len(c.cfg.TypeURLs)
}

// Status returns the client's view of its subscription: connection, last stream error, and per
// type whether it is synced and which resources were rejected.
func (c *Client) Status() Status {
	c.mu.RLock()
	defer c.mu.RUnlock()
	st := Status{Connected: c.connected, StreamError: c.streamErr, StreamErrorAt: c.streamAt, Types: map[string]TypeStatus{}}
	for _, t := range c.cfg.TypeURLs {
		ts := TypeStatus{Synced: c.synced[t], Syncing: c.syncing[t]}
		if len(c.rejected[t]) > 0 {
			ts.Rejected = maps.Clone(c.rejected[t])
		}
		st.Types[t] = ts
	}
	return st
}

func (c *Client) setStreamError(err error) {
	c.mu.Lock()
	c.streamErr, c.streamAt = err.Error(), time.Now()
	c.mu.Unlock()
}

// Updates delivers the type URL of each applied response. Sends never block: when the reader is
// behind, notifications are dropped, so readers should read the latest Snapshot on each one.
func (c *Client) Updates() <-chan string { return c.updates }

// LastUpdate is when a response was last applied; zero before the first.
func (c *Client) LastUpdate() time.Time {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.lastUpdate
}

// Connected reports whether a stream to the control plane is open now.
func (c *Client) Connected() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.connected
}
