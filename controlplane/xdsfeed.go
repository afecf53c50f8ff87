package controlplane

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/labstack/echo/v4"

	"github.com/ragplane/ragplane/controlplane/xds"
)

// feedXDS keeps the xDS server in step with the catalog. Any replica's change reaches every
// replica through PostgreSQL notifications (tenants and workers tables), is debounced briefly and
// translated; the xDS server then pushes only the resources that changed. A periodic refresh covers
// anything a notification could miss (a dropped listener connection, key rotation).
func (s *Server) feedXDS(ctx context.Context) {
	wake := make(chan struct{}, 1)
	kick := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	go s.listenCatalog(ctx, kick)
	refresh := time.NewTicker(5 * time.Second)
	defer refresh.Stop()
	for {
		if err := s.pushXDS(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("xds update failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-refresh.C:
		case <-wake:
			// Let a burst of changes (a plan edit touching many tenants) settle into one push.
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// pushXDS translates the current catalog state and hands it to the xDS server.
func (s *Server) pushXDS(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	policies, err := s.store.TenantPolicies(ctx)
	if err != nil {
		return err
	}
	workers, err := s.store.LiveWorkers(ctx)
	if err != nil {
		return err
	}
	s.issuer.invalidate() // read the keys fresh: another replica may have rotated
	jwks, err := s.issuer.jwks(ctx)
	if err != nil {
		return err
	}
	keys := make([]xds.JWK, len(jwks))
	for i, k := range jwks {
		keys[i] = xds.JWK{Kty: k.Kty, Crv: k.Crv, X: k.X, Kid: k.Kid, Alg: k.Alg, Use: k.Use}
	}
	return s.xds.Update(xds.Input{Policies: policies, Workers: workers, Keys: keys,
		Issuer: s.cfg.Tokens.Issuer, Audience: s.cfg.Tokens.Audience})
}

// listenCatalog turns catalog notifications into wake-ups, reconnecting when the connection drops.
func (s *Server) listenCatalog(ctx context.Context, kick func()) {
	for ctx.Err() == nil {
		err := listenOnce(ctx, s.store.Pool(), kick)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("catalog notifications for xds interrupted", "err", err)
		kick() // something may have changed while we were away
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func listenOnce(ctx context.Context, pool *pgxpool.Pool, notify func()) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer func() {
		conn.Conn().Close(context.Background())
		conn.Release()
	}()
	for _, ch := range []string{"ragplane_tenants", "ragplane_workers"} {
		if _, err := conn.Exec(ctx, "listen "+ch); err != nil {
			return err
		}
	}
	for {
		if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
			return err
		}
		notify()
	}
}

// serveXDS runs the xDS gRPC server on its listener until ctx ends.
func (s *Server) serveXDS(ctx context.Context, ln net.Listener) {
	if err := s.xds.Serve(ctx, ln); err != nil && ctx.Err() == nil {
		s.log.Error("xds server failed", "err", err)
	}
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
