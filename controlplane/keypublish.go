package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/ragplane/ragplane/catalog"
	"github.com/ragplane/ragplane/controlplane/xds"
)

// Key publication timing.
const (
	// keyHolderLive is how long a replica's report of the keys its proxies hold counts: a replica
	// silent for longer is presumed gone. Replicas report every xdsSafetyInterval.
	keyHolderLive = 3 * xdsSafetyInterval
	// keyAckPoll is how often a replica looks at its proxies' ACKs while a key is pending.
	keyAckPoll = 20 * time.Millisecond
	// keyPushesKept bounds the key pushes remembered while waiting for ACKs.
	keyPushesKept = 16
)

// keyPush is one set of verification keys handed to the xDS server and the version carrying it.
type keyPush struct {
	version string
	kids    []string
	pending string // the newest key, if it is not signing yet
}

// keyPublication follows which signing keys every proxy connected to this replica holds, so that
// a pending key starts signing as soon as every proxy of every replica holds it instead of at the
// end of RAGPLANE_KEY_PUBLISH_DELAY, which remains the bound when a proxy never ACKs.
type keyPublication struct {
	replica string

	mu     sync.Mutex
	pushes []keyPush // oldest first
	wake   chan struct{}
}

func newKeyPublication() *keyPublication {
	host, _ := os.Hostname()
	b := make([]byte, 6)
	rand.Read(b)
	return &keyPublication{replica: host + "/" + hex.EncodeToString(b), wake: make(chan struct{}, 1)}
}

// pushed records that version carries keys (newest first, as catalog.Store.SigningKeys).
func (p *keyPublication) pushed(version string, keys []catalog.SigningKey, now time.Time) {
	kp := keyPush{version: version}
	for _, k := range keys {
		kp.kids = append(kp.kids, k.KID)
	}
	if len(keys) > 0 && keys[0].Private != nil && keys[0].ActiveAt.After(now) {
		kp.pending = keys[0].KID
	}
	p.mu.Lock()
	if n := len(p.pushes); n == 0 || p.pushes[n-1].version != version || !slices.Equal(p.pushes[n-1].kids, kp.kids) ||
		p.pushes[n-1].pending != kp.pending {
		p.pushes = append(p.pushes, kp)
		if len(p.pushes) > keyPushesKept {
			p.pushes = slices.Delete(p.pushes, 0, len(p.pushes)-keyPushesKept)
		}
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// held returns the keys every subscribed proxy holds (those of the newest push all of them have
// ACKed) and the pending key of the newest push.
func (p *keyPublication) held(srv *xds.Server) (held []string, pending string) {
	p.mu.Lock()
	pushes := slices.Clone(p.pushes)
	p.mu.Unlock()
	if len(pushes) == 0 {
		return nil, ""
	}
	pending = pushes[len(pushes)-1].pending
	for i := len(pushes) - 1; i >= 0; i-- {
		if srv.AckedByAll(xds.TypeJWTProvider, pushes[i].version) {
			return pushes[i].kids, pending
		}
	}
	return nil, pending
}

// publishKeys reports to the catalog, until ctx ends, which keys this replica's proxies hold, and
// activates a pending key once every live replica reports holding it. It reports at once (holding
// nothing yet, so no key activates before this replica's proxies have it), on every change, and
// every xdsSafetyInterval; while a key is pending it watches the ACKs every keyAckPoll.
func (s *Server) publishKeys(ctx context.Context, p *keyPublication) {
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := s.store.ForgetKeyHolder(cctx, p.replica); err != nil {
			s.log.Warn("forgetting this replica's signing key report failed", "error", err)
		}
	}()
	var reported []string
	var lastReport time.Time
	first := true
	for {
		held, pending := p.held(s.xds)
		due := first || !slices.Equal(held, reported) || time.Since(lastReport) >= xdsSafetyInterval
		if due {
			if err := s.store.ReportKeyHolder(ctx, p.replica, held); err != nil {
				if ctx.Err() != nil {
					return
				}
				s.log.Warn("reporting the signing keys this replica's proxies hold failed", "error", err)
			} else {
				reported, lastReport, first = held, time.Now(), false
				if pending != "" && slices.Contains(held, pending) {
					s.activateKey(ctx, pending)
				}
			}
		}
		wait := xdsSafetyInterval
		if pending != "" {
			wait = keyAckPoll
		}
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-time.After(wait):
		}
	}
}

// activateKey makes the pending key kid sign now if every live replica holds it.
func (s *Server) activateKey(ctx context.Context, kid string) {
	ok, err := s.store.ActivateSigningKey(ctx, kid, keyHolderLive)
	switch {
	case err != nil && ctx.Err() == nil:
		s.log.Warn("activating the published signing key failed", "kid", kid, "error", err)
	case ok:
		s.issuer.invalidate()
		s.log.Info("signing key active: every proxy holds it", "kid", kid)
	}
}
