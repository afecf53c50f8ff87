package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	neo4jdriver "github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/dataplane/graph"
	"github.com/ragplane/ragplane/dataplane/graph/neo4j"
	"github.com/ragplane/ragplane/dataplane/graph/postgres"
	"github.com/ragplane/ragplane/internal/durability"
	"github.com/ragplane/ragplane/internal/tenantctx"
)

// Server is a running data-plane worker. It holds no tenant state but caches: tenants' catalog
// entries (seconds), their database pools (bounded), and embedders.
type Server struct {
	cfg            Config
	log            *slog.Logger
	store          *catalog.Store
	tenants        *tenants
	pools          *pools
	sleep          *sleepers
	codec          *tenantctx.Codec
	metrics        *metrics
	metricsHandler http.Handler
	providers      *providers
	graph          graphStores
	spool          *spool
	tokens         *monthlyTokens
	backfill       *backfill
	listener       net.Listener
	http           *http.Server
	closers        []func()
}

// Run starts a worker and blocks until ctx ends.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	s, err := New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// New validates cfg, connects to the catalog (read only) and binds the listener.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dataplane config:\n%w", err)
	}
	s := &Server{cfg: cfg, log: logger.With("component", "dataplane"), backfill: newBackfill()}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.metricsHandler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	s.metrics = newMetrics(reg, cfg.MetricsTopTenants)

	// 1. The signed-context verifier: nothing is served without it.
	codec, err := tenantctx.New(cfg.InternalKey)
	if err != nil {
		return nil, err
	}
	s.codec = codec

	// 2. The catalog, read only: the control plane owns its migrations.
	store, err := catalog.Open(ctx, catalog.Config{URL: cfg.DatabaseURL, SecretKey: cfg.SecretKey, MaxConns: 8, ReadOnly: true, Logger: logger})
	if err != nil {
		return nil, err
	}
	s.store = store
	s.closers = append(s.closers, store.Close)
	// The usage shipper deletes spooled records once their catalog commit is confirmed, so that
	// commit must survive a crash. Tenant databases are not checked one by one: they live on the
	// catalog's server or servers run the same way (the control plane provisions them).
	if err := durability.Require(ctx, store.Pool(), "catalog database", cfg.AllowUndurable, s.log); err != nil {
		return nil, err
	}
	s.tenants = newTenants(tenantCacheConfig{Load: store.TenantRuntime, TTL: cfg.TenantCacheTTL, Logger: s.log, Registerer: reg})
	s.tokens = newMonthlyTokens(monthlyTokensConfig{Load: store.TokensCounted})

	// 3. Tenant database pools under the connection budget, and the outside providers.
	s.pools = newPools(cfg.DB, reg, s.log)
	s.sleep = newSleepers(reg)
	s.closers = append(s.closers, s.pools.closeAll)
	s.providers = newProviders(cfg.OpenAI, cfg.ModelDir, s.log)

	// 4. The graph store, checked and its schema in place before anything is served.
	g, err := newGraph(cfg.Graph)
	if err != nil {
		return nil, err
	}
	if g.close != nil {
		s.closers = append(s.closers, func() {
			if err := g.close(context.Background()); err != nil {
				s.log.Warn("graph store close failed", "error", err)
			}
		})
	}
	if g.ready != nil {
		if err := g.ready(ctx); err != nil {
			return nil, err
		}
	}
	s.graph = g.stores

	// 5. The usage spool: records are durable here before responses leave.
	dir := cfg.UsageDir
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "ragplane-usage", strings.NewReplacer(":", "_", "/", "_").Replace(cfg.Addr))
	}
	if s.spool, err = newSpool(spoolConfig{Dir: dir, Ship: store.RecordUsage, Registerer: reg, Logger: logger}); err != nil {
		return nil, err
	}

	// 6. The listener, bound now so callers learn the address before Run.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("dataplane: listen on %s: %w", cfg.Addr, err)
	}
	s.listener = ln
	s.http = &http.Server{Handler: otelhttp.NewHandler(s.newEcho(), "dataplane"), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	ok = true
	return s, nil
}

// Addr is the worker's address.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// Run serves until ctx ends, then drains in-flight requests and closes pools.
func (s *Server) Run(ctx context.Context) error {
	defer s.close()
	errc := make(chan error, 1)
	go func() {
		if err := s.http.Serve(s.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	shipCtx, stopShip := context.WithCancel(context.WithoutCancel(ctx))
	shipDone := make(chan struct{})
	go func() { defer close(shipDone); s.spool.run(shipCtx) }()
	fillCtx, stopFill := context.WithCancel(ctx)
	fillDone := make(chan struct{})
	go func() { defer close(fillDone); s.runBackfill(fillCtx) }()
	defer func() { stopFill(); <-fillDone }()
	regCtx, stopReg := context.WithCancel(context.WithoutCancel(ctx))
	regDone := make(chan struct{})
	go func() { defer close(regDone); s.register(regCtx) }()
	idleCtx, stopIdle := context.WithCancel(ctx)
	idleDone := make(chan struct{})
	go func() { defer close(idleDone); s.listenActivity(idleCtx) }()
	defer func() { stopIdle(); <-idleDone }()
	janitor := time.NewTicker(s.cfg.DB.IdleTimeout / 2)
	defer janitor.Stop()
	s.log.Info("data plane worker started", "addr", s.Addr())
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err = <-errc:
			s.log.Error("worker listener failed", "error", err)
			break loop
		case <-janitor.C:
			s.pools.closeIdle()
		}
	}
	// Leave the endpoint set first, so proxies stop sending new requests, then drain.
	stopReg()
	<-regDone
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if serr := s.http.Shutdown(sctx); serr != nil {
		s.log.Warn("worker shutdown", "error", serr)
	}
	stopShip() // ships what the last requests recorded
	<-shipDone
	s.log.Info("data plane worker stopped")
	return err
}

// graphBackend is the chosen graph store with what starting and stopping it takes.
type graphBackend struct {
	stores graphStores
	// ready checks the store's server and prepares its schema; nil when there is nothing to do
	// (the control plane migrates tenant databases).
	ready func(ctx context.Context) error
	// close releases the store's connections; nil when the store owns none.
	close func(ctx context.Context) error
}

// newGraph builds the graph store cfg chooses. It connects to nothing (the Neo4j driver dials on
// first use), so a configuration can be checked without a server; ready does the connecting.
func newGraph(cfg GraphConfig) (graphBackend, error) {
	switch cfg.Store {
	case GraphPostgres:
		var _ graph.Store = (*postgres.Store)(nil)
		return graphBackend{stores: func(db tenantDB) graph.Store { return postgres.New(db) }}, nil
	case GraphNeo4j:
		var _ graph.Store = (*neo4j.Store)(nil)
		auth := neo4jdriver.NoAuth()
		if cfg.Neo4j.Username != "" {
			auth = neo4jdriver.BasicAuth(cfg.Neo4j.Username, cfg.Neo4j.Password, "")
		}
		driver, err := neo4jdriver.NewDriverWithContext(cfg.Neo4j.URI, auth)
		if err != nil {
			return graphBackend{}, fmt.Errorf("dataplane: neo4j driver for NEO4J_URI: %w", err)
		}
		store := neo4j.New(driver, cfg.Neo4j.Database)
		return graphBackend{
			stores: func(tenantDB) graph.Store { return store },
			ready: func(ctx context.Context) error {
				if err := driver.VerifyConnectivity(ctx); err != nil {
					return fmt.Errorf("dataplane: neo4j at NEO4J_URI: %w", err)
				}
				if err := store.EnsureSchema(ctx); err != nil {
					return fmt.Errorf("dataplane: neo4j schema: %w", err)
				}
				return nil
			},
			close: driver.Close,
		}, nil
	}
	return graphBackend{}, fmt.Errorf("dataplane: unknown graph store %q", cfg.Store)
}

func (s *Server) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}
