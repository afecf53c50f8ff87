package controlplane_test

import (
	"net/http"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/ragplane/ragplane/controlplane"
	"github.com/ragplane/ragplane/e2etest"
	"github.com/ragplane/ragplane/internal/xdsapi"
)

// rotationPublishDelay is the test stack's RAGPLANE_KEY_PUBLISH_DELAY, the longest allowed: the
// new key can only start signing within the test's deadline through the proxies' ACKs.
const rotationPublishDelay = 10 * time.Minute

// Rotating the signing key while proxies verify a stream of freshly minted tokens refuses none of
// them: the next key is published and pushed to every proxy first, and signs only after every
// proxy has ACKed the JWT provider version carrying it (which, as the proxies are all connected
// and ACK, happens long before the publish delay ends).
func TestKeyRotationRefusesNoFreshToken(t *testing.T) {
	st := e2etest.Start(t, e2etest.Options{ControlPlane: func(c *controlplane.Config) {
		c.Tokens.PublishDelay = rotationPublishDelay
	}})
	st.CreateTenant("rot_co", "pro", nil)
	proxies := []string{st.StartProxy(t), st.StartProxy(t)}

	r := st.Admin("POST", "/v1/tenants/rot_co/keys", map[string]any{"name": "rotation"})
	if r.Status != http.StatusCreated {
		t.Fatalf("create key: %d %s", r.Status, r.Body)
	}
	var key struct {
		Key string `json:"key"`
	}
	r.Decode(t, &key)
	mint := minter(t, st, key.Key)
	// use presents token to every proxy; none may refuse it.
	use := func(token, kid, when string) {
		t.Helper()
		for _, px := range proxies {
			r := e2etest.Send(t, "GET", px+"/v1/documents", nil, "Authorization", "Bearer "+token)
			if !tokenAccepted(r.Status) {
				t.Fatalf("%s: proxy %s answered %d %s to a token of key %s minted just before", when, px, r.Status, r.Body, kid)
			}
		}
	}
	_, oldKID := mint()
	acked := jwtVersions(t, st)
	if len(acked) != len(proxies) {
		t.Fatalf("GET /v1/proxies lists %v, want the %d proxies", acked, len(proxies))
	}
	for node, v := range acked {
		if v == "" {
			t.Fatalf("proxy %s has ACKed no JWT provider", node)
		}
	}

	rotated := time.Now()
	r = st.Admin("POST", "/v1/signing-keys/rotate", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}
	var set struct {
		Keys []controlplane.JWK `json:"keys"`
	}
	r.Decode(t, &set)
	if len(set.Keys) < 2 || set.Keys[0].Kid == oldKID {
		t.Fatalf("rotation answered JWKS %+v, want the new key published first beside %s", set.Keys, oldKID)
	}
	newKID := set.Keys[0].Kid

	// Keep minting and verifying until the new key signs and every proxy accepted its tokens.
	// Every token of the new key must come after every proxy ACKed the version carrying it.
	deadline := time.Now().Add(time.Minute)
	minted := map[string]int{}
	for {
		pushed := allAdvanced(t, st, acked)
		tok, kid := mint()
		switch kid {
		case oldKID:
		case newKID:
			if !pushed {
				t.Fatalf("the new key %s signs before every proxy ACKed the JWT provider carrying it (ACKed before rotation: %v, now: %v)",
					newKID, acked, jwtVersions(t, st))
			}
		default:
			t.Fatalf("token signed by %s, want %s or %s", kid, oldKID, newKID)
		}
		use(tok, kid, "during rotation")
		minted[kid]++
		if kid == newKID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new key %s did not start signing within a minute although every proxy ACKed it (%v)", newKID, jwtVersions(t, st))
		}
	}
	t.Logf("the new key signed %s after rotation; tokens minted and accepted by %d proxies meanwhile: %v",
		time.Since(rotated), len(proxies), minted)
	// The old key's tokens still verify everywhere after the switch.
	r = e2etest.Send(t, "GET", st.AdminURL+"/.well-known/jwks.json", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /.well-known/jwks.json: %d %s", r.Status, r.Body)
	}
	r.Decode(t, &set)
	found := false
	for _, k := range set.Keys {
		found = found || k.Kid == oldKID
	}
	if !found {
		t.Fatalf("JWKS after the switch %+v lacks the retired key %s", set.Keys, oldKID)
	}
}

// jwtVersions returns, by node id, the JWT provider version each connected proxy has ACKed.
func jwtVersions(t *testing.T, st *e2etest.Stack) map[string]string {
	t.Helper()
	r := st.Admin("GET", "/v1/proxies", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("GET /v1/proxies: %d %s", r.Status, r.Body)
	}
	var page struct {
		Items []struct {
			NodeID string `json:"node_id"`
			Types  map[string]struct {
				AckedVersion string `json:"acked_version"`
			} `json:"types"`
		} `json:"items"`
	}
	r.Decode(t, &page)
	out := map[string]string{}
	for _, p := range page.Items {
		out[p.NodeID] = p.Types[xdsapi.TypeJWTProvider].AckedVersion
	}
	return out
}

// allAdvanced reports whether every proxy in before has ACKed a newer JWT provider version.
func allAdvanced(t *testing.T, st *e2etest.Stack, before map[string]string) bool {
	t.Helper()
	now := jwtVersions(t, st)
	for node, v := range before {
		if now[node] == "" || now[node] == v {
			return false
		}
	}
	return true
}

// minter returns a function that exchanges apiKey for a token and returns it with its kid.
func minter(t *testing.T, st *e2etest.Stack, apiKey string) func() (token, kid string) {
	return func() (token, kid string) {
		t.Helper()
		r := e2etest.Send(t, "POST", st.AdminURL+"/v1/auth/token", nil, "Authorization", "Bearer "+apiKey)
		if r.Status != http.StatusOK {
			t.Fatalf("token: %d %s", r.Status, r.Body)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		r.Decode(t, &tok)
		parsed, _, err := jwt.NewParser().ParseUnverified(tok.AccessToken, &controlplane.TenantClaims{})
		if err != nil {
			t.Fatalf("parse minted token: %v", err)
		}
		kid, _ = parsed.Header["kid"].(string)
		return tok.AccessToken, kid
	}
}

// A subscriber that never ACKs the key set holds the new key back (it would refuse its tokens)
// until RAGPLANE_KEY_PUBLISH_DELAY has passed, which bounds the wait: the key signs from then on,
// and not a moment before.
func TestKeyRotationWaitsPublishDelayForUnackedProxy(t *testing.T) {
	const delay = 2 * time.Second
	st := e2etest.Start(t, e2etest.Options{ControlPlane: func(c *controlplane.Config) { c.Tokens.PublishDelay = delay }})
	st.CreateTenant("mute_co", "pro", nil)
	px := st.StartProxy(t)

	// The mute subscriber asks for the JWT provider, takes the first response and never answers.
	conn, err := grpc.NewClient(st.XDSAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: &corev3.Node{Id: "mute-proxy"},
		TypeUrl: xdsapi.TypeJWTProvider, ResourceNamesSubscribe: []string{xdsapi.JWTProviderName}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("mute subscriber's first response: %v", err)
	}

	r := st.Admin("POST", "/v1/tenants/mute_co/keys", map[string]any{"name": "rotation"})
	if r.Status != http.StatusCreated {
		t.Fatalf("create key: %d %s", r.Status, r.Body)
	}
	var key struct {
		Key string `json:"key"`
	}
	r.Decode(t, &key)
	mint := minter(t, st, key.Key)
	_, oldKID := mint()

	// The catalog (on this host's clock) makes the key active delay after the rotation's commit,
	// so not before rotated + delay. Both sides compare wall-clock readings (Round(0) drops Go's
	// monotonic reading): the signer compares the catalog's timestamp with its wall clock, and a
	// step of the host's clock between the two readings would otherwise move the bound.
	rotated := time.Now().Round(0)
	if r = st.Admin("POST", "/v1/signing-keys/rotate", nil); r.Status != http.StatusOK {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}
	var set struct {
		Keys []controlplane.JWK `json:"keys"`
	}
	r.Decode(t, &set)
	if len(set.Keys) < 2 || set.Keys[0].Kid == oldKID {
		t.Fatalf("rotation answered JWKS %+v, want the new key published first beside %s", set.Keys, oldKID)
	}
	nextKID, notBefore := set.Keys[0].Kid, rotated.Add(delay)
	deadline := time.Now().Add(delay + time.Minute)
	for {
		tok, kid := mint()
		if rr := e2etest.Send(t, "GET", px+"/v1/documents", nil, "Authorization", "Bearer "+tok); !tokenAccepted(rr.Status) {
			t.Fatalf("proxy answered %d %s to a fresh token of key %s", rr.Status, rr.Body, kid)
		}
		if kid == nextKID {
			if now := time.Now().Round(0); now.Before(notBefore) {
				t.Fatalf("the new key signs %s after rotation, before the %s publish delay, while a subscriber has not ACKed it",
					now.Sub(rotated), delay)
			}
			break
		}
		if kid != oldKID {
			t.Fatalf("token signed by %s, want %s or %s", kid, oldKID, nextKID)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new key %s did not start signing within %s of rotation", nextKID, delay+time.Minute)
		}
	}
	if v := jwtVersions(t, st)["mute-proxy"]; v != "" {
		t.Fatalf("the mute subscriber ACKed %q", v)
	}
}

// tokenAccepted reports whether a proxy's answer means it verified the token: the request was
// served, or refused by the tenant's rate limit, which applies only to verified tokens.
func tokenAccepted(status int) bool {
	return status == http.StatusOK || status == http.StatusTooManyRequests
}
