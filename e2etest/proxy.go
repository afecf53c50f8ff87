package e2etest

import (
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/ragplane/ragplane/proxy"
)

// StartProxy runs a proxy in the test process, subscribed to the stack's control plane over xDS,
// and waits until it has a complete configuration that includes every tenant change made before
// the call (see WaitPolicies): readiness alone could come from a push that predates the last one.
func (s *Stack) StartProxy(tb testing.TB, mutate ...func(*proxy.Config)) string {
	tb.Helper()
	return s.StartProxyLogged(tb, logger(), mutate...)
}

// StartProxyLogged is StartProxy with the proxy's logs going to log, for tests of the logs.
func (s *Stack) StartProxyLogged(tb testing.TB, log *slog.Logger, mutate ...func(*proxy.Config)) string {
	tb.Helper()
	p := s.RunProxy(tb, log, mutate...)
	WaitReady(tb, p.URL)
	s.WaitPolicies(tb)
	return p.URL
}

// WaitReady polls url/readyz until it answers 200.
func WaitReady(tb testing.TB, url string) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s not ready", url)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// APIKey creates an API key for tenant with roles (default reader and writer) through the admin
// API and returns its secret and id.
func (s *Stack) APIKey(tenant string, roles ...string) (secret, id string) {
	s.t.Helper()
	body := map[string]any{"name": "e2e"}
	if len(roles) > 0 {
		body["roles"] = roles
	}
	var key struct {
		Key string `json:"key"`
		ID  string `json:"id"`
	}
	r := s.Admin("POST", "/v1/tenants/"+tenant+"/keys", body)
	if r.Status != http.StatusCreated {
		s.t.Fatalf("create key: %d %s", r.Status, r.Body)
	}
	r.Decode(s.t, &key)
	return key.Key, key.ID
}

// Token creates an API key for tenant and exchanges it for an access token.
func (s *Stack) Token(tenant string, roles ...string) string {
	s.t.Helper()
	key, _ := s.APIKey(tenant, roles...)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	r := Send(s.t, "POST", s.AdminURL+"/v1/auth/token", nil, "Authorization", "Bearer "+key)
	if r.Status != http.StatusOK {
		s.t.Fatalf("token: %d %s", r.Status, r.Body)
	}
	r.Decode(s.t, &tok)
	return tok.AccessToken
}
