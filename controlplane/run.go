// Package controlplane is Ragplane's control plane: the only writer of the tenant catalog. It
// serves the admin REST API, issues tenant tokens, and runs the reconciler that provisions and
// removes tenant databases.
package controlplane

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"golang.org/x/sync/errgroup"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/controlplane/provision"
	"github.com/ragplane/ragplane/controlplane/provision/local"
	"github.com/ragplane/ragplane/controlplane/provision/neon"
	"github.com/ragplane/ragplane/controlplane/xds"
	"github.com/ragplane/ragplane/internal/durability"
	"github.com/ragplane/ragplane/internal/tenantctx"
)

// The provisioners this control plane can choose from.
var (
	_ provision.Provisioner = (*local.Provisioner)(nil)
	_ provision.Provisioner = (*neon.Provisioner)(nil)
)

//go:embed openapi.json
var openAPIDocument []byte

// Server is a running control plane.
type Server struct {
	cfg            Config
	log            *slog.Logger
	store          *catalog.Store
	provisioners   map[ragplane.Provider]provision.Provisioner
	reconciler     *provision.Reconciler
	archives       provision.ArchiveStore // offloaded tenants' archives; nil without RAGPLANE_OFFLOAD_DIR
	issuer         *issuer
	authAudit      *authAuditor
	exchanges      *exchangeLimiter // token exchanges per source (tenantkeys.go)
	codecOnce      sync.Once
	codec          *tenantctx.Codec // verifies what proxies sign; see proxyCodec
	xds            *xds.Server
	xdsListener    net.Listener
	metricsHandler http.Handler
	listener       net.Listener
	http           *http.Server
	closers        []func()
	redis          *redis.Client // nil without REDIS_URL (offboard.go)
	neo4j          graphGroups   // nil without NEO4J_URI (offboard.go)
}

// Run starts the control plane and blocks until ctx ends, then shuts it down.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	s, err := New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// New validates cfg, opens the catalog (applying migrations), sets up provisioners and binds the
// admin listener. Nothing is served until Run.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("controlplane config:\n%w", err)
	}
	s := &Server{cfg: cfg, log: logger.With("component", "controlplane"), exchanges: newExchangeLimiter(cfg.Tokens.ExchangesPerMinute)}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.metricsHandler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})

	// 1. The catalog, migrated.
	store, err := catalog.Open(ctx, catalog.Config{URL: cfg.DatabaseURL, SecretKey: cfg.SecretKey, Logger: logger})
	if err != nil {
		return nil, err
	}
	s.store = store
	s.closers = append(s.closers, store.Close)
	// Checked through the catalog's own pool, so settings its URL adds count too. Tenant
	// databases are made on the provisioners' servers; the local one is usually this server.
	if err := durability.Require(ctx, store.Pool(), "catalog database", cfg.AllowUndurable, s.log); err != nil {
		return nil, err
	}

	// 2. Provisioners and the reconciler that drives them.
	if err := s.newProvisioners(ctx, logger); err != nil {
		return nil, err
	}
	if err := s.newRedis(); err != nil {
		return nil, err
	}
	if err := s.newNeo4j(); err != nil {
		return nil, err
	}
	if cfg.Provision.OffloadDir != "" {
		s.archives = provision.DirStore{Dir: cfg.Provision.OffloadDir}
	} else if n, err := store.CountOffloads(ctx); err == nil && n > 0 {
		// Offloading was turned off with tenants still offloaded: they cannot be restored (nor
		// their archives removed at deletion) until the directory is configured again.
		s.log.Error("tenants are offloaded to archives but RAGPLANE_OFFLOAD_DIR is not set: they cannot be restored until it is",
			"offloaded_tenants", n)
	}
	for p, prov := range s.provisioners {
		s.provisioners[p] = s.withOffboarding(prov) // deletion reports (offboard.go)
	}
	s.reconciler = provision.NewReconciler(provision.ReconcilerConfig{
		Store: store, Provisioners: s.provisioners, Concurrency: cfg.Provision.Concurrency,
		MaxAttempts: cfg.Provision.MaxAttempts, BaseBackoff: cfg.Provision.BaseBackoff,
		IdleAfter: cfg.Provision.IdleAfter, Registerer: reg, Logger: logger,
		OffloadAfter: cfg.Provision.OffloadAfter, Archives: s.archives,
	})

	// 3. A signing key for tenant tokens.
	s.issuer = newIssuer(issuerConfig{Keys: store.SigningKeys, Tokens: cfg.Tokens})
	if _, err := store.EnsureSigningKey(ctx, cfg.Tokens.RotateEvery, s.keyOverlap(), cfg.Tokens.PublishDelay); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}

	// 4. The xDS server proxies subscribe to.
	s.xds = xds.New(xds.Config{Logger: logger, Registerer: reg})
	if s.xdsListener, err = net.Listen("tcp", cfg.XDSAddr); err != nil {
		return nil, fmt.Errorf("xds: listen on %s: %w", cfg.XDSAddr, err)
	}
	s.closers = append(s.closers, func() { s.xdsListener.Close() })

	// 5. The admin API, bound now so that callers learn the address before Run.
	reg.MustRegister(newCatalogCollector(store))
	e := s.newEcho(reg)
	ln, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		return nil, fmt.Errorf("admin API: listen on %s: %w", cfg.AdminAddr, err)
	}
	s.listener = ln
	s.http = &http.Server{Handler: otelhttp.NewHandler(e, "controlplane"), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	ok = true
	return s, nil
}

// newProvisioners gives the provisioners the service's logger, not s.log: each names its own
// component, and a second "component" key would make the lines ambiguous.
func (s *Server) newProvisioners(ctx context.Context, logger *slog.Logger) error {
	s.provisioners = map[ragplane.Provider]provision.Provisioner{}
	adminURL := s.cfg.Provision.LocalAdminURL
	if adminURL == "" {
		adminURL = s.cfg.DatabaseURL
	}
	lp, err := local.New(ctx, local.Config{AdminURL: adminURL, Prefix: s.cfg.Provision.LocalPrefix,
		CatalogURL: s.cfg.DatabaseURL, Logger: logger})
	if err != nil {
		return err
	}
	s.closers = append(s.closers, lp.Close)
	s.provisioners[ragplane.ProviderLocal] = lp
	if s.cfg.Provision.NeonAPIKey != "" {
		np, err := neon.New(neon.Config{APIKey: s.cfg.Provision.NeonAPIKey, BaseURL: s.cfg.Provision.NeonAPIURL, Logger: logger})
		if err != nil {
			return err
		}
		s.provisioners[ragplane.ProviderNeon] = np
	}
	return nil
}

// keyOverlap is how long a retired signing key stays published: the longest token lifetime plus
// a minute for clock skew.
func (s *Server) keyOverlap() time.Duration { return s.cfg.Tokens.TTL + time.Minute }

// XDSAddr is the xDS server's address (useful with port 0).
func (s *Server) XDSAddr() string { return s.xdsListener.Addr().String() }

// Addr is the admin API's address (useful with port 0).
func (s *Server) Addr() string { return s.listener.Addr().String() }

// Run serves until ctx ends or a component fails, then shuts down in reverse order of start and
// returns the first component's error (nil when ctx ended). Every goroutine it starts has ended
// when it returns.
func (s *Server) Run(ctx context.Context) error {
	defer s.close()
	// Each component returns nil when ctx ends and an error only when it cannot go on; the
	// first error cancels gctx, which stops the others.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := s.http.Serve(s.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("admin API: %w", err)
		}
		return nil
	})
	g.Go(func() error { return s.reconciler.Run(gctx) })
	g.Go(func() error { s.rotateKeys(gctx); return nil })
	g.Go(func() error { s.expireWorkers(gctx); return nil })
	g.Go(func() error { return s.serveXDS(gctx, s.xdsListener) })
	g.Go(func() error { return s.feedXDS(gctx) })
	s.log.Info("control plane started", "admin_addr", s.Addr())

	<-gctx.Done()
	// The background components stop with gctx; the admin API drains its requests.
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if serr := s.http.Shutdown(sctx); serr != nil {
		s.log.Warn("admin API shutdown", "error", serr)
	}
	err := g.Wait()
	if err != nil {
		s.log.Error("control plane component failed", "error", err)
	}
	s.log.Info("control plane stopped")
	return err
}

// rotateKeys checks once a minute whether the signing key is due for rotation; the advisory lock
// in the catalog makes sure only one replica rotates.
func (s *Server) rotateKeys(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rotated, err := s.store.EnsureSigningKey(ctx, s.cfg.Tokens.RotateEvery, s.keyOverlap(), s.cfg.Tokens.PublishDelay)
			if err != nil {
				s.log.Warn("signing key rotation check failed", "error", err)
			} else if rotated {
				s.issuer.invalidate()
				s.log.Info("signing key rotated")
			}
		}
	}
}

// expireWorkers drops workers whose lease ran out, every second; any replica may do it.
func (s *Server) expireWorkers(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := s.store.ExpireWorkers(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("expiring workers failed", "error", err)
			} else if n > 0 {
				s.log.Info("workers expired", "count", n)
			}
		}
	}
}

func (s *Server) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}
