package dataplane

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ragplane/ragplane/internal/tenantctx"
)

// register keeps this worker in the control plane's endpoint set: it registers, renews its lease
// every HeartbeatInterval until ctx ends, and then removes itself. A missed heartbeat is retried on
// the next tick; if the worker dies, its lease runs out and the proxies stop routing to it.
//
// It says at start whether and where it registers: a worker that does not is reached by no proxy
// (proxies learn workers from the control plane), which must not pass unnoticed.
func (s *Server) register(ctx context.Context) {
	if s.cfg.ControlPlaneURL == "" {
		s.log.Warn("worker does not register with a control plane: RAGPLANE_CONTROLPLANE_URL is not set, "+
			"so no proxy routes to it (proxies learn workers from the control plane)", "addr", s.Addr())
		return
	}
	id, addr := s.workerID(), s.cfg.AdvertiseAddr
	if addr == "" {
		addr = s.Addr()
	}
	where := s.cfg.ControlPlaneURL
	if u, err := url.Parse(where); err == nil {
		where = u.Redacted() // no password in the log
	}
	s.log.Info("worker registers with the control plane", "controlplane_url", where,
		"worker_id", id, "addr", addr, "heartbeat", s.cfg.HeartbeatInterval.String())
	base := strings.TrimRight(s.cfg.ControlPlaneURL, "/") + "/v1/workers/" + url.PathEscape(id)
	token := tenantctx.WorkerToken(s.cfg.InternalKey)
	call := func(ctx context.Context, method string) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var body *bytes.Reader
		if method == http.MethodPut {
			b, _ := json.Marshal(map[string]string{"addr": addr})
			body = bytes.NewReader(b)
		} else {
			body = bytes.NewReader(nil)
		}
		req, err := http.NewRequestWithContext(ctx, method, base, body)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			return fmt.Errorf("control plane answered %d", resp.StatusCode)
		}
		return nil
	}
	failing := false
	t := time.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		if err := call(ctx, http.MethodPut); err != nil && ctx.Err() == nil {
			if !failing {
				s.log.Warn("worker registration failed; retrying", "worker_id", id, "error", err)
			}
			failing = true
		} else if failing {
			s.log.Info("worker registered again", "worker_id", id)
			failing = false
		}
		select {
		case <-ctx.Done():
			if err := call(context.WithoutCancel(ctx), http.MethodDelete); err != nil {
				s.log.Warn("worker deregistration failed", "worker_id", id, "error", err)
			}
			return
		case <-t.C:
		}
	}
}

func (s *Server) workerID() string {
	if s.cfg.WorkerID != "" {
		return s.cfg.WorkerID
	}
	host, _ := os.Hostname()
	return strings.NewReplacer(":", "-").Replace(host + "-" + s.Addr())
}
