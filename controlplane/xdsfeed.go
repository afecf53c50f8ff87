package controlplane

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/sync/errgroup"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/controlplane/xds"
)

// xDS feed timing.
const (
	// xdsBatchWindow lets a burst of catalog notifications (a plan edit reaching many tenants)
	// settle into one read and one push; short enough to stay invisible in propagation time.
	xdsBatchWindow = 5 * time.Millisecond
	// xdsSafetyInterval is how often the feed looks for changes a notification could have missed
	// (a dropped listener connection) and re-reads workers and keys, whose leases and publication
	// windows end with time rather than with a write. Its cost follows the changes since the
	// previous look, not the tenant count.
	xdsSafetyInterval = 5 * time.Second
	// xdsMaxIDsPerRead bounds a read by tenant id; a larger batch (a system default changed for
	// everyone) reads the changes since the last mark instead.
	xdsMaxIDsPerRead = 2000
	// xdsReadTimeout bounds one catalog read and push.
	xdsReadTimeout = 30 * time.Second
)

// xdsPending collects catalog notifications between two pushes.
type xdsPending struct {
	mu      sync.Mutex
	tenants map[ragplane.TenantID]struct{}
	workers bool
	keys    bool
	resync  bool // notifications may have been lost: read everything changed since the mark
	wake    chan struct{}
}

func (p *xdsPending) add(fn func(p *xdsPending)) {
	p.mu.Lock()
	fn(p)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// take returns and clears what is pending.
func (p *xdsPending) take() (tenants []ragplane.TenantID, workers, keys, resync bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range p.tenants {
		tenants = append(tenants, id)
	}
	clear(p.tenants)
	workers, keys, resync = p.workers, p.keys, p.resync
	p.workers, p.keys, p.resync = false, false, false
	return tenants, workers, keys, resync
}

// feedXDS keeps the xDS server in step with the catalog. It loads everything once; after that,
// it reads and pushes only what changed. Any replica's change reaches every replica through
// PostgreSQL notifications: a tenant's id (ragplane_tenants), a worker registration or removal
// (ragplane_workers), a signing-key change (ragplane_keys). Notifications are batched for
// xdsBatchWindow; the tenants named are read by id and pushed alone, so one change costs the same
// at 100 tenants as at 100,000. A periodic safety net reads the tenants changed since the last
// read (catalog.ChangeMark) and the small worker and key sets. Catalog failures are retried; it
// returns nil when ctx ends, or the listener's error if that cannot go on.
func (s *Server) feedXDS(ctx context.Context) error {
	var mark catalog.ChangeMark
	keys := newKeyPublication()
	for {
		// This replica counts among the key holders (holding nothing yet) before any of its
		// proxies gets a key set, so no pending key activates before they hold it.
		err := s.store.ReportKeyHolder(ctx, keys.replica, nil)
		if err == nil {
			if mark, err = s.loadXDS(ctx, keys); err == nil {
				break
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("xds initial load failed", "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	pending := &xdsPending{tenants: map[ragplane.TenantID]struct{}{}, wake: make(chan struct{}, 1)}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.listenCatalog(ctx, pending) })
	g.Go(func() error { s.pushXDS(ctx, mark, pending, keys); return nil })
	g.Go(func() error { s.publishKeys(ctx, keys); return nil })
	return g.Wait()
}

// pushXDS pushes, from mark on, what the notifications collected in pending name, until ctx ends.
func (s *Server) pushXDS(ctx context.Context, mark catalog.ChangeMark, pending *xdsPending, pub *keyPublication) {
	safety := time.NewTicker(xdsSafetyInterval)
	defer safety.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-safety.C:
			pending.add(func(p *xdsPending) { p.resync, p.workers, p.keys = true, true, true })
			continue // handled on the wake-up just queued
		case <-pending.wake:
			time.Sleep(xdsBatchWindow)
		}
		tenants, workers, keys, resync := pending.take()
		next, err := s.pushXDSChanges(ctx, mark, tenants, workers, keys, resync, pub)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("xds update failed", "error", err)
			// Try again on the next safety tick, from the same mark.
			pending.add(func(p *xdsPending) { p.resync, p.workers, p.keys = true, true, true })
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		mark = next
	}
}

// loadXDS reads the whole catalog state the proxies need and hands it to the xDS server.
func (s *Server) loadXDS(ctx context.Context, pub *keyPublication) (catalog.ChangeMark, error) {
	ctx, cancel := context.WithTimeout(ctx, xdsReadTimeout)
	defer cancel()
	all, mark, err := s.store.TenantPoliciesChangedSince(ctx, 0)
	if err != nil {
		return 0, err
	}
	live := make([]ragplane.TenantPolicy, 0, len(all))
	for _, p := range all {
		if p.Status != ragplane.StatusDeleted {
			live = append(live, p)
		}
	}
	workers, err := s.store.LiveWorkers(ctx)
	if err != nil {
		return 0, err
	}
	keys, signing, err := s.xdsKeys(ctx)
	if err != nil {
		return 0, err
	}
	if err := s.xds.Update(xds.Input{Policies: live, Workers: workers, Keys: keys,
		Issuer: s.cfg.Tokens.Issuer, Audience: s.cfg.Tokens.Audience}); err != nil {
		return 0, err
	}
	pub.pushed(s.xds.Version(xds.TypeJWTProvider), signing, time.Now())
	return mark, nil
}

// pushXDSChanges reads what the notifications named (or, on resync, every tenant changed since
// mark) and pushes it. It returns the next mark.
func (s *Server) pushXDSChanges(ctx context.Context, mark catalog.ChangeMark, tenants []ragplane.TenantID,
	workers, keys, resync bool, pub *keyPublication) (catalog.ChangeMark, error) {
	ctx, cancel := context.WithTimeout(ctx, xdsReadTimeout)
	defer cancel()
	switch {
	case resync || len(tenants) > xdsMaxIDsPerRead:
		changed, next, err := s.store.TenantPoliciesChangedSince(ctx, mark)
		if err != nil {
			return mark, err
		}
		if err := s.xds.UpdateTenants(changed, nil); err != nil {
			return mark, err
		}
		mark = next
	case len(tenants) > 0:
		found, err := s.store.TenantPoliciesByID(ctx, tenants)
		if err != nil {
			return mark, err
		}
		// A tenant notified but not found was removed from the catalog altogether.
		seen := make(map[ragplane.TenantID]bool, len(found))
		for _, p := range found {
			seen[p.TenantID] = true
		}
		var gone []ragplane.TenantID
		for _, id := range tenants {
			if !seen[id] {
				gone = append(gone, id)
			}
		}
		if err := s.xds.UpdateTenants(found, gone); err != nil {
			return mark, err
		}
	}
	if workers {
		ws, err := s.store.LiveWorkers(ctx)
		if err != nil {
			return mark, err
		}
		if err := s.xds.UpdateEndpoints(ws); err != nil {
			return mark, err
		}
	}
	if keys {
		ks, signing, err := s.xdsKeys(ctx)
		if err != nil {
			return mark, err
		}
		if err := s.xds.UpdateJWTProvider(s.cfg.Tokens.Issuer, s.cfg.Tokens.Audience, ks); err != nil {
			return mark, err
		}
		pub.pushed(s.xds.Version(xds.TypeJWTProvider), signing, time.Now())
	}
	return mark, nil
}

// xdsKeys reads the published verification keys fresh (another replica may have rotated or
// activated a key), pending ones included, and returns them with the signing keys they come from.
func (s *Server) xdsKeys(ctx context.Context) ([]xds.JWK, []catalog.SigningKey, error) {
	s.issuer.invalidate()
	signing, err := s.issuer.signingKeys(ctx)
	if err != nil {
		return nil, nil, err
	}
	jwks := publicJWKs(signing)
	keys := make([]xds.JWK, len(jwks))
	for i, k := range jwks {
		keys[i] = xds.JWK{Kty: k.Kty, Crv: k.Crv, X: k.X, Kid: k.Kid, Alg: k.Alg, Use: k.Use}
	}
	return keys, signing, nil
}

// listenCatalog turns catalog notifications into pending work until ctx ends. Notifications sent
// while no connection listened are lost, so every (re)connection asks for a resync.
func (s *Server) listenCatalog(ctx context.Context, pending *xdsPending) error {
	resync := func() { pending.add(func(p *xdsPending) { p.resync, p.workers, p.keys = true, true, true }) }
	return s.store.Listen(ctx, catalog.Listener{
		Channels: []string{catalog.ChannelTenants, catalog.ChannelWorkers, catalog.ChannelKeys},
		// Anything that changed before LISTEN took effect is caught by a resync.
		Listening: resync,
		Notify: func(channel, payload string) {
			pending.add(func(p *xdsPending) {
				switch channel {
				case catalog.ChannelTenants:
					p.tenants[ragplane.TenantID(payload)] = struct{}{}
				case catalog.ChannelWorkers:
					p.workers = true
				case catalog.ChannelKeys:
					p.keys = true
				}
			})
		},
		Interrupted: func(err error, retryIn time.Duration) {
			s.log.Warn("catalog notifications for xds interrupted", "error", err, "retry_in", retryIn)
			resync()
		},
	})
}

// serveXDS runs the xDS gRPC server on its listener until ctx ends; it returns an error only when
// serving failed before that.
func (s *Server) serveXDS(ctx context.Context, ln net.Listener) error {
	if err := s.xds.Serve(ctx, ln); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// listProxies answers GET /v1/proxies: the proxies connected to this replica, with the version
// each has ACKed per resource type, or the NACK and its error.
func (s *Server) listProxies(c echo.Context) error {
	ps := s.xds.Proxies()
	if ps == nil {
		ps = []xds.ProxyStatus{}
	}
	return c.JSON(http.StatusOK, page[xds.ProxyStatus]{Items: ps})
}
