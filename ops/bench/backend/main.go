// Command backend is the proxy benchmark's upstream (ops/bench/proxy.sh): a tuned Go HTTP server
// that answers every request with the same ~200-byte JSON body over keep-alive connections, so
// the benchmark measures what sits in front of it and not the backend.
//
// With -controlplane it also registers itself as a data-plane worker, as a real worker does
// (dataplane/register.go): PUT /v1/workers/{id} with the token derived from RAGPLANE_INTERNAL_KEY,
// renewed every -heartbeat, and DELETE on shutdown. It does not check the signed tenant context:
// the same server is measured directly, through nginx and through the Ragplane proxy.
//
//	go run ./ops/bench/backend -addr 127.0.0.1:9000 [-controlplane http://127.0.0.1:8081 -worker-id bench]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ragplane/ragplane/internal/tenantctx"
)

// body is about 200 bytes, the size of a small API answer.
var body = []byte(`{"items":[{"id":"00000000-0000-0000-0000-000000000001","title":"Retention policy",` +
	`"source":"bench","chunks":3,"created_at":"2025-01-01T00:00:00Z"}],"next_cursor":"","bench":"ragplane-proxy-bench"}` + "\n")

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "listen address")
	cp := flag.String("controlplane", "", "control plane URL to register with as a worker (empty: do not register)")
	id := flag.String("worker-id", "bench-backend", "worker id to register as")
	heartbeat := flag.Duration("heartbeat", 3*time.Second, "how often to renew the worker lease")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Error("listen", "error", err)
		os.Exit(1)
	}
	length := strconv.Itoa(len(body))
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h["Content-Type"] = []string{"application/json"}
			h["Content-Length"] = []string{length}
			_, _ = w.Write(body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	registered := make(chan struct{})
	if *cp != "" {
		key := os.Getenv("RAGPLANE_INTERNAL_KEY")
		if len(key) < tenantctx.MinKeyLen {
			log.Error("RAGPLANE_INTERNAL_KEY must be set (the control plane's) to register")
			os.Exit(2)
		}
		go func() {
			defer close(registered)
			register(ctx, log, *cp, *id, ln.Addr().String(), tenantctx.WorkerToken(key), *heartbeat)
		}()
	} else {
		close(registered)
	}
	log.Info("backend listening", "addr", ln.Addr().String(), "body_bytes", len(body))
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", "error", err)
		os.Exit(1)
	}
	<-registered
}

// register keeps the worker's lease alive until ctx ends, then removes it.
func register(ctx context.Context, log *slog.Logger, cp, id, addr, token string, every time.Duration) {
	u := strings.TrimRight(cp, "/") + "/v1/workers/" + url.PathEscape(id)
	payload, _ := json.Marshal(map[string]string{"addr": addr})
	call := func(ctx context.Context, method string, b []byte) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(b))
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
	t := time.NewTicker(every)
	defer t.Stop()
	ok := false
	for {
		if err := call(ctx, http.MethodPut, payload); err != nil {
			if ctx.Err() == nil {
				log.Warn("worker registration failed; retrying", "error", err)
			}
			ok = false
		} else if !ok {
			log.Info("registered as a worker", "id", id, "addr", addr)
			ok = true
		}
		select {
		case <-ctx.Done():
			if err := call(context.WithoutCancel(ctx), http.MethodDelete, nil); err != nil {
				log.Warn("worker deregistration failed", "error", err)
			}
			return
		case <-t.C:
		}
	}
}
