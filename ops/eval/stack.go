package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// stack is a control plane, one data-plane worker and a proxy, each a `ragplane` subprocess as
// ops/demo.sh runs them, on a catalog database of their own made for this run.
type stack struct {
	AdminURL, APIURL, AdminToken string

	serverURL string // the PostgreSQL server's admin URL (DATABASE_URL of the local stack)
	catalogDB string
	prefix    string
	usageDir  string
	procs     []proc
	logs      []*os.File
}

// proc is a running service; exited closes when it ends.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// stackConfig says what the stack runs and where it logs.
type stackConfig struct {
	Binary      string
	DatabaseURL string // a role that may create databases and roles
	RedisURL    string
	LogDir      string
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startStack creates a fresh catalog database and starts the three services; close stops them
// and drops what the run created.
func startStack(ctx context.Context, cfg stackConfig) (*stack, error) {
	if cfg.DatabaseURL == "" || cfg.RedisURL == "" {
		return nil, fmt.Errorf("DATABASE_URL and REDIS_URL must be set (make up && source .ragplane/stack.env)")
	}
	if _, err := os.Stat(cfg.Binary); err != nil {
		return nil, fmt.Errorf("%s: %w (make build)", cfg.Binary, err)
	}
	run := randomHex(4)
	s := &stack{serverURL: cfg.DatabaseURL, catalogDB: "ragplane_eval_" + run, prefix: "eval" + run + "_",
		AdminToken: randomHex(24), usageDir: filepath.Join(cfg.LogDir, "eval-usage-"+run)}
	if err := s.exec(ctx, fmt.Sprintf("create database %s", pgx.Identifier{s.catalogDB}.Sanitize())); err != nil {
		return nil, fmt.Errorf("create catalog database: %w", err)
	}
	u, err := url.Parse(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	u.Path = "/" + s.catalogDB
	var addrs [4]string
	for i := range addrs {
		if addrs[i], err = freeAddr(); err != nil {
			s.close()
			return nil, err
		}
	}
	adminAddr, xdsAddr, workerAddr, proxyAddr := addrs[0], addrs[1], addrs[2], addrs[3]
	s.AdminURL, s.APIURL = "http://"+adminAddr, "http://"+proxyAddr
	common := []string{
		"DATABASE_URL=" + u.String(), "REDIS_URL=" + cfg.RedisURL,
		"RAGPLANE_ADMIN_TOKEN=" + s.AdminToken, "RAGPLANE_SECRET_KEY=" + randomHex(32), "RAGPLANE_INTERNAL_KEY=" + randomHex(32),
		"RAGPLANE_ADMIN_ADDR=" + adminAddr, "RAGPLANE_XDS_ADDR=" + xdsAddr, "RAGPLANE_DATAPLANE_ADDR=" + workerAddr,
		"RAGPLANE_PROXY_ADDR=" + proxyAddr, "RAGPLANE_CONTROLPLANE_URL=" + s.AdminURL,
		"RAGPLANE_LOCAL_ADMIN_URL=" + cfg.DatabaseURL, "RAGPLANE_LOCAL_PREFIX=" + s.prefix,
		"RAGPLANE_REDIS_PREFIX=" + s.prefix, "RAGPLANE_USAGE_DIR=" + s.usageDir,
		"RAGPLANE_TOKEN_TTL=1h", "RAGPLANE_ACCESS_LOG=false",
	}
	// Start order: the control plane (catalog, xDS), the worker (registers with it), the proxy
	// (ready once xDS has given it a complete configuration).
	for _, svc := range []struct{ name, addr string }{{"controlplane", adminAddr}, {"dataplane", workerAddr}, {"proxy", proxyAddr}} {
		if err := s.startProcess(ctx, cfg, svc.name, svc.addr, common); err != nil {
			s.close()
			return nil, err
		}
	}
	return s, nil
}

func (s *stack) startProcess(ctx context.Context, cfg stackConfig, service, addr string, env []string) error {
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(cfg.LogDir, "eval-"+service+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	s.logs = append(s.logs, logFile)
	cmd := exec.Command(cfg.Binary, service)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// A process group of its own: Ctrl-C reaches only this program, which then deletes the tenant
	// and stops the services in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.procs = append(s.procs, proc{cmd: cmd, exited: exited})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited at start; log: %s", service, logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready on %s after 60s; log: %s", service, addr, logPath)
		}
	}
}

// close stops the services in reverse order and drops the catalog database and any tenant
// database or role the run's prefix names.
func (s *stack) close() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	for _, f := range s.logs {
		f.Close()
	}
	_ = os.RemoveAll(s.usageDir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.dropPrefixed(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "eval: cleanup:", err)
	}
	if err := s.exec(ctx, fmt.Sprintf("drop database if exists %s with (force)", pgx.Identifier{s.catalogDB}.Sanitize())); err != nil {
		fmt.Fprintln(os.Stderr, "eval: drop catalog database:", err)
	}
}

func (s *stack) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.serverURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// dropPrefixed drops the databases and roles whose names start with the run's prefix: the
// tenant database, if deleting the tenant did not already.
func (s *stack) dropPrefixed(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.serverURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, q := range []struct{ list, drop string }{
		{`select datname from pg_database where starts_with(datname, $1)`, "drop database if exists %s with (force)"},
		{`select rolname from pg_roles where starts_with(rolname, $1)`, "drop role if exists %s"},
	} {
		rows, err := conn.Query(ctx, q.list, s.prefix)
		if err != nil {
			return err
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, n := range names {
			if !strings.HasPrefix(n, s.prefix) {
				continue
			}
			if _, err := conn.Exec(ctx, fmt.Sprintf(q.drop, pgx.Identifier{n}.Sanitize())); err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
		}
	}
	return nil
}
