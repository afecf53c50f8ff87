package xds

import (
	"fmt"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rlsconfv3 "github.com/envoyproxy/go-control-plane/ratelimit/config/ratelimit/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Check verifies that a set of resources is consistent before any of it is pushed: every type
// URL is served, every message has the type its URL names, names are non-empty and agree with the
// names inside the resources (so they are unique per type), Envoy resources pass their own
// validation rules, and every EDS cluster has its load assignment. A failure is a translator bug,
// never bad input, so it is a plain error (EINTERNAL to ragplane.ErrorCode).
func Check(r Resources) error {
	for typeURL, byName := range r.Types {
		if !slices.Contains(typeOrder, typeURL) {
			return checkErrorf("type %s is not served", typeURL)
		}
		for name, msg := range byName {
			if name == "" {
				return checkErrorf("%s resource without a name", typeLabel(typeURL))
			}
			if msg == nil {
				return checkErrorf("%s %q is nil", typeLabel(typeURL), name)
			}
			if got := resource.APITypePrefix + string(msg.ProtoReflect().Descriptor().FullName()); got != typeURL {
				return checkErrorf("%s %q is a %s", typeLabel(typeURL), name, got)
			}
			if err := checkName(typeURL, name, msg); err != nil {
				return err
			}
			if v, ok := msg.(interface{ ValidateAll() error }); ok {
				if err := v.ValidateAll(); err != nil {
					return checkErrorf("%s %q: %v", typeLabel(typeURL), name, err)
				}
			}
		}
	}
	for name, msg := range r.Types[TypeCluster] {
		c := msg.(*clusterv3.Cluster)
		if c.GetType() != clusterv3.Cluster_EDS {
			continue
		}
		eds := c.GetEdsClusterConfig().GetServiceName()
		if eds == "" {
			eds = name
		}
		if _, ok := r.Types[TypeEndpoint][eds]; !ok {
			return checkErrorf("EDS cluster %q has no load assignment %q", name, eds)
		}
	}
	return nil
}

// checkName compares a resource's map key with the name it carries, where it carries one.
func checkName(typeURL, name string, msg proto.Message) error {
	var inner string
	switch m := msg.(type) {
	case *clusterv3.Cluster:
		inner = m.GetName()
	case *endpointv3.ClusterLoadAssignment:
		inner = m.GetClusterName()
	case *rlsconfv3.RateLimitConfig:
		inner = m.GetName()
		if !strings.HasPrefix(name, RateLimitPrefix) {
			return checkErrorf("rate limit %q lacks the %q prefix", name, RateLimitPrefix)
		}
	case *structpb.Struct:
		inner = m.GetFields()["tenant_id"].GetStringValue()
	default:
		return nil
	}
	if inner != name {
		return checkErrorf("%s %q carries the name %q", typeLabel(typeURL), name, inner)
	}
	return nil
}

func checkErrorf(format string, args ...any) error {
	return fmt.Errorf("xds: inconsistent resources: "+format, args...)
}
