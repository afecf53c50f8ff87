package controlplane

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/internal/apidocs"
	"github.com/ragplane/ragplane/internal/durability"
	"github.com/ragplane/ragplane/internal/envconfig"
)

// Config is the control plane's configuration.
type Config struct {
	// AdminAddr is where the admin REST API listens.
	AdminAddr string
	// DatabaseURL is the catalog database.
	DatabaseURL string
	// AdminToken authenticates operators on the admin API.
	AdminToken string
	// SecretKey encrypts secrets at rest in the catalog.
	SecretKey string
	// InternalKey authenticates data-plane workers when they register (the key they share with
	// the proxies). Empty disables worker registration.
	InternalKey string
	// XDSAddr is where proxies subscribe to configuration over xDS (ADS, gRPC).
	XDSAddr string
	// WorkerLeaseTTL is how long a worker stays in the endpoint set without a heartbeat.
	WorkerLeaseTTL time.Duration
	// Provision configures the provisioners and the reconciler.
	Provision ProvisionConfig
	// Tokens configures tenant JWTs.
	Tokens TokenConfig
	// Prices estimate cost per model (RAGPLANE_PRICES, JSON).
	Prices map[string]Price
	// MaxBodyBytes caps admin request bodies (default 1 MiB).
	MaxBodyBytes int64
	// WebDir holds the API reference viewer served at /docs (RAGPLANE_WEB_DIR, from ops/web.sh);
	// empty serves a plain page linking /openapi.json.
	WebDir string
	// AllowUndurable lets the control plane start on a catalog server with fsync,
	// synchronous_commit or full_page_writes off (RAGPLANE_ALLOW_UNDURABLE), with a warning; for
	// development and tests only, as such a server may lose acknowledged writes in a crash.
	AllowUndurable bool
	// RedisURL (REDIS_URL, optional) is the proxies' Redis: deleting a tenant removes its keys
	// there, under RedisPrefix (RAGPLANE_REDIS_PREFIX, the proxies' own, default "ragplane:").
	RedisURL, RedisPrefix string
	// Neo4j (NEO4J_URI and the rest, optional) is the Neo4j the workers keep every tenant's graph
	// in with RAGPLANE_GRAPH_STORE=neo4j: deleting a tenant removes its nodes and relationships
	// there, by group_id. The same variables as the workers'.
	Neo4j Neo4jConfig
}

// Neo4jConfig points at a Neo4j server; the names of its variables are the Neo4j driver's.
type Neo4jConfig struct {
	// URI is the server, e.g. neo4j://host:7687; empty means the workers use no Neo4j.
	URI string
	// Username and Password authenticate with basic auth; no username means no auth.
	Username, Password string
	// Database is the database the graphs are in; empty is the server's default.
	Database string
}

// ProvisionConfig configures where tenant databases are made.
type ProvisionConfig struct {
	// DefaultProvider is used when a create request names none: "local" or "neon".
	DefaultProvider string
	// DefaultRegion is used when a create request names none.
	DefaultRegion string
	// LocalAdminURL connects to the local PostgreSQL as a role that may create databases and roles;
	// empty means DatabaseURL. Empty DatabaseURL too disables the local provider.
	LocalAdminURL string
	// LocalPrefix starts tenant database and role names.
	LocalPrefix string
	// NeonAPIKey enables the Neon provider; NeonAPIURL overrides Neon's API base URL.
	NeonAPIKey string
	NeonAPIURL string
	// MaxAttempts, Concurrency and BaseBackoff tune the reconciler.
	MaxAttempts int
	Concurrency int
	BaseBackoff time.Duration
	// IdleAfter marks a tenant unused this long idle: workers close its pools and a Neon
	// tenant's compute is suspended; its next request wakes it. Zero turns sleeping off.
	IdleAfter time.Duration
	// OffloadAfter offloads a siloed tenant idle this long (after IdleAfter) to an archive in
	// OffloadDir and drops its database; its next request restores it. Zero (the default) never
	// offloads. Only the local provider offloads.
	OffloadAfter time.Duration
	// OffloadDir is the directory offloaded tenants' archives are kept in: a volume every
	// control-plane replica mounts. Required with OffloadAfter.
	OffloadDir string
}

// TokenConfig configures the JWTs issued to tenants.
type TokenConfig struct {
	// Issuer and Audience go into "iss" and "aud".
	Issuer   string
	Audience string
	// TTL is a token's lifetime (at most 1h).
	TTL time.Duration
	// RotateEvery is how often the signing key rotates.
	RotateEvery time.Duration
	// PublishDelay is how long a rotated-in key is published (pushed to every proxy) before it
	// signs; it must exceed the time a key change takes to reach every proxy.
	PublishDelay time.Duration
	// ExchangesPerMinute bounds POST /v1/auth/token per source address on each replica, good
	// key or bad, so nobody tries keys faster (burst: as many at once); 0 disables the limit.
	// Through the proxy the source is the client's address, which the proxy signs.
	ExchangesPerMinute int
}

// DefaultConfig returns a config that runs locally (the admin token and secret key still must be set).
func DefaultConfig() Config {
	return Config{
		AdminAddr:      "127.0.0.1:8081",
		XDSAddr:        "127.0.0.1:18000",
		WorkerLeaseTTL: 10 * time.Second,
		MaxBodyBytes:   1 << 20,
		RedisPrefix:    "ragplane:",
		Prices:         DefaultPrices(),
		Provision: ProvisionConfig{
			DefaultProvider: "local",
			DefaultRegion:   "local",
			LocalPrefix:     "rp_",
			MaxAttempts:     5,
			Concurrency:     8,
			BaseBackoff:     time.Second,
			IdleAfter:       time.Hour,
		},
		Tokens: TokenConfig{
			Issuer:      "ragplane",
			Audience:    "ragplane-api",
			TTL:         15 * time.Minute,
			RotateEvery: 24 * time.Hour,
			// Three xDS safety intervals: a key change normally reaches proxies in milliseconds
			// (catalog notification, push), and within one safety interval if a notification is lost.
			PublishDelay:       15 * time.Second,
			ExchangesPerMinute: 60,
		},
	}
}

// ConfigFromEnv overlays RAGPLANE_* (and DATABASE_URL, NEON_API_KEY) variables onto the defaults.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	cfg := DefaultConfig()
	env := envconfig.New(getenv, "15m")
	env.String("RAGPLANE_ADMIN_ADDR", &cfg.AdminAddr)
	env.String("DATABASE_URL", &cfg.DatabaseURL)
	env.String("RAGPLANE_ADMIN_TOKEN", &cfg.AdminToken)
	env.String("RAGPLANE_SECRET_KEY", &cfg.SecretKey)
	env.String("RAGPLANE_INTERNAL_KEY", &cfg.InternalKey)
	env.String("REDIS_URL", &cfg.RedisURL)
	env.String("RAGPLANE_REDIS_PREFIX", &cfg.RedisPrefix)
	env.String("NEO4J_URI", &cfg.Neo4j.URI)
	env.String("NEO4J_USERNAME", &cfg.Neo4j.Username)
	env.String("NEO4J_PASSWORD", &cfg.Neo4j.Password)
	env.String("NEO4J_DATABASE", &cfg.Neo4j.Database)
	if v := env.Lookup("RAGPLANE_PRICES"); v != "" {
		p, err := parsePrices(v)
		if err != nil {
			env.Errorf("RAGPLANE_PRICES: want a JSON object of model -> {prompt_per_1k, completion_per_1k}")
		}
		cfg.Prices = p
	}
	env.String("RAGPLANE_XDS_ADDR", &cfg.XDSAddr)
	env.Duration("RAGPLANE_WORKER_LEASE_TTL", &cfg.WorkerLeaseTTL)
	env.String("RAGPLANE_PROVIDER", &cfg.Provision.DefaultProvider)
	env.String("RAGPLANE_REGION", &cfg.Provision.DefaultRegion)
	env.String("RAGPLANE_LOCAL_ADMIN_URL", &cfg.Provision.LocalAdminURL)
	env.String("RAGPLANE_LOCAL_PREFIX", &cfg.Provision.LocalPrefix)
	env.String("NEON_API_KEY", &cfg.Provision.NeonAPIKey)
	env.String("RAGPLANE_NEON_API_URL", &cfg.Provision.NeonAPIURL)
	env.Int("RAGPLANE_PROVISION_MAX_ATTEMPTS", &cfg.Provision.MaxAttempts)
	env.Int("RAGPLANE_PROVISION_CONCURRENCY", &cfg.Provision.Concurrency)
	env.Duration("RAGPLANE_PROVISION_BACKOFF", &cfg.Provision.BaseBackoff)
	env.Duration("RAGPLANE_IDLE_AFTER", &cfg.Provision.IdleAfter)
	env.Duration("RAGPLANE_OFFLOAD_AFTER", &cfg.Provision.OffloadAfter)
	env.String("RAGPLANE_OFFLOAD_DIR", &cfg.Provision.OffloadDir)
	env.String("RAGPLANE_TOKEN_ISSUER", &cfg.Tokens.Issuer)
	env.String("RAGPLANE_TOKEN_AUDIENCE", &cfg.Tokens.Audience)
	env.Duration("RAGPLANE_TOKEN_TTL", &cfg.Tokens.TTL)
	env.Duration("RAGPLANE_KEY_ROTATION", &cfg.Tokens.RotateEvery)
	env.Duration("RAGPLANE_KEY_PUBLISH_DELAY", &cfg.Tokens.PublishDelay)
	env.Int("RAGPLANE_TOKEN_EXCHANGES_PER_MINUTE", &cfg.Tokens.ExchangesPerMinute)
	env.Bool(durability.AllowEnv, &cfg.AllowUndurable)
	env.String("RAGPLANE_WEB_DIR", &cfg.WebDir)
	return cfg, env.Err()
}

// Validate reports every problem with the config at once, in words an operator can act on.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if _, _, err := net.SplitHostPort(c.AdminAddr); err != nil {
		bad("RAGPLANE_ADMIN_ADDR: want host:port, got %q", c.AdminAddr)
	}
	if _, _, err := net.SplitHostPort(c.XDSAddr); err != nil {
		bad("RAGPLANE_XDS_ADDR: want host:port, got %q", c.XDSAddr)
	}
	if c.InternalKey != "" && len(c.InternalKey) < 32 {
		bad("RAGPLANE_INTERNAL_KEY: at least 32 characters when set")
	}
	if c.WorkerLeaseTTL < time.Second {
		bad("RAGPLANE_WORKER_LEASE_TTL: want at least 1s")
	}
	if c.DatabaseURL == "" {
		bad("DATABASE_URL: required (the catalog database; `make up` writes one to .ragplane/stack.env)")
	} else if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		bad("DATABASE_URL: want a postgres:// URL")
	}
	if len(c.AdminToken) < 16 {
		bad("RAGPLANE_ADMIN_TOKEN: required, at least 16 characters")
	}
	if len(c.SecretKey) < catalog.MinSecretKeyLen {
		bad("RAGPLANE_SECRET_KEY: required, at least %d characters (e.g. `openssl rand -base64 32`)", catalog.MinSecretKeyLen)
	}
	switch c.Provision.DefaultProvider {
	case "local":
	case "neon":
		if c.Provision.NeonAPIKey == "" {
			bad("NEON_API_KEY: required when RAGPLANE_PROVIDER=neon")
		}
	default:
		bad("RAGPLANE_PROVIDER: want local or neon, got %q", c.Provision.DefaultProvider)
	}
	if c.Provision.MaxAttempts < 1 || c.Provision.MaxAttempts > 100 {
		bad("RAGPLANE_PROVISION_MAX_ATTEMPTS: want 1-100")
	}
	if c.Provision.Concurrency < 1 || c.Provision.Concurrency > 256 {
		bad("RAGPLANE_PROVISION_CONCURRENCY: want 1-256")
	}
	if c.Provision.BaseBackoff <= 0 {
		bad("RAGPLANE_PROVISION_BACKOFF: want a positive duration")
	}
	if c.Provision.IdleAfter < 0 {
		bad("RAGPLANE_IDLE_AFTER: want a duration, or 0 to never mark tenants idle")
	}
	if c.Provision.OffloadAfter < 0 {
		bad("RAGPLANE_OFFLOAD_AFTER: want a duration, or 0 to never offload idle tenants")
	}
	if c.Provision.OffloadAfter > 0 && c.Provision.IdleAfter == 0 {
		bad("RAGPLANE_OFFLOAD_AFTER: needs RAGPLANE_IDLE_AFTER (only idle tenants are offloaded)")
	}
	if c.Provision.OffloadAfter > 0 && c.Provision.OffloadDir == "" {
		bad("RAGPLANE_OFFLOAD_DIR: required with RAGPLANE_OFFLOAD_AFTER (where offloaded tenants' archives are kept)")
	}
	if c.Tokens.ExchangesPerMinute < 0 {
		bad("RAGPLANE_TOKEN_EXCHANGES_PER_MINUTE: want a whole number >= 0 (0: no limit)")
	}
	if c.Tokens.TTL <= 0 || c.Tokens.TTL > time.Hour {
		bad("RAGPLANE_TOKEN_TTL: want a duration up to 1h")
	}
	if c.Tokens.RotateEvery < time.Minute {
		bad("RAGPLANE_KEY_ROTATION: want at least 1m")
	}
	if c.Tokens.PublishDelay < 0 || c.Tokens.PublishDelay > 10*time.Minute {
		bad("RAGPLANE_KEY_PUBLISH_DELAY: want a duration from 0 to 10m")
	}
	if strings.TrimSpace(c.Tokens.Issuer) == "" || strings.TrimSpace(c.Tokens.Audience) == "" {
		bad("RAGPLANE_TOKEN_ISSUER and RAGPLANE_TOKEN_AUDIENCE: must not be empty")
	}
	if c.MaxBodyBytes <= 0 {
		bad("max body bytes must be positive")
	}
	if c.Neo4j.URI != "" {
		u, err := url.Parse(c.Neo4j.URI)
		switch {
		case err != nil || u.Host == "":
			bad("NEO4J_URI: want a URL like neo4j://host:7687, got %q", c.Neo4j.URI)
		case !slices.Contains([]string{"neo4j", "neo4j+s", "neo4j+ssc", "bolt", "bolt+s", "bolt+ssc"}, u.Scheme):
			bad("NEO4J_URI: want a neo4j://, neo4j+s://, neo4j+ssc://, bolt://, bolt+s:// or bolt+ssc:// URL, got scheme %q", u.Scheme)
		}
	}
	if c.Neo4j.Username == "" && c.Neo4j.Password != "" {
		bad("NEO4J_USERNAME: required when NEO4J_PASSWORD is set")
	}
	if err := apidocs.CheckWebDir(c.WebDir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
