package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"golang.org/x/sync/errgroup"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/internal/problem"
	"github.com/ragplane/ragplane/internal/tenantctx"
	"github.com/ragplane/ragplane/internal/tracing"
	"github.com/ragplane/ragplane/internal/xdsapi"
	"github.com/ragplane/ragplane/proxy/ratelimit"
	"github.com/ragplane/ragplane/proxy/xdsclient"
)

// Server is a running proxy.
type Server struct {
	cfg      Config
	log      *slog.Logger
	state    *state
	xds      *xdsclient.Client
	tracing  bool // spans are exported
	gate     *ratelimit.Gate
	verifier *verifier
	codec    *tenantctx.Codec
	balancer *balancer
	rp       *httputil.ReverseProxy
	cprp     *httputil.ReverseProxy // to the control plane (controlplane.go)
	metrics  *metrics
	metricsH http.Handler
	listener net.Listener
	http     *http.Server
	// The admin listener: metrics and health detail, never tenant traffic.
	adminLn   net.Listener
	adminHTTP *http.Server
	closers   []func()
}

// Run starts a proxy and blocks until ctx ends.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	s, err := New(ctx, cfg, logger)
	if err != nil {
		return err
	}
	return s.Run(ctx)
}

// New validates cfg, connects to Redis and binds the listener.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("proxy config:\n%w", err)
	}
	// Each component's logger is named here, once: sub-packages add no "component" of their
	// own, so a line carries the key once (proxy, proxy.ratelimit, proxy.xdsclient).
	s := &Server{cfg: cfg, log: logger.With("component", "proxy"), state: &state{}}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.metricsH = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})

	// 1. The signer of the tenant context workers trust.
	codec, err := tenantctx.New(cfg.InternalKey)
	if err != nil {
		return nil, err
	}
	s.codec = codec

	// 2. Redis, shared by every replica, for rate limits and concurrency leases.
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, errors.New("proxy: REDIS_URL cannot be parsed")
	}
	// Deadlines end calls on the socket, so the gate calls Redis on the request's goroutine.
	// Admissions are auto-pipelined, which does not end a queued call with its context: the
	// socket timeouts bound every call instead, and a batch is never sent twice (an admission
	// is not idempotent).
	opts.ContextTimeoutEnabled = true
	opts.ReadTimeout, opts.WriteTimeout, opts.MaxRetries = ratelimit.DefaultTimeout, ratelimit.DefaultTimeout, -1
	rdb := redis.NewClient(opts)
	s.closers = append(s.closers, func() { rdb.Close() })
	s.gate = ratelimit.NewGate(ratelimit.GateConfig{Client: rdb, RatePrefix: cfg.RedisPrefix + "rl:", LeasePrefix: cfg.RedisPrefix + "cc:",
		RateFailPolicy: defaultFailPolicy(cfg.RateLimitFailOpen), ConcurrencyFailPolicy: defaultFailPolicy(cfg.ConcurrencyFailOpen), Replicas: cfg.Replicas,
		LeaseTTL: cfg.LeaseTTL, AutoPipeline: true, Logger: logger.With("component", "proxy.ratelimit"), Registerer: reg})
	s.closers = append(s.closers, func() { s.gate.Close() })
	s.verifier = newVerifier(cfg.Leeway, cfg.TokenCacheSize)

	// 3. The xDS subscription that configures everything else.
	xdsResponses := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ragplane_proxy_xds_responses_total",
		Help: "xDS responses by type and result (ack or nack)."}, []string{"type", "result"})
	reg.MustRegister(xdsResponses)
	// Each response is decoded once and applied in place (state.apply): an update costs what it
	// changes, not the tenant count.
	s.xds = xdsclient.New(xdsclient.Config{Addr: cfg.XDSAddr, NodeID: cfg.NodeID, TypeURLs: subscribed,
		Logger: logger.With("component", "proxy.xdsclient"), Decode: decode, Apply: s.state.apply, OnResponse: func(r xdsclient.Response) {
			result := "ack"
			if r.Err != nil {
				result = "nack"
				s.log.Error("xds update rejected; the previous version of the rejected resources is served",
					"type", r.TypeURL, "version", r.SystemVersion, "rejected", len(r.Rejected), "error", r.Err)
			}
			xdsResponses.WithLabelValues(shortType(r.TypeURL), result).Inc()
		}})
	reg.MustRegister(newXDSCollector(s.xds))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ragplane_proxy_xds_connected",
		Help: "1 while the proxy's xDS stream to the control plane is up."}, func() float64 {
		if s.xds.Connected() {
			return 1
		}
		return 0
	}))
	s.metrics = newMetrics(reg, 100, func() float64 {
		if t := s.xds.LastUpdate(); !t.IsZero() {
			return time.Since(t).Seconds()
		}
		return -1
	})

	// 4. Routing to workers.
	s.balancer = newBalancer(cfg.EjectAfter, cfg.EjectFor)
	var upstream http.RoundTripper = &http.Transport{
		DialContext: (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		// Keep a connection per concurrent request to each worker: a proxy that has to dial
		// under load spends its time in handshakes and TIME_WAIT.
		MaxIdleConns:        0, // no limit across workers
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
		// The time to response headers is bounded per route by retryTransport.
		// Workers speak HTTP/1.1 on loopback or a cluster network; compression is the
		// client's business, not the proxy's.
		DisableCompression: true,
	}
	var handler http.Handler = s
	if s.tracing = tracing.Exporting(); s.tracing {
		// Spans of the proxy's own (a server span per request, a client span per attempt) only
		// when they go somewhere: they cost about a tenth of the proxy's CPU. Without them the
		// client's traceparent and baggage still reach the worker, copied as they came.
		upstream, handler = otelhttp.NewTransport(upstream), otelhttp.NewHandler(s, "proxy")
	}
	s.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "worker" },
		// Zero, not -1: a response of known length goes out in one write, while server-sent
		// events and responses of unknown length (streamed answers) are still flushed at once
		// (httputil does that by itself).
		FlushInterval: 0,
		BufferPool:    &bufferPool{},
		Transport: &retryTransport{balancer: s.balancer, workers: s.state.endpoints, base: upstream,
			timeout: func(r *http.Request) time.Duration { return cfg.routeTimeout(r.Method, r.URL.Path) }, idle: cfg.StreamIdleTimeout,
			retried:  func(reason string) { s.metrics.retries.WithLabelValues(reason).Inc() },
			timedOut: func(reason string) { s.metrics.timeouts.WithLabelValues(reason).Inc() }},
		ErrorHandler:   s.upstreamError,
		ModifyResponse: ownHeaders,
	}

	cpURL, _ := url.Parse(cfg.ControlPlaneURL) // checked by Validate
	s.cprp = s.newControlPlaneProxy(cpURL)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("proxy: listen on %s: %w", cfg.Addr, err)
	}
	s.listener = ln
	s.closers = append(s.closers, func() { ln.Close() })
	s.http = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10}
	adminLn, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		return nil, fmt.Errorf("proxy: listen on %s (RAGPLANE_PROXY_ADMIN_ADDR): %w", cfg.AdminAddr, err)
	}
	s.adminLn = adminLn
	s.closers = append(s.closers, func() { adminLn.Close() })
	s.adminHTTP = &http.Server{Handler: s.adminHandler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 64 << 10}
	ok = true
	return s, nil
}

// Addr is the proxy's tenant-facing address.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// AdminAddr is the address of the admin listener: /metrics, /readyz and /healthz with detail.
func (s *Server) AdminAddr() string { return s.adminLn.Addr().String() }

// adminHandler serves what only operators may see. Nothing here is access-logged: probes and
// scrapes would drown the traffic.
func (s *Server) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metricsH)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rd, ok := s.readiness()
		writeJSON(w, readyStatus(ok), rd.json())
	})
	return mux
}

func readyStatus(ok bool) int {
	if ok {
		return http.StatusOK
	}
	return http.StatusServiceUnavailable
}

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	defer s.close()
	// The xDS client, the balancer's follower and the HTTP server run as one group: the first
	// that fails ends the others and Run returns its error. ctx ending is not a failure.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.xds.Run(gctx) })
	g.Go(func() error { s.follow(gctx); return nil })
	g.Go(func() error {
		if err := s.http.Serve(s.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("proxy: serve: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := s.adminHTTP.Serve(s.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("proxy: serve admin: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done() // ctx ended, or a member failed
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := s.http.Shutdown(sctx); err != nil {
			s.log.Warn("proxy shutdown", "error", err)
		}
		// Metrics stay scrapeable while tenant requests drain.
		if err := s.adminHTTP.Shutdown(sctx); err != nil {
			s.log.Warn("proxy admin shutdown", "error", err)
		}
		return nil
	})
	s.log.Info("proxy started", "addr", s.Addr(), "admin_addr", s.AdminAddr(), "xds", s.cfg.XDSAddr)
	err := g.Wait()
	if err != nil {
		s.log.Error("proxy failed", "error", err)
	}
	s.log.Info("proxy stopped")
	return err
}

// follow lets the balancer forget workers that left the endpoint set.
func (s *Server) follow(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case t := <-s.xds.Updates():
			// The state is already applied (xdsclient Apply); only the balancer follows here.
			if t == xdsapi.TypeEndpoint {
				s.balancer.forget(s.state.endpoints())
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

// internalHeaders are stripped from every client request: only the proxy sets them.
var internalHeaders = []string{tenantctx.Header, tenantctx.ClientHeader, "X-Tenant-ID", "X-Ragplane-Tenant", "X-Forwarded-For", "X-Real-IP"}

// ServeHTTP answers the proxy's own endpoints and runs every other request through serve,
// then writes its access log line.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rid := ragplane.NewRequestID()
	// Both headers are the proxy's on every response of the tenant listener, errors included:
	// the request id is the one passed to the worker (whose echo of it is dropped, see
	// ownHeaders), and tenant data is never stored by a browser or a shared cache.
	w.Header().Set("X-Request-ID", rid)
	w.Header().Set("Cache-Control", "no-store")
	// Probes are answered here and not access-logged: they would drown the traffic. The tenant
	// listener says only whether the proxy is live and ready, for the load balancers in front of
	// it; metrics and the detail (tenant ids among rejected resources, workers) are on the admin
	// listener only.
	if s.serveDocs(w, r) {
		return
	}
	switch r.URL.Path {
	case "/.well-known/jwks.json":
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			s.serveJWKS(w, r)
			return
		}
	case "/v1/auth/token":
		if r.Method == http.MethodPost {
			rec := &statusRecorder{ResponseWriter: w}
			s.exchangeToken(rec, r, rid)
			if s.cfg.AccessLog {
				s.logAccess(r, rec, "", rid, start)
			}
			return
		}
	case "/healthz":
		writeJSON(w, http.StatusOK, `{"status":"ok"}`)
		return
	case "/readyz":
		rd, ok := s.readiness()
		writeJSON(w, readyStatus(ok), rd.public())
		return
	}
	rec := &statusRecorder{ResponseWriter: w}
	tenant := s.serve(rec, r, start, rid)
	if s.cfg.AccessLog {
		s.logAccess(r, rec, tenant, rid, start)
	}
}

// serve runs the per-request pipeline: verify the token, apply the tenant's policy, rate
// limits and concurrency cap, then forward to a worker with the signed tenant context. It
// returns the tenant once the token is verified, for the access log.
func (s *Server) serve(w *statusRecorder, r *http.Request, start time.Time, rid string) ragplane.TenantID {
	for _, h := range internalHeaders {
		r.Header.Del(h)
	}
	// The tenant API is under /v1/; the workers' own endpoints (/metrics among them) are never
	// reachable through the proxy.
	if !strings.HasPrefix(r.URL.Path, "/v1/") {
		s.fail(w, r, "", ragplane.Errorf(ragplane.ENOTFOUND, "No such route."))
		return ""
	}
	if !s.xds.Ready() {
		s.fail(w, r, "", ragplane.Errorf(ragplane.EUNAVAILABLE, "The proxy has no configuration yet."))
		return ""
	}
	id, err := s.verifier.authenticate(r, s.state.keys(), start)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ragplane", error="invalid_token"`)
		s.fail(w, r, "", err)
		return ""
	}
	if s.tracing {
		r = r.WithContext(tracing.WithTenant(r.Context(), id.TenantID))
	}
	label := s.metrics.tenant(id.TenantID)
	pol, ok := s.state.policy(id.TenantID)
	switch {
	case !ok || pol.Status == ragplane.StatusDeleted || pol.Status == ragplane.StatusDeleting:
		w.Header().Set("WWW-Authenticate", `Bearer realm="ragplane", error="invalid_token"`)
		s.fail(w, r, label, ragplane.Errorf(ragplane.EUNAUTHORIZED, "The token's tenant does not exist."))
		return id.TenantID
	case id.APIKeyID != "" && slices.Contains(pol.RevokedAPIKeys, id.APIKeyID):
		// The key that minted the token was revoked: the same answer as any invalid token.
		w.Header().Set("WWW-Authenticate", `Bearer realm="ragplane", error="invalid_token"`)
		s.fail(w, r, label, ragplane.Errorf(ragplane.EUNAUTHORIZED, "A valid bearer token is required."))
		return id.TenantID
	case pol.Status == ragplane.StatusSuspended:
		s.fail(w, r, label, ragplane.Errorf(ragplane.EFORBIDDEN, "The tenant is suspended."))
		return id.TenantID
	case pol.Status != ragplane.StatusActive:
		s.fail(w, r, label, ragplane.Errorf(ragplane.EUNAVAILABLE, "The tenant is not ready (%s).", pol.Status))
		return id.TenantID
	}
	limit := int64(pol.Limits.MaxRequestBytes)
	if r.ContentLength > limit {
		s.fail(w, r, label, &ragplane.Error{Code: ragplane.ETOOLARGE, Field: "max_request_bytes",
			Message: fmt.Sprintf("The request body is over the tenant's limit of %d bytes.", limit)})
		return id.TenantID
	}
	// A chunked body is counted as it streams; going over fails the forward with 413. The
	// server's own writer, not the recorder, so that net/http closes the connection after it.
	r.Body = http.MaxBytesReader(w.ResponseWriter, r.Body, limit)

	// One Redis call decides both rate limits and takes the concurrency slot.
	d, lease, err := s.gate.Admit(r.Context(), id.TenantID, pol.Limits)
	if d.Limit > 0 {
		ratelimit.SetHeaders(w.Header(), d)
	}
	if err != nil {
		if ragplane.ErrorCode(err) == ragplane.ERATELIMITED {
			s.metrics.concRejected.WithLabelValues(label).Inc()
			w.Header().Set("Retry-After", "1")
		}
		s.fail(w, r, label, err)
		return id.TenantID
	}
	if !d.Allowed {
		s.metrics.rateLimited.WithLabelValues(label, d.Scope).Inc()
		field := map[string]string{ratelimit.ScopeSecond: "requests_per_second", ratelimit.ScopeHour: "queries_per_hour"}[d.Scope]
		s.fail(w, r, label, &ragplane.Error{Code: ragplane.ERATELIMITED, Field: field,
			Message: fmt.Sprintf("The tenant's %s limit is reached; retry after %s.", strings.ReplaceAll(field, "_", " "), w.Header().Get("Retry-After")+"s")})
		return id.TenantID
	}
	// The slot goes back without a blocking round trip once the response is done.
	defer lease.Done()
	s.metrics.inFlight.WithLabelValues(label).Inc()
	defer s.metrics.inFlight.WithLabelValues(label).Dec()

	// A retry on another worker needs the body again (see makeReplayable and retryTransport).
	if err := makeReplayable(r, limit); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.fail(w, r, label, &ragplane.Error{Code: ragplane.ETOOLARGE, Field: "max_request_bytes",
				Message: fmt.Sprintf("The request body is over the tenant's limit of %d bytes.", mbe.Limit)})
		} else {
			s.fail(w, r, label, ragplane.Errorf(ragplane.EMALFORMED, "The request body could not be read."))
		}
		return id.TenantID
	}
	tc := tenantctx.Context{Identity: id, RequestID: rid, IssuedAt: time.Now()}
	if d.HourRemaining >= 0 && d.Limit > 0 {
		left := d.HourRemaining
		tc.QueriesLeft = &left
	}
	r.Header.Set(tenantctx.Header, s.codec.Sign(tc, r.Method, r.URL.Path))
	r.Header.Set("X-Request-ID", rid)
	s.metrics.proxyOverhead.WithLabelValues(label).Observe(time.Since(start).Seconds())
	forwarded := time.Now()
	if controlPlaneRoute(r.URL.Path) {
		s.cprp.ServeHTTP(w, r)
	} else {
		s.rp.ServeHTTP(w, r)
	}
	s.metrics.requests.WithLabelValues(label, strconv.Itoa(w.status())).Inc()
	if !w.firstByte.IsZero() {
		s.metrics.upstream.WithLabelValues(label).Observe(w.firstByte.Sub(forwarded).Seconds())
	}
	return id.TenantID
}

// logAccess writes the request's access log line: one per request, a constant message, no
// query string (it may carry secrets) and nothing of the Authorization header. The attributes
// go in a fixed array so that the line costs the handler's encoding and little else.
func (s *Server) logAccess(r *http.Request, rec *statusRecorder, tenant ragplane.TenantID, rid string, start time.Time) {
	var a [8]slog.Attr
	n := 0
	add := func(attr slog.Attr) { a[n] = attr; n++ }
	add(slog.String("request_id", rid))
	if tenant != "" {
		add(slog.String("tenant_id", string(tenant)))
	}
	if tid := traceID(r); tid != "" {
		add(slog.String("trace_id", tid))
	}
	add(slog.String("method", r.Method))
	add(slog.String("path", r.URL.Path))
	add(slog.Int("status", rec.status()))
	add(slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000))
	add(slog.Int64("bytes", rec.bytes))
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", a[:n]...)
}

// traceID is the id of the request's trace: the proxy's own span when spans are exported,
// otherwise the client's W3C traceparent (version-traceid-parentid-flags) when well formed.
func traceID(r *http.Request) string {
	if id := tracing.TraceID(r.Context()); id != "" {
		return id
	}
	tp := r.Header.Get("Traceparent")
	if len(tp) != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return ""
	}
	id := tp[3:35]
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
	}
	if id == "00000000000000000000000000000000" {
		return ""
	}
	return id
}

// fail writes err as problem+json and counts it.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, label string, err error) {
	problem.Write(w, r, err, s.log)
	if label == "" {
		label = "none"
	}
	s.metrics.requests.WithLabelValues(label, strconv.Itoa(problem.From(err).Status)).Inc()
}

// upstreamError renders forwarding failures: an over-limit body is 413, no worker 503, a worker
// that did not answer within the route's timeout 504, an unreachable or failing worker 502; a
// client that went away gets nothing.
func (s *Server) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	var re *ragplane.Error
	var te *timeoutError
	switch {
	case errors.As(err, &te):
		s.log.Warn("worker request timed out", "error", err, "request_id", r.Header.Get("X-Request-ID"),
			"trace_id", tracing.TraceID(r.Context()))
		w.Header().Set("Retry-After", "1")
		problem.Write(w, r, ragplane.Errorf(ragplane.ETIMEOUT, "The data-plane worker did not answer within %s.", te.after), nil)
	case errors.As(err, &mbe):
		problem.Write(w, r, &ragplane.Error{Code: ragplane.ETOOLARGE, Field: "max_request_bytes",
			Message: fmt.Sprintf("The request body is over the tenant's limit of %d bytes.", mbe.Limit)}, s.log)
	case errors.As(err, &re):
		problem.Write(w, r, err, s.log)
	case errors.Is(err, context.Canceled):
		w.WriteHeader(499) // the client closed the request; nobody reads this
	default:
		s.log.Warn("worker request failed", "error", err, "request_id", r.Header.Get("X-Request-ID"),
			"trace_id", tracing.TraceID(r.Context()))
		problem.Write(w, r, ragplane.Errorf(ragplane.EUPSTREAM, "The data-plane worker could not be reached."), nil)
	}
}

// ownHeaders drops the worker's X-Request-ID and Cache-Control: the reverse proxy adds the
// worker's headers to those ServeHTTP already set, so each would otherwise appear twice.
func ownHeaders(resp *http.Response) error {
	resp.Header.Del("X-Request-ID")
	resp.Header.Del("Cache-Control")
	return nil
}

// shortType is the last element of a type URL, a bounded metric label.
func shortType(typeURL string) string {
	if i := strings.LastIndexByte(typeURL, '.'); i >= 0 {
		return typeURL[i+1:]
	}
	return typeURL
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write([]byte(body))
}

// statusRecorder notes the status, the body bytes written and when the first byte came back;
// it keeps Flush working.
type statusRecorder struct {
	http.ResponseWriter
	code      int
	bytes     int64
	firstByte time.Time
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.firstByte.IsZero() {
		r.firstByte = time.Now()
	}
	// An informational response (103 Early Hints) is not the status of the request.
	if r.code == 0 && code >= 200 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.WriteHeader(http.StatusOK)
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

// bufferPool lends the reverse proxy its 32 KiB copy buffers, so that a response does not
// allocate one.
type bufferPool struct{ pool sync.Pool }

func (p *bufferPool) Get() []byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, 32<<10)
}

func (p *bufferPool) Put(b []byte) { p.pool.Put(&b) }
