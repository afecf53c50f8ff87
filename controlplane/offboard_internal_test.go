package controlplane

import (
	"context"
	"testing"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/controlplane/provision"
)

type fakeProv struct{ provision.Provisioner }

type fakePools struct{ fakeProv }

func (fakePools) UpgradePool(context.Context, string) (int, error) { return 0, nil }

type fakeSleeper struct{ fakeProv }

func (fakeSleeper) Suspend(context.Context, ragplane.TenantID, string) error { return nil }
func (fakeSleeper) Start(context.Context, ragplane.TenantID, string) error   { return nil }

type fakeBoth struct{ fakeSleeper }

func (fakeBoth) UpgradePool(context.Context, string) (int, error) { return 0, nil }

// The deletion-report wrapper keeps the optional interfaces the reconciler looks for by type
// assertion: without them pools are never upgraded and idle Neon computes never suspended.
func TestOffboardingKeepsProvisionerInterfaces(t *testing.T) {
	s := &Server{}
	for _, c := range []struct {
		name          string
		p             provision.Provisioner
		pools, sleeps bool
	}{
		{"plain", fakeProv{}, false, false},
		{"pools", fakePools{}, true, false},
		{"sleeper", fakeSleeper{}, false, true},
		{"both", fakeBoth{}, true, true},
	} {
		w := s.withOffboarding(c.p)
		_, pools := w.(provision.PoolUpgrader)
		_, sleeps := w.(provision.Sleeper)
		if pools != c.pools || sleeps != c.sleeps {
			t.Errorf("%s: wrapped PoolUpgrader %v Sleeper %v, want %v %v", c.name, pools, sleeps, c.pools, c.sleeps)
		}
	}
}
