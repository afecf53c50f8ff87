package controlplane_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/controlplane"
	"github.com/ragplane/ragplane/internal/tenantctx"
)

const internalKey = "internal-key-for-tests-0123456789abcdef"

func TestWorkerRegistry(t *testing.T) {
	ts := mustStart(t, func(c *controlplane.Config) {
		c.InternalKey = internalKey
		c.WorkerLeaseTTL = time.Second
	})
	token := tenantctx.WorkerToken(internalKey)
	put := func(id, addr, tok string) response {
		return ts.do("PUT", "/v1/workers/"+id, map[string]string{"addr": addr}, "Authorization", "Bearer "+tok)
	}
	mustStatus(t, put("w1", "127.0.0.1:9001", token), http.StatusOK)
	mustStatus(t, put("w2", "127.0.0.1:9002", token), http.StatusOK)
	mustStatus(t, put("w3", "127.0.0.1:9003", adminToken), http.StatusUnauthorized)
	mustStatus(t, put("w3", "127.0.0.1:9003", "garbage"), http.StatusUnauthorized)
	mustStatus(t, put("bad id!", "127.0.0.1:9003", token), http.StatusUnprocessableEntity)
	mustStatus(t, put("w3", "not-an-address", token), http.StatusUnprocessableEntity)
	// Workers cannot use the admin API with their token, nor list workers.
	mustStatus(t, ts.do("GET", "/v1/workers", nil, "Authorization", "Bearer "+token), http.StatusUnauthorized)

	list := func() []ragplane.Worker {
		r := ts.do("GET", "/v1/workers", nil)
		mustStatus(t, r, http.StatusOK)
		var p struct {
			Items []ragplane.Worker `json:"items"`
		}
		r.decode(t, &p)
		return p.Items
	}
	if ws := list(); len(ws) != 2 {
		t.Fatalf("workers %+v, want w1 and w2", ws)
	}
	// w1 keeps heartbeating, w2 stops: within a few seconds only w1 is left.
	deadline := time.Now().Add(5 * time.Second)
	for {
		mustStatus(t, put("w1", "127.0.0.1:9001", token), http.StatusOK)
		ws := list()
		if len(ws) == 1 && ws[0].ID == "w1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers after w2 stopped heartbeating: %+v", ws)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A clean shutdown removes the worker at once.
	mustStatus(t, ts.do("DELETE", "/v1/workers/w1", nil, "Authorization", "Bearer "+token), http.StatusNoContent)
	if ws := list(); len(ws) != 0 {
		t.Fatalf("workers after delete: %+v", ws)
	}
}
