package proxy

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/ragplane/ragplane"
)

// Type URLs the proxy subscribes to (the control plane's xds contract).
const (
	typePolicy     = "type.googleapis.com/google.protobuf.Struct"
	typeCluster    = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	typeEndpoints  = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	typeJWT        = "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtProvider"
	typeRateLimits = "type.googleapis.com/ratelimit.config.ratelimit.v3.RateLimitConfig"
)

var subscribed = []string{typePolicy, typeCluster, typeEndpoints, typeJWT, typeRateLimits}

// keySet is the verification keys and claims checks pushed by the control plane.
type keySet struct {
	issuer    string
	audiences []string
	keys      map[string]ed25519.PublicKey
}

// state is the last good configuration; it survives control-plane outages.
type state struct {
	mu       sync.RWMutex
	policies map[ragplane.TenantID]ragplane.TenantPolicy
	jwt      keySet
	workers  []string
	updated  time.Time
}

func (s *state) policy(id ragplane.TenantID) (ragplane.TenantPolicy, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.policies[id]
	return p, ok
}

func (s *state) keys() keySet {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.jwt
}

func (s *state) endpoints() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.workers
}

// validate checks one resource before the client accepts it; a bad one is NACKed.
func validate(typeURL string, res *anypb.Any) error {
	switch typeURL {
	case typePolicy:
		_, err := decodePolicy(res)
		return err
	case typeJWT:
		_, err := decodeKeys(res)
		return err
	case typeEndpoints:
		_, err := decodeEndpoints(res)
		return err
	case typeCluster:
		var c clusterv3.Cluster
		return res.UnmarshalTo(&c)
	}
	return nil // rate-limit configs are for stock Envoy; the policies carry the same limits
}

func decodePolicy(res *anypb.Any) (ragplane.TenantPolicy, error) {
	var st structpb.Struct
	var p ragplane.TenantPolicy
	if err := res.UnmarshalTo(&st); err != nil {
		return p, fmt.Errorf("tenant policy: %w", err)
	}
	// encoding/json writes whole floats without exponents, so limits decode into ints.
	b, err := json.Marshal(st.AsMap())
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("tenant policy: %w", err)
	}
	if err := p.TenantID.Validate(); err != nil {
		return p, fmt.Errorf("tenant policy: bad tenant id %q", p.TenantID)
	}
	if !p.Status.Valid() {
		return p, fmt.Errorf("tenant policy %s: unknown status %q", p.TenantID, p.Status)
	}
	l := p.Limits
	if l.RequestsPerSecond <= 0 || l.Burst < 1 || l.QueriesPerHour < 1 || l.MaxConcurrentRequests < 1 || l.MaxRequestBytes < 1 {
		return p, fmt.Errorf("tenant policy %s: limits out of range", p.TenantID)
	}
	return p, nil
}

func decodeKeys(res *anypb.Any) (keySet, error) {
	var prov jwtv3.JwtProvider
	ks := keySet{keys: map[string]ed25519.PublicKey{}}
	if err := res.UnmarshalTo(&prov); err != nil {
		return ks, fmt.Errorf("jwt provider: %w", err)
	}
	ks.issuer, ks.audiences = prov.GetIssuer(), prov.GetAudiences()
	if ks.issuer == "" || len(ks.audiences) == 0 {
		return ks, fmt.Errorf("jwt provider: issuer and audiences are required")
	}
	var set struct {
		Keys []struct {
			Kty, Crv, X, Kid, Alg string
		} `json:"keys"`
	}
	if err := json.Unmarshal([]byte(prov.GetLocalJwks().GetInlineString()), &set); err != nil {
		return ks, fmt.Errorf("jwt provider: jwks: %w", err)
	}
	for _, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Alg != "EdDSA" || k.Kid == "" {
			return ks, fmt.Errorf("jwt provider: key %q is not an Ed25519 EdDSA key", k.Kid)
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return ks, fmt.Errorf("jwt provider: key %q has a bad x", k.Kid)
		}
		ks.keys[k.Kid] = ed25519.PublicKey(x)
	}
	if len(ks.keys) == 0 {
		return ks, fmt.Errorf("jwt provider: no keys")
	}
	return ks, nil
}

func decodeEndpoints(res *anypb.Any) ([]string, error) {
	var cla endpointv3.ClusterLoadAssignment
	if err := res.UnmarshalTo(&cla); err != nil {
		return nil, fmt.Errorf("endpoints: %w", err)
	}
	var out []string
	for _, le := range cla.GetEndpoints() {
		for _, ep := range le.GetLbEndpoints() {
			sa := ep.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil || sa.GetAddress() == "" || sa.GetPortValue() == 0 {
				return nil, fmt.Errorf("endpoints: an endpoint without a socket address")
			}
			out = append(out, net.JoinHostPort(sa.GetAddress(), fmt.Sprint(sa.GetPortValue())))
		}
	}
	sort.Strings(out)
	return out, nil
}

// apply rebuilds the state from the client's snapshots (each already validated).
func (s *state) apply(snap func(typeURL string) map[string]*anypb.Any) {
	policies := map[ragplane.TenantID]ragplane.TenantPolicy{}
	for _, r := range snap(typePolicy) {
		if p, err := decodePolicy(r); err == nil {
			policies[p.TenantID] = p
		}
	}
	var ks keySet
	for _, r := range snap(typeJWT) {
		if k, err := decodeKeys(r); err == nil {
			ks = k
		}
	}
	var workers []string
	for _, r := range snap(typeEndpoints) {
		if eps, err := decodeEndpoints(r); err == nil {
			workers = append(workers, eps...)
		}
	}
	s.mu.Lock()
	s.policies, s.jwt, s.workers, s.updated = policies, ks, workers, time.Now()
	s.mu.Unlock()
}
