package e2etest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Cuttable forwards TCP connections to a target until Cut, when it drops every connection and
// refuses new ones until Restore: a server outage, as the client sees it.
type Cuttable struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

// NewCuttable forwards a new loopback port to target (host:port), closed when the test ends.
func NewCuttable(tb testing.TB, target string) *Cuttable {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	c := &Cuttable{ln: ln, target: target}
	tb.Cleanup(func() { ln.Close(); c.Cut() })
	go c.accept()
	return c
}

// Addr is the forwarding address.
func (c *Cuttable) Addr() string { return c.ln.Addr().String() }

func (c *Cuttable) accept() {
	for {
		in, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		if c.down {
			c.mu.Unlock()
			in.Close()
			continue
		}
		out, err := net.Dial("tcp", c.target)
		if err != nil {
			c.mu.Unlock()
			in.Close()
			continue
		}
		c.conns = append(c.conns, in, out)
		c.mu.Unlock()
		go func() { io.Copy(out, in); out.Close() }()
		go func() { io.Copy(in, out); in.Close() }()
	}
}

// Cut drops every connection and refuses new ones.
func (c *Cuttable) Cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = true
	for _, cn := range c.conns {
		cn.Close()
	}
	c.conns = nil
}

// Restore lets connections through again.
func (c *Cuttable) Restore() {
	c.mu.Lock()
	c.down = false
	c.mu.Unlock()
}
