package proxy

import (
	"time"

	"github.com/ragplane/ragplane"
)

// dependency is one shared service the proxy needs besides the control plane, as /readyz shows it.
type dependency struct {
	Name string `json:"name"`
	// Status is "up" or "down".
	Status string `json:"status"`
	// Since is when it went down (RFC 3339); Error why, as last seen. Both only while down.
	Since string `json:"since,omitempty"`
	Error string `json:"error,omitempty"`
}

// redisDegradedReason names no address or tenant: the tenant listener's /readyz shows it too.
const redisDegradedReason = "Redis is unreachable: each tenant's limits are enforced by its fail policy (by default this proxy's share of each limit)"

// addDependencies lists the proxy's dependencies in r and marks a proxy that is otherwise ready
// degraded while Redis is away. It stays ready: every tenant is still served within its fail
// policy, and taking every replica out of the load balancers would take every tenant down.
func (s *Server) addDependencies(r *readiness) {
	st := s.gate.Redis()
	d := dependency{Name: "redis", Status: "up"}
	if !st.Up {
		d.Status, d.Since, d.Error = "down", st.Since.UTC().Format(time.RFC3339), st.LastError
		if r.Status == "ready" {
			r.Status, r.Reason = "degraded", redisDegradedReason
		}
	}
	r.Dependencies = append(r.Dependencies, d)
}

// defaultFailPolicy is the fail policy the RAGPLANE_*_FAIL_OPEN variables choose for tenants
// whose policy names none.
func defaultFailPolicy(open bool) string {
	if open {
		return ragplane.FailLocalShare
	}
	return ragplane.FailClosed
}
