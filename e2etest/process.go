package e2etest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/ragplane once per test process and returns its path.
func Binary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ragplane-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "ragplane")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/ragplane/ragplane/cmd/ragplane").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binPath
}

// FreeAddr returns a loopback address with a free port.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Process is a ragplane service running as its own process.
type Process struct {
	cmd *exec.Cmd
	// Addr is where it listens.
	Addr string
}

// StartProcess runs `ragplane <service>` with env, waits for /readyz on addr, and kills it at the
// end of the test.
func StartProcess(tb testing.TB, service, addr string, env ...string) *Process {
	tb.Helper()
	cmd := exec.Command(Binary(tb), service)
	// The test stack runs PostgreSQL in its fast, undurable mode (make test: RAGPLANE_STACK_FAST=1);
	// env may override the flag.
	cmd.Env = append(append(os.Environ(), "RAGPLANE_ALLOW_UNDURABLE=1"), env...)
	if os.Getenv("RAGPLANE_TEST_LOG") != "" {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &Process{cmd: cmd, Addr: addr}
	tb.Cleanup(p.Kill)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s process not ready at %s", service, addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill ends the process with SIGKILL, as a crash would.
func (p *Process) Kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
	}
}

// WorkerEnv is the environment a worker process needs to join this stack.
func (s *Stack) WorkerEnv(addr string) []string {
	return []string{"DATABASE_URL=" + s.CatalogURL, "RAGPLANE_INTERNAL_KEY=" + InternalKey,
		"RAGPLANE_SECRET_KEY=" + secretKey, "RAGPLANE_DATAPLANE_ADDR=" + addr}
}
