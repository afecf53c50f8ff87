package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ragplane/ragplane/internal/apidocs"
	"github.com/ragplane/ragplane/internal/envconfig"
	"github.com/ragplane/ragplane/internal/tenantctx"
)

// Config is the proxy's configuration.
type Config struct {
	// Addr is the tenant-facing REST API. Besides the API it answers only /healthz (liveness) and
	// /readyz (ready or not, with a coarse reason), which load balancers in front of it probe.
	Addr string
	// AdminAddr serves what tenants must not see: /metrics (every tenant's id and traffic) and
	// /readyz and /healthz with their detail (stale or rejected resources, workers). It defaults to
	// loopback; expose it to the monitoring network only, never to tenants.
	AdminAddr string
	// XDSAddr is the control plane's xDS (ADS) server; NodeID names this proxy to it.
	XDSAddr string
	NodeID  string
	// RedisURL holds rate-limit and concurrency state shared by all proxy replicas; every key
	// starts with RedisPrefix, so installations can share a Redis.
	RedisURL    string
	RedisPrefix string
	// InternalKey signs the tenant context for workers.
	InternalKey string
	// ControlPlaneURL is the control plane's admin API, where the proxy forwards the token
	// exchange (POST /v1/auth/token) and the tenant's key routes (/v1/keys), so that a tenant
	// needs the proxy's address only.
	ControlPlaneURL string
	// Replicas is how many proxy replicas share the quotas (for the local fallback share).
	Replicas int
	// RateLimitFailOpen and ConcurrencyFailOpen are the fail policies of tenants whose policy
	// names none (from a control plane older than the rate_limit_fail_policy and
	// concurrency_fail_policy limits): true (the default) enforces this replica's share of the
	// limit while Redis is away, false refuses requests (503).
	RateLimitFailOpen   bool
	ConcurrencyFailOpen bool
	// Leeway is the clock skew allowed on exp and nbf.
	Leeway time.Duration
	// UpstreamTimeout is the time a worker has to send its response headers, counted from the
	// moment the proxy sends it the request, on every route but queries and uploads: search,
	// document reads and deletes, graph, usage. QueryTimeout is that of POST /v1/query,
	// IngestTimeout that of uploads (POST /v1/documents, /v1/documents/batch, /v1/ingest). A
	// request that runs out gets 504; a retry on another worker (see retryTransport) gets the
	// timeout again.
	UpstreamTimeout time.Duration
	QueryTimeout    time.Duration
	IngestTimeout   time.Duration
	// StreamIdleTimeout cuts a response, server-sent events included, whose worker sent nothing
	// for this long once its headers came (0: never).
	StreamIdleTimeout time.Duration
	// LeaseTTL is how long a concurrency slot outlives a crashed proxy.
	LeaseTTL time.Duration
	// TokenCacheSize is how many verified tokens the proxy remembers (0: verify every request).
	TokenCacheSize int
	// EjectAfter consecutive failures take a worker out of rotation for EjectFor.
	EjectAfter int
	EjectFor   time.Duration
	// WebDir holds the API reference viewer served at /docs (RAGPLANE_WEB_DIR, from ops/web.sh);
	// empty serves a plain page linking /openapi.json.
	WebDir string
	// AccessLog writes one Info line per proxied request (message "request": tenant_id,
	// request_id, trace_id, method, path without query, status, duration_ms, bytes); default true.
	AccessLog bool
}

// DefaultConfig runs locally; the internal key must still be set.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Addr: "127.0.0.1:8080", AdminAddr: "127.0.0.1:8082", XDSAddr: "127.0.0.1:18000", ControlPlaneURL: "http://127.0.0.1:8081", NodeID: "proxy-" + host + "-" + strconv.Itoa(os.Getpid()),
		RedisPrefix: "ragplane:", Replicas: 1, RateLimitFailOpen: true, ConcurrencyFailOpen: true, Leeway: 30 * time.Second,
		UpstreamTimeout: 30 * time.Second, QueryTimeout: 2 * time.Minute, IngestTimeout: 2 * time.Minute, StreamIdleTimeout: 30 * time.Second,
		EjectAfter: 3, EjectFor: 10 * time.Second, LeaseTTL: 30 * time.Second, TokenCacheSize: DefaultTokenCacheSize,
		AccessLog: true,
	}
}

// ConfigFromEnv overlays RAGPLANE_* variables (and REDIS_URL) onto the defaults.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	cfg := DefaultConfig()
	env := envconfig.New(getenv, "30s")
	env.String("RAGPLANE_PROXY_ADDR", &cfg.Addr)
	env.String("RAGPLANE_PROXY_ADMIN_ADDR", &cfg.AdminAddr)
	env.String("RAGPLANE_XDS_ADDR", &cfg.XDSAddr)
	env.String("RAGPLANE_NODE_ID", &cfg.NodeID)
	env.String("REDIS_URL", &cfg.RedisURL)
	env.String("RAGPLANE_REDIS_PREFIX", &cfg.RedisPrefix)
	env.String("RAGPLANE_INTERNAL_KEY", &cfg.InternalKey)
	env.String("RAGPLANE_CONTROLPLANE_URL", &cfg.ControlPlaneURL)
	if v := env.Lookup("RAGPLANE_TOKEN_CACHE_SIZE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			env.Errorf("RAGPLANE_TOKEN_CACHE_SIZE: want a whole number >= 0, got %q", v)
		}
		cfg.TokenCacheSize = n
	}
	env.Int("RAGPLANE_PROXY_REPLICAS", &cfg.Replicas)
	env.Bool("RAGPLANE_RATELIMIT_FAIL_OPEN", &cfg.RateLimitFailOpen)
	env.Bool("RAGPLANE_CONCURRENCY_FAIL_OPEN", &cfg.ConcurrencyFailOpen)
	env.Bool("RAGPLANE_ACCESS_LOG", &cfg.AccessLog)
	env.String("RAGPLANE_WEB_DIR", &cfg.WebDir)
	env.Duration("RAGPLANE_JWT_LEEWAY", &cfg.Leeway)
	env.Duration("RAGPLANE_UPSTREAM_TIMEOUT", &cfg.UpstreamTimeout)
	env.Duration("RAGPLANE_UPSTREAM_TIMEOUT_QUERY", &cfg.QueryTimeout)
	env.Duration("RAGPLANE_UPSTREAM_TIMEOUT_INGEST", &cfg.IngestTimeout)
	env.Duration("RAGPLANE_STREAM_IDLE_TIMEOUT", &cfg.StreamIdleTimeout)
	env.Duration("RAGPLANE_LEASE_TTL", &cfg.LeaseTTL)
	return cfg, env.Err()
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for name, addr := range map[string]string{"RAGPLANE_PROXY_ADDR": c.Addr, "RAGPLANE_PROXY_ADMIN_ADDR": c.AdminAddr, "RAGPLANE_XDS_ADDR": c.XDSAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad("%s: want host:port, got %q", name, addr)
		}
	}
	if c.AdminAddr == c.Addr && !strings.HasSuffix(c.Addr, ":0") {
		bad("RAGPLANE_PROXY_ADMIN_ADDR must differ from RAGPLANE_PROXY_ADDR: metrics and health detail are not for tenants")
	}
	if u, err := url.Parse(c.ControlPlaneURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("RAGPLANE_CONTROLPLANE_URL: want the control plane's admin API as http(s)://host:port, got %q", c.ControlPlaneURL)
	}
	if c.RedisURL == "" {
		bad("REDIS_URL: required (rate limits and concurrency caps are shared in Redis; `make up` writes one)")
	}
	if len(c.InternalKey) < tenantctx.MinKeyLen {
		bad("RAGPLANE_INTERNAL_KEY: required, at least %d characters, the same as the workers'", tenantctx.MinKeyLen)
	}
	if c.NodeID == "" || c.Replicas < 1 {
		bad("RAGPLANE_NODE_ID must not be empty and RAGPLANE_PROXY_REPLICAS must be at least 1")
	}
	if c.Leeway < 0 || c.Leeway > 5*time.Minute || c.EjectAfter < 1 || c.EjectFor <= 0 {
		bad("RAGPLANE_JWT_LEEWAY (0-5m) is out of range, or the ejection settings are not positive")
	}
	if c.UpstreamTimeout <= 0 || c.QueryTimeout <= 0 || c.IngestTimeout <= 0 || c.StreamIdleTimeout < 0 {
		bad("RAGPLANE_UPSTREAM_TIMEOUT, RAGPLANE_UPSTREAM_TIMEOUT_QUERY and RAGPLANE_UPSTREAM_TIMEOUT_INGEST must be > 0, RAGPLANE_STREAM_IDLE_TIMEOUT >= 0 (0: no limit)")
	}
	if err := apidocs.CheckWebDir(c.WebDir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// routeTimeout is the time a worker has to send the response headers of a request to path.
func (c Config) routeTimeout(method, path string) time.Duration {
	switch {
	case path == "/v1/query":
		return c.QueryTimeout
	case method == "POST" && (path == "/v1/documents" || path == "/v1/documents/batch" || path == "/v1/ingest"):
		return c.IngestTimeout
	}
	return c.UpstreamTimeout
}
