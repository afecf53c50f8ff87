package controlplane

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ragplane/ragplane/catalog"
)

// Failed admin authentications are audited, within caps, so that a flood of bad tokens cannot
// fill the audit log: per replica and per minute, at most authAuditPerSource entries for one
// source address and authAuditTotal in all. The rest are only counted
// (ragplane_controlplane_admin_auth_failures_total{result="capped"}).
const (
	authAuditPerSource = 10
	authAuditTotal     = 60
	authAuditWindow    = time.Minute
	// authAuditTimeout bounds the audit write a failed request waits for.
	authAuditTimeout = 2 * time.Second
)

// authAuditor writes the audit entry of a failed admin authentication: action
// "admin.auth_failed", target the route, actor "anonymous" or, when the bearer is shaped like a
// tenant API key, "key:<its public prefix>" (never any secret part), and the method, route,
// source address and reason in the entry's after. The source is the connection's peer address,
// not X-Forwarded-For, which the caller chooses; or, for a request a proxy forwarded, the client
// address the proxy signed (Server.source).
type authAuditor struct {
	store    *catalog.Store
	log      *slog.Logger
	failures *prometheus.CounterVec // result: audited, capped, error

	mu        sync.Mutex
	window    time.Time
	total     int
	perSource map[string]int
	now       func() time.Time
}

func newAuthAuditor(store *catalog.Store, log *slog.Logger, reg prometheus.Registerer) *authAuditor {
	a := &authAuditor{store: store, log: log, now: time.Now, perSource: map[string]int{},
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ragplane_controlplane_admin_auth_failures_total",
			Help: "Failed admin API authentications by result: audited, capped (over the audit caps, not written) or error (the audit write failed).",
		}, []string{"result"})}
	reg.MustRegister(a.failures)
	return a
}

// allow takes one of the window's audit slots for src, if any is left. The per-source map holds
// at most authAuditTotal sources: a source is added only when it gets a slot.
func (a *authAuditor) allow(src string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if now := a.now(); now.Sub(a.window) >= authAuditWindow {
		a.window, a.total = now, 0
		clear(a.perSource)
	}
	if a.total >= authAuditTotal || a.perSource[src] >= authAuditPerSource {
		return false
	}
	a.total++
	a.perSource[src]++
	return true
}

// record audits a failed authentication of c from src (see Server.source); presented is the
// bearer token ("" if none).
func (a *authAuditor) record(c echo.Context, presented, src string) {
	req := c.Request()
	if !a.allow(src) {
		a.failures.WithLabelValues("capped").Inc()
		return
	}
	route := c.Path()
	if route == "" {
		route = "unmatched"
	}
	reason := "invalid"
	if presented == "" {
		reason = "missing"
	}
	detail, _ := json.Marshal(map[string]string{"method": req.Method, "route": route, "source": src, "reason": reason}) // strings: cannot fail
	ctx, cancel := context.WithTimeout(context.WithoutCancel(req.Context()), authAuditTimeout)
	defer cancel()
	// The catalog's writers audit inside their own transactions; this entry records no change,
	// so it is a single insert of its own.
	_, err := a.store.Pool().Exec(ctx, `insert into audit_log (actor, action, target, after, request_id)
		values ($1, 'admin.auth_failed', $2, $3, $4)`,
		presentedActor(presented), route, detail, c.Response().Header().Get(echo.HeaderXRequestID))
	if err != nil {
		a.failures.WithLabelValues("error").Inc()
		a.log.Warn("auditing a failed admin authentication failed", "route", route, "source", src, "error", err)
		return
	}
	a.failures.WithLabelValues("audited").Inc()
}

// presentedActor names who presented tok: "key:<prefix>" for a token shaped like a tenant API key
// (rpk_<12-character public prefix>_<secret>), whose prefix is not secret, else "anonymous".
func presentedActor(tok string) string {
	parts := strings.Split(tok, "_")
	if len(parts) != 3 || parts[0] != "rpk" || len(parts[1]) != 12 {
		return "anonymous"
	}
	for _, r := range parts[1] {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return "anonymous"
		}
	}
	return "key:" + parts[1]
}
