// Package xdsclient is the proxy's incremental (delta) ADS client: it subscribes to every
// resource of a set of type URLs on one DeltaAggregatedResources stream, validates each response
// before applying it (ACK) or rejecting it whole (NACK, keeping the previous state of that type),
// and keeps serving its last good state while the control plane is away. On reconnect it sends the
// versions it holds, so the server sends only what changed.
package xdsclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
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
	"google.golang.org/protobuf/types/known/anypb"
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
	// Logger receives the client's logs; nil discards them.
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
	// Err is the reason the response was NACKed; nil if it was applied.
	Err error
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
	state      map[string]map[string]entry // by type URL, then name
	received   map[string]bool             // types that have had a response
	connected  bool
	lastUpdate time.Time
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
		log:      log.With("component", "xdsclient"),
		updates:  make(chan string, 4*len(cfg.TypeURLs)+1),
		state:    map[string]map[string]entry{},
		received: map[string]bool{},
	}
	for _, t := range cfg.TypeURLs {
		c.state[t] = map[string]entry{}
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
		c.log.Warn("xDS stream ended", "addr", c.cfg.Addr, "error", err, "retry_in", wait)
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
	out := Response{TypeURL: t, Nonce: resp.GetNonce(), SystemVersion: resp.GetSystemVersionInfo(), Removed: resp.GetRemovedResources()}
	for _, r := range resp.GetResources() {
		out.Updated = append(out.Updated, r.GetName())
	}
	out.Err = c.validate(resp)
	reply := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}
	if out.Err != nil {
		reply.ErrorDetail = &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: out.Err.Error()}
		c.log.Warn("configuration rejected", "type", t, "version", out.SystemVersion, "error", out.Err)
	} else {
		c.apply(resp)
		c.log.Debug("configuration applied", "type", t, "version", out.SystemVersion,
			"updated", len(out.Updated), "removed", len(out.Removed))
		select {
		case c.updates <- t:
		default: // the reader is behind; it will see the latest state when it catches up
		}
	}
	if c.cfg.OnResponse != nil {
		c.cfg.OnResponse(out)
	}
	return reply
}

// validate checks every resource of a response; the first failure rejects the whole response.
func (c *Client) validate(resp *discoveryv3.DeltaDiscoveryResponse) error {
	t := resp.GetTypeUrl()
	if !slices.Contains(c.cfg.TypeURLs, t) {
		return fmt.Errorf("type %s is not subscribed", t)
	}
	for _, r := range resp.GetResources() {
		switch {
		case r.GetName() == "":
			return errors.New("resource without a name")
		case r.GetResource() == nil:
			return fmt.Errorf("resource %q has no body", r.GetName())
		case r.GetResource().GetTypeUrl() != t:
			return fmt.Errorf("resource %q is a %s", r.GetName(), r.GetResource().GetTypeUrl())
		}
		if c.cfg.Validate != nil {
			if err := c.cfg.Validate(t, r.GetResource()); err != nil {
				return fmt.Errorf("resource %q: %w", r.GetName(), err)
			}
		}
	}
	return nil
}

func (c *Client) apply(resp *discoveryv3.DeltaDiscoveryResponse) {
	t := resp.GetTypeUrl()
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.state[t]
	for _, r := range resp.GetResources() {
		s[r.GetName()] = entry{version: r.GetVersion(), res: r.GetResource()}
	}
	for _, name := range resp.GetRemovedResources() {
		delete(s, name)
	}
	c.received[t] = true
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

// Ready reports whether every subscribed type has been applied at least once (since New, across
// connections), that is, whether the proxy has a configuration to serve with. A type whose first
// response was NACKed keeps the client not ready until a valid response arrives.
func (c *Client) Ready() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.received) == len(c.cfg.TypeURLs)
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
