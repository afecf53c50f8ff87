package proxy

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/internal/xdsapi"
)

// subscribed are the types the proxy needs; rate-limit configs are for stock Envoy, the
// policies carry the same limits.
var subscribed = xdsapi.ProxyTypeURLs

// keySet is the verification keys and claims checks pushed by the control plane.
type keySet struct {
	issuer    string
	audiences []string
	keys      map[string]ed25519.PublicKey
	// jwks is the pushed JWK Set document as the control plane wrote it, served at
	// /.well-known/jwks.json.
	jwks []byte
}

// state is the last good configuration; it survives control-plane outages. Each xDS response
// is applied in place: only the resources it carries are decoded and stored, so an update costs
// what it changes, not the tenant count. Reads on the request path take no lock: policies are a
// sync.Map (read-mostly, many readers), keys and workers are swapped whole.
type state struct {
	policies sync.Map // ragplane.TenantID -> ragplane.TenantPolicy
	jwt      atomic.Pointer[keySet]
	workers  atomic.Pointer[[]string]
}

func (s *state) policy(id ragplane.TenantID) (ragplane.TenantPolicy, bool) {
	v, ok := s.policies.Load(id)
	if !ok {
		return ragplane.TenantPolicy{}, false
	}
	return v.(ragplane.TenantPolicy), true
}

func (s *state) keys() keySet {
	if k := s.jwt.Load(); k != nil {
		return *k
	}
	return keySet{}
}

func (s *state) endpoints() []string {
	if w := s.workers.Load(); w != nil {
		return *w
	}
	return nil
}

// decode checks one resource and returns what apply stores; a resource that fails is rejected
// (NACKed by name) and its previous version stays.
func decode(typeURL string, res *anypb.Any) (any, error) {
	switch typeURL {
	case xdsapi.TypeTenantPolicy:
		return xdsapi.DecodePolicyAny(res)
	case xdsapi.TypeJWTProvider:
		return decodeKeys(res)
	case xdsapi.TypeEndpoint:
		return decodeEndpoints(res)
	case xdsapi.TypeCluster:
		var c clusterv3.Cluster
		return nil, res.UnmarshalTo(&c)
	}
	return nil, nil
}

// apply stores the accepted resources of one response and drops the removed ones.
func (s *state) apply(typeURL string, updated map[string]any, removed []string) {
	switch typeURL {
	case xdsapi.TypeTenantPolicy:
		for _, v := range updated {
			p := v.(ragplane.TenantPolicy)
			s.policies.Store(p.TenantID, p)
		}
		for _, name := range removed {
			s.policies.Delete(ragplane.TenantID(name))
		}
	case xdsapi.TypeJWTProvider:
		if v, ok := updated[xdsapi.JWTProviderName]; ok {
			ks := v.(keySet)
			s.jwt.Store(&ks)
		}
		if slices.Contains(removed, xdsapi.JWTProviderName) {
			s.jwt.Store(nil) // no keys: every token fails (fail closed)
		}
	case xdsapi.TypeEndpoint:
		if v, ok := updated[xdsapi.DataplaneCluster]; ok {
			ws := v.([]string)
			s.workers.Store(&ws)
		}
		if slices.Contains(removed, xdsapi.DataplaneCluster) {
			s.workers.Store(nil)
		}
	}
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
	ks.jwks = []byte(prov.GetLocalJwks().GetInlineString())
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
