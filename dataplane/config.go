package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/internal/durability"
	"github.com/ragplane/ragplane/internal/envconfig"
	"github.com/ragplane/ragplane/internal/tenantctx"
)

// Config is a data-plane worker's configuration.
type Config struct {
	// Addr is where the worker listens for the proxy.
	Addr string
	// DatabaseURL is the catalog (read only).
	DatabaseURL string
	// InternalKey verifies the proxy's signed tenant context.
	InternalKey string
	// SecretKey opens the tenant database URLs sealed in the catalog (the control plane's key).
	SecretKey string
	// MaxClockSkew bounds how old (or new) a signed context may be.
	MaxClockSkew time.Duration
	// DB bounds this worker's tenant-database connections.
	DB DBConfig
	// TenantCacheTTL is how long a tenant's catalog entry is cached; a suspension or deletion takes
	// effect within it.
	TenantCacheTTL time.Duration
	// RestoreWait bounds how long a request to a tenant offloaded to an archive waits for its
	// restore before it is answered 503 with Retry-After (keep it under the proxy's upstream timeout).
	RestoreWait time.Duration
	// MaxDocumentBytes caps one document's text; MaxUploadBytes a request body.
	MaxDocumentBytes int64
	MaxUploadBytes   int64
	// MaxQueryBytes caps a query's text.
	MaxQueryBytes int
	// Prices estimate the cost in GET /v1/metrics/{tenant_id} (RAGPLANE_PRICES, JSON, as on the
	// control plane).
	Prices map[string]catalog.Price
	// ModelDir holds the local embedding models' files, fetched and verified by ops/models.sh (which
	// prints it; `make up` exports it in .ragplane/stack.env). Only tenants that choose a model with
	// files (glove-6b-100d-sif) need it; the default is where ops/models.sh puts them by default.
	ModelDir string
	// OpenAI configures the OpenAI-compatible provider tenants may choose for embeddings and answers.
	OpenAI OpenAIConfig
	// Registration: the worker registers with the control plane at ControlPlaneURL as WorkerID,
	// reachable at AdvertiseAddr (default: the listen address), and heartbeats every
	// HeartbeatInterval. Empty ControlPlaneURL disables it (a worker behind a sidecar proxy).
	ControlPlaneURL   string
	WorkerID          string
	AdvertiseAddr     string
	HeartbeatInterval time.Duration
	// UsageDir holds the usage spool; it must survive a restart of the worker (records written
	// there are shipped to the catalog within a second). Default: a directory per address in the
	// system's temporary directory.
	UsageDir string
	// MetricsTopTenants bounds the tenant label: the busiest N tenants get their own series, the rest
	// are counted as "other".
	MetricsTopTenants int
	// Graph chooses where tenants' knowledge graphs are kept.
	Graph GraphConfig
	// SyncEmbedChunks is the most chunks an ingestion request embeds before it answers; a larger
	// one is stored at once (keyword-searchable) and embedded in the background, its documents'
	// status "embedding" until done. Default 64 (a few seconds with the default embedder).
	SyncEmbedChunks int
	// AllowUndurable lets the worker start on a catalog server with fsync, synchronous_commit or
	// full_page_writes off (RAGPLANE_ALLOW_UNDURABLE), with a warning; for development and tests
	// only, as such a server may lose acknowledged documents and usage records in a crash.
	AllowUndurable bool
}

// Graph stores a worker can use (GraphConfig.Store).
const (
	// GraphPostgres keeps each tenant's graph in its own database (the default).
	GraphPostgres = "postgres"
	// GraphNeo4j keeps every tenant's graph in one Neo4j database, namespaced by tenant id.
	GraphNeo4j = "neo4j"
)

// GraphConfig chooses the graph store. Every worker of a deployment must choose the same one: a
// tenant's graph is written by whichever worker ingests and read by whichever answers.
type GraphConfig struct {
	// Store is GraphPostgres or GraphNeo4j.
	Store string
	// Neo4j is the Neo4j server, used when Store is GraphNeo4j.
	Neo4j Neo4jConfig
}

// Neo4jConfig points at a Neo4j server; the names of its variables are the Neo4j driver's.
type Neo4jConfig struct {
	// URI is the server, e.g. neo4j://host:7687 or neo4j+s://xxxx.databases.neo4j.io.
	URI string
	// Username and Password authenticate with basic auth; an empty Username means no auth.
	Username string
	Password string
	// Database is the database to use; empty means the server's default.
	Database string
}

// DBConfig bounds tenant-database connections.
type DBConfig struct {
	// MaxConns is this worker's budget of open connections across all tenant databases.
	MaxConns int
	// PerTenant caps one tenant's pool, and one tenant's connections in a pool database.
	PerTenant int
	// PoolConns caps the pool of a pool database (the pooled tier), shared by its tenants, each of
	// which holds at most PerTenant of its connections at once.
	PoolConns int
	// Wait is how long a request waits for a connection before it gets 503.
	Wait time.Duration
	// IdleTimeout closes a tenant's pool after this long unused.
	IdleTimeout time.Duration
}

// OpenAIConfig points at an OpenAI-compatible API (OpenAI, Azure OpenAI, vLLM, Ollama).
type OpenAIConfig struct {
	// Provider names it in errors and metadata ("openai", "azure", "vllm", "ollama").
	Provider string
	BaseURL  string
	APIKey   string
	// Models maps model tiers (small, standard, large) to model names.
	Models map[string]string
	// Timeout bounds one call.
	Timeout time.Duration
}

// Enabled reports whether a provider is configured.
func (o OpenAIConfig) Enabled() bool { return o.BaseURL != "" || o.APIKey != "" }

// DefaultConfig returns a config that runs locally (the internal key still must be set).
func DefaultConfig() Config {
	return Config{
		Addr:             "127.0.0.1:8090",
		MaxClockSkew:     30 * time.Second,
		DB:               DBConfig{MaxConns: 40, PerTenant: 4, PoolConns: 16, Wait: 2 * time.Second, IdleTimeout: time.Minute},
		TenantCacheTTL:   2 * time.Second,
		RestoreWait:      20 * time.Second,
		MaxDocumentBytes: 5 << 20,
		MaxUploadBytes:   20 << 20,
		MaxQueryBytes:    8 << 10,
		Prices:           catalog.DefaultPrices(),
		ModelDir:         "/var/cache/ragplane/models",
		OpenAI: OpenAIConfig{Provider: "openai", Timeout: time.Minute,
			Models: map[string]string{"small": "gpt-4o-mini", "standard": "gpt-4o", "large": "gpt-4.1"}},
		MetricsTopTenants: 100,
		HeartbeatInterval: 3 * time.Second,
		Graph:             GraphConfig{Store: GraphPostgres},
		SyncEmbedChunks:   64,
	}
}

// ConfigFromEnv overlays RAGPLANE_* variables (and DATABASE_URL) onto the defaults.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	cfg := DefaultConfig()
	env := envconfig.New(getenv, "2s")
	env.String("RAGPLANE_DATAPLANE_ADDR", &cfg.Addr)
	env.String("DATABASE_URL", &cfg.DatabaseURL)
	env.String("RAGPLANE_INTERNAL_KEY", &cfg.InternalKey)
	env.String("RAGPLANE_SECRET_KEY", &cfg.SecretKey)
	env.Duration("RAGPLANE_CLOCK_SKEW", &cfg.MaxClockSkew)
	env.Int("RAGPLANE_MAX_DB_CONNS", &cfg.DB.MaxConns)
	env.Int("RAGPLANE_TENANT_DB_CONNS", &cfg.DB.PerTenant)
	if env.Lookup("RAGPLANE_POOL_DB_CONNS") == "" {
		// The default fits a smaller budget.
		cfg.DB.PoolConns = max(min(cfg.DB.PoolConns, cfg.DB.MaxConns), cfg.DB.PerTenant)
	}
	env.Int("RAGPLANE_POOL_DB_CONNS", &cfg.DB.PoolConns)
	env.Duration("RAGPLANE_DB_WAIT", &cfg.DB.Wait)
	env.Duration("RAGPLANE_DB_IDLE_TIMEOUT", &cfg.DB.IdleTimeout)
	env.Duration("RAGPLANE_TENANT_CACHE_TTL", &cfg.TenantCacheTTL)
	env.Duration("RAGPLANE_RESTORE_WAIT", &cfg.RestoreWait)
	var maxDoc int
	env.Int("RAGPLANE_MAX_DOCUMENT_BYTES", &maxDoc)
	if maxDoc > 0 {
		cfg.MaxDocumentBytes = int64(maxDoc)
		cfg.MaxUploadBytes = max(cfg.MaxUploadBytes, 4*int64(maxDoc))
	}
	env.String("RAGPLANE_MODEL_DIR", &cfg.ModelDir)
	env.String("RAGPLANE_OPENAI_PROVIDER", &cfg.OpenAI.Provider)
	env.String("RAGPLANE_OPENAI_BASE_URL", &cfg.OpenAI.BaseURL)
	env.String("RAGPLANE_OPENAI_API_KEY", &cfg.OpenAI.APIKey)
	for _, tier := range []string{"small", "standard", "large"} {
		if v := env.Lookup("RAGPLANE_MODEL_" + map[string]string{"small": "SMALL", "standard": "STANDARD", "large": "LARGE"}[tier]); v != "" {
			cfg.OpenAI.Models[tier] = v
		}
	}
	env.Duration("RAGPLANE_OPENAI_TIMEOUT", &cfg.OpenAI.Timeout)
	env.Int("RAGPLANE_METRICS_TOP_TENANTS", &cfg.MetricsTopTenants)
	env.String("RAGPLANE_CONTROLPLANE_URL", &cfg.ControlPlaneURL)
	env.String("RAGPLANE_USAGE_DIR", &cfg.UsageDir)
	env.String("RAGPLANE_WORKER_ID", &cfg.WorkerID)
	env.String("RAGPLANE_ADVERTISE_ADDR", &cfg.AdvertiseAddr)
	env.Duration("RAGPLANE_HEARTBEAT_INTERVAL", &cfg.HeartbeatInterval)
	env.String("RAGPLANE_GRAPH_STORE", &cfg.Graph.Store)
	env.Int("RAGPLANE_SYNC_EMBED_CHUNKS", &cfg.SyncEmbedChunks)
	if v := env.Lookup("RAGPLANE_PRICES"); v != "" {
		p, err := catalog.ParsePrices(v)
		if err != nil {
			env.Errorf("RAGPLANE_PRICES: want a JSON object of model -> {prompt_per_1k, completion_per_1k}")
		}
		cfg.Prices = p
	}
	env.String("NEO4J_URI", &cfg.Graph.Neo4j.URI)
	env.String("NEO4J_USERNAME", &cfg.Graph.Neo4j.Username)
	env.String("NEO4J_PASSWORD", &cfg.Graph.Neo4j.Password)
	env.String("NEO4J_DATABASE", &cfg.Graph.Neo4j.Database)
	env.Bool(durability.AllowEnv, &cfg.AllowUndurable)
	return cfg, env.Err()
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		bad("RAGPLANE_DATAPLANE_ADDR: want host:port, got %q", c.Addr)
	}
	if c.DatabaseURL == "" {
		bad("DATABASE_URL: required (the catalog database)")
	}
	if len(c.InternalKey) < tenantctx.MinKeyLen {
		bad("RAGPLANE_INTERNAL_KEY: required, at least %d characters, the same as the proxy's", tenantctx.MinKeyLen)
	}
	if len(c.SecretKey) < catalog.MinSecretKeyLen {
		bad("RAGPLANE_SECRET_KEY: required, the control plane's key (tenant database URLs are sealed with it)")
	}
	if c.MaxClockSkew < time.Second || c.MaxClockSkew > 5*time.Minute {
		bad("RAGPLANE_CLOCK_SKEW: want 1s-5m")
	}
	if c.DB.MaxConns < 1 || c.DB.PerTenant < 1 || c.DB.PerTenant > c.DB.MaxConns {
		bad("RAGPLANE_MAX_DB_CONNS and RAGPLANE_TENANT_DB_CONNS: want 1 <= per tenant <= budget")
	}
	if c.DB.PoolConns < c.DB.PerTenant || c.DB.PoolConns > c.DB.MaxConns {
		bad("RAGPLANE_POOL_DB_CONNS: want RAGPLANE_TENANT_DB_CONNS <= pool database connections <= RAGPLANE_MAX_DB_CONNS")
	}
	if c.RestoreWait <= 0 {
		bad("RAGPLANE_RESTORE_WAIT: want a positive duration")
	}
	if c.DB.Wait <= 0 || c.DB.IdleTimeout <= 0 || c.TenantCacheTTL <= 0 {
		bad("RAGPLANE_DB_WAIT, RAGPLANE_DB_IDLE_TIMEOUT and RAGPLANE_TENANT_CACHE_TTL: want positive durations")
	}
	if c.MaxDocumentBytes < 1024 || c.MaxQueryBytes < 16 {
		bad("RAGPLANE_MAX_DOCUMENT_BYTES: want at least 1024")
	}
	if c.MetricsTopTenants < 1 {
		bad("RAGPLANE_METRICS_TOP_TENANTS: want at least 1")
	}
	errs = append(errs, c.Graph.validate()...)
	return errors.Join(errs...)
}

func (g GraphConfig) validate() []error {
	switch g.Store {
	case GraphPostgres:
		return nil
	case GraphNeo4j:
	default:
		return []error{fmt.Errorf("RAGPLANE_GRAPH_STORE: want %q or %q, got %q", GraphPostgres, GraphNeo4j, g.Store)}
	}
	if g.Neo4j.URI == "" {
		return []error{errors.New("NEO4J_URI: required with RAGPLANE_GRAPH_STORE=neo4j, e.g. neo4j://localhost:7687")}
	}
	u, err := url.Parse(g.Neo4j.URI)
	if err != nil || u.Host == "" {
		return []error{fmt.Errorf("NEO4J_URI: want a URL like neo4j://host:7687, got %q", g.Neo4j.URI)}
	}
	switch u.Scheme {
	case "neo4j", "neo4j+s", "neo4j+ssc", "bolt", "bolt+s", "bolt+ssc":
	default:
		return []error{fmt.Errorf("NEO4J_URI: want a neo4j://, neo4j+s://, neo4j+ssc://, bolt://, bolt+s:// or bolt+ssc:// URL, got scheme %q", u.Scheme)}
	}
	if g.Neo4j.Username == "" && g.Neo4j.Password != "" {
		return []error{errors.New("NEO4J_USERNAME: required when NEO4J_PASSWORD is set")}
	}
	return nil
}
